//! Device records, operator decisions as pure transitions, the registry trait and its
//! bounded in-memory default.

use core::fmt;
use std::collections::HashMap;
use std::sync::RwLock;

use handoff_core::{HmacSecret, UnixTime};

use super::DeviceError;
use super::audit::AuditEvent;
use super::wire::{DeviceId, KeyId, OperatorId, pae};

/// Most keys one device record may hold (one active plus retiring ones).
pub const MAX_KEYS_PER_DEVICE: usize = 4;

/// Where a device stands. `Pending -> Approved <-> Suspended -> Revoked` (terminal);
/// `Pending -> Denied | Expired` (terminal); `Pending | Approved | Suspended -> Revoked`.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "state", rename_all = "snake_case"))]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceState {
    /// Waiting for an operator; expires at `expires_at`.
    Pending {
        /// When the request was made.
        requested_at: UnixTime,
        /// When it expires unless approved.
        expires_at: UnixTime,
    },
    /// Allowed to handshake.
    Approved {
        /// Who approved (or resumed) it.
        by: OperatorId,
        /// When.
        at: UnixTime,
    },
    /// Temporarily refused; can be resumed.
    Suspended {
        /// Who suspended it.
        by: OperatorId,
        /// When.
        at: UnixTime,
    },
    /// Permanently refused.
    Revoked {
        /// Who revoked it.
        by: OperatorId,
        /// When.
        at: UnixTime,
    },
    /// The pairing request was denied.
    Denied {
        /// Who denied it.
        by: OperatorId,
        /// When.
        at: UnixTime,
    },
    /// The pairing request expired without a decision.
    Expired {
        /// When the expiry was recorded.
        at: UnixTime,
    },
}

impl DeviceState {
    /// A short lower-case name, for errors and logs.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending { .. } => "pending",
            Self::Approved { .. } => "approved",
            Self::Suspended { .. } => "suspended",
            Self::Revoked { .. } => "revoked",
            Self::Denied { .. } => "denied",
            Self::Expired { .. } => "expired",
        }
    }

    /// Whether the device may handshake and keep sessions.
    #[must_use]
    pub fn is_approved(&self) -> bool {
        matches!(self, Self::Approved { .. })
    }
}

/// Whether a key authenticates handshakes.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "status", rename_all = "snake_case"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyStatus {
    /// The current key.
    Active,
    /// A replaced key, still accepted through `until` (inclusive).
    Retiring {
        /// Last instant at which the key is accepted.
        until: UnixTime,
    },
}

/// One HMAC key of a device. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey {
    key_id: KeyId,
    status: KeyStatus,
    secret: HmacSecret,
}

impl DeviceKey {
    /// A key with its id, status and secret (at least 32 bytes, enforced by
    /// [`HmacSecret`]).
    #[must_use]
    pub fn new(key_id: KeyId, status: KeyStatus, secret: HmacSecret) -> Self {
        Self {
            key_id,
            status,
            secret,
        }
    }

    /// The key id.
    #[must_use]
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The key status.
    #[must_use]
    pub fn status(&self) -> KeyStatus {
        self.status
    }

    /// The secret. Store it sealed, never in plain text (see [`DeviceRegistry`]).
    #[must_use]
    pub fn secret(&self) -> &HmacSecret {
        &self.secret
    }

