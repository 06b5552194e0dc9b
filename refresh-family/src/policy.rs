//! Lifetimes, grace and retry bounds, validated once by [`PolicyBuilder::build`].

use crate::RefreshError;

/// What an in-grace replay of the head's immediate predecessor gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GraceMode {
    /// No grace: any second presentation of a rotated token is reuse.
    Off,
    /// Every in-grace replay gets the same successor, re-derived with an HMAC (no
    /// successor secret is stored). The default when grace is on.
    IdempotentSuccessor,
    /// Every in-grace replay mints a fresh sibling that replaces the head; the displaced
    /// head becomes superseded (presenting it later is reuse). For clients that keep only
    /// the newest response.
    IssueSibling,
}

/// Hard cap on the grace window, in seconds.
pub const MAX_GRACE_WINDOW_SECS: u64 = 60;
/// Hard cap on the in-grace replays of one token.
pub const MAX_GRACE_USES: u32 = 100;
/// Longest lifetime accepted (idle or absolute): 400 days.
pub const MAX_LIFETIME_SECS: u64 = 400 * 86_400;
/// Shortest lifetime accepted (idle or absolute), in seconds: one grace window.
pub const MIN_LIFETIME_SECS: u64 = 60;
/// Hard cap on store attempts per call.
pub const MAX_ATTEMPTS: u32 = 10;

/// A validated refresh-family policy. Build one with [`Policy::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub(crate) idle: u64,
    pub(crate) absolute: u64,
    pub(crate) grace_mode: GraceMode,
    pub(crate) grace_window: u64,
    pub(crate) grace_max_uses: u32,
    pub(crate) attempts: u32,
}

impl Default for Policy {
    /// Idle 15 days, absolute 30 days, grace off, 3 store attempts.
    fn default() -> Self {
        Self {
            idle: 15 * 86_400,
            absolute: 30 * 86_400,
            grace_mode: GraceMode::Off,
            grace_window: 0,
            grace_max_uses: 8,
            attempts: 3,
        }
    }
}

impl Policy {
    /// A builder starting from [`Policy::default`].
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            policy: Self::default(),
            mode: None,
        }
    }
    /// Idle lifetime of each token, in seconds.
    #[must_use]
    pub const fn idle_lifetime(&self) -> u64 {
        self.idle
    }
    /// Absolute lifetime of a family from its creation, in seconds.
    #[must_use]
    pub const fn absolute_lifetime(&self) -> u64 {
        self.absolute
    }
    /// The grace mode ([`GraceMode::Off`] when the window is 0).
    #[must_use]
    pub const fn grace_mode(&self) -> GraceMode {
        self.grace_mode
    }
    /// The grace window, in seconds from the predecessor's (first and only) rotation.
    #[must_use]
    pub const fn grace_window(&self) -> u64 {
        self.grace_window
    }
    /// How many in-grace replays one token may have.
    #[must_use]
    pub const fn grace_max_uses(&self) -> u32 {
        self.grace_max_uses
    }
    /// Store attempts per call before [`RefreshError::Retry`].
    #[must_use]
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// Chained setters with safe defaults; [`PolicyBuilder::build`] checks every bound.
#[derive(Debug, Clone)]
#[must_use]
pub struct PolicyBuilder {
    policy: Policy,
    mode: Option<GraceMode>,
}

impl PolicyBuilder {
    /// Idle lifetime per token (default 15 days), 60 s to 400 days. A token is accepted
    /// while `now < issued_at + idle` (the end instant itself is refused).
    pub const fn idle_lifetime(mut self, secs: u64) -> Self {
        self.policy.idle = secs;
        self
    }
    /// Absolute lifetime per family (default 30 days), at least the idle lifetime and at
    /// most 400 days. Anchored at creation, never extended by rotation: the family is live
    /// while `now < created_at + absolute`.
    pub const fn absolute_lifetime(mut self, secs: u64) -> Self {
        self.policy.absolute = secs;
        self
    }
    /// Grace window in seconds (default 0 = off, hard cap 60), open while
    /// `now < rotated_at + window`. A non-zero window turns
    /// grace on in [`GraceMode::IdempotentSuccessor`] unless [`Self::grace_mode`] says
    /// otherwise.
    pub const fn grace_window(mut self, secs: u64) -> Self {
        self.policy.grace_window = secs;
        self
    }
    /// The grace mode; [`GraceMode::Off`] requires a zero window, the others a non-zero one.
    pub const fn grace_mode(mut self, mode: GraceMode) -> Self {
        self.mode = Some(mode);
        self
    }
    /// In-grace replays allowed per token (default 8, 1 to 100); one more is reuse.
    pub const fn grace_max_uses(mut self, uses: u32) -> Self {
        self.policy.grace_max_uses = uses;
        self
    }
    /// Store attempts per call before a retryable error (default 3, 1 to 10).
    pub const fn attempts(mut self, attempts: u32) -> Self {
        self.policy.attempts = attempts;
        self
    }

    /// Checks every bound.
    ///
    /// # Errors
    /// [`RefreshError::Policy`] naming the setting out of bounds.
    pub fn build(self) -> Result<Policy, RefreshError> {
        let mut p = self.policy;
        if !(MIN_LIFETIME_SECS..=MAX_LIFETIME_SECS).contains(&p.idle) {
            return Err(RefreshError::Policy(
                "idle lifetime must lie between 60 seconds and 400 days",
            ));
        }
        if !(p.idle..=MAX_LIFETIME_SECS).contains(&p.absolute) {
            return Err(RefreshError::Policy(
                "absolute lifetime must lie between the idle lifetime and 400 days",
            ));
        }
        if p.grace_window > MAX_GRACE_WINDOW_SECS {
            return Err(RefreshError::Policy("grace window is capped at 60 seconds"));
        }
        p.grace_mode = match (self.mode, p.grace_window) {
            (None | Some(GraceMode::Off), 0) => GraceMode::Off,
            (None, _) => GraceMode::IdempotentSuccessor,
            (Some(GraceMode::Off), _) => {
                return Err(RefreshError::Policy(
                    "grace mode off with a non-zero grace window; drop one of the two",
                ));
            }
            (Some(_), 0) => {
                return Err(RefreshError::Policy(
                    "grace mode set but the grace window is 0; set a window of 1 to 60 seconds",
                ));
            }
            (Some(m), _) => m,
        };
        if !(1..=MAX_GRACE_USES).contains(&p.grace_max_uses) {
            return Err(RefreshError::Policy(
                "grace use cap must lie between 1 and 100",
            ));
        }
        if !(1..=MAX_ATTEMPTS).contains(&p.attempts) {
            return Err(RefreshError::Policy("attempts must lie between 1 and 10"));
        }
        Ok(p)
    }
}
