//! The gateway side: handshake verification in the checklist order, session issue and
//! heartbeats.

use core::fmt;

use handoff_core::replay::{ReplayKey, ReplayLog, ReplayRefused, ReplayVerdict, Unconfirmed};
use handoff_core::{HmacSecret, UnixTime};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::DeviceError;
use super::audit::{AuditEvent, FailureReason, SessionEndReason};
use super::quota::{DEFAULT_NONCE_QUOTA, DEFAULT_QUOTA_DEVICES, NonceQuota, QuotaRefusal};
use super::registry::{DeviceRecord, DeviceRegistry};
use super::session::{
    DeviceSession, HeartbeatDecision, IssuedSession, PresentedToken, SessionId, SessionPolicy,
    SessionToken, SessionUpdate, token_hash,
};
use super::wire::{
    DeviceId, GatewayId, HandshakeMessage, KeyId, body_hash, handshake_mac_input, pae,
};

/// Default symmetric clock skew window, in seconds.
pub const DEFAULT_SKEW_SECS: u64 = 120;
/// Largest skew window accepted, in seconds.
pub const MAX_SKEW_SECS: u64 = 300;
/// Replay-key purpose of handshake nonces.
pub const NONCE_PURPOSE: &str = "identity/device-handshake/nonce";

/// A refused handshake: what to tell the device and the audit event to write.
#[must_use = "a rejection carries an audit event to persist"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// What to tell the device. Unknown device, unknown key, not approved, inactive key
    /// and bad MAC all read [`DeviceError::Unauthorized`].
    pub error: DeviceError,
    /// What happened, precisely, for the operator (boxed to keep `Result`s small).
    pub audit: Box<AuditEvent>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Rejection {}

/// A handshake whose MAC verified and whose nonce is reserved.
#[must_use = "a verified handshake should be turned into a session"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedHandshake {
    device_id: DeviceId,
    key_id: KeyId,
    timestamp: UnixTime,
}

impl VerifiedHandshake {
    /// The authenticated device.
    #[must_use]
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// The key that authenticated it.
    #[must_use]
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The device's timestamp.
    #[must_use]
    pub fn timestamp(&self) -> UnixTime {
        self.timestamp
    }
}

/// Builder for a [`Gateway`]; required settings are the arguments of
/// [`Gateway::builder`], the rest have safe defaults.
#[derive(Debug)]
pub struct GatewayBuilder {
    gateway_id: GatewayId,
    not_before: UnixTime,
    session_key: HmacSecret,
    skew_secs: u64,
    policy: SessionPolicy,
    quota_per_device: usize,
    quota_devices: usize,
}

/// Largest per-device nonce quota accepted.
pub const MAX_NONCE_QUOTA: usize = 1_024;

impl GatewayBuilder {
    /// Each device's share of the nonce store: at most `per_device` live handshake nonces
    /// per device (default 16, 1 to 1 024), for at most `devices` devices at once (default
    /// 65 536). A slot is taken after the MAC and every other check, and held until the
    /// nonce's expiry (timestamp + skew), so a device that dates its handshakes ahead
    /// holds its own slots longer and nobody else's. Past its share a device is refused
    /// with [`DeviceError::NonceQuotaExceeded`]; past `devices` live devices every
    /// handshake fails closed with [`DeviceError::NonceStoreFull`]. Size the nonce store
    /// for `per_device` times the devices expected to handshake within twice the skew.
    ///
    /// The quota table lives in the [`Gateway`] value: build one gateway per process and
    /// share it (`Arc<Gateway>`) between request handlers. Several processes sharing one
    /// nonce store each bound a device's share of what they write.
    pub fn nonce_quota(mut self, per_device: usize, devices: usize) -> Self {
        self.quota_per_device = per_device;
        self.quota_devices = devices;
        self
    }

    /// Symmetric skew window in seconds (default 120, at most 300).
    pub fn skew_secs(mut self, secs: u64) -> Self {
        self.skew_secs = secs;
        self
    }