    /// Whether the key authenticates a handshake at `now`: active, or retiring and
    /// `now` inside its overlap.
    #[must_use]
    pub fn usable_at(&self, now: UnixTime) -> bool {
        match self.status {
            KeyStatus::Active => true,
            KeyStatus::Retiring { until } => now <= until,
        }
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKey")
            .field("key_id", &self.key_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A stored device: id, state, keys and a version for compare-and-set writes.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    device_id: DeviceId,
    state: DeviceState,
    keys: Vec<DeviceKey>,
    version: u64,
}

/// The outcome of an operator decision or key rotation: the next record, the version the
/// stored record must still have, and the audit event to write. Persist it with
/// [`DeviceRegistry::compare_and_set`] (or [`Transition::commit`]).
#[must_use = "a transition does nothing until it is written to the registry"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The record to write.
    pub record: DeviceRecord,
    /// The version the stored record must have for the write to succeed.
    pub expected_version: u64,
    /// The audit event to persist once the write succeeded.
    pub audit: AuditEvent,
}

impl Transition {
    /// Writes the record with compare-and-set and returns the audit event to persist.
    ///
    /// # Errors
    /// [`DeviceError::VersionConflict`] when the record changed meanwhile (reload and
    /// decide again), or the registry's own errors.
    pub fn commit(self, registry: &dyn DeviceRegistry) -> Result<AuditEvent, DeviceError> {
        registry.compare_and_set(self.expected_version, &self.record)?;
        Ok(self.audit)
    }

    /// As [`Self::commit`], on an [`AsyncDeviceRegistry`](crate::AsyncDeviceRegistry).
    ///
    /// # Errors
    /// As [`Self::commit`].
    pub async fn commit_async<R: crate::AsyncDeviceRegistry>(
        self,
        registry: &R,
    ) -> Result<AuditEvent, DeviceError> {
        registry
            .compare_and_set(self.expected_version, &self.record)
            .await?;
        Ok(self.audit)
    }
}

/// A new pairing request: the record to insert and its audit event.
#[must_use = "a pairing request does nothing until it is inserted into the registry"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingRequest {
    /// The pending record to insert with [`DeviceRegistry::insert`].
    pub record: DeviceRecord,
    /// The audit event to persist.
    pub audit: AuditEvent,
}

