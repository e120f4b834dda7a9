//! Two `ballast run --lease-table` daemons on one converged system, each
//! behind proxies of its own (one for ECS, ELBv2 and Auto Scaling, one for
//! CloudWatch, one for DynamoDB), so that every call of each daemon is
//! counted and its DynamoDB can be cut alone (issue 16).

use std::time::{Duration, Instant, SystemTime};

use super::support::e2e::{Ballast, Daemon};
use super::support::emulator::SERVICE;
use super::support::proxy::{Call, FaultProxy};
use super::{E2e, converged, synced};

/// Short, so that the tests run in seconds: renew every 2 s, a write's
/// budget 2 s, a margin of 0.6 s.
const LEASE: Duration = Duration::from_secs(6);
const RENEW: Duration = Duration::from_secs(2);
const TABLE: &str = "ballast-lease";

/// One daemon and the proxies that carry its calls.
struct Replica {
    daemon: Daemon,
    /// Its desired-state directory, which must outlive it.
    _ballast: Ballast,
    cloud: FaultProxy,
    cloudwatch: FaultProxy,
    dynamodb: FaultProxy,
}

impl Replica {
    async fn start(e: &E2e) -> Replica {
        let cloud = FaultProxy::start(&e.m.account.moto_url, 0).await;
        let cloudwatch = FaultProxy::start(&e.m.account.bridge_url, 0).await;
        let dynamodb = FaultProxy::start(&e.m.account.moto_url, 0).await;
        let b = Ballast::via(&e.m.account, &cloud.url, &cloudwatch.url, &e.declared)
            .with_env("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb.url);
        let lease = format!("{}s", LEASE.as_secs());
        let daemon = b.daemon(&["--interval", "1s", "--lease-table", TABLE, "--lease-duration", &lease]).await;
        Replica { daemon, _ballast: b, cloud, cloudwatch, dynamodb }
    }

    async fn role(&self) -> String {
        self.daemon.status().await["leadership"]["role"].as_str().unwrap_or_default().to_string()
    }

    async fn wait_role(&self, role: &str, within: Duration) {
        self.daemon
            .wait_for(within, &format!("role {role}"), async |d| {
                let st = d.status().await;
                if st["leadership"]["role"] == role { Ok(()) } else { Err(st["leadership"].to_string()) }
            })
            .await;
    }

    async fn wait_synced(&self, within: Duration) {
        self.daemon
            .wait_for(within, "a synced pass", async |d| {
                let st = d.status().await;
                if synced(&st) { Ok(()) } else { Err(st["lastPass"].to_string()) }
            })
            .await;
    }

    /// When it last became leader, by its own clock.
    async fn led_at(&self) -> SystemTime {
        let st = self.daemon.status().await;
        let t = st["leadership"]["transitions"].as_array().and_then(|t| t.last()).expect("a transition");
        assert_eq!(t["role"], "leader", "{t}");
        humantime::parse_rfc3339(t["at"].as_str().unwrap()).unwrap()
    }

    /// Calls to ECS, ELBv2, Auto Scaling and CloudWatch so far.
    fn cloud_calls(&self) -> Vec<Call> {
        let mut calls = self.cloud.calls();
        calls.extend(self.cloudwatch.calls());
        calls
    }

    fn cloud_writes(&self) -> Vec<Call> {
        let mut w = self.cloud.writes();
        w.extend(self.cloudwatch.writes());
        w
    }
}

/// Two replicas on a converged system: `a` started first and leads, `b`
/// stands by.
async fn pair() -> (E2e, Replica, Replica) {
    let e = converged(2, |_| {}).await;
    e.m.account.create_lease_table(TABLE).await;
    let a = Replica::start(&e).await;
    a.wait_role("leader", Duration::from_secs(20)).await;
    a.wait_synced(Duration::from_secs(30)).await;
    let b = Replica::start(&e).await;
    // b has read the lease and found it held.
    b.daemon
        .wait_for(Duration::from_secs(20), "b to see a's lease", async |d| {
            let st = d.status().await;
            if st["leadership"]["holder"].is_string() { Ok(()) } else { Err(st["leadership"].to_string()) }
        })
        .await;
    (e, a, b)
}

fn names(calls: &[Call]) -> Vec<&str> {
    calls.iter().map(|c| c.operation.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_two_daemons_elect_one_and_a_killed_leader_is_replaced_within_a_lease_and_a_renew() {
    let (e, a, b) = pair().await;
    // Exactly one leads, for as long as the leader lives.
    for _ in 0..10 {
        assert_eq!((a.role().await.as_str(), b.role().await.as_str()), ("leader", "standby"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(a.daemon.metrics().await.value("ballast_leader"), Some(1.0));
    assert_eq!(b.daemon.metrics().await.value("ballast_leader"), Some(0.0));
    let b_status = b.daemon.status().await;
    assert_eq!(b_status["passes"], 0, "a standby makes no pass");
    assert!(b_status["leadership"]["holder"].as_str().unwrap().ends_with(&format!(":{}", a_pid(&a).await)));
    assert_eq!(b.daemon.get("/readyz").await.0, 200, "a standby that can reach the lease could take over");

    // Drift, and a is killed in the middle of the pass that corrects it:
    // right after its first write request.
    e.m.actors.set_desired_count(SERVICE, 1).await;
    let before = a.cloud.writes().len();
    a.daemon
        .wait_for(Duration::from_secs(20), "a's correcting write", async |_| {
            if a.cloud.writes().len() > before { Ok(()) } else { Err("no write yet".into()) }
        })
        .await;
    a.daemon.kill();
    let killed = SystemTime::now();
    let killed_at = Instant::now();
    assert!(b.cloud_calls().is_empty(), "the standby called nothing: {:?}", names(&b.cloud_calls()));

    b.wait_role("leader", LEASE + RENEW + Duration::from_secs(5)).await;
    let took = b.led_at().await.duration_since(killed).unwrap_or_default();
    assert!(took <= LEASE + RENEW, "b led {took:?} after the kill; at most the lease and a renew interval");
    assert!(
        b.cloud.calls().iter().all(|c| c.at >= killed_at),
        "b called nothing before a was killed: {:?}",
        names(&b.cloud_calls())
    );
    // b finishes what a left: the service is back at its declared count.
    b.wait_synced(Duration::from_secs(30)).await;
    assert_eq!(super::observed_service(&e.m).await.desired_count, 2);
    let last = b.daemon.status().await["leadership"]["transitions"].as_array().unwrap().last().unwrap().clone();
    assert!(last["reason"].as_str().unwrap().contains("expired, held by"), "{last}");
}

/// The pid in a `host:pid` identity of the daemon `r`.
async fn a_pid(r: &Replica) -> String {
    let st = r.daemon.status().await;
    st["leadership"]["identity"].as_str().unwrap().rsplit(':').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_sigterm_hands_over_within_2_s_and_the_new_leader_makes_no_write() {
    let (e, a, b) = pair().await;
    a.daemon.terminate();
    let terminated = SystemTime::now();
    b.wait_role("leader", Duration::from_secs(10)).await;
    let took = b.led_at().await.duration_since(terminated).unwrap_or_default();
    assert!(took <= Duration::from_secs(2), "b led {took:?} after SIGTERM; released leases hand over within 2 s");
    let logs = a.daemon.logs().join("\n");
    assert!(logs.contains("released the lease"), "{logs}");
    assert!(a.dynamodb.succeeded("DeleteItem") == 1, "{:?}", names(&a.dynamodb.calls()));

    // No takeover wave: the new leader's first pass on the converged
    // system writes nothing at all.
    b.wait_synced(Duration::from_secs(30)).await;
    assert!(b.cloud_writes().is_empty(), "{:?}", names(&b.cloud_writes()));
    assert!(!b.cloud_calls().is_empty(), "it did observe");
    super::assert_no_changes(&e.ballast.plan().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_a_leader_cut_off_from_dynamodb_stops_writing_before_its_lease_can_expire() {
    let (e, a, b) = pair().await;
    // a's DynamoDB goes away right after a renew (so that it has most of
    // a lease left to show it goes on writing); ECS stays reachable for it.
    let renewals = a.dynamodb.succeeded("PutItem");
    a.daemon
        .wait_for(Duration::from_secs(10), "a renew", async |_| {
            if a.dynamodb.succeeded("PutItem") > renewals { Ok(()) } else { Err("none yet".into()) }
        })
        .await;
    a.dynamodb.set_up(false);
    let cut = Instant::now();
    // Someone keeps scaling the service in: a corrects it while its lease
    // is good, then stops; b takes over and corrects it from then on.
    let mut drifts = 0;
    while Instant::now() < cut + LEASE + RENEW + Duration::from_secs(6) {
        e.m.actors.set_desired_count(SERVICE, 1).await;
        drifts += 1;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(drifts > 10);
    // The last renew a got an answer to; its lease could expire (for b)
    // no sooner than a duration after that request.
    let renewed = a.dynamodb.calls().iter().filter(|c| c.operation == "PutItem" && c.succeeded()).map(|c| c.at).max();
    let renewed = renewed.expect("a renewed before the cut");
    let a_writes = a.cloud_writes();
    assert!(a_writes.iter().any(|w| w.at > cut), "a went on correcting while its lease was good");
    let late: Vec<_> = a_writes.iter().filter(|w| w.at >= renewed + LEASE).collect();
    assert!(late.is_empty(), "a wrote after its lease could have expired: {late:?}");
    assert_eq!(a.role().await, "standby");
    assert_eq!(b.role().await, "leader");
    let b_writes = b.cloud_writes();
    assert!(b_writes.iter().all(|w| w.at >= renewed + LEASE), "b wrote while a's lease could still be valid");
    assert!(b_writes.iter().any(|w| w.operation == "UpdateService"), "b corrects the drift");
    let last = a.daemon.status().await["leadership"]["transitions"].as_array().unwrap().last().unwrap().clone();
    let reason = last["reason"].as_str().unwrap();
    // Stepped down by its write guard or by its renewals, whichever saw it first.
    assert!(reason.contains("stays valid for") || reason.contains("renewed in time"), "{last}");
}