    /// Session lifetimes and rotation (default [`SessionPolicy::default`]).
    pub fn session_policy(mut self, policy: SessionPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Checks the settings and builds the gateway.
    ///
    /// # Errors
    /// [`DeviceError::Config`] when the skew is 0 or over [`MAX_SKEW_SECS`], or the
    /// session policy is inconsistent.
    pub fn build(self) -> Result<Gateway, DeviceError> {
        if self.skew_secs == 0 || self.skew_secs > MAX_SKEW_SECS {
            return Err(DeviceError::Config(
                "skew window must be between 1 and 300 seconds; 120 is a good default",
            ));
        }
        self.policy.check()?;
        if self.quota_per_device == 0 || self.quota_per_device > MAX_NONCE_QUOTA {
            return Err(DeviceError::Config(
                "the per-device nonce quota must be between 1 and 1024; 16 is a good default",
            ));
        }
        if self.quota_devices == 0 {
            return Err(DeviceError::Config(
                "the nonce quota must track at least one device",
            ));
        }
        let decoy_key = HmacSecret::new(
            self.session_key
                .mac(b"identity/device-handshake/decoy-key/v1")
                .to_vec(),
        )
        .map_err(|_| DeviceError::Config("cannot derive the decoy key"))?;
        Ok(Gateway {
            gateway_id: self.gateway_id,
            not_before: self.not_before,
            session_key: self.session_key,
            decoy_key,
            skew_secs: self.skew_secs,
            policy: self.policy,
            quota: NonceQuota::new(self.quota_per_device, self.quota_devices),
        })
    }
}

/// The gateway (server) side of the device handshake.
///
/// Call order for one handshake: [`HandshakeMessage::parse`] -> load the device record
/// named by [`HandshakeMessage::device_id`] -> [`Gateway::check`] ->
/// [`PendingHandshake::confirm`] (the nonce reservation, last) -> [`Gateway::issue_session`]. [`Gateway::handshake`]
/// does all of it with a synchronous [`DeviceRegistry`] and [`ReplayLog`].
///
/// # Restart rule
/// An in-memory nonce store is empty after a restart, so a message accepted just before
/// the restart could be replayed just after it. Build the gateway with `not_before` set to
/// the process start time: handshakes whose timestamp precedes it are refused
/// ([`FailureReason::BeforeRestart`]); past one skew window after the start the skew check
/// alone refuses them. The residual gap is a message whose device clock ran ahead of the
/// gateway's; set `not_before` to start + skew to close it too, at the cost of refusing
/// every handshake during the first skew window. A shared nonce store (Redis, SQL) that
/// survives restarts does not need the rule (pass `UnixTime::EPOCH`).
pub struct Gateway {
    gateway_id: GatewayId,
    not_before: UnixTime,
    session_key: HmacSecret,
    /// Stands in for a missing device key so an unknown device costs the same MAC.
    decoy_key: HmacSecret,
    skew_secs: u64,
    policy: SessionPolicy,
    quota: NonceQuota,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("gateway_id", &self.gateway_id)
            .field("not_before", &self.not_before)
            .field("skew_secs", &self.skew_secs)
            .field("policy", &self.policy)
            .field("nonce_quota", &self.quota.per_device())
            .field("quota_devices", &self.quota.max_devices())
            .finish_non_exhaustive()
    }
}

fn failed(msg: &HandshakeMessage, reason: FailureReason, now: UnixTime) -> AuditEvent {
    AuditEvent::HandshakeFailed {
        device_id: Some(msg.device_id().clone()),
        key_id: Some(msg.key_id().clone()),
        reason,
        at: now,
    }
}

/// The one refusal for anything before the MAC verified: no device or key id, so it reads
/// the same whether the claimed device exists or not.
fn unauthenticated(now: UnixTime) -> Rejection {
    Rejection {
        error: DeviceError::Unauthorized,
        audit: Box::new(AuditEvent::HandshakeFailed {
            device_id: None,
            key_id: None,
            reason: FailureReason::Unauthenticated,
            at: now,
        }),
    }
}

fn reject(
    msg: &HandshakeMessage,
    error: DeviceError,
    reason: FailureReason,
    now: UnixTime,
) -> Rejection {
    Rejection {
        error,
        audit: Box::new(failed(msg, reason, now)),
    }
}

impl Gateway {
    /// Starts a gateway configuration: its id (the audience every handshake MAC covers),
    /// the instant before which handshake timestamps are refused (the process start time
    /// with an in-memory nonce store, see the restart rule above), and the secret from
    /// which successor session tokens are derived (at least 32 random bytes, shared by all
    /// instances that serve the same sessions).
    #[must_use]
    pub fn builder(
        gateway_id: GatewayId,
        not_before: UnixTime,
        session_key: HmacSecret,
    ) -> GatewayBuilder {
        GatewayBuilder {
            gateway_id,
            not_before,
            session_key,
            skew_secs: DEFAULT_SKEW_SECS,
            policy: SessionPolicy::default(),
            quota_per_device: DEFAULT_NONCE_QUOTA,
            quota_devices: DEFAULT_QUOTA_DEVICES,
        }
    }

