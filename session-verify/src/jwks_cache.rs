//! A Sans-IO cache of one issuer's JWK Set: a state machine that tells the caller when to
//! fetch and what to do with each token's key lookup, and never performs I/O itself.
//!
//! Call order (as in quinn-proto): [`JwksCache::lookup`] for every token; perform each
//! [`FetchRequest`] it (or [`JwksCache::handle_timeout`]) hands out and report the result
//! with [`JwksCache::on_fetch_complete`] or [`JwksCache::on_fetch_failed`]; call
//! [`JwksCache::handle_timeout`] at the instant [`JwksCache::poll_timeout`] names.

use std::collections::{BTreeMap, HashMap};

use handoff_core::jwks::{Jwks, JwksLimits, KidlessTokens, SkippedKey};
use handoff_core::keys::MAX_KID_BYTES;
use handoff_core::{Algorithm, Thumbprint, UnixTime, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::VerifyError;

/// Largest `Cache-Control` value parsed; longer values are ignored (default max age).
pub const MAX_CACHE_CONTROL_BYTES: usize = 1024;
/// Largest `ETag` kept; longer or non-ASCII values are dropped.
pub const MAX_ETAG_BYTES: usize = 256;
/// Kids remembered as "triggered the fetch in flight", checked when it completes.
const MAX_PENDING_KIDS: usize = 64;

/// Settings of a [`JwksCache`]. Start from [`JwksCacheConfig::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksCacheConfig {
    /// The issuer's `jwks_uri`, copied into every [`FetchRequest`].
    pub jwks_uri: String,
    /// Freshness when the response has no usable `Cache-Control: max-age` (default 600 s).
    pub default_max_age: u64,
    /// Lower clamp of `max-age` (default 30 s).
    pub min_max_age: u64,
    /// Upper clamp of `max-age` (default 24 h).
    pub max_max_age: u64,
    /// Start refreshing this long before the set goes stale (default 60 s; at most half
    /// of the set's max age).
    pub refresh_ahead: u64,
    /// After a fetch, an unknown `kid` may trigger another only this much later (default 30 s).
    pub unknown_kid_cooldown: u64,
    /// How long a `kid` confirmed absent by a fetch is refused without a fetch (default 60 s).
    pub negative_ttl: u64,
    /// Most unknown kids remembered (default 1024); the oldest are forgotten first.
    pub negative_capacity: usize,
    /// A fetch not reported within this long counts as failed (default 10 s).
    pub fetch_timeout: u64,
    /// Delay after the first failure, doubled per further failure (default 2 s).
    pub backoff_initial: u64,
    /// Largest delay between failed fetches (default 300 s).
    pub backoff_max: u64,
    /// Known keys keep serving this long past their freshness while fetches fail
    /// (default 1 h); then the set is unavailable.
    pub stale_if_error: u64,
    /// Caps on the key-set document (default 256 KiB, 256 keys).
    pub limits: JwksLimits,
    /// How a token without `kid` is matched (default: refused when the set holds more
    /// than one key, as [`Jwks::find`] does).
    pub kidless: KidlessTokens,
}

impl JwksCacheConfig {
    /// The defaults, for the key set at `jwks_uri`.
    #[must_use]
    pub fn new(jwks_uri: impl Into<String>) -> Self {
        Self {
            jwks_uri: jwks_uri.into(),
            default_max_age: 600,
            min_max_age: 30,
            max_max_age: 24 * 3600,
            refresh_ahead: 60,
            unknown_kid_cooldown: 30,
            negative_ttl: 60,
            negative_capacity: 1024,
            fetch_timeout: 10,
            backoff_initial: 2,
            backoff_max: 300,
            stale_if_error: 3600,
            kidless: KidlessTokens::default(),
            limits: JwksLimits::default(),
        }
    }

    fn validate(&self) -> Result<(), VerifyError> {
        let p = VerifyError::Policy;
        if self.jwks_uri.is_empty() {
            return Err(p("jwks_uri is empty"));
        }
        if self.min_max_age == 0 || self.min_max_age > self.max_max_age {
            return Err(p(
                "max-age clamp must satisfy 0 < min_max_age <= max_max_age",
            ));
        }
        if !(self.min_max_age..=self.max_max_age).contains(&self.default_max_age) {
            return Err(p("default_max_age must lie within the max-age clamp"));
        }
        if self.fetch_timeout == 0 || self.backoff_initial == 0 {
            return Err(p("fetch_timeout and backoff_initial must be at least 1 s"));
        }
        if self.backoff_max < self.backoff_initial {
            return Err(p("backoff_max must be at least backoff_initial"));
        }
        if self.negative_capacity == 0 || self.negative_capacity > 1 << 20 {
            return Err(p("negative_capacity must be 1 to 1048576"));
        }
        if self.stale_if_error > 7 * 24 * 3600 {
            return Err(p("stale_if_error over 7 days"));
        }
        Ok(())
    }
}

