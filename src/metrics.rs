//! Prometheus metrics. One [`Metrics`] per process, shared by the loop,
//! the clouds and the HTTP server.

/// The result of one cloud API call, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallResult {
    Success,
    /// Rejected with a throttling error (counted apart from other errors).
    Throttled,
    Error,
}

#[derive(Debug, Default)]
pub struct Metrics {}

impl Metrics {
    pub fn new() -> Self {
        Metrics {}
    }

    /// Count one cloud API call (each attempt, including retries).
    pub fn api_call(&self, _service: &'static str, _operation: &'static str, _result: CallResult) {}
}
