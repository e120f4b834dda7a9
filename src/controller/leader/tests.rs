//! The election on the in-memory store, in paused tokio time.

use std::sync::Arc;
use std::sync::RwLock;

use super::*;
use crate::cloud::TokioClock;
use crate::cloud::lease::MemoryLease;
use crate::controller::status::Status;

const LEASE: Duration = Duration::from_secs(15);

/// One daemon's side of the election.
struct Contender {
    leadership: Leadership,
    metrics: Arc<Metrics>,
    status: SharedStatus,
    stop: watch::Sender<bool>,
    campaign: tokio::task::JoinHandle<()>,
}

fn contender(name: &str, store: &Arc<MemoryLease>) -> Contender {
    let metrics = Arc::new(Metrics::new());
    let status: SharedStatus = Arc::new(RwLock::new(Status::default()));
    let options = LeaseOptions { name: "table/ballast".into(), holder: name.into(), duration: LEASE };
    let leadership = Leadership::contender(options, metrics.clone(), status.clone(), Arc::new(TokioClock::new()));
    let (stop, stop_rx) = watch::channel(false);
    let campaign = tokio::spawn(leadership.clone().campaign(store.clone(), stop_rx));
    Contender { leadership, metrics, status, stop, campaign }
}

impl Contender {
    fn leads(&self) -> bool {
        matches!(self.leadership.role(), Role::Leader { .. })
    }

    /// Whether a write would be let through now (without making one).
    async fn may_write(&self) -> bool {
        self.leadership.guard(async {}).await.is_ok()
    }

    /// As `kill -9`: the campaign stops without releasing anything.
    fn kill(&self) {
        self.campaign.abort();
    }
}

async fn tick(by: Duration) {
    tokio::time::sleep(by).await;
}

/// `a`, alone, once it has taken the lease.
async fn leading(store: &Arc<MemoryLease>) -> Contender {
    let a = contender("a", store);
    tick(Duration::from_millis(10)).await;
    assert!(a.leads());
    a
}

/// `a` takes the lease, then `b` starts; after `settle`, `a` leads and
/// `b` stands by.
async fn leader_and_standby(store: &Arc<MemoryLease>, settle: Duration) -> (Contender, Contender) {
    let a = leading(store).await;
    let b = contender("b", store);
    tick(settle).await;
    assert!(a.leads() && !b.leads());
    (a, b)
}

#[tokio::test(start_paused = true)]
async fn of_two_daemons_on_one_lease_exactly_one_leads() {
    let store = Arc::new(MemoryLease::new());
    let a = contender("a", &store);
    let b = contender("b", &store);
    for _ in 0..600 {
        tick(Duration::from_millis(100)).await;
        assert!(!(a.leads() && b.leads()), "both lead");
    }
    assert!(a.leads() != b.leads(), "one of them leads");
    let leader = if a.leads() { "a" } else { "b" };
    assert_eq!(store.record().unwrap().holder, leader);
    // No role changed after the first election: the leader kept renewing.
    let (l, s) = if a.leads() { (&a, &b) } else { (&b, &a) };
    assert_eq!(l.metrics.render().matches("ballast_leader_transitions_total{role=\"leader\"} 1").count(), 1);
    assert!(!s.metrics.render().contains("ballast_leader_transitions_total{"), "{}", s.metrics.render());
    assert!(l.metrics.render().contains("ballast_leader 1"));
    assert!(s.metrics.render().contains("ballast_leader 0"));
}