/// Identifies one fetch handed out by the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FetchId(u64);

/// A fetch the caller must perform: `GET url` with `If-None-Match` when given, then
/// report the result under `id`.
#[must_use = "perform the fetch and report it, or the cache waits until the deadline"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Report the result under this id.
    pub id: FetchId,
    /// The URL to GET.
    pub url: String,
    /// The `If-None-Match` header value to send, if any.
    pub if_none_match: Option<String>,
    /// A result reported after this instant is ignored and counted as a failure.
    pub deadline: UnixTime,
}

/// The caller's HTTP result for a [`FetchRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchResponse {
    /// The status code (200 and 304 are understood; anything else is a failure).
    pub status: u16,
    /// The body (caller should stop reading past [`JwksLimits::max_bytes`]).
    pub body: Vec<u8>,
    /// The `Cache-Control` header value, if any.
    pub cache_control: Option<String>,
    /// The `ETag` header value, if any.
    pub etag: Option<String>,
}

/// Why a lookup was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The `kid` is unknown and fetching again is rate-limited.
    UnknownKid {
        /// When an unknown `kid` may trigger a fetch again.
        retry_after: UnixTime,
    },
    /// No usable key set: never fetched, expired beyond stale-if-error, and backing off.
    KeySetUnavailable {
        /// When the next fetch may start, if known.
        retry_after: Option<UnixTime>,
    },
    /// Several keys match the `kid` and algorithm.
    AmbiguousKey,
    /// The `kid` names a key made for another algorithm.
    AlgorithmMismatch {
        /// The token's algorithm.
        header: Algorithm,
        /// The key's algorithm.
        key: Algorithm,
    },
}

impl From<Rejection> for VerifyError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::UnknownKid { retry_after } => Self::UnknownKidRateLimited { retry_after },
            Rejection::KeySetUnavailable { retry_after } => Self::KeySetUnavailable { retry_after },
            Rejection::AmbiguousKey => Self::Token(handoff_core::Error::AmbiguousKey(
                "several keys in the issuer's set match this kid and algorithm",
            )),
            Rejection::AlgorithmMismatch { header, key } => {
                Self::Token(handoff_core::Error::AlgorithmMismatch { header, key })
            }
        }
    }
}

/// What to do for one token's key.
#[must_use = "a lookup carries a decision (and possibly a fetch to perform)"]
#[derive(Debug)]
#[non_exhaustive]
pub enum Lookup<'a> {
    /// Verify with this key.
    Use(&'a VerifyingKey),
    /// Verify with this key, and perform this refresh in the background.
    UseAndRefresh(&'a VerifyingKey, FetchRequest),
    /// No usable key: perform this fetch, report it, then look up again.
    Fetch(FetchRequest),
    /// A fetch that may bring the key is in flight; look up again once it is reported
    /// (or refuse the token now: the cache never blocks).
    Wait {
        /// The fetch in flight.
        id: FetchId,
        /// When the cache gives up on it.
        deadline: UnixTime,
    },
    /// Refuse the token.
    Reject(Rejection),
}

/// A key as reported in a [`FetchReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// Its `kid`, if any.
    pub kid: Option<String>,
    /// Its algorithm.
    pub alg: Algorithm,
    /// Its RFC 7638 thumbprint.
    pub thumbprint: Thumbprint,
}

impl KeyRef {
    fn of(k: &VerifyingKey) -> Self {
        Self {
            kid: k.kid().map(str::to_owned),
            alg: k.algorithm(),
            thumbprint: k.thumbprint(),
        }
    }
}

/// How a reported fetch was used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchOutcome {
    /// The set was replaced, atomically.
    Replaced,
    /// `304 Not Modified`: the held set is fresh again.
    NotModified,
    /// The fetch failed; the held set (if any) is kept and the cache backs off.
    Failed(String),
    /// The id is not the fetch in flight (already reported, or past its deadline).
    Ignored,
}

