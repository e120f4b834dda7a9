//! Checks of `spec.events`: times, repetitions and the actions.

use super::*;

impl Checker<'_, '_, '_> {
    // ---- events ----------------------------------------------------------

    pub(super) fn events(&mut self, raw: &[RawEvent], end: Option<Duration>) -> Option<Vec<Event>> {
        let mut ok = true;
        let mut timed = Vec::new();
        for (i, e) in raw.iter().enumerate() {
            let path = join_index("spec.events", i);
            let at = self.time(&e.at, &join_key(&path, "at"), end);
            let every = match &e.every {
                None => Some(None),
                Some(_) => self
                    .positive(
                        &e.every,
                        &join_key(&path, "every"),
                        "write the time between occurrences, e.g. `every: 4h`",
                    )
                    .map(Some),
            };
            let action = self.action_key(&path);
            match (at, every) {
                (Some(at), Some(every)) => timed.push(Timed { path, at, every, raw: e, action }),
                _ => ok = false,
            }
            ok &= action.is_some();
        }
        // Desired-state switches first: the names of the other events are
        // those of the desired state in force at their time.
        let mut switches: Vec<(Duration, usize, Option<DesiredStateDir>)> = Vec::new();
        for (i, t) in timed.iter().enumerate() {
            if t.action == Some("desiredState") {
                let d = self.desired_state(t);
                ok &= d.is_some();
                switches.push((t.at, i, d));
            }
        }
        let mut events = Vec::new();
        for (i, t) in timed.iter().enumerate() {
            let Some(key) = t.action else { continue };
            // The state in force at the event: the last switch before it
            // (or at the same time, earlier in the file).
            let in_force = switches
                .iter()
                .filter(|(at, j, _)| *at < t.at || (*at == t.at && *j < i))
                .max_by_key(|(at, j, _)| (*at, *j))
                .map_or(self.initial, |(_, _, d)| d.as_ref());
            let action = match key {
                "desiredState" => switches
                    .iter()
                    .find(|(_, j, _)| *j == i)
                    .and_then(|(_, _, d)| d.clone())
                    .map(|d| Action::DesiredState(Box::new(d))),
                _ => self.action(t, key, in_force, switches.iter().any(|(at, _, d)| *at <= t.at && d.is_none())),
            };
            let Some(action) = action else {
                ok = false;
                continue;
            };
            let line = self.ctx.index.value_pos(&t.path).line;
            let end = end.unwrap_or_default();
            let mut at = t.at;
            loop {
                events.push((at, i, Event { at, line, action: action.clone() }));
                if events.len() > MAX_OCCURRENCES {
                    self.ctx.at_value(
                        &join_key(&t.path, "every"),
                        format!("the events occur more than {MAX_OCCURRENCES} times in all"),
                        "space them further apart (a larger `every`), or make the run shorter",
                    );
                    return None;
                }
                match t.every {
                    Some(every) if at + every < end => at += every,
                    _ => break,
                }
            }
        }
        events.sort_by_key(|(at, i, _)| (*at, *i));
        ok.then(|| events.into_iter().map(|(_, _, e)| e).collect())
    }

    /// The one action key the event at `path` has, or a diagnostic.
    pub(super) fn action_key(&mut self, path: &str) -> Option<&'static str> {
        let present: Vec<&'static str> =
            raw::ACTIONS.iter().copied().filter(|k| self.ctx.index.get(&join_key(path, k)).is_some()).collect();
        match present.as_slice() {
            [one] => Some(one),
            [] => {
                // An unknown key close to an action was reported with its
                // did-you-mean already.
                if !self.ctx.suggested.iter().any(|s| s.starts_with(&format!("{path}."))) {
                    self.ctx.at_key(
                        path,
                        format!("`{path}` has no action"),
                        format!(
                            "add one of: {}",
                            raw::ACTIONS.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
                None
            }
            [_, second, ..] => {
                self.ctx.at_key(
                    &join_key(path, second),
                    format!(
                        "`{path}` has {} actions ({}): an event has one",
                        present.len(),
                        present.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                    ),
                    "split it into one event per action, at the same `at`",
                );
                None
            }
        }
    }

    pub(super) fn desired_state(&mut self, t: &Timed) -> Option<DesiredStateDir> {
        let path = join_key(&t.path, "desiredState");
        let written = self.ctx.required(
            &t.raw.desired_state,
            &path,
            "write the desired-state directory to switch to, relative to the scenario file, e.g. `desiredState: after/`",
        )?;
        let base = self.ctx.file.parent().unwrap_or(Path::new(""));
        let dir = base.join(written);
        if !dir.is_dir() {
            self.ctx.at_value(
                &path,
                format!("`{path}`: {} is not a directory", dir.display()),
                "paths are relative to the scenario file's directory; the directory holds desired-state YAML",
            );
            return None;
        }
        let mut found = Vec::new();
        let d = self.dirs.load(&dir, &mut found);
        if d.is_none() && found.is_empty() {
            // Loaded before, and reported then.
            return None;
        }
        self.ctx.diags.extend(found);
        d
    }

    /// The event's action, its names resolved in `in_force`. `unknown`: a
    /// switch before it failed, so names cannot be checked.
    pub(super) fn action(
        &mut self,
        t: &Timed,
        key: &str,
        in_force: Option<&DesiredStateDir>,
        unknown: bool,
    ) -> Option<Action> {
        let path = join_key(&t.path, key);
        let state = if unknown { None } else { in_force };
        let e = t.raw;
        match key {
            "deploy" => {
                let r =
                    self.present(&e.deploy, &path, "write which service ECS deploys, e.g. `deploy: {service: app}`")?;
                let (name, service) = self.service(&r.service, &join_key(&path, "service"), state)?;
                Some(Action::Deploy { name, service })
            }
            "actor" => {
                let r = self.present(
                    &e.actor,
                    &path,
                    "write the service and its new count, e.g. `actor: {service: app, desiredCount: 6}`",
                )?;
                let service = self.service(&r.service, &join_key(&path, "service"), state);
                let count_path = join_key(&path, "desiredCount");
                let count = self
                    .ctx
                    .required(
                        &r.desired_count,
                        &count_path,
                        "write the count the other tool sets, e.g. `desiredCount: 6`",
                    )
                    .copied()
                    .and_then(|v| {
                        self.ctx.int(v, &count_path, 0, i64::MAX, "a task count is a whole number, 0 or more")
                    });
                let (name, service) = service?;
                Some(Action::Actor { name, service, desired_count: count? })
            }
            "terminateInstance" => {
                let r = self.present(
                    &e.terminate_instance,
                    &path,
                    "write how many instances, e.g. `terminateInstance: {count: 1}`",
                )?;
                let count_path = join_key(&path, "count");
                let count = match r.count {
                    None => Some(1),
                    Some(v) => self.ctx.int(v, &count_path, 1, i64::MAX, "a number of instances, at least 1"),
                };
                let capacity = self.capacity(r.capacity.as_deref(), &path, state, unknown || in_force.is_none());
                let zone = match (&r.zone, capacity) {
                    (Some(z), Some(cap)) => self.zone(z, cap, &join_key(&path, "zone")).map(Some),
                    (z, _) => Some(z.clone()),
                };
                Some(Action::TerminateInstance { group: capacity?.group.clone(), count: count?, zone: zone? })
            }
            "restartController" => {
                if let Some(raw::RawFlag(false)) = e.restart_controller {
                    self.ctx.at_value(
                        &path,
                        format!("`{path}` is false"),
                        "an event happens: write `restartController: {}`, or remove the event",
                    );
                    return None;
                }
                Some(Action::RestartController)
            }
            _ => {
                let r =
                    self.present(&e.outage, &path, "write how long AWS is unreachable, e.g. `outage: {duration: 2m}`")?;
                let duration = self.positive(
                    &r.duration,
                    &join_key(&path, "duration"),
                    "write how long AWS is unreachable, e.g. `duration: 2m`",
                )?;
                Some(Action::Outage { duration })
            }
        }
    }

    /// An action's fields, reported as empty when the key has no value.
    pub(super) fn present<'v, T>(&mut self, v: &'v Option<T>, path: &str, help: &str) -> Option<&'v T> {
        self.ctx.required(v, path, help)
    }

    /// The Capacity whose group loses instances: the named one, else the
    /// only one. `quiet`: the desired state is invalid (reported on its own).
    pub(super) fn capacity<'s>(
        &mut self,
        named: Option<&str>,
        path: &str,
        state: Option<&'s DesiredStateDir>,
        quiet: bool,
    ) -> Option<&'s Capacity> {
        let state = state.filter(|_| !quiet)?;
        let caps = &state.desired.capacities;
        let names: Vec<&str> = caps.iter().map(|c| c.name.as_str()).collect();
        match named {
            Some(n) => {
                if let Some(c) = caps.iter().find(|c| c.name == n) {
                    return Some(c);
                }
                self.no_such(&join_key(path, "capacity"), "Capacity", ("Capacity document", n), &names, state);
                None
            }
            None => match caps.as_slice() {
                [one] => Some(one),
                [] => {
                    self.ctx.at_key(
                        path,
                        format!(
                            "`{path}`: the desired state {} has no Capacity document, so no Auto Scaling group",
                            state.dir.display()
                        ),
                        "AWS terminates instances of the group a Capacity document names: add one, or remove the event",
                    );
                    None
                }
                _ => {
                    self.ctx.at_key(
                        path,
                        format!("`{path}`: the desired state {} has several Capacity documents", state.dir.display()),
                        format!("say whose group loses instances with `capacity:`, one of {}", backticked(&names)),
                    );
                    None
                }
            },
        }
    }

    /// A zone of the capacity, when the capacity names its zones.
    pub(super) fn zone(&mut self, zone: &str, cap: &Capacity, path: &str) -> Option<String> {
        let names: Vec<&str> = cap.zones.iter().filter_map(|z| z.zone.as_deref()).collect();
        if names.is_empty() || names.contains(&zone) {
            return Some(zone.to_string());
        }
        let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let d = Diagnostic::at(
            self.ctx.file,
            self.ctx.index.value_pos(path),
            format!("`{path}`: `{zone}` is not a zone of the Capacity `{}`", cap.name),
            format!("its zones are {list}"),
        );
        self.ctx.diags.push(d.did_you_mean(did_you_mean(zone, &names)));
        None
    }
}
