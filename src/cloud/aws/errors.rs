//! Mapping SDK errors (and raw error responses) into [`CloudError`].

use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::cloud::CloudError;

/// Error codes AWS uses for request-rate throttling, across the protocols
/// of the five services. `LimitExceededException` is deliberately absent:
/// for ECS (and Application Auto Scaling) it means a resource quota, and
/// retrying it soon only burns retry budget.
pub(crate) const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
];

/// Codes that mean a quota is exhausted, not a rate.
pub(crate) const QUOTA_CODES: &[&str] = &[
    "LimitExceededException",
    "LimitExceeded",
    "LimitExceededFault",
    "TooManyTargets",
    "TooManyRegistrationsForTargetId",
];

const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
];

const NOT_FOUND_CODES: &[&str] = &[
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "ClusterNotFoundException",
    "TargetGroupNotFound",
    "TargetGroupNotFoundException",
    "LoadBalancerNotFound",
    "ResourceNotFound",
    "ResourceNotFoundException",
    "ObjectNotFoundException",
];

/// Classify a service's error response by its code and message.
pub(crate) fn classify(
    service: &'static str,
    operation: &'static str,
    code: Option<&str>,
    message: Option<&str>,
) -> CloudError {
    let message = message.unwrap_or_default().to_string();
    let code = code.unwrap_or_default();
    let with_code = || {
        if code.is_empty() {
            message.clone()
        } else if message.is_empty() {
            code.to_string()
        } else {
            format!("{code}: {message}")
        }
    };
    if THROTTLING_CODES.contains(&code) {
        CloudError::Throttled { service, operation, message: with_code() }
    } else if QUOTA_CODES.contains(&code) {
        CloudError::Quota { service, operation, message: with_code() }
    } else if ACCESS_DENIED_CODES.contains(&code) {
        CloudError::AccessDenied { service, operation, message: with_code() }
    } else if NOT_FOUND_CODES.contains(&code)
        // Auto Scaling answers unknown groups and instances with a
        // ValidationError whose message says so; there is no better code.
        || (code == "ValidationError" && message.to_ascii_lowercase().contains("not found"))
    {
        CloudError::NotFound(format!("{service} {operation}: {}", with_code()))
    } else {
        CloudError::Rejected { service, operation, message: with_code() }
    }
}

/// Map any SDK error into a [`CloudError`].
pub(crate) fn from_sdk<E>(service: &'static str, operation: &'static str, err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            match (e.code(), e.message()) {
                // Not an AWS error document (e.g. a proxy's or an
                // emulator's crash page): say at least what the status was.
                (None, None) => {
                    classify(service, operation, None, Some(&format!("HTTP {}", ctx.raw().status().as_u16())))
                }
                (code, message) => classify(service, operation, code, message),
            }
        }
        SdkError::TimeoutError(_) => CloudError::Unreachable { service, message: format!("{operation} timed out") },
        SdkError::DispatchFailure(d) => CloudError::Unreachable {
            service,
            message: format!(
                "{operation}: {}",
                chain(d.as_connector_error().map(|c| c as &(dyn std::error::Error + 'static)))
            ),
        },
        SdkError::ResponseError(_) => CloudError::Unreachable {
            service,
            message: format!("{operation}: unreadable response: {}", chain(Some(&err))),
        },
        // Construction failures are our bug or a bad setting (e.g. no
        // region, no credentials): nothing was sent.
        _ => CloudError::Rejected { service, operation, message: chain(Some(&err)) },
    }
}

/// Whether an attempt that failed this way may succeed if sent again
/// soon: throttling and transient failures (timeouts, connection errors,
/// unreadable responses, 5xx), as the SDK's standard retry mode judges
/// them. Never a quota: for ECS `LimitExceededException` is one, though
/// the SDK would take it for throttling.
pub(crate) fn is_retryable<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => !d.is_user(),
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code();
            if code.is_some_and(|c| QUOTA_CODES.contains(&c)) {
                false
            } else {
                code.is_some_and(|c| THROTTLING_CODES.contains(&c) || TRANSIENT_CODES.contains(&c))
                    || ctx.raw().status().is_server_error()
            }
        }
        _ => false,
    }
}

