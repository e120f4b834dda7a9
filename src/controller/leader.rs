//! Leadership: which of several daemons on one desired state may write.
//!
//! Without a lease (`ballast run` without `--lease-table`, and every
//! simulation) the daemon is leader alone. With one, daemons contend for a
//! [`LeaseStore`] record the way the DynamoDB lock client does:
//!
//! - **Acquire** when the record is absent, or when a standby has seen the
//!   same version unchanged for a whole lease duration *on its own
//!   monotonic clock* (no wall clocks are compared), with a write
//!   conditioned on that version.
//! - **Renew** every third of the duration, conditioned on the version
//!   held. The lease is valid until the instant the renew was *sent* plus
//!   the duration: a standby starts timing a version only after it read
//!   it, which is later, so the holder's validity always ends first.
//! - **Release** on shutdown with a delete conditioned on the version.
//!
//! ECS and ELBv2 take no fencing token, so the leader fences itself
//! ([`Leadership::guard`]): a write starts only while the lease stays
//! valid for longer than the write's time budget plus a margin, is
//! abandoned when the budget runs out, and is cancelled at once when a
//! renew finds the lease taken. A refused write drops the daemon to
//! standby.
//!
//! A standby observes nothing and writes nothing. Each term of leadership
//! has a number; the controller starts a new term from a fresh
//! observation and an empty memory (`Controller::run`).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::cloud::Clock;
use crate::cloud::lease::{LeaseError, LeaseRecord, LeaseStore};
use crate::controller::SharedStatus;
use crate::metrics::Metrics;

/// How many role changes /status keeps.
const TRANSITIONS: usize = 10;

/// The lease's timing, all derived from its duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOptions {
    /// Where the lease is kept, for logs and /status (`table/name`).
    pub name: String,
    /// This daemon's identity in the record ([`holder_identity`]).
    pub holder: String,
    /// How long a lease stays valid after the write that took or renewed it.
    pub duration: Duration,
}

impl LeaseOptions {
    /// The leader renews this often: a renew can fail twice before the
    /// lease runs low.
    pub fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    /// A standby reads the record this often (at most once a second), so
    /// that a released lease is taken over within about a second.
    pub fn poll_every(&self) -> Duration {
        self.renew_every().min(Duration::from_secs(1))
    }

    /// Longest one write (one `Cloud::apply`) may take; it is abandoned
    /// after that.
    pub fn write_budget(&self) -> Duration {
        self.duration / 3
    }

    /// Kept free between the end of a write's budget and the lease's end:
    /// for the request still on its way and for clocks that run at
    /// slightly different rates.
    pub fn margin(&self) -> Duration {
        self.duration / 10
    }
}

/// This daemon's part in the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Standby,
    /// Leader for the `term`-th time since start.
    Leader {
        term: u64,
    },
}

/// Why a write was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    #[error("this daemon is not the leader")]
    NotLeader,
    #[error("the lease stays valid for {left:?}, less than a write's budget and margin ({needed:?}): stepped down")]
    Expiring { left: Duration, needed: Duration },
    #[error("the lease was lost while the write was in flight; the write was cancelled")]
    Lost,
    #[error("the write took longer than its budget of {0:?} under the lease and was abandoned")]
    Overran(Duration),
}

/// One change of role, as /status shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    #[serde(serialize_with = "crate::controller::status::ser_time")]
    pub at: SystemTime,
    /// `leader` or `standby`.
    pub role: &'static str,
    pub reason: String,
}

/// The election as /status shows it.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LeadershipStatus {
    /// `leader` or `standby`.
    pub role: &'static str,
    /// Where the lease is kept; `None` when the daemon leads alone.
    pub lease: Option<String>,
    /// This daemon's identity.
    pub identity: Option<String>,
    /// Who holds the lease, as last written or read.
    pub holder: Option<String>,
    /// When the holder's lease runs out, by the holder's clock.
    #[serde(serialize_with = "crate::controller::status::ser_opt_time")]
    pub expires_at: Option<SystemTime>,
    /// Whether the last call to the lease store was answered: a standby
    /// that can reach it could take over (/readyz).
    pub store_reachable: bool,
    /// The last role changes, oldest first.
    pub transitions: VecDeque<Transition>,
}

/// The lease this daemon holds.
#[derive(Debug, Clone)]
struct Held {
    version: String,
    valid_until: Instant,
}

#[derive(Debug, Default)]
struct State {
    held: Option<Held>,
    /// A version seen in the store and when (after the read that returned it).
    watched: Option<(String, Instant)>,
    /// Versions this daemon wrote that may be in the store: its last held
    /// one, and a write whose answer was lost. Finding one of them there
    /// means nobody else wrote since, so it may carry on.
    own: Vec<(String, Instant)>,
    terms: u64,
}

