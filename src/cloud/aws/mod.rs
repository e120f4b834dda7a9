//! The AWS adapter: [`AwsCloud`], the [`Cloud`] that talks to ECS, ELBv2,
//! CloudWatch, Auto Scaling and Application Auto Scaling.
//!
//! This folder is the only code in the crate that imports `aws_sdk_*`.
//! Every SDK operation is called as `<x>.ecs.<op>()`, `.elbv2.<op>()`,
//! `.autoscaling.<op>()`, `.cloudwatch.<op>()`, `.appscaling.<op>()` or
//! `.dynamodb.<op>()`,
//! on one line (`let req = rc.ecs.describe_services();`), so that a plain
//! regex over this folder lists the IAM actions it needs (a unit test keeps
//! [`IAM_ACTIONS`] in step with it).
//!
//! - `observe`: the reads of one pass, batched as the table in
//!   [`crate::cloud`] says, with the target-group and task-definition
//!   caches.
//! - `apply`: one write per [`Change`], plus the scaling marks.
//! - `history`: a service's CPU and running tasks over a time range, for
//!   `ballast replay`.
//! - `lease`: [`DynamoLease`], the leadership lease in a DynamoDB table.
//! - `map`: pure SDK-shape → observed-type mapping.
//! - `call`: one operation: every attempt paced by its bucket, retried
//!   with backoff on throttling and transient errors.
//! - `errors`: SDK errors → [`CloudError`].
//! - [`limiter`]: client-side token buckets per API family.
//! - `intercept`: per-attempt call counting.
//!
//! `docs/aws.md` covers configuration, retries, rate limits, IAM and the
//! emulator test bed.

mod apply;
mod call;
mod cloudwatch;
mod errors;
mod history;
mod intercept;
mod lease;
pub mod limiter;
mod map;
mod observe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

pub use intercept::ApiCalls;
pub use lease::DynamoLease;
pub use limiter::{Rate, RateLimits};

use crate::cloud::{Clock, Cloud, CloudError, Scope, TokioClock};
use crate::desired::TargetGroupRef;
use crate::metrics::Metrics;
use crate::observed::Observed;
use crate::plan::Change;
use call::RetryPolicy;
use intercept::{CallSink, CountAttempts};
use limiter::{Buckets, TokenBucket};
use map::{TargetGroupInfo, TaskDefInfo};

/// Every IAM action the adapter may call. `docs/aws.md` lists the same.
pub const IAM_ACTIONS: &[&str] = &[
    "ecs:DescribeServices",
    "ecs:ListTasks",
    "ecs:DescribeTasks",
    "ecs:ListContainerInstances",
    "ecs:DescribeContainerInstances",
    "ecs:DescribeTaskDefinition",
    "ecs:GetTaskProtection",
    "ecs:UpdateService",
    "ecs:UpdateTaskProtection",
    "ecs:TagResource",
    "application-autoscaling:DescribeScalableTargets",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:DeregisterTargets",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:ListTagsForResource",
    "cloudwatch:GetMetricData",
    "cloudwatch:PutMetricAlarm",
    "cloudwatch:TagResource",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
    "autoscaling:UpdateAutoScalingGroup",
    "autoscaling:CreateOrUpdateTags",
    "autoscaling:SuspendProcesses",
    "autoscaling:DescribeLifecycleHooks",
    "autoscaling:PutLifecycleHook",
    "autoscaling:RecordLifecycleActionHeartbeat",
    "autoscaling:CompleteLifecycleAction",
    "ecs:UpdateContainerInstancesState",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
];

/// Tuning of the adapter. The defaults suit real AWS.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsOptions {
    /// Longest one HTTP attempt may take before it is abandoned (and
    /// retried, if attempts remain).
    pub attempt_timeout: Duration,
    /// Longest one operation may take, all attempts and backoff included.
    pub operation_timeout: Duration,
    /// Longest a TCP/TLS connect may take.
    pub connect_timeout: Duration,
    /// Attempts per operation, the first included (retried with backoff
    /// on throttling, transient and 5xx errors; see `call`).
    pub max_attempts: u32,
    /// First retry backoff; doubles per retry up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Client-side pacing per API family and region.
    pub rate_limits: RateLimits,
    /// How far back GetMetricData looks for the latest CPU datapoint.
    pub metric_lookback: Duration,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_millis(3_100),
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
            rate_limits: RateLimits::default(),
            metric_lookback: Duration::from_secs(600),
        }
    }
}