    /// The gateway id.
    #[must_use]
    pub fn gateway_id(&self) -> &GatewayId {
        &self.gateway_id
    }

    /// The skew window in force, in seconds.
    #[must_use]
    pub fn skew_secs(&self) -> u64 {
        self.skew_secs
    }

    /// The per-device nonce quota in force (see [`GatewayBuilder::nonce_quota`]).
    #[must_use]
    pub fn nonce_quota(&self) -> usize {
        self.quota.per_device()
    }

    /// The session policy in force.
    #[must_use]
    pub fn session_policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// Checks a parsed handshake against the device record the caller loaded (`None` when
    /// the device is unknown), in order:
    ///
    /// 1. the MAC (length first, constant time) under the claimed key of the claimed
    ///    device; an unknown device or key, or a MAC that does not verify, all give the
    ///    same [`DeviceError::Unauthorized`] and the same audit event
    ///    ([`FailureReason::Unauthenticated`], no device or key id), computed with the same
    ///    work (a MAC under a gateway key stands in for a missing device key), so nothing
    ///    before the MAC tells which devices exist;
    /// 2. device approved, key active or retiring inside its overlap;
    /// 3. skew window (server time in the refusal), restart rule, body hash (`body_hash`
    ///    is the SHA-256 of the body actually received, see [`super::body_hash`]);
    /// 4. the device's share of the nonce store (see [`GatewayBuilder::nonce_quota`]):
    ///    a slot held until `timestamp + skew`, so a future-dated timestamp costs the
    ///    device, not the others; a nonce that already holds a slot takes no second one,
    ///    so replaying a captured message does not use up the device's share.
    ///
    /// The nonce is not reserved yet: confirm the result with [`PendingHandshake::confirm`].
    ///
    /// # Errors
    /// A [`Rejection`] with the error for the device and the audit event.
    pub fn check(
        &self,
        msg: &HandshakeMessage,
        record: Option<&DeviceRecord>,
        body_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<PendingHandshake, Rejection> {
        let ts = msg.timestamp();
        // The MAC covers the body hash the message claims; whether it matches the body
        // received is checked once the message is authentic.
        let input = handshake_mac_input(
            msg.device_id(),
            msg.key_id(),
            &self.gateway_id,
            msg.nonce(),
            ts,
            msg.body_hash(),
        );
        let record = record.filter(|r| r.device_id() == msg.device_id());
        let key = record.and_then(|r| r.key(msg.key_id()));
        let authentic = match key {
            Some(key) => key.secret().verify_parts(&[&input], msg.mac()),
            None => {
                // Same work as for a real key, result discarded.
                let _ = self.decoy_key.verify_parts(&[&input], msg.mac());
                false
            }
        };
        let (Some(record), Some(key), true) = (record, key, authentic) else {
            return Err(unauthenticated(now));
        };
        let unauthorized = |reason| reject(msg, DeviceError::Unauthorized, reason, now);
        if !record.state().is_approved() {
            return Err(unauthorized(FailureReason::NotApproved));
        }
        if !key.usable_at(now) {
            return Err(unauthorized(FailureReason::KeyInactive));
        }
        let off = ts.secs_since(now).max(now.secs_since(ts));
        if off > self.skew_secs {
            return Err(reject(
                msg,
                DeviceError::ClockSkew {
                    server_time: now,
                    device_time: ts,
                    max_skew: self.skew_secs,
                },
                FailureReason::Skew,
                now,
            ));
        }
        if ts < self.not_before {
            return Err(reject(
                msg,
                DeviceError::BeforeRestart {
                    not_before: self.not_before,
                    server_time: now,
                },
                FailureReason::BeforeRestart,
                now,
            ));
        }
        if msg.body_hash() != body_hash {
            return Err(reject(
                msg,
                DeviceError::BodyMismatch,
                FailureReason::BodyMismatch,
                now,
            ));
        }
        let until = ts.saturating_add(self.skew_secs);
        let replay_key = ReplayKey::derive(
            NONCE_PURPOSE,
            &[
                self.gateway_id.as_str().as_bytes(),
                msg.device_id().as_str().as_bytes(),
                msg.key_id().as_str().as_bytes(),
                msg.nonce(),
            ],
        );
        if let Err(refusal) = self.quota.take(msg.device_id(), &replay_key, until, now) {
            let (error, reason) = match refusal {
                QuotaRefusal::Exceeded { retry_at } => (
                    DeviceError::NonceQuotaExceeded { retry_at },
                    FailureReason::QuotaExceeded,
                ),
                QuotaRefusal::Full => (DeviceError::NonceStoreFull, FailureReason::StoreFull),
                QuotaRefusal::Poisoned => (
                    DeviceError::NonceStoreUnavailable("nonce quota table poisoned".into()),
                    FailureReason::StoreUnavailable,
                ),
            };
            return Err(reject(msg, error, reason, now));
        }
        let verified = VerifiedHandshake {
            device_id: msg.device_id().clone(),
            key_id: msg.key_id().clone(),
            timestamp: ts,
        };
        Ok(PendingHandshake {
            ids: (verified.device_id.clone(), verified.key_id.clone()),
            inner: Unconfirmed::new(verified, replay_key, until),
        })
    }

    /// Issues a device session for a verified handshake: a fresh random token (only its
    /// hash is stored) and the record to insert.
    pub fn issue_session<R: CryptoRng + ?Sized>(
        &self,
        verified: VerifiedHandshake,
        now: UnixTime,
        rng: &mut R,
    ) -> IssuedSession {
        let mut sid = [0u8; 16];
        rng.fill_bytes(&mut sid);
        let session_id = SessionId::from_bytes(sid);
        let mut random = Zeroizing::new([0u8; 16]);
        rng.fill_bytes(random.as_mut_slice());
        let secret = self.token_secret(&session_id, &random);
        let session = DeviceSession {
            session_id,
            device_id: verified.device_id.clone(),
            created_at: now,
            last_seen: now,
            idle_timeout: self.policy.idle_timeout,
            max_lifetime: self.policy.max_lifetime,
            rotated_at: now,
            current_hash: token_hash(&session_id, &secret),
            previous_hash: None,
            overlap_until: now,
            generation: 0,
            revoked_at: None,
            version: 0,
        };
        let audit = [
            AuditEvent::HandshakeOk {
                device_id: verified.device_id.clone(),
                key_id: verified.key_id.clone(),
                at: now,
            },
            AuditEvent::SessionIssued {
                device_id: verified.device_id,
                session_ref: session_id.audit_ref(),
                expires_at: session.expires_at(),
                at: now,
            },
        ];
        IssuedSession {
            token: SessionToken::new(&session_id, &secret),
            session,
            audit,
        }
    }

    /// The whole handshake of a request carrying `body` (empty when there is none) with a
    /// synchronous registry and nonce store: parse (size caps
    /// first), load, [`Gateway::check`], [`PendingHandshake::confirm`],
    /// [`Gateway::issue_session`].
    ///
    /// # Errors
    /// A [`Rejection`] with the error for the device and the audit event.
    pub fn handshake<R: CryptoRng + ?Sized>(
        &self,
        wire: &[u8],
        body: &[u8],
        registry: &dyn DeviceRegistry,
        nonces: &dyn ReplayLog,
        now: UnixTime,
        rng: &mut R,
    ) -> Result<IssuedSession, Rejection> {
        let msg = parse_handshake(wire, now)?;
        let record = registry
            .load(msg.device_id())
            .map_err(|e| load_rejection(e, now))?;
        let unconfirmed = self.check(&msg, record.as_ref(), &body_hash(body), now)?;
        let verified = unconfirmed.confirm(nonces, now)?;
        Ok(self.issue_session(verified, now, rng))
    }

    /// As [`Self::handshake`], with an async registry and nonce store (for example
    /// `handoff-stores`' PostgreSQL registry and Redis replay log on tokio). The same steps
    /// and checks, in the same order, with the same rejections.
    ///
    /// # Errors
    /// As [`Self::handshake`].
    pub async fn handshake_async<D, L, R>(
        &self,
        wire: &[u8],
        body: &[u8],
        registry: &D,
        nonces: &L,
        now: UnixTime,
        rng: &mut R,
    ) -> Result<IssuedSession, Rejection>
    where
        D: crate::AsyncDeviceRegistry,
        L: handoff_core::replay_async::AsyncReplayLog,
        R: CryptoRng + ?Sized,
    {
        let msg = parse_handshake(wire, now)?;
        let record = registry
            .load(msg.device_id())
            .await
            .map_err(|e| load_rejection(e, now))?;
        let unconfirmed = self.check(&msg, record.as_ref(), &body_hash(body), now)?;
        let verified = unconfirmed.confirm_async(nonces, now).await?;
        Ok(self.issue_session(verified, now, rng))
    }

    /// The tag that makes a token secret recognisable as one this gateway issued for
    /// this session: HMAC-SHA256 under the session key, truncated to 128 bits.
    fn token_tag(&self, session_id: &SessionId, random: &[u8; 16]) -> [u8; 16] {
        let mac = Zeroizing::new(self.session_key.mac(&pae(&[
            b"identity/device-session/token-tag",
            b"v1",
            session_id.as_bytes(),
            random,
        ])));
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&mac[..16]);
        tag
    }