impl DeviceRecord {
    /// Rebuilds a record loaded from storage.
    ///
    /// # Errors
    /// [`DeviceError::InvalidRecord`] when it has no key, more than
    /// [`MAX_KEYS_PER_DEVICE`], two keys with one id or more than one active key.
    pub fn from_parts(
        device_id: DeviceId,
        state: DeviceState,
        keys: Vec<DeviceKey>,
        version: u64,
    ) -> Result<Self, DeviceError> {
        if keys.is_empty() || keys.len() > MAX_KEYS_PER_DEVICE {
            return Err(DeviceError::InvalidRecord(
                "a device record needs 1 to 4 keys",
            ));
        }
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.key_id == k.key_id) {
                return Err(DeviceError::InvalidRecord("two keys share one key id"));
            }
        }
        if keys
            .iter()
            .filter(|k| k.status == KeyStatus::Active)
            .count()
            > 1
        {
            return Err(DeviceError::InvalidRecord(
                "more than one active key; retire the older ones",
            ));
        }
        Ok(Self {
            device_id,
            state,
            keys,
            version,
        })
    }

    /// A pending record for a device that asks to be paired with its first key; the
    /// request expires `ttl_secs` after `now`.
    pub fn request_pairing(
        device_id: DeviceId,
        key_id: KeyId,
        secret: HmacSecret,
        now: UnixTime,
        ttl_secs: u64,
    ) -> PairingRequest {
        let expires_at = now.saturating_add(ttl_secs);
        let audit = AuditEvent::PairingRequested {
            device_id: device_id.clone(),
            key_id: key_id.clone(),
            at: now,
            expires_at,
        };
        PairingRequest {
            record: Self {
                device_id,
                state: DeviceState::Pending {
                    requested_at: now,
                    expires_at,
                },
                keys: vec![DeviceKey::new(key_id, KeyStatus::Active, secret)],
                version: 0,
            },
            audit,
        }
    }

    /// The device id.
    #[must_use]
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// The state.
    #[must_use]
    pub fn state(&self) -> &DeviceState {
        &self.state
    }

    /// The keys.
    #[must_use]
    pub fn keys(&self) -> &[DeviceKey] {
        &self.keys
    }

    /// The key with this id, if any.
    #[must_use]
    pub fn key(&self, key_id: &KeyId) -> Option<&DeviceKey> {
        self.keys.iter().find(|k| &k.key_id == key_id)
    }

    /// The version (incremented by every transition).
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    fn next(&self, state: DeviceState, audit: AuditEvent) -> Transition {
        let mut record = self.clone();
        record.state = state;
        record.version = self.version.saturating_add(1);
        Transition {
            record,
            expected_version: self.version,
            audit,
        }
    }

    fn invalid(&self, action: &'static str) -> DeviceError {
        DeviceError::InvalidTransition {
            from: self.state.name(),
            action,
        }
    }

    /// Operator approval of a pending request that has not expired.
    ///
    /// # Errors
    /// [`DeviceError::PairingExpired`] past the request's expiry (record it with
    /// [`Self::expire`]); [`DeviceError::InvalidTransition`] from any other state.
    pub fn approve(&self, by: &OperatorId, now: UnixTime) -> Result<Transition, DeviceError> {
        match self.state {
            DeviceState::Pending { expires_at, .. } if now < expires_at => Ok(self.next(
                DeviceState::Approved {
                    by: by.clone(),
                    at: now,
                },
                AuditEvent::Approved {
                    device_id: self.device_id.clone(),
                    by: by.clone(),
                    at: now,
                },
            )),
            DeviceState::Pending { expires_at, .. } => Err(DeviceError::PairingExpired {
                expired_at: expires_at,
            }),
            _ => Err(self.invalid("approve")),
        }
    }

    /// Operator denial of a pending request.
    ///
    /// # Errors
    /// [`DeviceError::InvalidTransition`] unless pending.
    pub fn deny(&self, by: &OperatorId, now: UnixTime) -> Result<Transition, DeviceError> {
        match self.state {
            DeviceState::Pending { .. } => Ok(self.next(
                DeviceState::Denied {
                    by: by.clone(),
                    at: now,
                },
                AuditEvent::Denied {
                    device_id: self.device_id.clone(),
                    by: by.clone(),
                    at: now,
                },
            )),
            _ => Err(self.invalid("deny")),
        }
    }

    /// Records the expiry of a pending request.
    ///
    /// # Errors
    /// [`DeviceError::InvalidTransition`] unless pending and past its expiry.
    pub fn expire(&self, now: UnixTime) -> Result<Transition, DeviceError> {
        match self.state {
            DeviceState::Pending { expires_at, .. } if now >= expires_at => Ok(self.next(
                DeviceState::Expired { at: now },
                AuditEvent::PairingExpired {
                    device_id: self.device_id.clone(),
                    at: now,
                },
            )),
            _ => Err(self.invalid("expire")),
        }
    }

    /// Operator suspension of an approved device.
    ///
    /// # Errors
    /// [`DeviceError::InvalidTransition`] unless approved.
    pub fn suspend(&self, by: &OperatorId, now: UnixTime) -> Result<Transition, DeviceError> {
        match self.state {
            DeviceState::Approved { .. } => Ok(self.next(
                DeviceState::Suspended {
                    by: by.clone(),
                    at: now,
                },
                AuditEvent::Suspended {
                    device_id: self.device_id.clone(),
                    by: by.clone(),
                    at: now,
                },
            )),
            _ => Err(self.invalid("suspend")),
        }
    }

    /// Operator resumption of a suspended device.
    ///
    /// # Errors
    /// [`DeviceError::InvalidTransition`] unless suspended.
    pub fn resume(&self, by: &OperatorId, now: UnixTime) -> Result<Transition, DeviceError> {
        match self.state {
            DeviceState::Suspended { .. } => Ok(self.next(
                DeviceState::Approved {
                    by: by.clone(),
                    at: now,
                },
                AuditEvent::Resumed {
                    device_id: self.device_id.clone(),
                    by: by.clone(),
                    at: now,
                },
            )),
            _ => Err(self.invalid("resume")),
        }
    }

    /// Operator revocation (terminal) of a pending, approved or suspended device. Live
    /// sessions end at their next heartbeat.
    ///
    /// # Errors
    /// [`DeviceError::InvalidTransition`] from revoked, denied or expired.
    pub fn revoke(&self, by: &OperatorId, now: UnixTime) -> Result<Transition, DeviceError> {
        match self.state {
            DeviceState::Pending { .. }
            | DeviceState::Approved { .. }
            | DeviceState::Suspended { .. } => Ok(self.next(
                DeviceState::Revoked {
                    by: by.clone(),
                    at: now,
                },
                AuditEvent::Revoked {
                    device_id: self.device_id.clone(),
                    by: by.clone(),
                    at: now,
                },
            )),
            _ => Err(self.invalid("revoke")),
        }
    }

    /// Adds a new active key; the current active key becomes retiring and stays accepted
    /// for `overlap_secs` after `now`. Retiring keys whose overlap has ended are dropped.
    ///
    /// # Errors
    /// [`DeviceError::InvalidTransition`] unless approved or suspended;
    /// [`DeviceError::InvalidRecord`] when the key id is already used or the device
    /// would hold more than [`MAX_KEYS_PER_DEVICE`] keys.
    pub fn rotate_key(
        &self,
        new_key_id: KeyId,
        secret: HmacSecret,
        overlap_secs: u64,
        now: UnixTime,
    ) -> Result<Transition, DeviceError> {
        if !matches!(
            self.state,
            DeviceState::Approved { .. } | DeviceState::Suspended { .. }
        ) {
            return Err(self.invalid("rotate a key of"));
        }
        if self.key(&new_key_id).is_some() {
            return Err(DeviceError::InvalidRecord(
                "the new key id is already used by this device; pick a fresh one",
            ));
        }
        let until = now.saturating_add(overlap_secs);
        let mut old_key_id = None;
        let mut keys: Vec<DeviceKey> = Vec::with_capacity(MAX_KEYS_PER_DEVICE);
        for k in &self.keys {
            if !k.usable_at(now) {
                continue;
            }
            let mut k = k.clone();
            if k.status == KeyStatus::Active {
                old_key_id = Some(k.key_id.clone());
                k.status = KeyStatus::Retiring { until };
            }
            keys.push(k);
        }
        if keys.len() >= MAX_KEYS_PER_DEVICE {
            return Err(DeviceError::InvalidRecord(
                "the device already holds 4 keys; wait for retiring keys to end",
            ));
        }
        keys.push(DeviceKey::new(
            new_key_id.clone(),
            KeyStatus::Active,
            secret,
        ));
        let audit = AuditEvent::KeyRotated {
            device_id: self.device_id.clone(),
            new_key_id,
            old_key_id,
            old_key_until: until,
            at: now,
        };
        let mut t = self.next(self.state.clone(), audit);
        t.record.keys = keys;
        Ok(t)
    }
}

