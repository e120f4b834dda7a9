//! The SDK hook: an interceptor that counts every attempt (retries
//! included) by service, operation and result.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_ecs::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_ecs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};

use super::errors;
use crate::metrics::{CallResult, Metrics};

/// How many API attempts the adapter made, by service, operation and
/// result. The same numbers go to [`Metrics`]; this copy lets tests and
/// benchmarks read them without scraping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiCalls {
    /// (service, operation, result) → attempts. Results are `success`,
    /// `throttled` or `error`.
    pub counts: BTreeMap<(&'static str, &'static str, &'static str), u64>,
}

impl ApiCalls {
    /// All attempts.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Attempts of one operation, any result.
    pub fn of(&self, operation: &str) -> u64 {
        self.counts.iter().filter(|((_, op, _), _)| *op == operation).map(|(_, n)| n).sum()
    }

    /// Attempts answered with a throttling error.
    pub fn throttled(&self) -> u64 {
        self.counts.iter().filter(|((_, _, r), _)| *r == "throttled").map(|(_, n)| n).sum()
    }

    /// Attempts of operations that change something.
    pub fn writes(&self) -> u64 {
        self.counts.iter().filter(|((_, op, _), _)| !is_read(op)).map(|(_, n)| n).sum()
    }

    /// Attempts per operation, any result, for printing.
    pub fn by_operation(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for ((_, op, _), n) in &self.counts {
            *out.entry(*op).or_default() += n;
        }
        out
    }

    /// What happened since `earlier` (a snapshot of the same adapter).
    pub fn since(&self, earlier: &ApiCalls) -> ApiCalls {
        let mut counts = BTreeMap::new();
        for (k, n) in &self.counts {
            let before = earlier.counts.get(k).copied().unwrap_or(0);
            if *n > before {
                counts.insert(*k, n - before);
            }
        }
        ApiCalls { counts }
    }
}

/// Reads are the Describe/List/Get operations; everything else writes.
pub(crate) fn is_read(operation: &str) -> bool {
    operation.starts_with("Describe") || operation.starts_with("List") || operation.starts_with("Get")
}

/// Where the interceptors of all clients record attempts.
#[derive(Debug)]
pub(crate) struct CallSink {
    metrics: Arc<Metrics>,
    log: Mutex<ApiCalls>,
}

impl CallSink {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        CallSink { metrics, log: Mutex::new(ApiCalls::default()) }
    }

    pub fn record(&self, service: &'static str, operation: &'static str, result: CallResult) {
        self.metrics.api_call(service, operation, result);
        let label = match result {
            CallResult::Success => "success",
            CallResult::Throttled => "throttled",
            CallResult::Error => "error",
        };
        *self.log.lock().unwrap().counts.entry((service, operation, label)).or_default() += 1;
    }

    pub fn snapshot(&self) -> ApiCalls {
        self.log.lock().unwrap().clone()
    }
}

/// Counts each attempt of each operation of one client, after the attempt,
/// so that retries and timed-out attempts are counted too.
#[derive(Debug)]
pub(crate) struct CountAttempts {
    pub service: &'static str,
    pub sink: Arc<CallSink>,
}

impl Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "ballast::CountAttempts"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| intern(m.name())).unwrap_or("unknown");
        let result = match context.response() {
            // No response at all: connect failure or attempt timeout.
            None => CallResult::Error,
            Some(resp) => attempt_result(resp),
        };
        self.sink.record(self.service, operation, result);
        Ok(())
    }
}

fn attempt_result(resp: &HttpResponse) -> CallResult {
    if resp.status().is_success() {
        return CallResult::Success;
    }
    if errors::is_throttling(response_code(resp).as_deref()) { CallResult::Throttled } else { CallResult::Error }
}

fn response_code(resp: &HttpResponse) -> Option<String> {
    errors::error_code(resp.headers().get("x-amzn-errortype"), resp.body().bytes().unwrap_or_default())
}

/// Operation names as `&'static str` for metric labels. The SDK's names
/// are a small fixed set, so leaking each once is bounded.
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap();
    if let Some(n) = names.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_are_told_apart_by_operation_name() {
        for op in ["DescribeServices", "ListTasks", "GetMetricData", "DescribeTargetHealth"] {
            assert!(is_read(op), "{op}");
        }
        for op in [
            "UpdateService",
            "RegisterTargets",
            "DeregisterTargets",
            "PutMetricAlarm",
            "SetDesiredCapacity",
            "TerminateInstanceInAutoScalingGroup",
            "UpdateAutoScalingGroup",
        ] {
            assert!(!is_read(op), "{op}");
        }
    }

    #[test]
    fn snapshots_subtract_per_key() {
        let sink = CallSink::new(Arc::new(Metrics::new()));
        sink.record("ecs", "DescribeServices", CallResult::Success);
        let before = sink.snapshot();
        sink.record("ecs", "DescribeServices", CallResult::Success);
        sink.record("ecs", "DescribeServices", CallResult::Throttled);
        sink.record("ecs", "UpdateService", CallResult::Success);
        let d = sink.snapshot().since(&before);
        assert_eq!(d.total(), 3);
        assert_eq!(d.of("DescribeServices"), 2);
        assert_eq!(d.throttled(), 1);
        assert_eq!(d.writes(), 1);
    }

    fn response(status: u16, header: Option<&str>, body: &str) -> HttpResponse {
        use aws_smithy_runtime_api::http::StatusCode;
        let mut r = HttpResponse::new(StatusCode::try_from(status).unwrap(), body.to_string().into());
        if let Some(h) = header {
            r.headers_mut().insert("x-amzn-errortype", h.to_string());
        }
        r
    }

    #[test]
    fn attempts_are_labelled_by_their_response() {
        assert_eq!(attempt_result(&response(200, None, "{}")), CallResult::Success);
        assert_eq!(attempt_result(&response(400, Some("ThrottlingException:http://x/"), "{}")), CallResult::Throttled);
        assert_eq!(
            attempt_result(&response(
                400,
                None,
                "<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>"
            )),
            CallResult::Throttled
        );
        // A quota and a missing resource are errors, not throttling.
        assert_eq!(
            attempt_result(&response(400, None, r#"{"__type":"LimitExceededException","message":"quota"}"#)),
            CallResult::Error
        );
        assert_eq!(attempt_result(&response(400, None, r#"{"__type":"ServiceNotFoundException"}"#)), CallResult::Error);
        assert_eq!(attempt_result(&response(500, None, "<html>")), CallResult::Error);
    }

    #[test]
    fn interned_names_are_shared() {
        let a = intern(&String::from("DescribeTasks"));
        let b = intern("DescribeTasks");
        assert!(std::ptr::eq(a, b));
    }
}