/// The result of [`JwksCache::on_fetch_complete`]: log it.
#[must_use = "the report says which keys changed and why a fetch failed; log it"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// The fetch reported.
    pub id: FetchId,
    /// What happened.
    pub outcome: FetchOutcome,
    /// Keys in the new set that were not in the old one.
    pub added: Vec<KeyRef>,
    /// Keys of the old set that are gone (they no longer verify anything).
    pub removed: Vec<KeyRef>,
    /// Keys of the document that were skipped, and why.
    pub skipped: Vec<SkippedKey>,
    /// Until when the held set is fresh, if one is held.
    pub fresh_until: Option<UnixTime>,
}

/// Reads `max-age` from a `Cache-Control` value. `no-store`, `no-cache` and
/// `max-age=0` give `Some(0)` (the caller clamps it). Bounded and never panics: values
/// longer than [`MAX_CACHE_CONTROL_BYTES`], odd syntax or huge numbers give `None` or a
/// saturated number.
#[must_use]
pub fn parse_max_age(value: &str) -> Option<u64> {
    if value.len() > MAX_CACHE_CONTROL_BYTES {
        return None;
    }
    let mut max_age = None;
    for directive in value.split(',').take(32) {
        let directive = directive.trim();
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(0);
        }
        if name.eq_ignore_ascii_case("max-age") && max_age.is_none() {
            let arg = arg?;
            let arg = arg
                .strip_prefix('"')
                .and_then(|a| a.strip_suffix('"'))
                .unwrap_or(arg);
            if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Saturate instead of failing on absurd values (clamped later anyway).
            let secs = arg.bytes().fold(0u64, |acc, b| {
                acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
            });
            max_age = Some(secs);
        }
    }
    max_age
}

fn clean_etag(etag: Option<String>) -> Option<String> {
    etag.filter(|e| {
        !e.is_empty() && e.len() <= MAX_ETAG_BYTES && e.bytes().all(|b| (0x20..0x7f).contains(&b))
    })
}

/// The unknown-kid memory: kid -> (refused until, insertion sequence), plus the
/// insertion order for eviction. Both hold exactly the same kids: every insertion and
/// removal goes through this type and updates both, so the order's size is the map's
/// size by construction, never more than the capacity.
#[derive(Debug, Default)]
struct NegativeCache {
    map: HashMap<String, (UnixTime, u64)>,
    order: BTreeMap<u64, String>,
    next_seq: u64,
}

impl NegativeCache {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn get(&self, kid: &str) -> Option<UnixTime> {
        self.map.get(kid).map(|e| e.0)
    }

    fn remove(&mut self, kid: &str) {
        if let Some((_, seq)) = self.map.remove(kid) {
            self.order.remove(&seq);
        }
    }