    /// A token secret: 16 random (or derived) bytes, then their tag.
    fn token_secret(&self, session_id: &SessionId, random: &[u8; 16]) -> Zeroizing<[u8; 32]> {
        let mut secret = Zeroizing::new([0u8; 32]);
        secret[..16].copy_from_slice(random);
        secret[16..].copy_from_slice(&self.token_tag(session_id, random));
        secret
    }

    /// Whether a presented token was issued by this gateway for its session (any
    /// generation); constant time.
    fn is_authentic(&self, presented: &PresentedToken) -> bool {
        let secret = presented.secret();
        let mut random = [0u8; 16];
        random.copy_from_slice(&secret[..16]);
        let tag = self.token_tag(&presented.session_id(), &random);
        bool::from(tag.ct_eq(&secret[16..]))
    }

    fn successor(
        &self,
        session: &DeviceSession,
        parent_hash: &[u8; 32],
        generation: u64,
    ) -> Zeroizing<[u8; 32]> {
        let mac = Zeroizing::new(self.session_key.mac(&pae(&[
            b"identity/device-session/successor",
            b"v2",
            session.session_id.as_bytes(),
            &generation.to_le_bytes(),
            parent_hash,
        ])));
        let mut random = Zeroizing::new([0u8; 16]);
        random.copy_from_slice(&mac[..16]);
        self.token_secret(&session.session_id, &random)
    }

