//! Where device sessions live between heartbeats: the [`DeviceSessionStore`] seam (and its
//! async twin), a bounded in-memory default, and [`Gateway::heartbeat_stored`], which runs
//! a heartbeat end to end against a store and a registry (load, decide, compare-and-set,
//! re-decide on a lost race).
//!
//! The decision stays in [`Gateway::heartbeat`]; this module only loads and writes. The
//! SQLite, PostgreSQL and Redis stores live in `handoff-stores`.

use core::fmt;
use core::future::Future;
use std::collections::HashMap;
use std::sync::RwLock;

use handoff_core::UnixTime;

use crate::audit::AuditEvent;
use crate::gateway::Gateway;
use crate::registry::{DeviceRecord, DeviceRegistry};
use crate::registry_async::AsyncDeviceRegistry;
use crate::session::{
    DeviceSession, HeartbeatDecision, PresentedToken, SessionId, SessionToken, SessionUpdate,
};
use crate::{DeviceError, IssuedSession};

/// How many times [`Gateway::heartbeat_stored`] reloads and decides again after losing a
/// compare-and-set to a concurrent heartbeat of the same session before it gives up with
/// [`DeviceError::VersionConflict`]. Two racing heartbeats settle in two rounds (the
/// loser re-decides on the winner's record); more means a hot loop on one session.
pub const MAX_HEARTBEAT_ATTEMPTS: usize = 4;

/// Storage of [`DeviceSession`] records, keyed by [`SessionId`]. Records hold token
/// hashes, never tokens, so a store needs no sealing.
///
/// Implementations must make [`Self::compare_and_set`] atomic (`UPDATE ... WHERE
/// session_id = $1 AND version = $2`, a Lua script, a lock): that is what keeps two
/// concurrent heartbeats from both rotating.
pub trait DeviceSessionStore: Send + Sync {
    /// Loads a session record.
    ///
    /// # Errors
    /// [`DeviceError::SessionStoreUnavailable`] when the store cannot answer.
    fn load(&self, session_id: &SessionId) -> Result<Option<DeviceSession>, DeviceError>;

    /// Inserts a new record (from [`IssuedSession::session`]) if the session id is free.
    ///
    /// # Errors
    /// [`DeviceError::SessionExists`], [`DeviceError::SessionStoreFull`] or
    /// [`DeviceError::SessionStoreUnavailable`].
    fn insert(&self, session: &DeviceSession) -> Result<(), DeviceError>;

    /// Replaces the stored record if its version equals `expected_version`.
    ///
    /// # Errors
    /// [`DeviceError::VersionConflict`] (also when the session is unknown) or
    /// [`DeviceError::SessionStoreUnavailable`].
    fn compare_and_set(
        &self,
        expected_version: u64,
        session: &DeviceSession,
    ) -> Result<(), DeviceError>;

    /// Deletes at most `limit` records that ended before `now`
    /// ([`DeviceSession::expires_at`] `<= now`; a revoked record too once its expiry has
    /// passed, so that until then its token reads "revoked", not "not found"). Returns how
    /// many were deleted; call it again while it returns `limit`.
    ///
    /// # Errors
    /// [`DeviceError::SessionStoreUnavailable`].
    fn purge_expired(&self, now: UnixTime, limit: usize) -> Result<usize, DeviceError>;
}

/// An async [`DeviceSessionStore`]: same contract, same errors. Runtime-agnostic: the
/// trait only names futures.
pub trait AsyncDeviceSessionStore: Send + Sync {
    /// As [`DeviceSessionStore::load`].
    fn load(
        &self,
        session_id: &SessionId,
    ) -> impl Future<Output = Result<Option<DeviceSession>, DeviceError>> + Send;

    /// As [`DeviceSessionStore::insert`].
    fn insert(
        &self,
        session: &DeviceSession,
    ) -> impl Future<Output = Result<(), DeviceError>> + Send;

    /// As [`DeviceSessionStore::compare_and_set`].
    fn compare_and_set(
        &self,
        expected_version: u64,
        session: &DeviceSession,
    ) -> impl Future<Output = Result<(), DeviceError>> + Send;

    /// As [`DeviceSessionStore::purge_expired`].
    fn purge_expired(
        &self,
        now: UnixTime,
        limit: usize,
    ) -> impl Future<Output = Result<usize, DeviceError>> + Send;
}