    /// Remembers `kid` until `until` (extending a remembered one), evicting the oldest
    /// entries first when `capacity` is reached.
    fn remember(&mut self, kid: &str, until: UnixTime, capacity: usize) {
        if let Some(e) = self.map.get_mut(kid) {
            e.0 = e.0.max(until);
            return;
        }
        while self.map.len() >= capacity {
            match self.order.pop_first() {
                Some((_, old)) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.map.insert(kid.to_owned(), (until, seq));
        self.order.insert(seq, kid.to_owned());
    }

    fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let order = &mut self.order;
        self.map.retain(|kid, (_, seq)| {
            let k = keep(kid);
            if !k {
                order.remove(seq);
            }
            k
        });
    }
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: FetchId,
    deadline: UnixTime,
    conditional: bool,
}

enum Match {
    Found(usize),
    OtherAlg(Algorithm),
    Absent,
    Ambiguous,
}

/// The cache of one issuer's key set. See the [module docs](self) for the call order.
///
/// Guarantees: a refresh replaces the set atomically (removed keys stop verifying at
/// once); one fetch in flight at a time, with a deadline; an unknown `kid` triggers at
/// most one fetch per [`JwksCacheConfig::unknown_kid_cooldown`] and never waits for one;
/// failures back off exponentially; known keys serve at most
/// [`JwksCacheConfig::stale_if_error`] past their freshness.
#[derive(Debug)]
pub struct JwksCache {
    config: JwksCacheConfig,
    keys: Option<Jwks>,
    fetched_at: UnixTime,
    fresh_until: UnixTime,
    refresh_at: UnixTime,
    etag: Option<String>,
    in_flight: Option<InFlight>,
    next_id: u64,
    failures: u32,
    retry_at: Option<UnixTime>,
    unknown_kid_fetch_after: UnixTime,
    negative: NegativeCache,
    pending_kids: Vec<String>,
}

impl JwksCache {
    /// An empty cache; the first lookup (or [`JwksCache::handle_timeout`]) asks for a fetch.
    ///
    /// # Errors
    /// [`VerifyError::Policy`] when the configuration is out of bounds.
    pub fn new(config: JwksCacheConfig) -> Result<Self, VerifyError> {
        config.validate()?;
        Ok(Self {
            config,
            keys: None,
            fetched_at: UnixTime::EPOCH,
            fresh_until: UnixTime::EPOCH,
            refresh_at: UnixTime::EPOCH,
            etag: None,
            in_flight: None,
            next_id: 0,
            failures: 0,
            retry_at: None,
            unknown_kid_fetch_after: UnixTime::EPOCH,
            negative: NegativeCache::default(),
            pending_kids: Vec::new(),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &JwksCacheConfig {
        &self.config
    }

    /// The key set held, fresh or stale, if any.
    #[must_use]
    pub fn keys(&self) -> Option<&Jwks> {
        self.keys.as_ref()
    }

    /// Until when the held set is fresh.
    #[must_use]
    pub fn fresh_until(&self) -> Option<UnixTime> {
        self.keys.as_ref().map(|_| self.fresh_until)
    }

    /// Consecutive failed fetches.
    #[must_use]
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Unknown kids currently remembered by the negative cache (bounded by
    /// [`JwksCacheConfig::negative_capacity`]).
    #[must_use]
    pub fn unknown_kids_remembered(&self) -> usize {
        self.negative.len()
    }

    /// The fetch in flight, if any.
    #[must_use]
    pub fn fetch_in_flight(&self) -> Option<FetchId> {
        self.in_flight.map(|f| f.id)
    }

    fn can_fetch(&self, now: UnixTime) -> bool {
        self.in_flight.is_none() && self.retry_at.is_none_or(|r| now >= r)
    }

    fn start_fetch(&mut self, now: UnixTime) -> FetchRequest {
        let id = FetchId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        let if_none_match = if self.keys.is_some() {
            self.etag.clone()
        } else {
            None
        };
        let deadline = now.saturating_add(self.config.fetch_timeout);
        self.in_flight = Some(InFlight {
            id,
            deadline,
            conditional: if_none_match.is_some(),
        });
        FetchRequest {
            id,
            url: self.config.jwks_uri.clone(),
            if_none_match,
            deadline,
        }
    }

    fn fail(&mut self, now: UnixTime) {
        self.in_flight = None;
        self.pending_kids.clear();
        self.failures = self.failures.saturating_add(1);
        let shift = (self.failures - 1).min(32);
        let delay = self
            .config
            .backoff_initial
            .saturating_mul(1u64 << shift)
            .min(self.config.backoff_max);
        self.retry_at = Some(now.saturating_add(delay));
    }

    /// Fails the fetch in flight once its deadline has passed.
    fn expire_in_flight(&mut self, now: UnixTime) {
        if let Some(f) = self.in_flight
            && now >= f.deadline
        {
            self.fail(now);
        }
    }

    fn remember_unknown(&mut self, kid: &str, until: UnixTime) {
        self.negative
            .remember(kid, until, self.config.negative_capacity);
    }

    /// The size of the negative cache's eviction order: always equal to
    /// [`Self::unknown_kids_remembered`], so at most the configured capacity. For tests
    /// of that invariant.
    #[doc(hidden)]
    #[must_use]
    pub fn unknown_kids_order_len(&self) -> usize {
        self.negative.order.len()
    }

    /// One lookup rule for the whole family: [`Jwks::find_index`] (by `kid` index, the
    /// key's own algorithm, kidless policy), classified for the cache's decision.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Match {
        let Some(set) = &self.keys else {
            return Match::Absent;
        };
        match set.find_index(kid, alg, self.config.kidless) {
            Ok(i) => Match::Found(i),
            Err(handoff_core::Error::AlgorithmMismatch { key, .. }) => Match::OtherAlg(key),
            Err(handoff_core::Error::AmbiguousKey(_)) => Match::Ambiguous,
            Err(_) => Match::Absent,
        }
    }

    fn key_at(&self, i: usize) -> Option<&VerifyingKey> {
        self.keys.as_ref().and_then(|s| s.keys().get(i))
    }

    /// Decides how to get the key for a token's `kid` and header algorithm. Never blocks.
    pub fn lookup(&mut self, now: UnixTime, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        self.expire_in_flight(now);
        let stale_end = self.fresh_until.saturating_add(self.config.stale_if_error);
        let usable = self.keys.is_some() && now < stale_end;
        if !usable {
            return if let Some(f) = self.in_flight {
                Lookup::Wait {
                    id: f.id,
                    deadline: f.deadline,
                }
            } else if self.can_fetch(now) {
                self.note_pending(kid);
                Lookup::Fetch(self.start_fetch(now))
            } else {
                Lookup::Reject(Rejection::KeySetUnavailable {
                    retry_after: self.retry_at,
                })
            };
        }
        match self.find(kid, alg) {
            Match::Found(i) => {
                let refresh = now >= self.refresh_at && self.can_fetch(now);
                let req = refresh.then(|| self.start_fetch(now));
                match (self.key_at(i), req) {
                    (Some(k), Some(r)) => Lookup::UseAndRefresh(k, r),
                    (Some(k), None) => Lookup::Use(k),
                    (None, _) => Lookup::Reject(Rejection::KeySetUnavailable { retry_after: None }),
                }
            }
            Match::OtherAlg(key) => {
                Lookup::Reject(Rejection::AlgorithmMismatch { header: alg, key })
            }
            Match::Ambiguous => Lookup::Reject(Rejection::AmbiguousKey),
            Match::Absent => self.unknown_kid(now, kid),
        }
    }

    fn note_pending(&mut self, kid: Option<&str>) {
        if let Some(k) = kid
            && k.len() <= MAX_KID_BYTES
            && self.pending_kids.len() < MAX_PENDING_KIDS
            && !self.pending_kids.iter().any(|p| p == k)
        {
            self.pending_kids.push(k.to_owned());
        }
    }

    fn unknown_kid(&mut self, now: UnixTime, kid: Option<&str>) -> Lookup<'_> {
        let name = kid.unwrap_or("");
        if name.len() > MAX_KID_BYTES {
            // No key can carry such a kid: refuse without remembering or fetching.
            return Lookup::Reject(Rejection::UnknownKid {
                retry_after: self.unknown_kid_fetch_after.max(now),
            });
        }
        if let Some(until) = self.negative.get(name) {
            if now < until {
                return Lookup::Reject(Rejection::UnknownKid { retry_after: until });
            }
            self.negative.remove(name);
        }
        if let Some(f) = self.in_flight {
            self.note_pending(kid);
            return Lookup::Wait {
                id: f.id,
                deadline: f.deadline,
            };
        }
        if now < self.unknown_kid_fetch_after || !self.can_fetch(now) {
            let until = self
                .unknown_kid_fetch_after
                .max(self.retry_at.unwrap_or(UnixTime::EPOCH))
                .max(now.saturating_add(1));
            self.remember_unknown(name, until);
            return Lookup::Reject(Rejection::UnknownKid { retry_after: until });
        }
        self.unknown_kid_fetch_after = now.saturating_add(self.config.unknown_kid_cooldown);
        self.note_pending(kid);
        Lookup::Fetch(self.start_fetch(now))
    }

    /// Reports the caller's HTTP result for fetch `id`. A 200 replaces the set atomically
    /// (keys that cannot be used are skipped one by one; a document whose every key is
    /// skipped is refused as a whole); a 304 renews the held set; anything else is a
    /// failure that keeps the held set and backs off.
    pub fn on_fetch_complete(
        &mut self,
        now: UnixTime,
        id: FetchId,
        response: FetchResponse,
    ) -> FetchReport {
        self.expire_in_flight(now);
        let mut report = FetchReport {
            id,
            outcome: FetchOutcome::Ignored,
            added: Vec::new(),
            removed: Vec::new(),
            skipped: Vec::new(),
            fresh_until: self.fresh_until(),
        };
        let Some(flight) = self.in_flight.filter(|f| f.id == id) else {
            return report;
        };
        let max_age = response
            .cache_control
            .as_deref()
            .and_then(parse_max_age)
            .unwrap_or(self.config.default_max_age)
            .clamp(self.config.min_max_age, self.config.max_max_age);
        match response.status {
            200 => match Jwks::parse(&response.body, &self.config.limits) {
                Ok(parsed) if parsed.jwks.is_empty() && !parsed.skipped.is_empty() => {
                    report.skipped = parsed.skipped;
                    report.outcome = FetchOutcome::Failed(
                        "every key in the document was skipped; keeping the held set".into(),
                    );
                    self.fail(now);
                }
                Ok(parsed) => {
                    let old: Vec<KeyRef> = self
                        .keys
                        .as_ref()
                        .map(|s| s.keys().iter().map(KeyRef::of).collect())
                        .unwrap_or_default();
                    let new: Vec<KeyRef> = parsed.jwks.keys().iter().map(KeyRef::of).collect();
                    report.added = new.iter().filter(|k| !old.contains(k)).cloned().collect();
                    report.removed = old.into_iter().filter(|k| !new.contains(k)).collect();
                    report.skipped = parsed.skipped;
                    self.keys = Some(parsed.jwks);
                    self.etag = clean_etag(response.etag);
                    self.succeed(now, max_age);
                    report.outcome = FetchOutcome::Replaced;
                }
                Err(e) => {
                    report.outcome = FetchOutcome::Failed(e.to_string());
                    self.fail(now);
                }
            },
            304 if flight.conditional && self.keys.is_some() => {
                if let Some(e) = clean_etag(response.etag) {
                    self.etag = Some(e);
                }
                self.succeed(now, max_age);
                report.outcome = FetchOutcome::NotModified;
            }
            304 => {
                report.outcome =
                    FetchOutcome::Failed("304 Not Modified to an unconditional request".into());
                self.fail(now);
            }
            s => {
                report.outcome = FetchOutcome::Failed(format!("HTTP status {s}"));
                self.fail(now);
            }
        }
        report.fresh_until = self.fresh_until();
        report
    }

    fn succeed(&mut self, now: UnixTime, max_age: u64) {
        self.in_flight = None;
        self.failures = 0;
        self.retry_at = None;
        self.fetched_at = now;
        self.fresh_until = now.saturating_add(max_age);
        let ahead = self.config.refresh_ahead.min(max_age / 2);
        self.refresh_at = self.fresh_until.saturating_sub(ahead);
        self.unknown_kid_fetch_after = self
            .unknown_kid_fetch_after
            .max(now.saturating_add(self.config.unknown_kid_cooldown));
        // Kids that triggered this fetch and are still absent are refused for a while.
        let pending = std::mem::take(&mut self.pending_kids);
        let until = now.saturating_add(self.config.negative_ttl);
        for kid in pending {
            let present = self
                .keys
                .as_ref()
                .is_some_and(|s| s.keys().iter().any(|k| k.kid() == Some(kid.as_str())));
            if present {
                self.negative.remove(&kid);
            } else {
                self.remember_unknown(&kid, until);
            }
        }
        // Bounded work per fetch: at most `negative_capacity` entries, each checked
        // against the (size-limited) set.
        let set = &self.keys;
        self.negative.retain(|kid| {
            !set.as_ref()
                .is_some_and(|s| s.keys().iter().any(|k| k.kid() == Some(kid)))
        });
    }

    /// Withdraws a fetch the caller will not perform (for example a background refresh
    /// handed out with a token that then failed verification). No failure is counted;
    /// the next lookup or timeout hands the fetch out again.
    pub fn cancel_fetch(&mut self, id: FetchId) {
        if self.in_flight.is_some_and(|f| f.id == id) {
            self.in_flight = None;
        }
    }

    /// Reports that fetch `id` failed at the transport level (DNS, connect, TLS, read).
    pub fn on_fetch_failed(&mut self, now: UnixTime, id: FetchId) -> FetchReport {
        self.expire_in_flight(now);
        let mut report = FetchReport {
            id,
            outcome: FetchOutcome::Ignored,
            added: Vec::new(),
            removed: Vec::new(),
            skipped: Vec::new(),
            fresh_until: self.fresh_until(),
        };
        if self.in_flight.is_some_and(|f| f.id == id) {
            self.fail(now);
            report.outcome = FetchOutcome::Failed("transport failure".into());
        }
        report
    }

    /// When to call [`JwksCache::handle_timeout`] next: the deadline of the fetch in
    /// flight, else the refresh instant (not before the backoff ends). `None` when there
    /// is nothing scheduled (no set held and no failure).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        if let Some(f) = self.in_flight {
            return Some(f.deadline);
        }
        let backoff = self.retry_at.unwrap_or(UnixTime::EPOCH);
        if self.keys.is_some() {
            Some(self.refresh_at.max(backoff))
        } else {
            self.retry_at
        }
    }