/// Codes of transient failures that some services send with a 4xx
/// status. Auto Scaling answers `SetDesiredCapacity`,
/// `TerminateInstanceInAutoScalingGroup` and `UpdateAutoScalingGroup` with
/// `ScalingActivityInProgress` while a scaling activity of the group runs,
/// and `ResourceContention` while another update of it is pending: both
/// pass once the group is idle, so they are retried like throttling.
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "InternalError",
    "InternalFailure",
    "ScalingActivityInProgress",
    "ResourceContention",
];

/// An error and its sources on one line: the SDK's top-level messages
/// ("dispatch failure") say little without them.
fn chain(err: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut parts = Vec::new();
    let mut cur = err;
    while let Some(e) = cur {
        let s = e.to_string();
        if parts.last() != Some(&s) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// The AWS error code of a raw error response, for the protocols the five
/// services speak: awsJson (`x-amzn-ErrorType` header or `__type`),
/// awsQuery (`<Code>` in XML) and rpc-v2-cbor (`__type` in a CBOR map).
/// Used where only the raw response is at hand (the attempt counter sees
/// every service's responses uniformly).
pub(crate) fn error_code(header: Option<&str>, body: &[u8]) -> Option<String> {
    if let Some(h) = header {
        let code = h.split(':').next().unwrap_or(h).trim();
        if !code.is_empty() {
            return Some(strip_namespace(code).to_string());
        }
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    match first {
        b'{' => {
            let v: serde_json::Value = serde_json::from_slice(body).ok()?;
            let code = v.get("__type").or_else(|| v.get("code")).or_else(|| v.get("Code"))?.as_str()?;
            Some(strip_namespace(code).to_string())
        }
        b'<' => {
            let text = std::str::from_utf8(body).ok()?;
            let start = text.find("<Code>")? + "<Code>".len();
            let end = text[start..].find("</Code>")? + start;
            Some(text[start..end].trim().to_string())
        }
        _ => cbor_type(body).map(|c| strip_namespace(&c).to_string()),
    }
}

/// `aws.protocols#ThrottlingException` → `ThrottlingException`.
fn strip_namespace(code: &str) -> &str {
    code.rsplit('#').next().unwrap_or(code)
}

/// The text value of the `__type` key in a CBOR map. Smithy's rpc-v2-cbor
/// error bodies are flat maps of text keys, so a scan for the encoded key
/// followed by a text string is enough; anything else yields `None`.
fn cbor_type(body: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\x66__type";
    let pos = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let head = *body.get(pos)?;
    if head >> 5 != 3 {
        return None;
    }
    let (len, skip) = match head & 0x1f {
        n @ 0..=23 => (usize::from(n), 1),
        24 => (usize::from(*body.get(pos + 1)?), 2),
        25 => (usize::from(u16::from_be_bytes([*body.get(pos + 1)?, *body.get(pos + 2)?])), 3),
        _ => return None,
    };
    let bytes = body.get(pos + skip..pos + skip + len)?;
    String::from_utf8(bytes.to_vec()).ok()
}

/// Whether a raw error response is a throttling response.
pub(crate) fn is_throttling(code: Option<&str>) -> bool {
    code.is_some_and(|c| THROTTLING_CODES.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_of_every_protocol_map_to_throttled() {
        for code in ["ThrottlingException", "Throttling", "TooManyRequestsException"] {
            let e = classify("elbv2", "RegisterTargets", Some(code), Some("Rate exceeded"));
            assert_eq!(e.label(), "throttled", "{code}");
        }
    }

    #[test]
    fn ecs_limit_exceeded_is_a_quota_not_throttling() {
        let e = classify("ecs", "UpdateService", Some("LimitExceededException"), Some("The limit has been exceeded."));
        assert!(matches!(e, CloudError::Quota { service: "ecs", .. }), "{e:?}");
        assert!(!is_throttling(Some("LimitExceededException")));
    }

    #[test]
    fn missing_resources_map_to_not_found() {
        for (svc, code, msg) in [
            ("ecs", "ServiceNotFoundException", "Service not found."),
            ("ecs", "ClusterNotFoundException", "Cluster not found."),
            ("ecs", "ServiceNotActiveException", "Service was not ACTIVE."),
            ("elbv2", "TargetGroupNotFound", "One or more target groups not found"),
            ("autoscaling", "ValidationError", "AutoScalingGroup name not found - null"),
        ] {
            let e = classify(svc, "Op", Some(code), Some(msg));
            assert_eq!(e.label(), "not_found", "{code}: {e:?}");
        }
    }

    #[test]
    fn other_validation_errors_are_rejections() {
        let e = classify(
            "autoscaling",
            "SetDesiredCapacity",
            Some("ValidationError"),
            Some("New SetDesiredCapacity value 20 is above max value 10"),
        );
        assert_eq!(e.label(), "rejected");
        assert!(e.to_string().contains("above max value 10"), "{e}");
    }

    /// Auto Scaling's busy answers are retried, and stay rejections (not
    /// throttling) when the retries run out.
    #[test]
    fn a_scaling_activity_in_progress_is_retried_but_is_not_throttling() {
        use aws_sdk_autoscaling::operation::set_desired_capacity::SetDesiredCapacityError;
        use aws_smithy_runtime_api::http::StatusCode;
        for code in ["ScalingActivityInProgress", "ResourceContention"] {
            let meta = aws_sdk_autoscaling::error::ErrorMetadata::builder()
                .code(code)
                .message("Scaling activity 1234 is in progress and blocks this action.")
                .build();
            let raw = HttpResponse::new(StatusCode::try_from(400).unwrap(), "".into());
            let err = SdkError::service_error(SetDesiredCapacityError::generic(meta), raw);
            assert!(is_retryable(&err), "{code}");
            let e = from_sdk("autoscaling", "SetDesiredCapacity", err);
            assert_eq!(e.label(), "rejected", "{code}: {e:?}");
            assert!(!is_throttling(Some(code)));
        }
    }

    #[test]
    fn access_denied_maps_to_access_denied() {
        let e = classify("ecs", "UpdateService", Some("AccessDeniedException"), None);
        assert_eq!(e.label(), "access_denied");
    }

    #[test]
    fn error_code_reads_json_header_json_body_xml_and_cbor() {
        assert_eq!(
            error_code(Some("ThrottlingException:http://internal.amazon.com/"), b"").as_deref(),
            Some("ThrottlingException")
        );
        assert_eq!(
            error_code(None, br#"{"__type":"com.amazonaws.ecs#LimitExceededException","message":"x"}"#).as_deref(),
            Some("LimitExceededException")
        );
        let xml = br#"<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
          <Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>
          <RequestId>1</RequestId></ErrorResponse>"#;
        assert_eq!(error_code(None, xml).as_deref(), Some("Throttling"));
        // {"__type": "ThrottlingException", "message": "slow down"} in CBOR.
        let mut cbor = vec![0xa2, 0x66];
        cbor.extend_from_slice(b"__type");
        cbor.push(0x60 | 19);
        cbor.extend_from_slice(b"ThrottlingException");
        cbor.push(0x67);
        cbor.extend_from_slice(b"message");
        cbor.push(0x69);
        cbor.extend_from_slice(b"slow down");
        assert_eq!(error_code(None, &cbor).as_deref(), Some("ThrottlingException"));
        assert_eq!(error_code(None, b"").as_deref(), None);
        assert_eq!(error_code(None, b"not an error body").as_deref(), None);
    }
}
