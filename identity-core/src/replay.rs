//! Replay defence: one atomic check-and-insert per presented one-time value.
//!
//! A verification that must not accept the same token, proof or nonce twice returns an
//! [`Unconfirmed`] value. The caller confirms it against a [`ReplayLog`] as the very last
//! step, so that unauthenticated traffic can never burn an honest value, and only then
//! reads what was verified.
//!
//! ```
//! use handoff_core::replay::{InMemoryReplayLog, ReplayKey, ReplayLog, ReplayVerdict};
//! use handoff_core::UnixTime;
//!
//! let log = InMemoryReplayLog::new(1_000);
//! let now = UnixTime::from_secs(1_700_000_000);
//! let key = ReplayKey::derive("example/jti", &[b"issuer", b"jti-1"]);
//! let until = now.saturating_add(300);
//! assert_eq!(log.check_and_insert(&key, until, now).unwrap(), ReplayVerdict::Fresh);
//! assert_eq!(log.check_and_insert(&key, until, now).unwrap(), ReplayVerdict::Replayed);
//! ```

use core::fmt;
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// The in-memory log stores a 64-bit fingerprint of each key (its first 8 bytes, already
/// uniformly distributed as SHA-256 output): a hasher that passes it through unchanged.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (u64 keys); fold anything else in, for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Fingerprints = HashSet<u64, BuildHasherDefault<Identity>>;

const SHARDS: usize = 16;

/// A bounded, thread-safe, in-memory [`ReplayLog`].
///
/// Entries live in time buckets keyed by their expiry; a bucket's entries are dropped
/// once its last instant has passed, at most [`PURGE_STEP`] per call (so a mass expiry
/// never stalls one call: each `check_and_insert` does a bounded amount of work), so
/// expiry costs O(1) amortised per entry and no entry is ever dropped before its `until`.
/// An expired entry not yet purged still answers [`ReplayVerdict::Replayed`] (a refusal
/// of a value whose acceptance window is over anyway, never an acceptance). Membership is one hash lookup. The log holds at most
/// `capacity` live entries in total and answers [`ReplayVerdict::AtCapacity`] past that,
/// after purging expired entries (it never evicts a live entry). Entries whose `until`
/// lies further ahead than the horizon (default 1 day) are refused as `AtCapacity` too,
/// so one caller cannot pin memory for years. The log is split into 16 independently
/// locked shards to keep contention low.
///
/// Memory: each entry is stored as a 64-bit fingerprint of its [`ReplayKey`] (in a hash
/// set and in its time bucket), about 20 to 40 bytes per live entry. Two distinct keys
/// share a fingerprint with probability 2^-64 per pair, which can only turn a fresh value
/// into a false [`ReplayVerdict::Replayed`] (a refusal, never an acceptance): below
/// 10^-13 per check at a million live entries.
///
/// After a restart the log is empty: a process that restarts must refuse values issued
/// before it started for one acceptance window (the device handshake does this).
pub struct InMemoryReplayLog {
    shards: [Mutex<Shard>; SHARDS],
    /// Live entries across all shards (reserved before an insert, released on expiry).
    len: AtomicUsize,
    capacity: usize,
    bucket_secs: u64,
    horizon_secs: u64,
}

#[derive(Default)]
struct Shard {
    /// Every live fingerprint, for an O(1) membership test.
    index: Fingerprints,
    /// bucket index (until / bucket_secs) -> fingerprints expiring in that bucket, so that
    /// a whole bucket is dropped at once when its last instant has passed.
    buckets: BTreeMap<u64, Vec<u64>>,
}

/// Most expired entries one call purges in one shard: every `check_and_insert` does at
/// most this much purge work in its own shard (and, only when the log is full, at most
/// this much more in total across the other shards), whatever expired before. A mass
/// expiry is thus purged a step at a time by the calls that follow it instead of stalling
/// the first of them.
pub const PURGE_STEP: usize = 64;

impl Shard {
    /// Drops up to `budget` entries of the buckets before `first_live`, oldest bucket
    /// first; returns how many went. Each entry is removed exactly once, so the work is
    /// O(1) amortised per entry and at most `budget` per call.
    fn expire(&mut self, first_live: u64, budget: usize) -> usize {
        let mut dropped = 0;
        while dropped < budget {
            let Some(mut entry) = self.buckets.first_entry() else {
                break;
            };
            if *entry.key() >= first_live {
                break;
            }
            let bucket = entry.get_mut();
            while dropped < budget {
                let Some(f) = bucket.pop() else { break };
                self.index.remove(&f);
                dropped += 1;
            }
            if bucket.is_empty() {
                entry.remove();
            }
        }
        dropped
    }
}

