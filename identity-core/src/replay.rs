//! Replay defence: one atomic check-and-insert per presented one-time value.
//!
//! A verification that must not accept the same token, proof or nonce twice returns an
//! [`Unconfirmed`] value. The caller confirms it against a [`ReplayLog`] as the very last
//! step, so that unauthenticated traffic can never burn an honest value, and only then
//! reads what was verified.
//!
//! ```
//! use identity_core::replay::{InMemoryReplayLog, ReplayKey, ReplayLog, ReplayVerdict};
//! use identity_core::UnixTime;
//!
//! let log = InMemoryReplayLog::new(1_000);
//! let now = UnixTime::from_secs(1_700_000_000);
//! let key = ReplayKey::derive("example/jti", &[b"issuer", b"jti-1"]);
//! let until = now.saturating_add(300);
//! assert_eq!(log.check_and_insert(&key, until, now).unwrap(), ReplayVerdict::Fresh);
//! assert_eq!(log.check_and_insert(&key, until, now).unwrap(), ReplayVerdict::Replayed);
//! ```

use core::fmt;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::UnixTime;

/// A fixed-size, domain-separated replay key: SHA-256 over a purpose tag and the scoped
/// fields, each length-prefixed so that no two field lists encode alike.
///
/// Keys are 32 bytes whatever the input, so a store never holds attacker-sized values,
/// and the purpose tag keeps a DPoP `jti` from colliding with a host token `jti`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplayKey([u8; 32]);

impl ReplayKey {
    /// Derives a key from a purpose tag (for example `"dpop/jti"`) and the fields that
    /// scope the value (issuer, key thumbprint, `htu`, the one-time value itself).
    #[must_use]
    pub fn derive(purpose: &str, fields: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        h.update(b"identity-core/replay/v1");
        h.update((purpose.len() as u64).to_le_bytes());
        h.update(purpose.as_bytes());
        h.update((fields.len() as u64).to_le_bytes());
        for f in fields {
            h.update((f.len() as u64).to_le_bytes());
            h.update(f);
        }
        Self(h.finalize().into())
    }

    /// Wraps 32 bytes that are already a domain-separated hash (for example a key read
    /// back from a shared store).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 key bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, for use as a key in a text store (Redis, SQL).
    #[must_use]
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayKey({})", self.to_hex())
    }
}

/// What a replay log says of one key.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// The key was not present; it is now recorded until the given instant.
    Fresh,
    /// The key is already recorded and has not expired: refuse the value.
    Replayed,
    /// The log is full of live entries and refused to record the key. Fail closed:
    /// refuse the value (a false refusal costs availability, a false "fresh" security).
    AtCapacity,
}

/// The store behind a replay log could not answer. Treat as a refusal (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replay store unavailable: {0}; refuse the request and retry later")]
pub struct ReplayStoreError(pub String);

