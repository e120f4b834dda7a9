//! Client-side token buckets, one per API family and region.
//!
//! AWS meters most APIs per account and region with token buckets and
//! answers `Throttling` when one runs dry. Pacing ourselves below those
//! rates keeps a large pass from burning its retries on throttled attempts
//! (the AWS Load Balancer Controller learned this the hard way with
//! hundreds of bindings). Every attempt, retries included, takes a token
//! (`call`). Written on `tokio::time` so that
//! tests with paused time see it wait without sleeping.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A steady rate with a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: how many calls may go at once after a quiet spell.
    pub burst: u32,
}

impl Rate {
    /// `per_second` tokens a second, at most `burst` saved up.
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Rate { per_second, burst }
    }
}

/// The request-rate families the adapter paces, with AWS's published (or
/// well-known) per-account, per-region figures as defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// ELBv2 RegisterTargets / DeregisterTargets.
    pub elbv2_register: Rate,
    /// ELBv2 Describe*.
    pub elbv2_describe: Rate,
    /// CloudWatch DescribeAlarms.
    pub cloudwatch_describe_alarms: Rate,
    /// CloudWatch PutMetricAlarm.
    pub cloudwatch_put_alarm: Rate,
    /// CloudWatch GetMetricData.
    pub cloudwatch_metric_data: Rate,
    /// ECS reads (Describe*, List*): AWS shares about 20/s between them.
    pub ecs_read: Rate,
    /// ECS writes: UpdateService and the TagResource of its scaling mark.
    pub ecs_write: Rate,
    /// Auto Scaling: one shared bucket, rate unpublished.
    pub autoscaling: Rate,
    /// Application Auto Scaling DescribeScalableTargets.
    pub appscaling: Rate,
}

impl Default for RateLimits {
    /// Figures from AWS's documentation and the AWS Load Balancer
    /// Controller's defaults (see `docs/aws.md`).
    fn default() -> Self {
        RateLimits {
            elbv2_register: Rate::new(4.0, 20),
            elbv2_describe: Rate::new(50.0, 200),
            cloudwatch_describe_alarms: Rate::new(9.0, 9),
            cloudwatch_put_alarm: Rate::new(3.0, 3),
            cloudwatch_metric_data: Rate::new(50.0, 50),
            ecs_read: Rate::new(20.0, 20),
            ecs_write: Rate::new(10.0, 10),
            autoscaling: Rate::new(10.0, 10),
            appscaling: Rate::new(10.0, 10),
        }
    }
}

impl RateLimits {
    /// No pacing at all (every bucket effectively infinite). For an
    /// emulator or a benchmark that wants the API's own latency only.
    pub fn unlimited() -> Self {
        let r = Rate::new(1e9, u32::MAX);
        RateLimits {
            elbv2_register: r,
            elbv2_describe: r,
            cloudwatch_describe_alarms: r,
            cloudwatch_put_alarm: r,
            cloudwatch_metric_data: r,
            ecs_read: r,
            ecs_write: r,
            autoscaling: r,
            appscaling: r,
        }
    }
}

/// A token bucket. Waiters are served in arrival order: the lock is
/// tokio's fair mutex and is held across the wait, so a burst of callers
/// queues instead of all waking at once and stampeding.
#[derive(Debug)]
pub struct TokenBucket {
    rate: Rate,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate) -> Self {
        TokenBucket { rate, state: Mutex::new(State { tokens: f64::from(rate.burst), last: Instant::now() }) }
    }

    /// Waits until a token is available and takes it. Returns how long
    /// the caller waited.
    pub async fn acquire(&self) -> Duration {
        let mut st = self.state.lock().await;
        let started = Instant::now();
        self.refill(&mut st);
        if st.tokens < 1.0 {
            let missing = 1.0 - st.tokens;
            let wait = Duration::from_secs_f64(missing / self.rate.per_second);
            tokio::time::sleep(wait).await;
            self.refill(&mut st);
            // The sleep may end a hair early in float terms; never go
            // negative by more than rounding.
            st.tokens = st.tokens.max(1.0);
        }
        st.tokens -= 1.0;
        started.elapsed()
    }

    fn refill(&self, st: &mut State) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(st.last).as_secs_f64();
        st.tokens = (st.tokens + elapsed * self.rate.per_second).min(f64::from(self.rate.burst));
        st.last = now;
    }
}

