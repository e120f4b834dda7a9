//! The AWS adapter.
