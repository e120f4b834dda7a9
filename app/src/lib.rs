//! The sample workload ballast manages: the article's two-port app.
//!
//! # Layout
//!
//! - [`backend`]: the JSON API on the backend port (`/status`,
//!   `/items/{item_id}`), CORS open to GET from any origin.
//! - [`frontend`]: the HTML page on the frontend port that shows the
//!   backend's status, whether opened directly or through API Gateway.
//! - [`server`]: binds both ports and runs them until a shutdown signal,
//!   then drains both.
//!
//! The binary (`main.rs`) only parses the command line and calls
//! [`server::serve`] with the process's shutdown future: Ctrl-C at once,
//! SIGTERM after `--drain-seconds` more of serving.

#![warn(missing_docs)]

pub mod backend;
pub mod frontend;
pub mod server;
