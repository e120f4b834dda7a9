//! One API operation as the adapter runs it, retries included.
//!
//! Every attempt, the first and each retry, takes a token from its API
//! family's bucket before it is sent, so the client-side rate limits hold
//! however many attempts throttling costs. That is why the SDK's own
//! retries are off: they happen inside `send()`, where no bucket can pace
//! them. This loop does what the SDK's standard mode would: exponential
//! backoff with full jitter on throttling and transient failures
//! (timeouts, connection errors, unreadable responses, 5xx), never on a
//! quota (ECS `LimitExceededException`) or any other error, up to
//! `max_attempts`, all within `operation_timeout`: no backoff that would
//! end past it, and an attempt still running when it is spent is abandoned
//! (time spent waiting for tokens does not count: a long pass is paced,
//! not failed).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::errors::{from_sdk, is_retryable};
use super::limiter::TokenBucket;
use crate::cloud::CloudError;

/// How an operation is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RetryPolicy {
    /// Attempts per operation, the first included.
    pub max_attempts: u32,
    /// Upper bound of the first retry's backoff; doubles per retry.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts and backoff of one operation stay within this.
    pub operation_timeout: Duration,
}

impl RetryPolicy {
    /// The backoff before retry `n` (1 = the first retry): uniformly random
    /// up to `initial × 2^(n-1)`, capped at `max_backoff` ("full jitter").
    pub fn backoff(&self, n: u32) -> Duration {
        let ceiling = self.initial_backoff.saturating_mul(1u32 << (n.saturating_sub(1)).min(16)).min(self.max_backoff);
        ceiling.mul_f64(rand::random::<f64>())
    }

    /// Run one operation: `attempt` sends it once (a fresh clone of the
    /// request each time).
    pub async fn run<T, E, Fut>(
        &self,
        bucket: &TokenBucket,
        service: &'static str,
        operation: &'static str,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T, CloudError>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let mut paced = Duration::ZERO;
        let mut n = 1;
        loop {
            paced += pace(bucket).await;
            // What is left of the budget bounds this attempt too.
            let spent = started.elapsed().saturating_sub(paced);
            let left = self.operation_timeout.saturating_sub(spent);
            let err = match tokio::time::timeout(left, attempt()).await {
                Ok(Ok(out)) => return Ok(out),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(CloudError::Unreachable {
                        service,
                        message: format!("{operation} timed out after {:?}", self.operation_timeout),
                    });
                }
            };
            let retry = is_retryable(&err);
            let err = from_sdk(service, operation, err);
            if !retry || n >= self.max_attempts {
                return Err(err);
            }
            let backoff = self.backoff(n);
            if started.elapsed().saturating_sub(paced) + backoff >= self.operation_timeout {
                return Err(err);
            }
            tracing::debug!(service, operation, attempt = n, ?backoff, error = %err, "retrying");
            tokio::time::sleep(backoff).await;
            n += 1;
        }
    }
}