/// The AWS implementation of [`Cloud`]. Cheap to clone.
#[derive(Clone)]
pub struct AwsCloud {
    inner: Arc<Inner>,
}

struct Inner {
    /// Credentials, endpoints and the rest of the shared SDK settings;
    /// each region's clients are built from it.
    base: SdkConfig,
    options: AwsOptions,
    sink: Arc<CallSink>,
    /// "Now" for the reads that ask for a time range (GetMetricData) and
    /// for the scaling marks the writes leave.
    clock: Arc<dyn Clock>,
    /// Clients and rate buckets per region, created on first use: the
    /// desired state names its regions, the process does not know them
    /// up front.
    regions: Mutex<HashMap<String, Arc<RegionClients>>>,
    /// Target groups by (region, reference). Name, ARN, type and port
    /// never change for an ARN, so each is described once; an entry is
    /// dropped when the group turns out to be gone.
    target_groups: Mutex<HashMap<(String, TargetGroupRef), TargetGroupInfo>>,
    /// Task definitions by ARN (which includes the region); immutable.
    task_defs: Mutex<HashMap<String, TaskDefInfo>>,
    /// Alarms by (region, name) seen with, or given, ballast's
    /// `managed-by` tag, so that their tags are listed at most once per
    /// process rather than every pass.
    tagged_alarms: Mutex<std::collections::HashSet<(String, String)>>,
    /// Reads reused within their period (see [`crate::cloud::reuse`]).
    cpu_reads: Mutex<crate::cloud::reuse::CpuReads<crate::desired::ServiceId>>,
    protection_reads: Mutex<crate::cloud::reuse::ProtectionReads>,
}

/// The five SDK clients of one region, with that region's rate buckets.
/// Field names are the convention the IAM scan relies on.
pub(crate) struct RegionClients {
    pub ecs: aws_sdk_ecs::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub appscaling: aws_sdk_applicationautoscaling::Client,
    pub buckets: Buckets,
    pub retry: RetryPolicy,
}

impl RegionClients {
    /// Run one operation paced by `bucket` and retried by the policy:
    /// `attempt` sends a fresh clone of the request,
    /// `|| req.clone().send()`.
    pub async fn call<T, E, Fut>(
        &self,
        bucket: &TokenBucket,
        service: &'static str,
        operation: &'static str,
        attempt: impl FnMut() -> Fut,
    ) -> Result<T, CloudError>
    where
        Fut: std::future::Future<Output = Result<T, aws_sdk_ecs::error::SdkError<E, HttpResponse>>>,
        E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.retry.run(bucket, service, operation, attempt).await
    }
}

impl std::fmt::Debug for AwsCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCloud").field("options", &self.inner.options).finish_non_exhaustive()
    }
}

impl AwsCloud {
    /// An adapter over `sdk_config` (credentials, endpoints, HTTP client).
    /// The config's region is not used: every resource in a [`Scope`] or
    /// [`Change`] names its region, and each region gets its own clients.
    /// Timeouts and retries come from `options` and replace the config's.
    /// "Now" is the wall clock, as tokio's clock moves it.
    pub fn new(sdk_config: &SdkConfig, metrics: Arc<Metrics>, options: AwsOptions) -> Self {
        AwsCloud {
            inner: Arc::new(Inner {
                base: sdk_config.clone(),
                options,
                sink: Arc::new(CallSink::new(metrics)),
                clock: Arc::new(TokioClock::new()),
                regions: Mutex::new(HashMap::new()),
                target_groups: Mutex::new(HashMap::new()),
                task_defs: Mutex::new(HashMap::new()),
                cpu_reads: Mutex::default(),
                protection_reads: Mutex::default(),
                tagged_alarms: Mutex::new(std::collections::HashSet::new()),
            }),
        }
    }