/// A log of one-time values that have been accepted, each kept until the instant after
/// which the value would be refused anyway.
///
/// # Contract
/// `check_and_insert` is **one atomic operation**: two concurrent calls with the same key
/// and a live entry must never both return [`ReplayVerdict::Fresh`]. Never implement it as
/// a read followed by a write.
///
/// - Redis / Valkey: `SET <prefix><key hex> 1 NX PXAT <until in ms>`; `OK` is `Fresh`,
///   nil is `Replayed`; a connection error is an `Err` (never `Fresh`).
/// - SQL: `INSERT INTO replay(key, until) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET
///   until = EXCLUDED.until WHERE replay.until <= $now` and read the affected row count
///   (1 is `Fresh`, 0 is `Replayed`), with expired rows purged in batches.
///
/// Which errors are safe: a false `Replayed` or `AtCapacity` costs availability only; a
/// false `Fresh` re-opens replay. When in doubt, return `Err` or `AtCapacity`.
///
/// `until` comes from the acceptance rule of the value (for a JWT `exp` plus leeway, for
/// a DPoP proof the end of its `iat` window), never from a store default; an entry must
/// not be dropped before `until` has passed. `now` is the caller's clock, used only to
/// expire old entries.
pub trait ReplayLog: Send + Sync {
    /// Records `key` until `until` unless a live entry exists, atomically.
    ///
    /// # Errors
    /// [`ReplayStoreError`] when the store cannot answer; the caller must refuse the value.
    fn check_and_insert(
        &self,
        key: &ReplayKey,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<ReplayVerdict, ReplayStoreError>;
}

impl<T: ReplayLog + ?Sized> ReplayLog for &T {
    fn check_and_insert(
        &self,
        key: &ReplayKey,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<ReplayVerdict, ReplayStoreError> {
        (**self).check_and_insert(key, until, now)
    }
}

impl<T: ReplayLog + ?Sized> ReplayLog for std::sync::Arc<T> {
    fn check_and_insert(
        &self,
        key: &ReplayKey,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<ReplayVerdict, ReplayStoreError> {
        (**self).check_and_insert(key, until, now)
    }
}

/// Keys are SHA-256 outputs nobody can steer, so their first 8 bytes are already a
/// uniformly distributed hash: no need to hash them again.
#[derive(Default)]
struct PrehashedKey(u64);

impl Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as a length prefix (one `write_usize`) and then its 32 bytes;
        // folding in the first 8 bytes of every write keeps the key's own randomness.
        let mut buf = [0u8; 8];
        let n = bytes.len().min(8);
        buf[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(buf);
    }
}

/// key -> index of the time bucket that holds it
type KeyIndex = HashMap<[u8; 32], u64, BuildHasherDefault<PrehashedKey>>;

const SHARDS: usize = 16;

/// A bounded, thread-safe, in-memory [`ReplayLog`].
///
/// Entries live in time buckets keyed by their expiry; a whole bucket is dropped once its
/// last instant has passed, so expiry costs O(1) amortised per entry and no entry is ever
/// dropped before its `until`. Membership is one hash lookup. The log is split into 16
/// independently locked shards (chosen by key byte), so `capacity` is enforced per shard
/// as `capacity / 16`, rounded up. The log holds at most `capacity` live entries and answers
/// [`ReplayVerdict::AtCapacity`] past that (it never evicts a live entry). Entries whose
/// `until` lies further ahead than the horizon (default 1 day) are refused as
/// `AtCapacity` too, so one caller cannot pin memory for years.
///
/// Memory: about 100 to 150 bytes per live entry (the 32-byte key in an open-addressing
/// index and again in its bucket).
///
/// After a restart the log is empty: a process that restarts must refuse values issued
/// before it started for one acceptance window (the device handshake does this).
pub struct InMemoryReplayLog {
    shards: [Mutex<Shard>; SHARDS],
    capacity_per_shard: usize,
    bucket_secs: u64,
    horizon_secs: u64,
}

#[derive(Default)]
struct Shard {
    /// Every live key, for an O(1) membership test.
    index: KeyIndex,
    /// bucket index (until / bucket_secs) -> keys expiring in that bucket, so that a whole
    /// bucket is dropped at once when its last instant has passed.
    buckets: BTreeMap<u64, Vec<[u8; 32]>>,
}

impl Shard {
    /// Drops every bucket whose last instant lies before `first_live` buckets; O(1)
    /// amortised per entry (each entry is removed exactly once).
    fn expire(&mut self, first_live: u64) {
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() >= first_live {
                break;
            }
            for k in entry.remove() {
                self.index.remove(&k);
            }
        }
    }
}

impl InMemoryReplayLog {
    /// A log holding at most `capacity` live entries, with 10-second buckets and a
    /// one-day horizon.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self::with_buckets(capacity, 10, 86_400)
    }

    /// A log with explicit bucket width and horizon (both in seconds, at least 1).
    #[must_use]
    pub fn with_buckets(capacity: usize, bucket_secs: u64, horizon_secs: u64) -> Self {
        Self {
            shards: core::array::from_fn(|_| Mutex::new(Shard::default())),
            capacity_per_shard: capacity.div_ceil(SHARDS).max(1),
            bucket_secs: bucket_secs.max(1),
            horizon_secs: horizon_secs.max(1),
        }
    }