impl SessionUpdate {
    /// Writes the record with compare-and-set and returns the audit event to persist.
    ///
    /// # Errors
    /// [`DeviceError::VersionConflict`] when the session changed meanwhile (reload it and
    /// decide again), or the store's own errors.
    pub fn commit(self, store: &dyn DeviceSessionStore) -> Result<AuditEvent, DeviceError> {
        store.compare_and_set(self.expected_version, &self.session)?;
        Ok(self.audit)
    }

    /// As [`Self::commit`], on an [`AsyncDeviceSessionStore`].
    ///
    /// # Errors
    /// As [`Self::commit`].
    pub async fn commit_async<S: AsyncDeviceSessionStore>(
        self,
        store: &S,
    ) -> Result<AuditEvent, DeviceError> {
        store
            .compare_and_set(self.expected_version, &self.session)
            .await?;
        Ok(self.audit)
    }
}

/// A fresh session, stored: the token to send and the audit events to persist.
#[must_use = "the token must be sent to the device and the audit events persisted"]
#[derive(Debug)]
pub struct StoredSession {
    /// The bearer token for the device.
    pub token: SessionToken,
    /// The session's id (the storage key).
    pub session_id: SessionId,
    /// When the session ends unless a heartbeat extends it.
    pub expires_at: UnixTime,
    /// `HandshakeOk` then `SessionIssued`.
    pub audit: [AuditEvent; 2],
}

impl IssuedSession {
    /// Inserts the session record into `store` and hands back what remains to do: send
    /// the token, persist the audit events.
    ///
    /// # Errors
    /// The store's insert errors ([`DeviceError::SessionExists`],
    /// [`DeviceError::SessionStoreFull`], [`DeviceError::SessionStoreUnavailable`]); the
    /// token is dropped (zeroized) with them and the device must handshake again.
    pub fn store(self, store: &dyn DeviceSessionStore) -> Result<StoredSession, DeviceError> {
        store.insert(&self.session)?;
        Ok(self.into_stored())
    }

    /// As [`Self::store`], on an [`AsyncDeviceSessionStore`].
    ///
    /// # Errors
    /// As [`Self::store`].
    pub async fn store_async<S: AsyncDeviceSessionStore>(
        self,
        store: &S,
    ) -> Result<StoredSession, DeviceError> {
        store.insert(&self.session).await?;
        Ok(self.into_stored())
    }

    fn into_stored(self) -> StoredSession {
        StoredSession {
            session_id: self.session.session_id,
            expires_at: self.session.expires_at(),
            token: self.token,
            audit: self.audit,
        }
    }
}

/// What [`Gateway::heartbeat_stored`] did. The session write is done; the audit event is
/// still the caller's to persist.
#[must_use = "a heartbeat outcome carries the token to send and an audit event to persist"]
#[derive(Debug)]
#[non_exhaustive]
pub enum StoredHeartbeat {
    /// Accepted; the idle expiry moved forward. The device keeps its token.
    Extended {
        /// When the session now ends unless extended again.
        expires_at: UnixTime,
        /// `SessionExtended`.
        audit: AuditEvent,
    },
    /// Accepted; the device must use `token` from now on.
    Rotated {
        /// The successor token to send.
        token: SessionToken,
        /// When the session now ends unless extended again.
        expires_at: UnixTime,
        /// `SessionRotated`.
        audit: AuditEvent,
    },
    /// Refused. When the refusal revoked the session, the revoked record is already
    /// written.
    Refused {
        /// What to tell the device.
        error: DeviceError,
        /// The audit event, when the refusal concerns a known session; `None` for a
        /// malformed token, an unknown session, a store failure or a lost race.
        audit: Option<AuditEvent>,
    },
}

impl StoredHeartbeat {
    fn refused(error: DeviceError) -> Self {
        Self::Refused { error, audit: None }
    }
}

/// One round of a stored heartbeat: finished, or a record to compare-and-set first.
enum Round {
    Done(StoredHeartbeat),
    Write {
        expected_version: u64,
        session: DeviceSession,
        then: StoredHeartbeat,
    },
}

impl Round {
    fn write(update: SessionUpdate, then: StoredHeartbeat) -> Self {
        Self::Write {
            expected_version: update.expected_version,
            session: update.session,
            then,
        }
    }
}

