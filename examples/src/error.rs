//! The one error type of the examples, and the checks that turn an unexpected outcome
//! into an error (so the example exits non-zero instead of printing a wrong story).

use core::fmt;

/// Why an example stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExampleError {
    /// A step's outcome was not the one the example expects.
    #[error("step {step:?}: expected {expected}, got {got}")]
    Unexpected {
        /// The step.
        step: String,
        /// What should have happened.
        expected: String,
        /// What happened instead.
        got: String,
    },
    /// A library call failed.
    #[error("step {step:?} failed: {source}")]
    Failed {
        /// The step.
        step: String,
        /// The library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The loopback HTTP exchange failed or the response is not what HTTP/1.1 allows.
    #[error("http: {0}")]
    Http(String),
    /// A command-line argument is wrong.
    #[error("{0}; run with --help for the options")]
    Usage(String),
    /// Reading the clock or writing output failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Attaches a step name to a library error: `call().during("mint the host token")?`.
pub trait During<T> {
    /// Maps the error to [`ExampleError::Failed`] for `step`.
    ///
    /// # Errors
    /// The original error, named by its step.
    fn during(self, step: &str) -> Result<T, ExampleError>;
}

impl<T, E> During<T> for Result<T, E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn during(self, step: &str) -> Result<T, ExampleError> {
        self.map_err(|e| ExampleError::Failed {
            step: step.to_owned(),
            source: Box::new(e),
        })
    }
}

/// Fails with [`ExampleError::Unexpected`] unless `holds`.
///
/// # Errors
/// [`ExampleError::Unexpected`] naming the step and what was expected.
pub fn expect(holds: bool, step: &str, expected: &str) -> Result<(), ExampleError> {
    if holds {
        Ok(())
    } else {
        Err(ExampleError::Unexpected {
            step: step.to_owned(),
            expected: expected.to_owned(),
            got: "the opposite".to_owned(),
        })
    }
}

/// Returns the error of a step that must be refused; an acceptance is an
/// [`ExampleError::Unexpected`].
///
/// # Errors
/// [`ExampleError::Unexpected`] when `result` is `Ok`.
pub fn expect_refused<T: fmt::Debug, E>(
    result: Result<T, E>,
    step: &str,
) -> Result<E, ExampleError> {
    match result {
        Err(e) => Ok(e),
        Ok(v) => Err(ExampleError::Unexpected {
            step: step.to_owned(),
            expected: "a refusal".to_owned(),
            got: format!("acceptance ({})", clip(&format!("{v:?}"))),
        }),
    }
}

/// At most 200 characters of `s`, for error messages.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 200;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push_str("...");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_passes_and_fails() {
        assert!(expect(true, "s", "x").is_ok());
        let e = expect(false, "check the jti", "a replay").unwrap_err();
        assert!(matches!(e, ExampleError::Unexpected { .. }));
        assert!(e.to_string().contains("check the jti"), "{e}");
        assert!(e.to_string().contains("a replay"), "{e}");
    }

    #[test]
    fn expect_refused_returns_the_error_and_refuses_success() {
        let err: Result<(), &str> = Err("no");
        assert_eq!(expect_refused(err, "s").unwrap(), "no");
        let ok: Result<u8, &str> = Ok(7);
        let e = expect_refused(ok, "replay the token").unwrap_err();
        assert!(e.to_string().contains("replay the token"), "{e}");
        assert!(e.to_string().contains("acceptance (7)"), "{e}");
    }

    #[test]
    fn during_names_the_step() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("disk on fire"));
        let e = r.during("write the audit log").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("step \"write the audit log\" failed"),
            "{e}"
        );
        assert!(e.to_string().contains("disk on fire"), "{e}");
    }

    #[test]
    fn clip_bounds_long_text() {
        let long = "x".repeat(1000);
        assert_eq!(clip(&long).chars().count(), 203);
        assert_eq!(clip("short"), "short");
    }
}