impl fmt::Debug for DeviceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceRecord")
            .field("device_id", &self.device_id)
            .field("state", &self.state)
            .field("keys", &self.keys)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The caller's store of device records.
///
/// # Contract
/// - `insert` adds a record only if no record with that device id exists (`INSERT ...
///   ON CONFLICT DO NOTHING`, one affected row).
/// - `compare_and_set` replaces the stored record only if its version still equals
///   `expected_version`, atomically (`UPDATE devices SET ... , version = $new WHERE
///   device_id = $1 AND version = $expected`, one affected row); otherwise
///   [`DeviceError::VersionConflict`].
/// - A store failure is an error, never an empty answer: a false "unknown device" only
///   costs availability, but a stale "approved" would let a revoked device in.
///
/// # Secrets
/// Key secrets are at least 32 random bytes. Never store them in plain text: store them
/// sealed (encrypted under a key-encryption key the database does not hold) or do not
/// store them at all and derive them from a master key and the device and key ids, for
/// example with [`derive_device_secret`].
pub trait DeviceRegistry: Send + Sync {
    /// Loads a device record.
    ///
    /// # Errors
    /// [`DeviceError::RegistryUnavailable`] when the store cannot answer.
    fn load(&self, device_id: &DeviceId) -> Result<Option<DeviceRecord>, DeviceError>;

