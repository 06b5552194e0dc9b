//! Audit events as JSON lines: one JSON object per line, written as the events happen.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use crate::ExampleError;
use crate::error::clip;

/// Longest audit line accepted by [`check_json_lines`].
pub const MAX_LINE_BYTES: usize = 4096;

/// Writes serializable events as JSON lines.
#[derive(Debug)]
pub struct JsonLines<W: Write> {
    out: W,
    lines: usize,
}

impl<W: Write> JsonLines<W> {
    /// Writes to `out` (a file, a buffer).
    pub fn new(out: W) -> Self {
        Self { out, lines: 0 }
    }

    /// Serializes `event` on one line, writes it and returns the line (without `\n`).
    ///
    /// # Errors
    /// [`ExampleError::Io`] when serializing or writing fails.
    pub fn write<T: Serialize + ?Sized>(&mut self, event: &T) -> Result<String, ExampleError> {
        let line = serde_json::to_string(event).map_err(std::io::Error::other)?;
        writeln!(self.out, "{line}")?;
        self.lines += 1;
        Ok(line)
    }

    /// Lines written so far.
    #[must_use]
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Flushes and returns the writer.
    ///
    /// # Errors
    /// [`ExampleError::Io`] when flushing fails.
    pub fn finish(mut self) -> Result<W, ExampleError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Checks an audit log read back: every line a JSON object with a string `event` member,
/// at most [`MAX_LINE_BYTES`] long, containing none of `forbidden` (secrets and tokens
/// must never reach the log). Returns the `event` names in order.
///
/// # Errors
/// [`ExampleError::Unexpected`] naming the first line that breaks a rule.
pub fn check_json_lines(text: &str, forbidden: &[&str]) -> Result<Vec<String>, ExampleError> {
    let bad = |n: usize, expected: &str, got: String| ExampleError::Unexpected {
        step: format!("audit log line {n}"),
        expected: expected.to_owned(),
        got,
    };
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.len() > MAX_LINE_BYTES {
            return Err(bad(
                n,
                "a line of at most 4096 bytes",
                format!("{} bytes", line.len()),
            ));
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| bad(n, "one JSON value per line", format!("{e}: {}", clip(line))))?;
        let Some(event) = value.get("event").and_then(Value::as_str) else {
            return Err(bad(
                n,
                "an object with a string \"event\" member",
                clip(line),
            ));
        };
        if let Some(secret) = forbidden
            .iter()
            .find(|f| !f.is_empty() && line.contains(**f))
        {
            return Err(bad(
                n,
                "no secret or token in the audit log",
                format!("a line containing {}", clip(secret)),
            ));
        }
        events.push(event.to_owned());
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_one_object_per_line_and_reads_it_back() {
        let mut log = JsonLines::new(Vec::new());
        let l1 = log
            .write(&json!({"event": "approved", "by": "alice"}))
            .unwrap();
        log.write(&json!({"event": "revoked"})).unwrap();
        assert_eq!(log.lines(), 2);
        assert_eq!(l1, r#"{"by":"alice","event":"approved"}"#);
        let text = String::from_utf8(log.finish().unwrap()).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(
            check_json_lines(&text, &["dvs1.secret"]).unwrap(),
            ["approved", "revoked"]
        );
    }

    #[test]
    fn refuses_lines_that_are_not_events() {
        assert!(check_json_lines("not json\n", &[]).is_err());
        assert!(check_json_lines("{\"event\": 3}\n", &[]).is_err());
        assert!(check_json_lines("[1,2]\n", &[]).is_err());
        let long = format!("{{\"event\":\"{}\"}}", "x".repeat(MAX_LINE_BYTES));
        let e = check_json_lines(&long, &[]).unwrap_err();
        assert!(e.to_string().contains("4096"), "{e}");
    }

    #[test]
    fn refuses_a_secret_in_the_log() {
        let text = "{\"event\":\"session_issued\",\"token\":\"dvs1.abc\"}\n";
        let e = check_json_lines(text, &["dvs1.abc"]).unwrap_err();
        assert!(e.to_string().contains("no secret or token"), "{e}");
        // An empty forbidden string matches nothing.
        assert!(check_json_lines(text, &[""]).is_ok());
    }
}