    /// Advances the timers: fails a fetch past its deadline, and returns a refresh to
    /// perform when one is due (set due for refresh or none held, not backing off).
    #[must_use = "perform the returned fetch and report it"]
    pub fn handle_timeout(&mut self, now: UnixTime) -> Option<FetchRequest> {
        self.expire_in_flight(now);
        let due = self.keys.is_none() || now >= self.refresh_at;
        (due && self.can_fetch(now)).then(|| self.start_fetch(now))
    }

    /// Exports the state worth persisting between invocations (a serverless caller
    /// stores it and imports it on the next cold start). The fetch in flight and the
    /// negative cache are not exported.
    pub fn snapshot(&self) -> CacheSnapshot {
        CacheSnapshot {
            version: 1,
            jwks_uri: self.config.jwks_uri.clone(),
            jwks: self.keys.as_ref().map(Jwks::to_json),
            fetched_at: self.fetched_at,
            fresh_until: self.fresh_until,
            refresh_at: self.refresh_at,
            etag: self.etag.clone(),
            failures: self.failures,
            retry_at: self.retry_at,
            unknown_kid_fetch_after: self.unknown_kid_fetch_after,
        }
    }

    /// Rebuilds a cache from a [`CacheSnapshot`]; the keys are parsed again under the
    /// configured limits.
    ///
    /// # Errors
    /// [`VerifyError::Policy`] when the snapshot is of another `jwks_uri` or version, or
    /// its key set no longer parses.
    pub fn from_snapshot(config: JwksCacheConfig, s: CacheSnapshot) -> Result<Self, VerifyError> {
        let mut c = Self::new(config)?;
        if s.version != 1 {
            return Err(VerifyError::Policy("snapshot version not understood"));
        }
        if s.jwks_uri != c.config.jwks_uri {
            return Err(VerifyError::Policy(
                "snapshot belongs to another jwks_uri; one cache per issuer",
            ));
        }
        if let Some(doc) = s.jwks {
            let parsed = Jwks::parse(doc.as_bytes(), &c.config.limits)?;
            if !parsed.skipped.is_empty() {
                return Err(VerifyError::Policy(
                    "snapshot key set holds keys that no longer parse",
                ));
            }
            c.keys = Some(parsed.jwks);
        }
        let longest = s.fetched_at.saturating_add(c.config.max_max_age);
        c.fetched_at = s.fetched_at;
        c.fresh_until = s.fresh_until.min(longest);
        c.refresh_at = s.refresh_at.min(c.fresh_until);
        c.etag = clean_etag(s.etag);
        c.failures = s.failures;
        c.retry_at = s.retry_at;
        c.unknown_kid_fetch_after = s.unknown_kid_fetch_after;
        Ok(c)
    }
}

/// Persistable state of a [`JwksCache`] (serde; JSON through [`CacheSnapshot::to_json`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSnapshot {
    version: u32,
    jwks_uri: String,
    jwks: Option<String>,
    fetched_at: UnixTime,
    fresh_until: UnixTime,
    refresh_at: UnixTime,
    etag: Option<String>,
    failures: u32,
    retry_at: Option<UnixTime>,
    unknown_kid_fetch_after: UnixTime,
}

impl CacheSnapshot {
    /// JSON text.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Strings and integers only: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses JSON text produced by [`CacheSnapshot::to_json`], refusing more than
    /// `max_bytes`.
    ///
    /// # Errors
    /// [`handoff_core::Error::TokenTooLarge`] or [`handoff_core::Error::Json`].
    pub fn from_json(text: &str, max_bytes: usize) -> Result<Self, VerifyError> {
        if text.len() > max_bytes {
            return Err(handoff_core::Error::TokenTooLarge {
                len: text.len(),
                max: max_bytes,
            }
            .into());
        }
        serde_json::from_str(text).map_err(|e| {
            handoff_core::Error::Json {
                part: "cache snapshot",
                detail: e.to_string().chars().take(64).collect(),
            }
            .into()
        })
    }
}
