#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod fixtures;
pub mod report;

use core::fmt;

/// Everything that can go wrong while preparing fixtures or reading results.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// identity-core refused a fixture (a key, a policy, a token).
    Core(handoff_core::Error),
    /// A results file or directory could not be read.
    Io {
        /// The path that failed.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A results file is not the JSON criterion writes.
    Json {
        /// The path of the file.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// The results directory holds no criterion measurement.
    NoResults(String),
    /// The replay log under measurement could not answer.
    Store(handoff_core::replay::ReplayStoreError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Core(e) => write!(f, "identity-core refused a fixture: {e}"),
            Self::Io { path, source } => write!(f, "cannot read {path}: {source}"),
            Self::Json { path, detail } => write!(
                f,
                "{path} is not a criterion results file ({detail}): re-run `cargo bench -p benches`"
            ),
            Self::NoResults(dir) => write!(
                f,
                "no criterion results under {dir}: run `cargo bench -p benches` first, or pass the criterion directory as the first argument"
            ),
            Self::Store(e) => write!(f, "the replay log under measurement failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Core(e) => Some(e),
            Self::Io { source, .. } => Some(source),
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<handoff_core::Error> for Error {
    fn from(e: handoff_core::Error) -> Self {
        Self::Core(e)
    }
}
