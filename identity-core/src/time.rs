//! The family's only notion of "now": seconds since the Unix epoch, passed in by the caller.

use core::fmt;

use serde::{Deserialize, Serialize};

/// An instant, in whole seconds since the Unix epoch (1970-01-01T00:00:00Z, UTC).
///
/// Nothing in this crate family reads the clock: every time-dependent call takes a
/// `now: UnixTime` argument, so tests drive a fake clock and the caller decides where
/// time comes from. Build one from the system clock in the binary that links the
/// family, for example with [`UnixTime::from_offset_date_time`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The epoch itself.
    pub const EPOCH: Self = Self(0);

    /// An instant from seconds since the epoch.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    /// Seconds since the epoch.
    #[must_use]
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// `self + secs`, saturating at the far future instead of overflowing.
    #[must_use]
    pub const fn saturating_add(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// `self - secs`, saturating at the epoch.
    #[must_use]
    pub const fn saturating_sub(self, secs: u64) -> Self {
        Self(self.0.saturating_sub(secs))
    }

    /// Seconds from `earlier` to `self`, or 0 when `earlier` is later.
    #[must_use]
    pub const fn secs_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Converts from [`time::OffsetDateTime`]; instants before the epoch are refused.
    ///
    /// # Errors
    /// [`BeforeEpoch`] when the instant lies before 1970.
    pub fn from_offset_date_time(t: time::OffsetDateTime) -> Result<Self, BeforeEpoch> {
        u64::try_from(t.unix_timestamp())
            .map(Self)
            .map_err(|_| BeforeEpoch)
    }

    /// Converts to [`time::OffsetDateTime`] (UTC). Instants beyond year 9999 saturate to
    /// the largest representable date.
    #[must_use]
    pub fn to_offset_date_time(self) -> time::OffsetDateTime {
        let secs = i64::try_from(self.0).unwrap_or(i64::MAX);
        time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
    }
}

impl TryFrom<time::OffsetDateTime> for UnixTime {
    type Error = BeforeEpoch;
    fn try_from(t: time::OffsetDateTime) -> Result<Self, Self::Error> {
        Self::from_offset_date_time(t)
    }
}

impl fmt::Debug for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UnixTime({})", self.0)
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The instant given lies before the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("instant lies before the unix epoch; pass a time on or after 1970-01-01T00:00:00Z")]
pub struct BeforeEpoch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_from_offset_date_time() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_562_262_616).unwrap();
        assert_eq!(UnixTime::try_from(t).unwrap().as_secs(), 1_562_262_616);
        assert_eq!(UnixTime::from_secs(1_562_262_616).to_offset_date_time(), t);
        let before = time::OffsetDateTime::from_unix_timestamp(-1).unwrap();
        assert_eq!(UnixTime::try_from(before), Err(BeforeEpoch));
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(
            UnixTime::from_secs(u64::MAX).saturating_add(5).as_secs(),
            u64::MAX
        );
        assert_eq!(UnixTime::from_secs(3).saturating_sub(5), UnixTime::EPOCH);
        assert_eq!(
            UnixTime::from_secs(10).secs_since(UnixTime::from_secs(4)),
            6
        );
        assert_eq!(
            UnixTime::from_secs(4).secs_since(UnixTime::from_secs(10)),
            0
        );
    }
}
