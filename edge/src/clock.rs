//! Where the edge reads the time: the only place in the family that does.

use handoff_core::UnixTime;

/// A source of the current time. The edge reads it once per request and hands the value
/// to the Sans-IO crates; tests substitute a clock they drive.
pub trait Clock: Send + Sync + 'static {
    /// Now, in whole seconds since the Unix epoch.
    fn now(&self) -> UnixTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        UnixTime::from_secs(secs)
    }
}

/// A clock that moves only when told to (tests, simulations). Cheap to share in an `Arc`.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// A clock showing `at`.
    #[must_use]
    pub fn new(at: UnixTime) -> Self {
        Self(std::sync::atomic::AtomicU64::new(at.as_secs()))
    }
    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime::from_secs(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}