/// One bucket per family, for one region.
#[derive(Debug)]
pub(crate) struct Buckets {
    pub elbv2_register: TokenBucket,
    pub elbv2_describe: TokenBucket,
    pub cloudwatch_describe_alarms: TokenBucket,
    pub cloudwatch_put_alarm: TokenBucket,
    pub cloudwatch_metric_data: TokenBucket,
    pub ecs_read: TokenBucket,
    pub ecs_write: TokenBucket,
    pub autoscaling: TokenBucket,
    pub appscaling: TokenBucket,
}

impl Buckets {
    pub fn new(limits: &RateLimits) -> Self {
        Buckets {
            elbv2_register: TokenBucket::new(limits.elbv2_register),
            elbv2_describe: TokenBucket::new(limits.elbv2_describe),
            cloudwatch_describe_alarms: TokenBucket::new(limits.cloudwatch_describe_alarms),
            cloudwatch_put_alarm: TokenBucket::new(limits.cloudwatch_put_alarm),
            cloudwatch_metric_data: TokenBucket::new(limits.cloudwatch_metric_data),
            ecs_read: TokenBucket::new(limits.ecs_read),
            ecs_write: TokenBucket::new(limits.ecs_write),
            autoscaling: TokenBucket::new(limits.autoscaling),
            appscaling: TokenBucket::new(limits.appscaling),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn burst_is_free_then_calls_are_paced_at_the_rate() {
        // ELBv2 register/deregister: 4/s, burst 20.
        let bucket = TokenBucket::new(Rate::new(4.0, 20));
        let start = Instant::now();
        for _ in 0..20 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst must not wait");
        for _ in 0..20 {
            bucket.acquire().await;
        }
        // 20 more tokens at 4/s take 5 s.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(4_990) && took <= Duration::from_millis(5_010), "took {took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_refills_but_not_beyond_its_burst() {
        let bucket = TokenBucket::new(Rate::new(10.0, 5));
        for _ in 0..5 {
            bucket.acquire().await;
        }
        // A long quiet spell refills to the burst (5), not to 100.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let start = Instant::now();
        for _ in 0..5 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        let waited = bucket.acquire().await;
        assert!(
            waited >= Duration::from_millis(99) && waited <= Duration::from_millis(101),
            "the sixth call waits one token time, waited {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_rate() {
        // Nine DescribeAlarms per second across 27 concurrent callers:
        // the first 9 go at once, the remaining 18 take 2 s.
        let bucket = Arc::new(TokenBucket::new(Rate::new(9.0, 9)));
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..27 {
            let b = bucket.clone();
            set.spawn(async move { b.acquire().await });
        }
        while set.join_next().await.is_some() {}
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1_990) && took <= Duration::from_millis(2_010), "took {took:?}");
    }

    #[test]
    fn defaults_follow_the_published_figures() {
        let d = RateLimits::default();
        assert_eq!(d.elbv2_register, Rate::new(4.0, 20));
        assert_eq!(d.elbv2_describe, Rate::new(50.0, 200));
        assert_eq!(d.cloudwatch_describe_alarms.per_second, 9.0);
        assert_eq!(d.cloudwatch_put_alarm.per_second, 3.0);
        assert_eq!(d.cloudwatch_metric_data.per_second, 50.0);
        assert_eq!(d.ecs_read.per_second, 20.0);
        assert_eq!(d.autoscaling.per_second, 10.0);
    }
}
