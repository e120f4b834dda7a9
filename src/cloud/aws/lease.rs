//! [`DynamoLease`]: the leadership lease in a DynamoDB table
//! (`ballast run --lease-table`), one item per lease name.
//!
//! The item: `name` (S, the table's partition key), `holder` (S),
//! `version` (S, new with every write), `expires_at` (N, Unix seconds by
//! the holder's clock, for people) and `ttl` (N, a day after that, the
//! table's TTL attribute, so that DynamoDB deletes a lease nobody renews
//! any more). Acquire and renew are PutItem with a condition on `version`
//! (or on the item's absence), release is DeleteItem with the same
//! condition, and a standby reads with a strongly consistent GetItem.
//!
//! Calls are not retried here: the election calls again on its next turn
//! (a second at most), and a call that hangs must not outlive the renew
//! interval. They are counted like the adapter's other calls, under the
//! service `dynamodb`, but not paced: one call a second needs no bucket.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::AwsCloud;
use super::errors::from_sdk;
use super::intercept::CountAttempts;
use crate::cloud::lease::{LeaseError, LeaseRecord, LeaseStore};

/// Kept after a lease's expiry before DynamoDB's TTL may delete it.
const TTL_AFTER_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// A lease item in a DynamoDB table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoLease {
    /// Field name is the convention the IAM scan relies on.
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    name: String,
    /// Longest one call may take.
    timeout: Duration,
}

impl AwsCloud {
    /// The lease `name` in `table` (in `region`), with the adapter's
    /// credentials and endpoints; each call gives up after `timeout`.
    pub fn lease(&self, region: &str, table: &str, name: &str, timeout: Duration) -> DynamoLease {
        let o = &self.inner.options;
        let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
            .connect_timeout(o.connect_timeout.min(timeout))
            .operation_attempt_timeout(timeout)
            .operation_timeout(timeout)
            .build();
        let conf = aws_sdk_dynamodb::config::Builder::from(&self.inner.base)
            .region(aws_config::Region::new(region.to_string()))
            .timeout_config(timeouts)
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .interceptor(CountAttempts { service: "dynamodb", sink: self.inner.sink.clone() })
            .build();
        DynamoLease {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(conf),
            table: table.to_string(),
            name: name.to_string(),
            timeout,
        }
    }
}

impl DynamoLease {
    fn key(&self) -> AttributeValue {
        AttributeValue::S(self.name.clone())
    }

    /// PutItem of `next`, on condition that the item is `expected` (a
    /// version) or absent.
    async fn put(&self, expected: Option<&str>, next: &LeaseRecord) -> Result<(), LeaseError> {
        let req = self.dynamodb.put_item();
        let req = req.table_name(&self.table).set_item(Some(item(&self.name, next)));
        let req = match expected {
            None => req.condition_expression("attribute_not_exists(#n)").expression_attribute_names("#n", "name"),
            Some(v) => req
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", AttributeValue::S(v.to_string())),
        };
        let out = tokio::time::timeout(self.timeout, req.send()).await;
        answer(self.timeout, "PutItem", out).map(|_| ())
    }
}

/// The item of `record` under the key `name`.
fn item(name: &str, r: &LeaseRecord) -> HashMap<String, AttributeValue> {
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    HashMap::from([
        ("name".to_string(), AttributeValue::S(name.to_string())),
        ("holder".to_string(), AttributeValue::S(r.holder.clone())),
        ("version".to_string(), AttributeValue::S(r.version.clone())),
        ("expires_at".to_string(), AttributeValue::N(secs(r.expires_at).to_string())),
        ("ttl".to_string(), AttributeValue::N(secs(r.expires_at + TTL_AFTER_EXPIRY).to_string())),
    ])
}

/// A call's outcome as the election sees it: a failed condition is a
/// [`LeaseError::Conflict`], anything else that failed leaves the lease
/// unknown.
fn answer<T, E>(
    timeout: Duration,
    operation: &'static str,
    out: Result<Result<T, SdkError<E, HttpResponse>>, tokio::time::error::Elapsed>,
) -> Result<T, LeaseError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.code() == Some("ConditionalCheckFailedException") => Err(LeaseError::Conflict),
        Ok(Err(e)) => Err(LeaseError::Unavailable(from_sdk("dynamodb", operation, e).to_string())),
        Err(_) => Err(LeaseError::Unavailable(format!("dynamodb {operation} timed out after {timeout:?}"))),
    }
}

impl LeaseStore for DynamoLease {
    async fn read(&self) -> Result<Option<LeaseRecord>, LeaseError> {
        let req = self.dynamodb.get_item();
        let req = req.table_name(&self.table).key("name", self.key()).consistent_read(true);
        let out = answer(self.timeout, "GetItem", tokio::time::timeout(self.timeout, req.send()).await)?;
        let Some(item) = out.item() else { return Ok(None) };
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let expires = item.get("expires_at").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
        Ok(Some(LeaseRecord {
            holder: text("holder"),
            version: text("version"),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(expires.unwrap_or(0)),
        }))
    }

    async fn acquire(&self, expected: Option<&str>, next: &LeaseRecord) -> Result<(), LeaseError> {
        self.put(expected, next).await
    }

    async fn renew(&self, held: &str, next: &LeaseRecord) -> Result<(), LeaseError> {
        self.put(Some(held), next).await
    }

    async fn release(&self, held: &str) -> Result<(), LeaseError> {
        let req = self.dynamodb.delete_item();
        let req = req
            .table_name(&self.table)
            .key("name", self.key())
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", AttributeValue::S(held.to_string()));
        answer(self.timeout, "DeleteItem", tokio::time::timeout(self.timeout, req.send()).await).map(|_| ())
    }
}