    /// Handles a heartbeat: the session record the caller loaded by
    /// [`PresentedToken::session_id`], the device record, the presented token and the
    /// gateway clock.
    ///
    /// - after `expires_at` (idle or absolute): refused, nothing to write;
    /// - device no longer approved: the session is revoked;
    /// - the current token: the idle expiry moves to `now + idle` (never past the
    ///   absolute expiry); after `rotate_after` the token rotates and the previous one
    ///   stays good for `overlap` seconds;
    /// - the previous token inside the overlap: the same successor again;
    /// - any other token this gateway issued for the session (older, or the previous after
    ///   the overlap; recognised by its tag): the token chain was copied, the session is
    ///   revoked;
    /// - a token the gateway did not issue (a forged or mistyped secret next to a known
    ///   session id): refused with [`DeviceError::SessionTokenUnrecognised`], nothing to
    ///   write, so knowing a session id is not enough to end the session.
    pub fn heartbeat(
        &self,
        session: &DeviceSession,
        device: &DeviceRecord,
        presented: &PresentedToken,
        now: UnixTime,
    ) -> HeartbeatDecision {
        self.decide_heartbeat(session, Some(device), presented, now)
    }

    /// [`Self::heartbeat`], where `device` is `None` when the device is gone from the
    /// registry: the session then ends as for a device no longer approved, after the
    /// same checks in the same order (so only a token the gateway issued, for a live
    /// session, causes the write).
    pub(crate) fn decide_heartbeat(
        &self,
        session: &DeviceSession,
        device: Option<&DeviceRecord>,
        presented: &PresentedToken,
        now: UnixTime,
    ) -> HeartbeatDecision {
        let session_ref = session.session_id.audit_ref();
        let refuse_only = |error: DeviceError, audit: AuditEvent| HeartbeatDecision::Refused {
            error,
            update: None,
            audit,
        };
        if presented.session_id() != session.session_id
            || device.is_some_and(|d| d.device_id() != &session.device_id)
        {
            return refuse_only(
                DeviceError::WrongSession,
                AuditEvent::SessionRefused {
                    device_id: session.device_id.clone(),
                    session_ref,
                    at: now,
                },
            );
        }
        let hash = presented.hash();
        let (is_current, is_previous) = token_matches(session, &hash);
        if !(is_current || is_previous || self.is_authentic(presented)) {
            return refuse_only(
                DeviceError::SessionTokenUnrecognised,
                AuditEvent::SessionRefused {
                    device_id: session.device_id.clone(),
                    session_ref,
                    at: now,
                },
            );
        }
        if session.revoked_at.is_some() {
            return refuse_only(
                DeviceError::SessionRevoked,
                AuditEvent::SessionRefused {
                    device_id: session.device_id.clone(),
                    session_ref,
                    at: now,
                },
            );
        }
        let expires_at = session.expires_at();
        if now >= expires_at {
            return refuse_only(
                DeviceError::SessionExpired {
                    expired_at: expires_at,
                },
                AuditEvent::SessionExpired {
                    device_id: session.device_id.clone(),
                    session_ref,
                    expired_at: expires_at,
                    at: now,
                },
            );
        }
        if !device.is_some_and(|d| d.state().is_approved()) {
            let update = session.revoked(now, SessionEndReason::DeviceNotApproved);
            return HeartbeatDecision::Refused {
                error: DeviceError::Unauthorized,
                audit: update.audit.clone(),
                update: Some(update),
            };
        }
        if is_current {
            let mut next = session.clone();
            next.last_seen = now;
            next.version = session.version.saturating_add(1);
            if now.secs_since(session.rotated_at) >= self.policy.rotate_after {
                let generation = session.generation.saturating_add(1);
                let secret = self.successor(session, &session.current_hash, generation);
                next.previous_hash = Some(session.current_hash);
                next.current_hash = token_hash(&session.session_id, &secret);
                next.overlap_until = now.saturating_add(self.policy.overlap);
                next.rotated_at = now;
                next.generation = generation;
                return HeartbeatDecision::Rotated {
                    token: SessionToken::new(&session.session_id, &secret),
                    update: SessionUpdate {
                        audit: AuditEvent::SessionRotated {
                            device_id: session.device_id.clone(),
                            session_ref,
                            generation,
                            repeated: false,
                            at: now,
                        },
                        expected_version: session.version,
                        session: next,
                    },
                };
            }
            return HeartbeatDecision::Extended {
                update: SessionUpdate {
                    audit: AuditEvent::SessionExtended {
                        device_id: session.device_id.clone(),
                        session_ref,
                        expires_at: next.expires_at(),
                        at: now,
                    },
                    expected_version: session.version,
                    session: next,
                },
            };
        }
        if is_previous && now <= session.overlap_until {
            let secret = self.successor(session, &hash, session.generation);
            let rederived = token_hash(&session.session_id, &secret);
            if bool::from(rederived.ct_eq(&session.current_hash)) {
                let mut next = session.clone();
                next.last_seen = now;
                next.version = session.version.saturating_add(1);
                return HeartbeatDecision::Rotated {
                    token: SessionToken::new(&session.session_id, &secret),
                    update: SessionUpdate {
                        audit: AuditEvent::SessionRotated {
                            device_id: session.device_id.clone(),
                            session_ref,
                            generation: session.generation,
                            repeated: true,
                            at: now,
                        },
                        expected_version: session.version,
                        session: next,
                    },
                };
            }
        }
        let update = session.revoked(now, SessionEndReason::TokenReuse);
        HeartbeatDecision::Refused {
            error: DeviceError::SessionTokenReused,
            audit: update.audit.clone(),
            update: Some(update),
        }
    }
}