#[tokio::test(start_paused = true)]
async fn the_leader_renews_once_per_third_of_the_lease_and_reads_nothing() {
    let store = Arc::new(MemoryLease::new());
    let a = leading(&store).await;
    let (writes, reads) = (store.writes(), store.reads());
    tick(Duration::from_secs(3600)).await;
    assert!(a.leads());
    assert_eq!(store.writes() - writes, 720, "one renew every 5 s for an hour");
    assert_eq!(store.reads() - reads, 0, "a leader reads nothing");
}

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_a_dead_leaders_lease_after_one_duration_and_not_before() {
    let store = Arc::new(MemoryLease::new());
    let (a, b) = leader_and_standby(&store, Duration::from_secs(7)).await;
    a.kill();
    let killed = Instant::now();
    // The last renew was at most a renew interval before the kill; until
    // its lease could have expired on a's clock, b must not lead.
    let a_valid_until = a.leadership.inner.state.lock().unwrap().held.as_ref().unwrap().valid_until;
    while !b.leads() {
        tick(Duration::from_millis(50)).await;
        assert!(killed.elapsed() <= LEASE + LEASE / 3, "b leads within a duration and a renew interval");
    }
    assert!(Instant::now() >= a_valid_until, "b took over before a's lease ran out");
    assert_eq!(store.record().unwrap().holder, "b");
    let st = b.status.read().unwrap();
    let last = st.leadership.transitions.back().unwrap();
    assert_eq!(last.role, "leader");
    assert!(last.reason.contains("expired, held by a"), "{}", last.reason);
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_over_within_a_second() {
    let store = Arc::new(MemoryLease::new());
    let (a, b) = leader_and_standby(&store, Duration::from_secs(20)).await;
    a.stop.send(true).unwrap();
    let stopped = Instant::now();
    (&mut { a.campaign }).await.unwrap();
    assert!(store.record().is_none_or(|r| r.holder == "b"), "released");
    while !b.leads() {
        tick(Duration::from_millis(10)).await;
    }
    assert!(stopped.elapsed() <= Duration::from_millis(1100), "{:?}", stopped.elapsed());
    assert_eq!(a.status.read().unwrap().leadership.role, "standby");
}

#[tokio::test(start_paused = true)]
async fn a_leader_cut_off_from_the_store_stops_writing_before_its_lease_can_expire() {
    let store = Arc::new(MemoryLease::new());
    let a = leading(&store).await;
    assert!(a.may_write().await);
    let renewed = Instant::now();
    store.set_down(true);
    let options = a.leadership.lease().unwrap().clone();
    // Writes go on while the lease is good for a budget and a margin more…
    let mut last_permitted = renewed;
    for _ in 0..200 {
        tick(Duration::from_millis(100)).await;
        if a.may_write().await {
            last_permitted = Instant::now();
        }
    }
    // …and none started after that: each would end before the lease does.
    let lease_end = renewed + options.duration;
    assert!(last_permitted + options.write_budget() + options.margin() <= lease_end);
    assert!(last_permitted > renewed + Duration::from_secs(5), "it kept writing while it could");
    assert!(!a.leads(), "it stepped down");
    assert!(a.status.read().unwrap().leadership.transitions.back().unwrap().reason.contains("stays valid for"));

    // The store comes back and nobody took the lease: it takes it back.
    store.set_down(false);
    tick(Duration::from_secs(2)).await;
    assert!(a.leads());
    assert!(matches!(a.leadership.role(), Role::Leader { term: 2 }), "a new term");
}

#[tokio::test(start_paused = true)]
async fn a_write_in_flight_is_cancelled_when_a_renew_finds_the_lease_taken() {
    let store = Arc::new(MemoryLease::new());
    let a = leading(&store).await;
    // Someone else writes the record (an operator, a daemon that judged
    // it expired): a's next renew fails its condition.
    let thief = LeaseRecord { holder: "x".into(), version: "stolen".into(), expires_at: SystemTime::now() };
    tick(Duration::from_secs(2)).await;
    store.acquire(Some(&store.record().unwrap().version), &thief).await.unwrap();
    let started = Instant::now();
    let write = a.leadership.guard(tokio::time::sleep(Duration::from_secs(4)));
    assert_eq!(write.await, Err(Fenced::Lost));
    assert!(started.elapsed() < Duration::from_secs(4), "cancelled at the next renew, not after the write");
    assert!(!a.leads());
    assert_eq!(a.leadership.guard(async {}).await, Err(Fenced::NotLeader));
    let st = a.status.read().unwrap();
    assert!(st.leadership.transitions.back().unwrap().reason.contains("held by x"));
    assert_eq!(st.leadership.holder.as_deref(), Some("x"));
}

#[tokio::test(start_paused = true)]
async fn a_write_longer_than_its_budget_is_abandoned() {
    let store = Arc::new(MemoryLease::new());
    let a = leading(&store).await;
    let write = a.leadership.guard(tokio::time::sleep(Duration::from_secs(60)));
    assert_eq!(write.await, Err(Fenced::Overran(LEASE / 3)));
    assert!(a.leads(), "still the leader");
}

#[tokio::test(start_paused = true)]
async fn a_renew_whose_answer_was_lost_is_recognised_as_ours() {
    let store = Arc::new(MemoryLease::new());
    let a = leading(&store).await;
    // The renew lands but its answer is lost: the record holds a version
    // a never learnt it held. Played here by writing a's next version
    // into its memory of unanswered writes.
    let landed = LeaseRecord { holder: "a".into(), version: "landed".into(), expires_at: SystemTime::now() };
    store.renew(&store.record().unwrap().version, &landed).await.unwrap();
    a.leadership.remember_own("landed".into(), Instant::now());
    tick(Duration::from_secs(30)).await;
    assert!(a.leads(), "the conflict was its own write: still the leader");
    assert!(matches!(a.leadership.role(), Role::Leader { term: 1 }));
}

#[tokio::test]
async fn a_daemon_without_a_lease_leads_alone() {
    let status: SharedStatus = Arc::new(RwLock::new(Status::default()));
    let metrics = Arc::new(Metrics::new());
    let l = Leadership::sole(metrics.clone(), status.clone(), Arc::new(TokioClock::new()));
    assert_eq!(l.role(), Role::Leader { term: 1 });
    assert_eq!(l.guard(async { 7 }).await, Ok(7));
    assert!(metrics.render().contains("ballast_leader 1"));
    assert_eq!(status.read().unwrap().leadership.role, "leader");
    assert_eq!(status.read().unwrap().leadership.lease, None);
}

#[tokio::test]
async fn the_identity_is_host_and_pid_outside_ecs() {
    // Meaningful off ECS only (where the test suite runs).
    if std::env::var_os("ECS_CONTAINER_METADATA_URI_V4").is_none() {
        let id = holder_identity().await;
        assert!(id.ends_with(&format!(":{}", std::process::id())), "{id}");
    }
}

#[tokio::test]
async fn the_task_arn_is_read_from_the_metadata_endpoint() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0; 1024];
        let n = s.read(&mut buf).await.unwrap();
        let request = String::from_utf8_lossy(&buf[..n]).to_string();
        let body = r#"{"Cluster":"c","TaskARN":"arn:aws:ecs:us-east-2:123456789012:task/c/abc"}"#;
        s.write_all(format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}").as_bytes())
            .await
            .unwrap();
        request
    });
    let arn = task_arn(&format!("http://{addr}/v4/container-id")).await.unwrap();
    assert_eq!(arn, "arn:aws:ecs:us-east-2:123456789012:task/c/abc");
    assert!(server.await.unwrap().starts_with("GET /v4/container-id/task HTTP/1.0"));
}