impl Gateway {
    /// Runs a heartbeat against stored records: parses `token`, loads its session from
    /// `sessions` and the session's device from `devices`, decides with
    /// [`Self::heartbeat`], and writes the decision's record with compare-and-set. On a
    /// lost race (a concurrent heartbeat of the same session wrote first) it reloads and
    /// decides again, at most [`MAX_HEARTBEAT_ATTEMPTS`] times: a device retrying with its
    /// previous token inside the overlap thus gets the same successor as the winner.
    ///
    /// A session whose device is gone from the registry is revoked, as for a device that
    /// is no longer approved.
    ///
    /// ```
    /// use handoff_core::replay::InMemoryReplayLog;
    /// use handoff_core::{HmacSecret, UnixTime};
    /// use handoff_device::*;
    ///
    /// let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    /// let now = UnixTime::from_secs(1_700_000_000);
    /// let gateway = Gateway::builder(GatewayId::new("gw-1")?, now, HmacSecret::generate(&mut rng))
    ///     .build()?;
    /// let (devices, nonces) = (InMemoryDeviceRegistry::new(100), InMemoryReplayLog::new(1_000));
    /// let sessions = InMemoryDeviceSessionStore::new(1_000);
    /// # let (id, key, secret) = (DeviceId::new("d1")?, KeyId::new("k1")?, HmacSecret::generate(&mut rng));
    /// # let req = DeviceRecord::request_pairing(id.clone(), key.clone(), secret.clone(), now, 60);
    /// # devices.insert(&req.record)?;
    /// # let _ = req.record.approve(&OperatorId::new("op")?, now)?.commit(&devices)?;
    /// # let wire = DeviceCredentials::new(id, key, secret)
    /// #     .handshake(gateway.gateway_id(), now, body_hash(b""), &mut rng).to_wire();
    /// // Handshake: verify, then store the session and send its token.
    /// let issued = gateway
    ///     .handshake(wire.as_bytes(), b"", &devices, &nonces, now, &mut rng)
    ///     .map_err(|r| r.error)?;
    /// let stored = issued.store(&sessions)?; // persist stored.audit, send stored.token
    ///
    /// // Heartbeat: the token is all the device sends.
    /// let later = now.saturating_add(60);
    /// match gateway.heartbeat_stored(stored.token.expose(), &sessions, &devices, later) {
    ///     StoredHeartbeat::Extended { expires_at, audit } => assert!(expires_at > later),
    ///     StoredHeartbeat::Rotated { token, .. } => { /* send the new token */ }
    ///     StoredHeartbeat::Refused { error, audit } => return Err(error.into()),
    ///     _ => {}
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heartbeat_stored(
        &self,
        token: &str,
        sessions: &dyn DeviceSessionStore,
        devices: &dyn DeviceRegistry,
        now: UnixTime,
    ) -> StoredHeartbeat {
        let presented = match PresentedToken::parse(token) {
            Ok(p) => p,
            Err(e) => return StoredHeartbeat::refused(e),
        };
        for _ in 0..MAX_HEARTBEAT_ATTEMPTS {
            let session = match sessions.load(&presented.session_id()) {
                Ok(s) => s,
                Err(e) => return StoredHeartbeat::refused(e),
            };
            let device = match &session {
                Some(s) => match devices.load(&s.device_id) {
                    Ok(d) => d,
                    Err(e) => return StoredHeartbeat::refused(e),
                },
                None => None,
            };
            match self.heartbeat_round(session.as_ref(), device.as_ref(), &presented, now) {
                Round::Done(outcome) => return outcome,
                Round::Write {
                    expected_version,
                    session,
                    then,
                } => match sessions.compare_and_set(expected_version, &session) {
                    Ok(()) => return then,
                    Err(DeviceError::VersionConflict) => {}
                    Err(e) => return StoredHeartbeat::refused(e),
                },
            }
        }
        StoredHeartbeat::refused(DeviceError::VersionConflict)
    }

    /// As [`Self::heartbeat_stored`], on an [`AsyncDeviceSessionStore`] and an
    /// [`AsyncDeviceRegistry`].
    pub async fn heartbeat_stored_async<S, D>(
        &self,
        token: &str,
        sessions: &S,
        devices: &D,
        now: UnixTime,
    ) -> StoredHeartbeat
    where
        S: AsyncDeviceSessionStore,
        D: AsyncDeviceRegistry,
    {
        let presented = match PresentedToken::parse(token) {
            Ok(p) => p,
            Err(e) => return StoredHeartbeat::refused(e),
        };
        for _ in 0..MAX_HEARTBEAT_ATTEMPTS {
            let session = match sessions.load(&presented.session_id()).await {
                Ok(s) => s,
                Err(e) => return StoredHeartbeat::refused(e),
            };
            let device = match &session {
                Some(s) => match devices.load(&s.device_id).await {
                    Ok(d) => d,
                    Err(e) => return StoredHeartbeat::refused(e),
                },
                None => None,
            };
            match self.heartbeat_round(session.as_ref(), device.as_ref(), &presented, now) {
                Round::Done(outcome) => return outcome,
                Round::Write {
                    expected_version,
                    session,
                    then,
                } => match sessions.compare_and_set(expected_version, &session).await {
                    Ok(()) => return then,
                    Err(DeviceError::VersionConflict) => {}
                    Err(e) => return StoredHeartbeat::refused(e),
                },
            }
        }
        StoredHeartbeat::refused(DeviceError::VersionConflict)
    }