/// Take a token from `bucket`; how long that took.
async fn pace(bucket: &TokenBucket) -> Duration {
    let waited = bucket.acquire().await;
    if waited > Duration::from_millis(100) {
        tracing::debug!(?waited, "paced by the client-side rate limit");
    }
    waited
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aws::limiter::Rate;
    use aws_sdk_ecs::error::ErrorMetadata;
    use aws_sdk_ecs::operation::update_service::UpdateServiceError;
    use aws_smithy_runtime_api::http::StatusCode;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(20),
        }
    }

    fn service_error(code: &str, status: u16) -> SdkError<UpdateServiceError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("test").build();
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), "{}".into());
        SdkError::service_error(UpdateServiceError::generic(meta), raw)
    }

    #[test]
    fn backoff_is_jittered_below_a_doubling_ceiling() {
        let p = policy();
        for n in 1..=6 {
            let ceiling = Duration::from_millis(100 * (1 << (n - 1))).min(Duration::from_secs(1));
            for _ in 0..50 {
                assert!(p.backoff(n) <= ceiling, "retry {n}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_attempt_takes_a_token_and_throttling_is_retried() {
        // A bucket of 1 token refilled at 1/s: three attempts need two
        // more tokens, so two seconds pass however short the backoff.
        let bucket = TokenBucket::new(Rate::new(1.0, 1));
        let sent = Mutex::new(Vec::new());
        let start = tokio::time::Instant::now();
        let out: Result<(), CloudError> = policy()
            .run(&bucket, "ecs", "UpdateService", || {
                sent.lock().unwrap().push(start.elapsed());
                let n = sent.lock().unwrap().len();
                async move { if n < 3 { Err(service_error("ThrottlingException", 400)) } else { Ok(()) } }
            })
            .await;
        out.unwrap();
        let sent = sent.into_inner().unwrap();
        assert_eq!(sent.len(), 3);
        for pair in sent.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(999), "attempts paced by the bucket: {sent:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_retries_keep_to_the_bucket_in_every_window() {
        // PutMetricAlarm's bucket (3/s, burst 3), twelve operations at once,
        // every third attempt throttled: in any window of T seconds at most
        // burst + rate x T attempts go out, retries included.
        let rate = Rate::new(3.0, 3);
        let bucket = TokenBucket::new(rate);
        let p = RetryPolicy { max_attempts: 6, ..policy() };
        let sent = Mutex::new(Vec::new());
        let start = tokio::time::Instant::now();
        let operations = (0..12).map(|_| {
            p.run(&bucket, "cloudwatch", "PutMetricAlarm", || {
                let mut sent = sent.lock().unwrap();
                sent.push(start.elapsed());
                let throttled = sent.len().is_multiple_of(3);
                async move { if throttled { Err(service_error("ThrottlingException", 400)) } else { Ok(()) } }
            })
        });
        for done in futures_util::future::join_all(operations).await {
            done.unwrap();
        }
        let sent = sent.into_inner().unwrap();
        assert_eq!(sent.len(), 17, "12 operations, 5 throttled attempts retried: {sent:?}");
        for (i, from) in sent.iter().enumerate() {
            for (j, to) in sent.iter().enumerate().skip(i) {
                let (n, t) = (j - i + 1, (*to - *from).as_secs_f64());
                let allowed = f64::from(rate.burst) + rate.per_second * t;
                assert!(n as f64 <= allowed + 1e-9, "{n} attempts within {t:.3} s; the bucket allows {allowed:.2}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn quotas_and_rejections_are_not_retried_and_attempts_are_capped() {
        let bucket = TokenBucket::new(Rate::new(100.0, 100));
        for (code, status, attempts) in [
            ("LimitExceededException", 400, 1),
            ("InvalidParameterException", 400, 1),
            ("ThrottlingException", 400, 3),
            ("InternalFailure", 500, 3),
        ] {
            let tries = AtomicU32::new(0);
            let err = policy()
                .run(&bucket, "ecs", "UpdateService", || {
                    tries.fetch_add(1, Ordering::SeqCst);
                    async move { Err::<(), _>(service_error(code, status)) }
                })
                .await
                .unwrap_err();
            assert_eq!(tries.load(Ordering::SeqCst), attempts, "{code}: {err}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_ends_past_the_operation_timeout() {
        let bucket = TokenBucket::new(Rate::new(100.0, 100));
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_secs(4),
            max_backoff: Duration::from_secs(4),
            operation_timeout: Duration::from_secs(5),
        };
        let tries = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        p.run(&bucket, "ecs", "UpdateService", || {
            tries.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Err::<(), _>(service_error("ThrottlingException", 400))
            }
        })
        .await
        .unwrap_err();
        assert!(start.elapsed() <= Duration::from_secs(5), "{:?}", start.elapsed());
        assert!(tries.load(Ordering::SeqCst) < 10);

        // An attempt that hangs is abandoned when the budget is spent.
        let start = tokio::time::Instant::now();
        let err = p
            .run(&bucket, "ecs", "UpdateService", || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<(), SdkError<UpdateServiceError, HttpResponse>>(())
            })
            .await
            .unwrap_err();
        assert!(matches!(err, CloudError::Unreachable { .. }), "{err}");
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
