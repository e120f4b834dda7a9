//! Checks of `spec.load`: the services named and their curves.

use super::*;

impl Checker<'_, '_, '_> {
    // ---- load ------------------------------------------------------------

    pub(super) fn loads(&mut self, raw: &[RawLoad], end: Option<Duration>) -> Option<Vec<Load>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, l) in raw.iter().enumerate() {
            let path = join_index("spec.load", i);
            match self.load(l, &path, end) {
                Some(load) => {
                    if out.iter().any(|o: &Load| o.service == load.service) {
                        self.ctx.at_value(
                            &join_key(&path, "service"),
                            format!("`{path}.service`: {} has a load already", load.name),
                            "give each service one curve; join the two into one list of points",
                        );
                        ok = false;
                    }
                    out.push(load);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn load(&mut self, raw: &RawLoad, path: &str, end: Option<Duration>) -> Option<Load> {
        let service = self.service(&raw.service, &join_key(path, "service"), self.initial);
        let given: Vec<&str> = ["rps", "points", "steps"]
            .into_iter()
            .filter(|k| self.ctx.index.get(&join_key(path, k)).is_some())
            .collect();
        let curve = match given.as_slice() {
            [] => {
                self.ctx.at_key(
                    path,
                    format!("`{path}` has no rate"),
                    "add `rps: 200` for a constant rate, or `points:` (joined linearly) or `steps:` (each holds until the next), each a list of `{at, rps}`",
                );
                None
            }
            ["rps"] => {
                if raw.repeat.is_some() {
                    self.ctx.at_key(
                        &join_key(path, "repeat"),
                        format!("`{path}.repeat` repeats nothing: the rate is constant"),
                        "remove `repeat`, or give `points` or `steps` to repeat",
                    );
                }
                let rps = self.rate(raw.rps, &join_key(path, "rps"))?;
                Some(Curve { points: vec![(Duration::ZERO, rps)], shape: Shape::Linear, repeat: None })
            }
            [one] => {
                let (points, shape) = match *one {
                    "points" => (&raw.points, Shape::Linear),
                    _ => (&raw.steps, Shape::Steps),
                };
                self.curve(points.as_deref().unwrap_or_default(), &join_key(path, one), shape, &raw.repeat, end)
            }
            [_, second, ..] => {
                self.ctx.at_key(
                    &join_key(path, second),
                    format!(
                        "`{path}` has {}: a curve is one of them",
                        given.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(" and ")
                    ),
                    "keep `rps` (constant), `points` (joined linearly) or `steps` (each holds until the next)",
                );
                None
            }
        };
        let (name, service) = service?;
        Some(Load { name, service, curve: curve? })
    }

    pub(super) fn rate(&mut self, v: Option<f64>, path: &str) -> Option<f64> {
        let Some(rps) = v else {
            self.ctx.missing(path, "add the requests per second, e.g. `rps: 200`");
            return None;
        };
        if !rps.is_finite() || rps < 0.0 {
            self.ctx.at_value(
                path,
                format!("`{path}` is {rps}"),
                "requests per second are a number, 0 or more, e.g. `200`",
            );
            return None;
        }
        Some(rps)
    }

    pub(super) fn curve(
        &mut self,
        raw: &[RawPoint],
        path: &str,
        shape: Shape,
        repeat: &Option<DurationText>,
        end: Option<Duration>,
    ) -> Option<Curve> {
        if raw.is_empty() {
            self.ctx.at_value(path, format!("`{path}` has no point"), "add at least one `{at: 0s, rps: 200}`");
            return None;
        }
        let repeat_path = path.rsplit_once('.').map_or(String::new(), |(p, _)| join_key(p, "repeat"));
        // `Some(None)`: a repeat was written but is invalid (reported).
        let repeat = repeat
            .as_ref()
            .map(|_| self.positive(repeat, &repeat_path, "write the period of the cycle, e.g. `repeat: 24h`"));
        let mut points = Vec::new();
        let mut ok = true;
        for (i, p) in raw.iter().enumerate() {
            let pp = join_index(path, i);
            let at_path = join_key(&pp, "at");
            let at = self.duration(&p.at, &at_path, "write when the rate applies, from the start, e.g. `at: 10m`");
            let rps = self.rate(p.rps, &join_key(&pp, "rps"));
            let (Some(at), Some(rps)) = (at, rps) else {
                ok = false;
                continue;
            };
            if let Some(&(prev, _)) = points.last()
                && at <= prev
            {
                self.ctx.at_value(
                    &at_path,
                    format!(
                        "`{at_path}` is {}, not after the point before it ({})",
                        format_duration(at),
                        format_duration(prev)
                    ),
                    "list the points in time order; for a sudden change put the next point a second later",
                );
                ok = false;
            }
            if let Some(Some(period)) = repeat
                && at >= period
            {
                self.ctx.at_value(
                    &at_path,
                    format!(
                        "`{at_path}` is {}, not within the repeated period ({})",
                        format_duration(at),
                        format_duration(period)
                    ),
                    "the points of a repeating curve lie within one period, from `0s`",
                );
                ok = false;
            }
            if let (None, Some(end)) = (repeat, end)
                && at > end
            {
                // Harmless, but surely not what was meant.
                self.ctx.at_value(
                    &at_path,
                    format!(
                        "`{at_path}` is {}, after the end of the run ({})",
                        format_duration(at),
                        format_duration(end)
                    ),
                    "remove the point, or make `spec.duration` longer",
                );
                ok = false;
            }
            points.push((at, rps));
        }
        let repeat = match repeat {
            Some(None) => return None,
            Some(Some(period)) => Some(period),
            None => None,
        };
        if let (Some(period), Some(end)) = (repeat, end)
            && (end.as_millis() / period.as_millis().max(1) + 1) * points.len() as u128 > MAX_CURVE_POINTS
        {
            self.ctx.at_value(
                &repeat_path,
                format!(
                    "`{repeat_path}` is {}: the curve repeats into more than {MAX_CURVE_POINTS} points over the run",
                    format_duration(period)
                ),
                "repeat a longer period (a day, `24h`, is typical), or make the run shorter",
            );
            return None;
        }
        ok.then_some(Curve { points, shape, repeat })
    }
}