/// A handshake that passed every check but the nonce reservation. Confirm it against the
/// nonce store as the very last step; there is no other way to get the
/// [`VerifiedHandshake`] out.
#[must_use = "the nonce must be reserved before the handshake counts"]
#[derive(Debug)]
pub struct PendingHandshake {
    ids: (DeviceId, KeyId),
    inner: Unconfirmed<VerifiedHandshake>,
}

impl PendingHandshake {
    /// The replay key to reserve (scoped to gateway, device, key and nonce).
    #[must_use]
    pub fn replay_key(&self) -> &ReplayKey {
        self.inner.replay_key()
    }

    /// Until when the nonce must stay reserved (timestamp + skew).
    #[must_use]
    pub fn until(&self) -> UnixTime {
        self.inner.until()
    }

    /// Reserves the nonce in `nonces` (atomic insert-if-absent) and releases the verified
    /// handshake if it was fresh. Fails closed when the store is full or down.
    ///
    /// # Errors
    /// A [`Rejection`]: [`DeviceError::Replayed`], [`DeviceError::NonceStoreFull`] or
    /// [`DeviceError::NonceStoreUnavailable`].
    pub fn confirm(
        self,
        nonces: &dyn ReplayLog,
        now: UnixTime,
    ) -> Result<VerifiedHandshake, Rejection> {
        let Self { ids, inner } = self;
        inner
            .confirm(nonces, now)
            .map_err(|e| replay_rejection(e, ids, now))
    }