    /// The number of entries currently held (live or not yet purged).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.index.len()).unwrap_or(0))
            .sum()
    }

    /// Whether the log holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for InMemoryReplayLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryReplayLog")
            .field("len", &self.len())
            .field("capacity", &(self.capacity_per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl ReplayLog for InMemoryReplayLog {
    fn check_and_insert(
        &self,
        key: &ReplayKey,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<ReplayVerdict, ReplayStoreError> {
        if until < now {
            // Already past its acceptance window: the caller should have refused it.
            return Ok(ReplayVerdict::Replayed);
        }
        if until.secs_since(now) > self.horizon_secs {
            return Ok(ReplayVerdict::AtCapacity);
        }
        let shard_ix = usize::from(key.0[31]) % SHARDS;
        let mut shard = self.shards[shard_ix]
            .lock()
            .map_err(|_| ReplayStoreError("in-memory replay log poisoned".into()))?;
        // Drop every bucket whose last instant is before now (an entry lives through
        // `until`).
        shard.expire(now.as_secs() / self.bucket_secs);
        if shard.index.contains_key(&key.0) {
            return Ok(ReplayVerdict::Replayed);
        }
        if shard.index.len() >= self.capacity_per_shard {
            return Ok(ReplayVerdict::AtCapacity);
        }
        // The bucket covers [ix*w, (ix+1)*w); it is dropped only once now passes its end,
        // i.e. strictly after `until`.
        let ix = until.as_secs() / self.bucket_secs;
        shard.index.insert(key.0, ix);
        shard.buckets.entry(ix).or_default().push(key.0);
        Ok(ReplayVerdict::Fresh)
    }
}

/// A verified value that is not yet usable: it carries a one-time identifier that must be
/// recorded in a [`ReplayLog`] first.
///
/// Get the value out with [`Unconfirmed::confirm`] (which performs the check-and-insert)
/// or [`Unconfirmed::confirm_with`] (with a verdict obtained elsewhere, for example from
/// an async store). There is no other way to read it.
#[must_use = "the value must be confirmed against a replay log before use"]
pub struct Unconfirmed<T> {
    value: T,
    key: ReplayKey,
    until: UnixTime,
}

impl<T> Unconfirmed<T> {
    /// Wraps a verified value with its replay key and the instant until which it would be
    /// accepted (the replay entry's expiry).
    pub const fn new(value: T, key: ReplayKey, until: UnixTime) -> Self {
        Self { value, key, until }
    }

    /// The key to record.
    #[must_use]
    pub const fn replay_key(&self) -> &ReplayKey {
        &self.key
    }

    /// The instant until which the value would be accepted: keep the entry that long.
    #[must_use]
    pub const fn until(&self) -> UnixTime {
        self.until
    }

    /// Records the key in `log` and returns the value if it was fresh.
    ///
    /// # Errors
    /// [`ReplayRefused`] when the value was replayed, the log is full, or the store failed.
    pub fn confirm(self, log: &dyn ReplayLog, now: UnixTime) -> Result<T, ReplayRefused> {
        let verdict = log
            .check_and_insert(&self.key, self.until, now)
            .map_err(ReplayRefused::Store)?;
        self.confirm_with(verdict)
    }

    /// Returns the value given the verdict of a check-and-insert the caller performed
    /// itself with [`Self::replay_key`] and [`Self::until`].
    ///
    /// # Errors
    /// [`ReplayRefused`] unless the verdict is [`ReplayVerdict::Fresh`].
    pub fn confirm_with(self, verdict: ReplayVerdict) -> Result<T, ReplayRefused> {
        match verdict {
            ReplayVerdict::Fresh => Ok(self.value),
            ReplayVerdict::Replayed => Err(ReplayRefused::Replayed),
            ReplayVerdict::AtCapacity => Err(ReplayRefused::AtCapacity),
        }
    }

    /// Maps the wrapped value, keeping the replay obligation.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Unconfirmed<U> {
        Unconfirmed {
            value: f(self.value),
            key: self.key,
            until: self.until,
        }
    }
}

impl<T> fmt::Debug for Unconfirmed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unconfirmed")
            .field("key", &self.key)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

/// Why confirming a one-time value failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayRefused {
    /// The value was already used within its acceptance window.
    #[error("replayed: this one-time value was already used; ask the client for a new one")]
    Replayed,
    /// The log is full of live entries; the value was refused to stay safe.
    #[error("replay log at capacity: refused to stay safe; raise the capacity or shed load")]
    AtCapacity,
    /// The store could not answer.
    #[error(transparent)]
    Store(ReplayStoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn t(s: u64) -> UnixTime {
        UnixTime::from_secs(s)
    }

    #[test]
    fn keys_are_domain_separated_and_length_prefixed() {
        let a = ReplayKey::derive("a", &[b"xy", b"z"]);
        let b = ReplayKey::derive("a", &[b"x", b"yz"]);
        let c = ReplayKey::derive("b", &[b"xy", b"z"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, ReplayKey::derive("a", &[b"xy", b"z"]));
        assert_eq!(a.to_hex().len(), 64);
    }

    #[test]
    fn entry_lives_through_until_then_expires() {
        let log = InMemoryReplayLog::new(10);
        let k = ReplayKey::derive("t", &[b"1"]);
        assert_eq!(
            log.check_and_insert(&k, t(1_000), t(900)).unwrap(),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            log.check_and_insert(&k, t(1_000), t(999)).unwrap(),
            ReplayVerdict::Replayed
        );
        assert_eq!(
            log.check_and_insert(&k, t(1_000), t(1_000)).unwrap(),
            ReplayVerdict::Replayed
        );
        // strictly after `until` and past the bucket end the entry may go
        assert_eq!(
            log.check_and_insert(&k, t(2_000), t(1_010)).unwrap(),
            ReplayVerdict::Fresh
        );
    }

    #[test]
    fn full_log_fails_closed_and_never_evicts() {
        let log = InMemoryReplayLog::new(SHARDS); // one per shard
        let mut fresh = Vec::new();
        let mut at_capacity = 0;
        for i in 0u32..200 {
            let k = ReplayKey::derive("t", &[&i.to_le_bytes()]);
            match log.check_and_insert(&k, t(500), t(100)).unwrap() {
                ReplayVerdict::Fresh => fresh.push(k),
                ReplayVerdict::AtCapacity => at_capacity += 1,
                ReplayVerdict::Replayed => panic!("distinct keys cannot be replays"),
            }
        }
        assert_eq!(fresh.len(), SHARDS);
        assert_eq!(at_capacity, 200 - SHARDS);
        for k in &fresh {
            assert_eq!(
                log.check_and_insert(k, t(500), t(101)).unwrap(),
                ReplayVerdict::Replayed
            );
        }
    }

    #[test]
    fn horizon_is_bounded() {
        let log = InMemoryReplayLog::with_buckets(10, 10, 60);
        let k = ReplayKey::derive("t", &[b"far"]);
        assert_eq!(
            log.check_and_insert(&k, t(1_000), t(100)).unwrap(),
            ReplayVerdict::AtCapacity
        );
    }

    #[test]
    fn concurrent_inserts_of_one_key_yield_one_fresh() {
        let log = Arc::new(InMemoryReplayLog::new(1_000));
        let k = ReplayKey::derive("t", &[b"race"]);
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || log.check_and_insert(&k, t(200), t(100)).unwrap())
            })
            .collect();
        let fresh = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|v| *v == ReplayVerdict::Fresh)
            .count();
        assert_eq!(fresh, 1);
    }

    #[test]
    fn unconfirmed_releases_value_only_when_fresh() {
        let log = InMemoryReplayLog::new(10);
        let k = ReplayKey::derive("t", &[b"v"]);
        let u = Unconfirmed::new(42, k, t(200));
        assert_eq!(u.confirm(&log, t(100)), Ok(42));
        let again = Unconfirmed::new(42, k, t(200));
        assert_eq!(again.confirm(&log, t(150)), Err(ReplayRefused::Replayed));
        let full = Unconfirmed::new(1, k, t(200));
        assert_eq!(
            full.confirm_with(ReplayVerdict::AtCapacity),
            Err(ReplayRefused::AtCapacity)
        );
    }
}