    /// An adapter configured the standard way: the default credential
    /// chain, `AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL` and
    /// `AWS_ENDPOINT_URL_<SERVICE>`, all as aws-config reads them.
    pub async fn from_env(metrics: Arc<Metrics>, options: AwsOptions) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::new(&config, metrics, options)
    }

    /// Remember that the alarm carries ballast's tag (see `tagged_alarms`).
    fn tagged_alarm(&self, region: &str, name: &str) {
        self.inner.tagged_alarms.lock().unwrap().insert((region.to_string(), name.to_string()));
    }

    /// Attempts made so far, by service, operation and result.
    pub fn api_calls(&self) -> ApiCalls {
        self.inner.sink.snapshot()
    }

    /// The options the adapter was built with.
    pub fn options(&self) -> &AwsOptions {
        &self.inner.options
    }

    /// The clients of `region`, created on first use.
    pub(crate) fn region(&self, region: &str) -> Arc<RegionClients> {
        let mut regions = self.inner.regions.lock().unwrap();
        regions.entry(region.to_string()).or_insert_with(|| Arc::new(self.build_clients(region))).clone()
    }

    fn build_clients(&self, region: &str) -> RegionClients {
        let o = &self.inner.options;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(o.connect_timeout)
            .operation_attempt_timeout(o.attempt_timeout)
            .build();
        // Retries are `call`'s, so that each attempt is paced.
        let retry = RetryConfig::disabled();
        let region = Region::new(region.to_string());
        let base = &self.inner.base;
        let sink = &self.inner.sink;
        // The five builders are distinct types with the same methods.
        macro_rules! client {
            ($sdk:ident, $label:literal) => {{
                let conf = $sdk::config::Builder::from(base)
                    .region(region.clone())
                    .timeout_config(timeouts.clone())
                    .retry_config(retry.clone())
                    .interceptor(CountAttempts { service: $label, sink: sink.clone() })
                    .build();
                $sdk::Client::from_conf(conf)
            }};
        }
        RegionClients {
            ecs: client!(aws_sdk_ecs, "ecs"),
            elbv2: client!(aws_sdk_elasticloadbalancingv2, "elbv2"),
            autoscaling: client!(aws_sdk_autoscaling, "autoscaling"),
            cloudwatch: client!(aws_sdk_cloudwatch, "cloudwatch"),
            appscaling: client!(aws_sdk_applicationautoscaling, "application-autoscaling"),
            buckets: Buckets::new(&o.rate_limits),
            retry: RetryPolicy {
                max_attempts: o.max_attempts.max(1),
                initial_backoff: o.initial_backoff,
                max_backoff: o.max_backoff,
                operation_timeout: o.operation_timeout,
            },
        }
    }
}

impl Cloud for AwsCloud {
    async fn observe(&self, scope: &Scope) -> Result<Observed, CloudError> {
        observe::observe(self, scope).await
    }

    async fn apply(&self, change: &Change) -> Result<(), CloudError> {
        apply::apply(self, change).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operations called in this folder, found the way an IAM review
    /// would: `.ecs.<op>(`, `.elbv2.<op>(`, … A new call without its IAM
    /// action listed (or a stale listed action) fails here.
    #[test]
    fn iam_actions_match_the_operations_called() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("observe.rs"),
            include_str!("apply.rs"),
            include_str!("history.rs"),
            include_str!("lease.rs"),
            include_str!("cloudwatch.rs"),
        ];
        let prefixes = [
            (".ecs.", "ecs"),
            (".elbv2.", "elasticloadbalancing"),
            (".autoscaling.", "autoscaling"),
            (".cloudwatch.", "cloudwatch"),
            (".appscaling.", "application-autoscaling"),
            (".dynamodb.", "dynamodb"),
        ];
        let mut found = std::collections::BTreeSet::new();
        for src in sources {
            // Skip this test's own text.
            let src = src.split("#[cfg(test)]").next().unwrap();
            for (needle, service) in prefixes {
                let mut rest = src;
                while let Some(i) = rest.find(needle) {
                    rest = &rest[i + needle.len()..];
                    let op: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if rest[op.len()..].starts_with("()") && !op.is_empty() {
                        let camel: String = op
                            .split('_')
                            .map(|w| {
                                let mut c = w.chars();
                                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
                            })
                            .collect();
                        found.insert(format!("{service}:{camel}"));
                    }
                }
            }
        }
        let listed: std::collections::BTreeSet<String> = IAM_ACTIONS.iter().map(|s| s.to_string()).collect();
        assert_eq!(found, listed);
    }

    #[test]
    fn default_options_bound_every_call() {
        let o = AwsOptions::default();
        assert!(o.attempt_timeout < o.operation_timeout);
        assert_eq!(o.max_attempts, 3);
    }
}
