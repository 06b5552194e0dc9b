//! Step-by-step output of an example.

use core::fmt::Display;
use std::io::Write;

use crate::ExampleError;

/// Prints an example's steps: numbered headings, indented details, and the expected
/// refusals marked as such. Write errors are kept and reported by [`Narrator::finish`].
#[derive(Debug)]
pub struct Narrator<W: Write> {
    out: W,
    steps: usize,
    error: Option<std::io::Error>,
}

impl<W: Write> Narrator<W> {
    /// Starts the output with the example's title.
    pub fn new(out: W, title: &str) -> Self {
        let mut n = Self {
            out,
            steps: 0,
            error: None,
        };
        n.line(format_args!("== {title}"));
        n
    }

    fn line(&mut self, text: core::fmt::Arguments<'_>) {
        if self.error.is_none()
            && let Err(e) = writeln!(self.out, "{text}")
        {
            self.error = Some(e);
        }
    }

    /// A numbered step: who does what.
    pub fn step(&mut self, actor: &str, what: impl Display) {
        self.steps += 1;
        let n = self.steps;
        self.line(format_args!("\n[{n}] {actor}: {what}"));
    }

    /// A detail of the current step.
    pub fn info(&mut self, text: impl Display) {
        self.line(format_args!("      {text}"));
    }

    /// An outcome the example checked and found as expected.
    pub fn ok(&mut self, text: impl Display) {
        self.line(format_args!("    ok: {text}"));
    }

    /// A refusal the example expected (a negative step), with the library's message.
    pub fn refused(&mut self, what: impl Display, error: impl Display) {
        self.line(format_args!("    refused, as expected: {what}"));
        self.line(format_args!("      error: {error}"));
    }

    /// The number of steps printed so far.
    #[must_use]
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Prints the closing line and returns the writer.
    ///
    /// # Errors
    /// [`ExampleError::Io`] with the first write error, if any.
    pub fn finish(mut self, summary: &str) -> Result<W, ExampleError> {
        let n = self.steps;
        self.line(format_args!("\n== done: {n} steps, {summary}"));
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(e);
        }
        match self.error {
            Some(e) => Err(ExampleError::Io(e)),
            None => Ok(self.out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_numbered_steps() {
        let mut n = Narrator::new(Vec::new(), "demo");
        n.step("host", "generate a key");
        n.info("kid k1");
        n.ok("published");
        n.step("service", "replay the token");
        n.refused("the jti was seen", "replayed");
        assert_eq!(n.steps(), 2);
        let out = String::from_utf8(n.finish("all as expected").unwrap()).unwrap();
        assert_eq!(
            out,
            "== demo\n\n[1] host: generate a key\n      kid k1\n    ok: published\n\n\
             [2] service: replay the token\n    refused, as expected: the jti was seen\n\
             \x20     error: replayed\n\n== done: 2 steps, all as expected\n"
        );
    }

    #[derive(Debug)]
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("pipe closed"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn reports_the_first_write_error() {
        let mut n = Narrator::new(Broken, "demo");
        n.step("a", "b");
        let e = n.finish("x").unwrap_err();
        assert!(e.to_string().contains("pipe closed"), "{e}");
    }
}
