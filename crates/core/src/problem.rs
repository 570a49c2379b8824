//! A problem found in the configuration: the file, the key path inside it, and what is wrong.
//!
//! `load` and `lint` report every problem they find, not just the first, as a list of these.
//! One problem prints as one line, so that `ferry lint` output can be read by people, grepped
//! and compared in tests:
//!
//! ```text
//! ferry.toml: connections.notify.secrt: unknown field `secrt`, expected one of ...
//! schemes/refunds.json: warning: source.metadata.pagination.mode: offset pagination can skip ...
//! ```
//!
//! Files are named relative to the directory of `ferry.toml`. A problem with no path (a file
//! that cannot be read at all) omits the path part.

use std::fmt;

/// How bad a problem is: errors stop Ferry from starting, warnings only inform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The configuration cannot be used as it is.
    Error,
    /// The configuration works but risks something (lost rows, an unsigned robot, ...).
    Warning,
}

/// One problem in one file at one key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the directory of `ferry.toml` (`ferry.toml`, `schemes/refunds.json`).
    pub file: String,
    /// The key path inside the file: `connections.notify.secret` in TOML,
    /// `target.metadata.request[0].children[2].value` in a scheme. Empty for the whole file.
    pub path: String,
    /// What is wrong and, where it helps, what to do. Never contains a secret.
    pub message: String,
    /// Error (Ferry will not start) or warning (printed by `ferry lint` only).
    pub severity: Severity,
}

impl Problem {
    /// An error at `path` in `file`.
    pub fn error(
        file: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            file: file.into(),
            path: path.into(),
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// A warning at `path` in `file`.
    pub fn warning(
        file: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(file, path, message)
        }
    }

    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `file: path: message` for errors, `file: warning: path: message` for warnings.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// True when any of `problems` is an error (the binary then exits 1).
pub fn has_errors(problems: &[Problem]) -> bool {
    problems.iter().any(Problem::is_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_warnings_print_on_one_line() {
        let e = Problem::error(
            "schemes/a.json",
            "source.connection",
            "unknown connection `x`",
        );
        assert_eq!(
            e.to_string(),
            "schemes/a.json: source.connection: unknown connection `x`"
        );
        let w = Problem::warning("ferry.toml", "connections.notify", "no secret");
        assert_eq!(
            w.to_string(),
            "ferry.toml: warning: connections.notify: no secret"
        );
        let whole = Problem::error("ferry.toml", "", "cannot read");
        assert_eq!(whole.to_string(), "ferry.toml: cannot read");
        assert!(has_errors(&[w.clone(), e]));
        assert!(!has_errors(&[w]));
    }
}