fn fingerprint(key: &ReplayKey) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key.0[..8]);
    u64::from_le_bytes(b)
}

fn poisoned<T>(_: T) -> ReplayStoreError {
    ReplayStoreError("in-memory replay log poisoned by a panic in another thread".into())
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
            len: AtomicUsize::new(0),
            capacity,
            bucket_secs: bucket_secs.max(1),
            horizon_secs: horizon_secs.max(1),
        }
    }

    /// The number of entries currently held (live or not yet purged).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether the log holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most live entries the log holds.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Reserves room for one entry, or says the log is full.
    fn reserve(&self) -> bool {
        let mut cur = self.len.load(Ordering::Acquire);
        loop {
            if cur >= self.capacity {
                return false;
            }
            match self
                .len
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.len.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Purges expired entries shard by shard, one lock at a time, until `budget` went or
    /// no shard holds any.
    fn expire_all(&self, first_live: u64, budget: usize) -> Result<(), ReplayStoreError> {
        let mut left = budget;
        for shard in &self.shards {
            if left == 0 {
                break;
            }
            let dropped = shard.lock().map_err(poisoned)?.expire(first_live, left);
            self.release(dropped);
            left -= dropped;
        }
        Ok(())
    }

    fn try_insert(
        &self,
        shard: &Mutex<Shard>,
        f: u64,
        until_ix: u64,
        first_live: u64,
    ) -> Result<Option<ReplayVerdict>, ReplayStoreError> {
        let mut shard = shard.lock().map_err(poisoned)?;
        let dropped = shard.expire(first_live, PURGE_STEP);
        self.release(dropped);
        if shard.index.contains(&f) {
            return Ok(Some(ReplayVerdict::Replayed));
        }
        if !self.reserve() {
            return Ok(None);
        }
        shard.index.insert(f);
        shard.buckets.entry(until_ix).or_default().push(f);
        Ok(Some(ReplayVerdict::Fresh))
    }
}

impl fmt::Debug for InMemoryReplayLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryReplayLog")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
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
        let shard = &self.shards[usize::from(key.0[31]) % SHARDS];
        let f = fingerprint(key);
        // A bucket covers [ix*w, (ix+1)*w) and is dropped only once `now` has passed its
        // end, i.e. strictly after every `until` it holds.
        let first_live = now.as_secs() / self.bucket_secs;
        let until_ix = until.as_secs() / self.bucket_secs;
        if let Some(v) = self.try_insert(shard, f, until_ix, first_live)? {
            return Ok(v);
        }
        // Full: expired entries may sit in other shards. Purge a bounded step of them
        // (one freed entry is enough), then try once more; still full means fail closed.
        self.expire_all(first_live, PURGE_STEP)?;
        Ok(self
            .try_insert(shard, f, until_ix, first_live)?
            .unwrap_or(ReplayVerdict::AtCapacity))
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

    /// As [`Self::confirm`], on an [`AsyncReplayLog`](crate::replay_async::AsyncReplayLog).
    ///
    /// # Errors
    /// As [`Self::confirm`].
    pub async fn confirm_async<L: crate::replay_async::AsyncReplayLog>(
        self,
        log: &L,
        now: UnixTime,
    ) -> Result<T, ReplayRefused> {
        let verdict = log
            .check_and_insert(&self.key, self.until, now)
            .await
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

    /// Reads the verified value **before** its one-time identifier is recorded.
    ///
    /// The value passed every cryptographic and policy check; only the replay record is
    /// missing. Use this for checks that must run before the record is written, so that a
    /// refused request never burns an honest one-time value: for example binding a DPoP
    /// proof's key thumbprint to an access token's `cnf.jkt`. Never act on the value (grant
    /// access, mint tokens) until [`Self::confirm`] has returned it.
    #[must_use]
    pub fn get_unconfirmed(&self) -> &T {
        &self.value
    }

    /// Maps the wrapped value with a check that may fail, keeping the replay obligation
    /// (nothing is recorded when `f` fails).
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Unconfirmed<U>, E> {
        Ok(Unconfirmed {
            value: f(self.value)?,
            key: self.key,
            until: self.until,
        })
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
        let log = InMemoryReplayLog::new(SHARDS); // a total capacity of 16
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
