//! TODO
use super::DesiredState;
use std::path::Path;

/// Every problem found in a desired-state directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the desired state", diagnostics.len())]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

/// One located problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: std::path::PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub help: Option<String>,
}

pub fn load_dir(_dir: &Path, _default_region: &str) -> Result<DesiredState, LoadError> {
    todo!()
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error: {}: {}", self.file.display(), self.message)
    }
}
