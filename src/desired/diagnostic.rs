//! What the loader reports: one [`Diagnostic`] per problem, all of them
//! together in a [`LoadError`].

use super::positions::Pos;
use std::fmt;
use std::path::{Path, PathBuf};

/// Every problem found in a desired-state directory. Its `Display` lists
/// them all, one [`Diagnostic`] after another, then a count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// Sorted by file, line and column.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        let n = self.diagnostics.len();
        write!(f, "{n} problem{} in the desired state", if n == 1 { "" } else { "s" })
    }
}

/// One located problem, written for the person who wrote the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; `None` for problems of a whole file or directory.
    pub line: Option<usize>,
    /// 1-based.
    pub column: Option<usize>,
    /// What is wrong and what was expected.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A problem at `pos` in `file` (`None`: the file or directory as a
    /// whole), with what is wrong and what to do about it. Taking the help
    /// here, not in a setter, keeps every diagnostic actionable.
    pub fn at(file: &Path, pos: impl Into<Option<Pos>>, message: impl Into<String>, help: impl Into<String>) -> Self {
        let pos = pos.into();
        Diagnostic {
            file: file.to_path_buf(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message: message.into(),
            help: Some(help.into()),
        }
    }

    /// Leads the help with `did you mean `…`?` when `suggestion` is a
    /// close candidate (see [`super::validate::did_you_mean`]).
    pub fn did_you_mean(mut self, suggestion: Option<&str>) -> Self {
        if let Some(s) = suggestion {
            self.help = Some(match self.help.as_deref() {
                None | Some("") => format!("did you mean `{s}`?"),
                Some(help) => format!("did you mean `{s}`? {help}"),
            });
        }
        self
    }
}

impl fmt::Display for Diagnostic {
    /// `error: FILE:LINE:COL: message`, then `  help: …` when there is help.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}