    /// As [`Self::confirm`], on an [`AsyncReplayLog`](handoff_core::replay_async::AsyncReplayLog).
    ///
    /// # Errors
    /// As [`Self::confirm`].
    pub async fn confirm_async<L: handoff_core::replay_async::AsyncReplayLog>(
        self,
        nonces: &L,
        now: UnixTime,
    ) -> Result<VerifiedHandshake, Rejection> {
        let Self { ids, inner } = self;
        inner
            .confirm_async(nonces, now)
            .await
            .map_err(|e| replay_rejection(e, ids, now))
    }

    /// Like [`Self::confirm`], with the verdict of a check-and-insert the caller ran
    /// itself (for example against an async store) with [`Self::replay_key`] and
    /// [`Self::until`].
    ///
    /// # Errors
    /// As [`Self::confirm`].
    pub fn confirm_with(
        self,
        verdict: ReplayVerdict,
        now: UnixTime,
    ) -> Result<VerifiedHandshake, Rejection> {
        let Self { ids, inner } = self;
        inner
            .confirm_with(verdict)
            .map_err(|e| replay_rejection(e, ids, now))
    }
}

/// Parses a handshake message (size caps first); a malformed one is refused with an audit
/// event that names no device.
fn parse_handshake(wire: &[u8], now: UnixTime) -> Result<HandshakeMessage, Rejection> {
    HandshakeMessage::parse(wire).map_err(|error| Rejection {
        error,
        audit: Box::new(AuditEvent::HandshakeFailed {
            device_id: None,
            key_id: None,
            reason: FailureReason::Malformed,
            at: now,
        }),
    })
}

/// A registry that could not answer. Before the MAC: the audit event names no device (it
/// would be attacker-chosen).
fn load_rejection(error: DeviceError, now: UnixTime) -> Rejection {
    Rejection {
        error,
        audit: Box::new(AuditEvent::HandshakeFailed {
            device_id: None,
            key_id: None,
            reason: FailureReason::StoreUnavailable,
            at: now,
        }),
    }
}

fn replay_rejection(e: ReplayRefused, ids: (DeviceId, KeyId), now: UnixTime) -> Rejection {
    let (error, reason) = match e {
        ReplayRefused::Replayed => (DeviceError::Replayed, FailureReason::Replay),
        ReplayRefused::AtCapacity => (DeviceError::NonceStoreFull, FailureReason::StoreFull),
        ReplayRefused::Store(s) => (
            DeviceError::NonceStoreUnavailable(s.0),
            FailureReason::StoreUnavailable,
        ),
        // `ReplayRefused` is non-exhaustive: anything new is a refusal too (fail closed).
        _ => (
            DeviceError::NonceStoreUnavailable("the nonce store refused the nonce".into()),
            FailureReason::StoreUnavailable,
        ),
    };
    Rejection {
        error,
        audit: Box::new(AuditEvent::HandshakeFailed {
            device_id: Some(ids.0),
            key_id: Some(ids.1),
            reason,
            at: now,
        }),
    }
}

/// Whether `hash` is the session's current token hash, and whether it is its previous one
/// (each compared in constant time).
fn token_matches(session: &DeviceSession, hash: &[u8; 32]) -> (bool, bool) {
    let is_current: bool = hash.ct_eq(&session.current_hash).into();
    let is_previous: bool = session
        .previous_hash
        .is_some_and(|p| bool::from(hash.ct_eq(&p)));
    (is_current, is_previous)
}
