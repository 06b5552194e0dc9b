//! A simulated clock: the system clock read once, then advanced explicitly.
//!
//! The libraries never read the clock; the examples are binaries, so they may. They
//! read it once at start and then move time forward by hand to show rotation and expiry
//! without sleeping (and say so in their output).

use handoff_core::UnixTime;

use crate::ExampleError;

/// A clock started from the system time (or a fixed instant in tests) and advanced by
/// hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimClock {
    start: UnixTime,
    now: UnixTime,
}

impl SimClock {
    /// Reads the system clock once.
    ///
    /// # Errors
    /// [`ExampleError::Io`] when the system clock is set before 1970.
    pub fn from_system() -> Result<Self, ExampleError> {
        let now = UnixTime::try_from(time::OffsetDateTime::now_utc()).map_err(|e| {
            ExampleError::Io(std::io::Error::other(format!("{e}; fix the system clock")))
        })?;
        Ok(Self::starting_at(now))
    }

    /// A clock starting at `start` (tests, reproducible runs).
    #[must_use]
    pub const fn starting_at(start: UnixTime) -> Self {
        Self { start, now: start }
    }

    /// The current simulated instant.
    #[must_use]
    pub const fn now(&self) -> UnixTime {
        self.now
    }

    /// Moves time forward by `secs` and returns the new instant.
    pub fn advance(&mut self, secs: u64) -> UnixTime {
        self.now = self.now.saturating_add(secs);
        self.now
    }

    /// Seconds since the clock started, as `T+N s` for the output.
    #[must_use]
    pub fn label(&self) -> String {
        format!("T+{}s", self.now.secs_since(self.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_only_when_told() {
        let mut c = SimClock::starting_at(UnixTime::from_secs(1_800_000_000));
        assert_eq!(c.now().as_secs(), 1_800_000_000);
        assert_eq!(c.label(), "T+0s");
        assert_eq!(c.advance(90).as_secs(), 1_800_000_090);
        assert_eq!(c.now().as_secs(), 1_800_000_090);
        assert_eq!(c.label(), "T+90s");
    }

    #[test]
    fn system_clock_is_after_2020() {
        let c = SimClock::from_system().unwrap();
        assert!(c.now().as_secs() > 1_577_836_800);
    }
}