    /// The Sans-IO part of a stored heartbeat: what the loaded records decide, and what to
    /// write before that decision holds.
    fn heartbeat_round(
        &self,
        session: Option<&DeviceSession>,
        device: Option<&DeviceRecord>,
        presented: &PresentedToken,
        now: UnixTime,
    ) -> Round {
        let Some(session) = session else {
            return Round::Done(StoredHeartbeat::refused(DeviceError::SessionNotFound));
        };
        // A device gone from the registry ends its sessions as one no longer approved.
        match self.decide_heartbeat(session, device, presented, now) {
            HeartbeatDecision::Extended { update } => {
                let then = StoredHeartbeat::Extended {
                    expires_at: update.session.expires_at(),
                    audit: update.audit.clone(),
                };
                Round::write(update, then)
            }
            HeartbeatDecision::Rotated { update, token } => {
                let then = StoredHeartbeat::Rotated {
                    token,
                    expires_at: update.session.expires_at(),
                    audit: update.audit.clone(),
                };
                Round::write(update, then)
            }
            HeartbeatDecision::Refused {
                error,
                update: Some(update),
                audit,
            } => Round::write(
                update,
                StoredHeartbeat::Refused {
                    error,
                    audit: Some(audit),
                },
            ),
            HeartbeatDecision::Refused {
                error,
                update: None,
                audit,
            } => Round::Done(StoredHeartbeat::Refused {
                error,
                audit: Some(audit),
            }),
        }
    }
}

/// A bounded, thread-safe in-memory [`DeviceSessionStore`], for one process and for tests.
pub struct InMemoryDeviceSessionStore {
    sessions: RwLock<HashMap<SessionId, DeviceSession>>,
    capacity: usize,
}

impl InMemoryDeviceSessionStore {
    /// A store holding at most `capacity` sessions; inserts past it fail closed with
    /// [`DeviceError::SessionStoreFull`] (purge ended sessions with
    /// [`DeviceSessionStore::purge_expired`]).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            sessions: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// Number of stored sessions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sessions.read().map_or(0, |m| m.len())
    }

    /// Whether the store is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn poisoned() -> DeviceError {
    DeviceError::SessionStoreUnavailable("in-memory device session store poisoned".into())
}

impl DeviceSessionStore for InMemoryDeviceSessionStore {
    fn load(&self, session_id: &SessionId) -> Result<Option<DeviceSession>, DeviceError> {
        let map = self.sessions.read().map_err(|_| poisoned())?;
        Ok(map.get(session_id).cloned())
    }

    fn insert(&self, session: &DeviceSession) -> Result<(), DeviceError> {
        let mut map = self.sessions.write().map_err(|_| poisoned())?;
        if map.contains_key(&session.session_id) {
            return Err(DeviceError::SessionExists);
        }
        if map.len() >= self.capacity {
            return Err(DeviceError::SessionStoreFull {
                capacity: self.capacity,
            });
        }
        map.insert(session.session_id, session.clone());
        Ok(())
    }

    fn compare_and_set(
        &self,
        expected_version: u64,
        session: &DeviceSession,
    ) -> Result<(), DeviceError> {
        let mut map = self.sessions.write().map_err(|_| poisoned())?;
        match map.get_mut(&session.session_id) {
            Some(stored) if stored.version == expected_version => {
                *stored = session.clone();
                Ok(())
            }
            _ => Err(DeviceError::VersionConflict),
        }
    }

    fn purge_expired(&self, now: UnixTime, limit: usize) -> Result<usize, DeviceError> {
        let mut map = self.sessions.write().map_err(|_| poisoned())?;
        let ended: Vec<SessionId> = map
            .values()
            .filter(|s| s.expires_at() <= now)
            .map(|s| s.session_id)
            .take(limit)
            .collect();
        for id in &ended {
            map.remove(id);
        }
        Ok(ended.len())
    }
}

impl fmt::Debug for InMemoryDeviceSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryDeviceSessionStore")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}