/// The handle the controller, the HTTP server and the campaign share.
#[derive(Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: leader alone, always.
    lease: Option<LeaseOptions>,
    state: Mutex<State>,
    role: watch::Sender<Role>,
    metrics: Arc<Metrics>,
    status: SharedStatus,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership").field("lease", &self.inner.lease).field("role", &self.role()).finish()
    }
}

impl Leadership {
    /// Leader alone, with no lease: every write is permitted.
    pub fn sole(metrics: Arc<Metrics>, status: SharedStatus, clock: Arc<dyn Clock>) -> Self {
        let l = Self::build(None, metrics, status, clock, Role::Leader { term: 1 });
        l.inner.state.lock().unwrap().terms = 1;
        l
    }

    /// A standby that will contend for the lease once [`campaign`](Self::campaign) runs.
    pub fn contender(lease: LeaseOptions, metrics: Arc<Metrics>, status: SharedStatus, clock: Arc<dyn Clock>) -> Self {
        Self::build(Some(lease), metrics, status, clock, Role::Standby)
    }

    fn build(
        lease: Option<LeaseOptions>,
        metrics: Arc<Metrics>,
        status: SharedStatus,
        clock: Arc<dyn Clock>,
        role: Role,
    ) -> Self {
        metrics.set_leader(matches!(role, Role::Leader { .. }));
        {
            let mut st = status.write().unwrap();
            st.leadership = LeadershipStatus {
                role: role_name(role),
                lease: lease.as_ref().map(|l| l.name.clone()),
                identity: lease.as_ref().map(|l| l.holder.clone()),
                store_reachable: lease.is_none(),
                ..Default::default()
            };
        }
        Leadership {
            inner: Arc::new(Inner {
                lease,
                state: Mutex::new(State::default()),
                role: watch::Sender::new(role),
                metrics,
                status,
                clock,
            }),
        }
    }

    pub fn role(&self) -> Role {
        *self.inner.role.borrow()
    }

