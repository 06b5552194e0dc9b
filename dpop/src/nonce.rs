//! Stateless server nonces (RFC 9449 section 8): an HMAC over a time step and a server id.
//!
//! A nonce is `base64url(be64(step) || HMAC-SHA256(secret, tag || server id || be64(step)))`,
//! 54 characters. The server keeps no state: a nonce is accepted while its step lies in
//! the window around the current step and its MAC verifies, in constant time, under the
//! current secret or, during a rotation, the previous one. Nonces are not single-use:
//! the proof's `jti` is still recorded in a replay log.

use core::fmt;

use handoff_core::{HmacSecret, UnixTime, b64};

use crate::Error;

const TAG: &[u8] = b"identity-dpop/nonce/v1";
const NONCE_BYTES: usize = 8 + 32;
/// Length of an issued nonce in characters (base64url of 40 bytes).
pub const NONCE_CHARS: usize = 54;

/// What [`NonceIssuer::check`] found.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NonceCheck {
    /// Issued by this server and still valid through the given instant.
    Valid {
        /// The last instant at which the nonce is accepted.
        until: UnixTime,
    },
    /// Issued by this server, but its step is outside the accepted window.
    Stale,
    /// Not a nonce this server issued (wrong MAC, shape or secret).
    Invalid,
}

/// Issues and checks stateless DPoP nonces.
///
/// Defaults: 60-second steps, the current step and the two before it are accepted (a
/// nonce lives 2 to 3 minutes), plus one step ahead for clock differences between
/// servers sharing the secret.
#[derive(Clone)]
pub struct NonceIssuer {
    server_id: Vec<u8>,
    current: HmacSecret,
    previous: Option<HmacSecret>,
    step_secs: u64,
    past_steps: u64,
    future_steps: u64,
}

impl fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("server_id_len", &self.server_id.len())
            .field("rotating", &self.previous.is_some())
            .field("step_secs", &self.step_secs)
            .field("past_steps", &self.past_steps)
            .field("future_steps", &self.future_steps)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// An issuer with the default step (60 s) and window (2 steps back, 1 ahead).
    ///
    /// `server_id` separates the nonces of servers that share a secret (for example the
    /// authorization server and a resource server); it is not secret.
    #[must_use]
    pub fn new(secret: HmacSecret, server_id: impl Into<Vec<u8>>) -> Self {
        Self {
            server_id: server_id.into(),
            current: secret,
            previous: None,
            step_secs: 60,
            past_steps: 2,
            future_steps: 1,
        }
    }

    /// Sets the step length in seconds (1 to 3600).
    ///
    /// # Errors
    /// [`Error::Config`] outside that range.
    pub fn with_step(mut self, step_secs: u64) -> Result<Self, Error> {
        if !(1..=3600).contains(&step_secs) {
            return Err(Error::Config("the nonce step must be 1 to 3600 seconds"));
        }
        self.step_secs = step_secs;
        Ok(self)
    }

    /// Sets how many steps before and after the current one are accepted (past: 0 to 60,
    /// future: 0 to 5).
    ///
    /// # Errors
    /// [`Error::Config`] outside those ranges.
    pub fn with_window(mut self, past_steps: u64, future_steps: u64) -> Result<Self, Error> {
        if past_steps > 60 || future_steps > 5 {
            return Err(Error::Config(
                "the nonce window accepts at most 60 past steps and 5 future steps",
            ));
        }
        self.past_steps = past_steps;
        self.future_steps = future_steps;
        Ok(self)
    }

    /// Starts a secret rotation: `new` signs from now on, the current secret is still
    /// accepted until [`Self::retire_previous`] (keep the overlap at least one window).
    pub fn rotate(&mut self, new: HmacSecret) {
        let old = core::mem::replace(&mut self.current, new);
        self.previous = Some(old);
    }

    /// Ends a rotation: nonces under the previous secret are refused from now on.
    pub fn retire_previous(&mut self) {
        self.previous = None;
    }

    /// The step length in seconds.
    #[must_use]
    pub fn step_secs(&self) -> u64 {
        self.step_secs
    }

    fn step_of(&self, now: UnixTime) -> u64 {
        now.as_secs() / self.step_secs
    }

    fn mac(&self, secret: &HmacSecret, step: u64) -> [u8; 32] {
        let id_len = (self.server_id.len() as u64).to_be_bytes();
        secret.mac_parts(&[TAG, &id_len, &self.server_id, &step.to_be_bytes()])
    }

    /// The nonce to send in `DPoP-Nonce` now.
    #[must_use]
    pub fn issue(&self, now: UnixTime) -> String {
        let step = self.step_of(now);
        let mut raw = [0u8; NONCE_BYTES];
        raw[..8].copy_from_slice(&step.to_be_bytes());
        raw[8..].copy_from_slice(&self.mac(&self.current, step));
        b64::encode(&raw)
    }

    /// The last instant at which a nonce of `step` is accepted.
    fn valid_until(&self, step: u64) -> UnixTime {
        let end_step = step.saturating_add(self.past_steps).saturating_add(1);
        UnixTime::from_secs(end_step.saturating_mul(self.step_secs).saturating_sub(1))
    }

    /// Checks a nonce presented in a proof. The MAC is compared in constant time.
    pub fn check(&self, nonce: &str, now: UnixTime) -> NonceCheck {
        if nonce.len() != NONCE_CHARS {
            return NonceCheck::Invalid;
        }
        let Ok(raw) = b64::decode(nonce) else {
            return NonceCheck::Invalid;
        };
        if raw.len() != NONCE_BYTES {
            return NonceCheck::Invalid;
        }
        let mut step_bytes = [0u8; 8];
        step_bytes.copy_from_slice(&raw[..8]);
        let step = u64::from_be_bytes(step_bytes);
        let tag = &raw[8..];
        let id_len = (self.server_id.len() as u64).to_be_bytes();
        let parts: [&[u8]; 4] = [TAG, &id_len, &self.server_id, &step_bytes];
        let by_current = self.current.verify_parts(&parts, tag);
        let by_previous = self
            .previous
            .as_ref()
            .is_some_and(|p| p.verify_parts(&parts, tag));
        if !(by_current | by_previous) {
            return NonceCheck::Invalid;
        }
        let now_step = self.step_of(now);
        if step.saturating_add(self.past_steps) < now_step
            || step > now_step.saturating_add(self.future_steps)
        {
            return NonceCheck::Stale;
        }
        NonceCheck::Valid {
            until: self.valid_until(step),
        }
    }

    /// Whether `nonce` was issued for the current step (if not, send a new one with the
    /// response so that the client stays ahead of expiry).
    #[must_use]
    pub fn is_current(&self, nonce: &str, now: UnixTime) -> bool {
        matches!(self.check(nonce, now), NonceCheck::Valid { .. })
            && b64::decode(nonce).is_ok_and(|raw| {
                raw.get(..8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .is_some_and(|b| u64::from_be_bytes(b) == self.step_of(now))
            })
    }
}