    /// Inserts a new record if the device id is free.
    ///
    /// # Errors
    /// [`DeviceError::AlreadyRegistered`], [`DeviceError::RegistryFull`] or
    /// [`DeviceError::RegistryUnavailable`].
    fn insert(&self, record: &DeviceRecord) -> Result<(), DeviceError>;

    /// Replaces the stored record if its version equals `expected_version`.
    ///
    /// # Errors
    /// [`DeviceError::VersionConflict`] (also when the device is unknown) or
    /// [`DeviceError::RegistryUnavailable`].
    fn compare_and_set(
        &self,
        expected_version: u64,
        record: &DeviceRecord,
    ) -> Result<(), DeviceError>;
}

/// Derives a device key secret as `HMAC-SHA256(master, PAE(["identity/device-secret",
/// "v1", device_id, key_id]))`, so a registry can keep only the master key (itself sealed)
/// instead of per-device secrets.
///
/// # Errors
/// Never in practice (the output is 32 bytes); [`DeviceError::InvalidRecord`] if the
/// secret type ever refused it.
pub fn derive_device_secret(
    master: &HmacSecret,
    device_id: &DeviceId,
    key_id: &KeyId,
) -> Result<HmacSecret, DeviceError> {
    let input = pae(&[
        b"identity/device-secret",
        b"v1",
        device_id.as_str().as_bytes(),
        key_id.as_str().as_bytes(),
    ]);
    let mut out = master.mac(&input);
    let secret = HmacSecret::new(out.to_vec())
        .map_err(|_| DeviceError::InvalidRecord("derived secret refused"));
    zeroize::Zeroize::zeroize(&mut out);
    secret
}

/// A bounded, thread-safe, in-memory [`DeviceRegistry`] (records live in process memory
/// only; for tests, examples and single-process gateways).
pub struct InMemoryDeviceRegistry {
    records: RwLock<HashMap<DeviceId, DeviceRecord>>,
    capacity: usize,
}

impl InMemoryDeviceRegistry {
    /// A registry holding at most `capacity` records; inserts past it fail closed with
    /// [`DeviceError::RegistryFull`].
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            records: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// Number of records held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether the registry is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops records in a terminal pairing state (denied, expired) and pending requests
    /// past their expiry, freeing capacity. Returns how many were dropped.
    pub fn purge_stale_requests(&self, now: UnixTime) -> usize {
        let Ok(mut map) = self.records.write() else {
            return 0;
        };
        let before = map.len();
        map.retain(|_, r| match r.state {
            DeviceState::Denied { .. } | DeviceState::Expired { .. } => false,
            DeviceState::Pending { expires_at, .. } => now < expires_at,
            _ => true,
        });
        before - map.len()
    }
}

fn poisoned() -> DeviceError {
    DeviceError::RegistryUnavailable("in-memory device registry poisoned".into())
}

impl DeviceRegistry for InMemoryDeviceRegistry {
    fn load(&self, device_id: &DeviceId) -> Result<Option<DeviceRecord>, DeviceError> {
        let map = self.records.read().map_err(|_| poisoned())?;
        Ok(map.get(device_id).cloned())
    }

    fn insert(&self, record: &DeviceRecord) -> Result<(), DeviceError> {
        let mut map = self.records.write().map_err(|_| poisoned())?;
        if map.contains_key(&record.device_id) {
            return Err(DeviceError::AlreadyRegistered);
        }
        if map.len() >= self.capacity {
            return Err(DeviceError::RegistryFull {
                capacity: self.capacity,
            });
        }
        map.insert(record.device_id.clone(), record.clone());
        Ok(())
    }

    fn compare_and_set(
        &self,
        expected_version: u64,
        record: &DeviceRecord,
    ) -> Result<(), DeviceError> {
        let mut map = self.records.write().map_err(|_| poisoned())?;
        match map.get_mut(&record.device_id) {
            Some(stored) if stored.version == expected_version => {
                *stored = record.clone();
                Ok(())
            }
            _ => Err(DeviceError::VersionConflict),
        }
    }
}

impl fmt::Debug for InMemoryDeviceRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryDeviceRegistry")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}