    /// Role changes, for the loop to wait on.
    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.inner.role.subscribe()
    }

    /// The lease's timing; `None` when leading alone.
    pub fn lease(&self) -> Option<&LeaseOptions> {
        self.inner.lease.as_ref()
    }

    /// Run one write under the lease: refused (and the daemon steps down)
    /// unless the lease stays valid for the write's budget plus the
    /// margin; abandoned when the budget is spent; cancelled when the
    /// lease is lost meanwhile. Without a lease, `write` just runs.
    pub async fn guard<T>(&self, write: impl Future<Output = T>) -> Result<T, Fenced> {
        let Some(lease) = &self.inner.lease else {
            return Ok(write.await);
        };
        let budget = lease.write_budget();
        let needed = budget + lease.margin();
        let valid_until = self.inner.state.lock().unwrap().held.as_ref().map(|h| h.valid_until);
        let Some(valid_until) = valid_until else {
            return Err(Fenced::NotLeader);
        };
        let left = valid_until.saturating_duration_since(Instant::now());
        if left <= needed {
            let e = Fenced::Expiring { left, needed };
            self.step_down(e.to_string(), true);
            return Err(e);
        }
        let mut role = self.subscribe();
        let term = *role.borrow_and_update();
        tokio::select! {
            done = tokio::time::timeout(budget, write) => done.map_err(|_| Fenced::Overran(budget)),
            _ = role.wait_for(|r| *r != term) => Err(Fenced::Lost),
        }
    }

    /// Contend for the lease until `stop` turns true, then release it if
    /// held. Returns at once when leading alone.
    pub async fn campaign<S: LeaseStore>(self, store: S, mut stop: watch::Receiver<bool>) {
        let Some(lease) = self.inner.lease.clone() else { return };
        loop {
            let wait = if self.held_version().is_some() {
                self.renew(&store, &lease).await
            } else {
                self.try_acquire(&store, &lease).await
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if let Some(version) = self.held_version() {
            self.step_down("released the lease on shutdown".into(), false);
            match store.release(&version).await {
                Ok(()) => info!(lease = %lease.name, "released the lease"),
                Err(e) => warn!(lease = %lease.name, error = %e, "could not release the lease; it expires on its own"),
            }
        }
    }

    fn held_version(&self) -> Option<String> {
        self.inner.state.lock().unwrap().held.as_ref().map(|h| h.version.clone())
    }

    /// A standby's turn: read the record and take it when it is free,
    /// expired or our own. Returns when to come back.
    async fn try_acquire<S: LeaseStore>(&self, store: &S, lease: &LeaseOptions) -> Duration {
        let record = match store.read().await {
            Ok(r) => r,
            Err(e) => {
                self.unreachable(&e);
                return lease.poll_every();
            }
        };
        let seen = Instant::now();
        self.observed(record.as_ref(), true);
        // The version to replace: none when the record is absent.
        let expected: Option<String> = {
            let mut st = self.inner.state.lock().unwrap();
            match &record {
                None => None,
                Some(r) if r.holder == lease.holder && st.own.iter().any(|(v, _)| *v == r.version) => {
                    Some(r.version.clone())
                }
                Some(r) => match &st.watched {
                    Some((v, since)) if *v == r.version => {
                        let due = *since + lease.duration;
                        if seen < due {
                            return (due - seen).min(lease.poll_every());
                        }
                        Some(r.version.clone())
                    }
                    _ => {
                        st.watched = Some((r.version.clone(), seen));
                        return lease.poll_every().min(lease.duration);
                    }
                },
            }
        };
        let (next, sent) = self.next_record(lease);
        match store.acquire(expected.as_deref(), &next).await {
            Ok(()) => {
                let previous = record.map(|r| r.holder).filter(|h| *h != lease.holder);
                let reason = match previous {
                    Some(p) => format!("acquired the lease (expired, held by {p})"),
                    None => "acquired the lease".to_string(),
                };
                info!(lease = %lease.name, holder = %lease.holder, "{reason}");
                self.lead(next, sent, reason);
                lease.renew_every()
            }
            Err(LeaseError::Conflict) => {
                self.inner.state.lock().unwrap().watched = None;
                lease.poll_every()
            }
            Err(e) => {
                // It may have been written all the same: remember it as ours.
                self.remember_own(next.version, sent);
                self.unreachable(&e);
                lease.poll_every()
            }
        }
    }

    /// The leader's turn: renew, or step down when the lease is lost or
    /// about to run out. Returns when to come back.
    async fn renew<S: LeaseStore>(&self, store: &S, lease: &LeaseOptions) -> Duration {
        let Some(held) = self.inner.state.lock().unwrap().held.clone() else { return Duration::ZERO };
        let (next, sent) = self.next_record(lease);
        match store.renew(&held.version, &next).await {
            Ok(()) => {
                if self.renewed(next, sent) {
                    lease.renew_every()
                } else {
                    Duration::ZERO
                }
            }
            Err(LeaseError::Conflict) => {
                // A renew whose answer was lost may have landed, making
                // this one fail: the record tells (the only read a leader makes).
                match store.read().await {
                    Ok(Some(r)) if r.holder == lease.holder && self.is_own(&r.version) => {
                        let since = self.own_since(&r.version).unwrap_or(held.valid_until - lease.duration);
                        self.renewed(r, since);
                        Duration::ZERO
                    }
                    Ok(r) => {
                        let by = r.as_ref().map_or("nobody (deleted)".to_string(), |r| r.holder.clone());
                        self.observed(r.as_ref(), true);
                        let reason = format!("lost the lease: it is now held by {by}");
                        warn!(lease = %lease.name, "{reason}");
                        self.step_down(reason, false);
                        lease.poll_every()
                    }
                    Err(e) => {
                        self.unreachable(&e);
                        let reason = "lost the lease: a renew found it changed".to_string();
                        warn!(lease = %lease.name, "{reason}");
                        self.step_down(reason, false);
                        lease.poll_every()
                    }
                }
            }
            Err(e) => {
                self.remember_own(next.version, sent);
                self.unreachable(&e);
                let left = held.valid_until.saturating_duration_since(Instant::now());
                if left <= lease.write_budget() + lease.margin() {
                    let reason = format!("the lease could not be renewed in time ({e}); writes stopped");
                    warn!(lease = %lease.name, "{reason}");
                    self.step_down(reason, true);
                }
                lease.poll_every()
            }
        }
    }

    /// A fresh record for this daemon, and the instant before it is sent.
    fn next_record(&self, lease: &LeaseOptions) -> (LeaseRecord, Instant) {
        let record = LeaseRecord {
            holder: lease.holder.clone(),
            version: format!("{:016x}", rand::random::<u64>()),
            expires_at: self.inner.clock.now() + lease.duration,
        };
        (record, Instant::now())
    }

    fn is_own(&self, version: &str) -> bool {
        self.own_since(version).is_some()
    }

    fn own_since(&self, version: &str) -> Option<Instant> {
        self.inner.state.lock().unwrap().own.iter().find(|(v, _)| v == version).map(|(_, t)| *t)
    }

    fn remember_own(&self, version: String, sent: Instant) {
        let mut st = self.inner.state.lock().unwrap();
        st.own.push((version, sent));
        // The held version plus a few unanswered writes are all that can matter.
        let excess = st.own.len().saturating_sub(4);
        st.own.drain(..excess);
    }

    /// A renew of the held lease went through. When the daemon stepped
    /// down meanwhile (its guard refused a write), the version is only
    /// remembered as ours: taking it back starts a new term. Whether it
    /// still leads.
    fn renewed(&self, record: LeaseRecord, sent: Instant) -> bool {
        let leading = self.hold(&record, sent, false);
        self.observed(Some(&record), true);
        leading
    }

    /// Hold `record`, valid from `sent`: always when `take`, else only
    /// while still holding. Whether it is held.
    fn hold(&self, record: &LeaseRecord, sent: Instant, take: bool) -> bool {
        let lease = self.inner.lease.as_ref().expect("only a contender holds a lease");
        let mut st = self.inner.state.lock().unwrap();
        st.own = vec![(record.version.clone(), sent)];
        if !take && st.held.is_none() {
            return false;
        }
        st.held = Some(Held { version: record.version.clone(), valid_until: sent + lease.duration });
        true
    }

    fn lead(&self, record: LeaseRecord, sent: Instant, reason: String) {
        let term = {
            let mut st = self.inner.state.lock().unwrap();
            st.terms += 1;
            st.watched = None;
            st.terms
        };
        self.hold(&record, sent, true);
        self.observed(Some(&record), true);
        self.transition(Role::Leader { term }, reason);
    }

    /// Stop leading. `keep` remembers the held version as ours, so that
    /// the lease can be taken back if nobody else took it meanwhile.
    fn step_down(&self, reason: String, keep: bool) {
        {
            let mut st = self.inner.state.lock().unwrap();
            let held = st.held.take();
            st.watched = None;
            if !keep {
                st.own.clear();
            } else if let Some(h) = held {
                let since = Instant::now();
                st.own.retain(|(v, _)| *v != h.version);
                st.own.push((h.version, since));
            }
        }
        if self.role() != Role::Standby {
            self.transition(Role::Standby, reason);
        }
    }

    fn transition(&self, role: Role, reason: String) {
        self.inner.role.send_replace(role);
        self.inner.metrics.set_leader(role != Role::Standby);
        self.inner.metrics.leader_transition(role_name(role));
        let mut st = self.inner.status.write().unwrap();
        let l = &mut st.leadership;
        l.role = role_name(role);
        if l.transitions.len() == TRANSITIONS {
            l.transitions.pop_front();
        }
        l.transitions.push_back(Transition { at: self.inner.clock.now(), role: role_name(role), reason });
    }

    fn observed(&self, record: Option<&LeaseRecord>, reachable: bool) {
        let mut st = self.inner.status.write().unwrap();
        st.leadership.holder = record.map(|r| r.holder.clone());
        st.leadership.expires_at = record.map(|r| r.expires_at);
        st.leadership.store_reachable = reachable;
    }

    fn unreachable(&self, e: &LeaseError) {
        let was = std::mem::replace(&mut self.inner.status.write().unwrap().leadership.store_reachable, false);
        if was {
            warn!(error = %e, "cannot reach the lease table");
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Standby => "standby",
        Role::Leader { .. } => "leader",
    }
}

/// This daemon's identity in the lease: its ECS task ARN when it runs in
/// ECS (from the task metadata endpoint, `$ECS_CONTAINER_METADATA_URI_V4/task`),
/// otherwise `host:pid`.
pub async fn holder_identity() -> String {
    if let Ok(base) = std::env::var("ECS_CONTAINER_METADATA_URI_V4") {
        match tokio::time::timeout(Duration::from_secs(2), task_arn(&base)).await {
            Ok(Ok(arn)) => return arn,
            Ok(Err(e)) => warn!(error = %e, "cannot read the task ARN from the ECS metadata endpoint"),
            Err(_) => warn!("the ECS metadata endpoint did not answer within 2 s"),
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// `TaskARN` of the task metadata (v4): one plain HTTP/1.0 GET, since the
/// endpoint is a link-local `http://` address.
async fn task_arn(base: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = base.strip_prefix("http://").ok_or_else(|| format!("not an http:// URL: {base}"))?;
    let (authority, path) = rest.split_once('/').map_or((rest, String::new()), |(a, p)| (a, format!("/{p}")));
    let mut stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| e.to_string())?;
    let request = format!("GET {}/task HTTP/1.0\r\nHost: {authority}\r\n\r\n", path.trim_end_matches('/'));
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.map_err(|e| e.to_string())?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).ok_or("a response without a body")?;
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    v["TaskARN"].as_str().map(str::to_string).ok_or_else(|| "no TaskARN in the task metadata".into())
}

#[cfg(test)]
mod tests;
