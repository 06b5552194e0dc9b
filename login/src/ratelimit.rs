//! A bounded, Sans-IO rate limiter: per key, a fixed window, an exact sliding window, or
//! a token bucket. Time comes in as `now`; nothing is read from the clock.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use handoff_core::UnixTime;

use crate::error::LoginError;

/// Longest window or refill period, in seconds (1 day).
pub const MAX_WINDOW_SECS: u64 = 86_400;
/// Most keys a limiter may hold.
pub const MAX_KEYS: usize = 1 << 24;

/// How many requests a key may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RatePolicy {
    /// At most `limit` per aligned window (`now / window_secs`). Cheapest (one counter
    /// per key), but a burst straddling a window edge can reach twice the limit within
    /// `window_secs`.
    FixedWindow {
        /// Requests per window.
        limit: u32,
        /// Window length in seconds.
        window_secs: u64,
    },
    /// At most `limit` within **any** `window_secs` consecutive seconds (exact, at the
    /// one-second resolution of `UnixTime`). Keeps one counter per second that saw an
    /// admission: at most `min(limit, window_secs)` counters per key.
    SlidingWindow {
        /// Requests per window.
        limit: u32,
        /// Window length in seconds.
        window_secs: u64,
    },
    /// A bucket of `capacity` tokens refilled by `refill` tokens every `per_secs`
    /// seconds: bursts up to `capacity`, then the refill rate. Within any `d` seconds at
    /// most `capacity + refill * (d / per_secs + 1)` requests pass.
    TokenBucket {
        /// Bucket size (the largest burst).
        capacity: u32,
        /// Tokens added per period.
        refill: u32,
        /// Period length in seconds.
        per_secs: u64,
    },
}

impl RatePolicy {
    fn check(&self) -> Result<(), LoginError> {
        let (n, secs) = match *self {
            Self::FixedWindow { limit, window_secs }
            | Self::SlidingWindow { limit, window_secs } => (limit, window_secs),
            Self::TokenBucket {
                capacity,
                refill,
                per_secs,
            } => {
                if refill == 0 {
                    return Err(LoginError::Config("token bucket refill must be at least 1"));
                }
                (capacity, per_secs)
            }
        };
        if n == 0 {
            return Err(LoginError::Config(
                "a rate limit must allow at least 1 request",
            ));
        }
        if secs == 0 || secs > MAX_WINDOW_SECS {
            return Err(LoginError::Config("window or period must be 1 s to 1 day"));
        }
        Ok(())
    }
}

/// What the limiter decided for one request.
#[must_use = "a rate decision must be enforced"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateDecision {
    /// Let the request through.
    Allowed {
        /// Requests left before the limit (in this window, or tokens left).
        remaining: u32,
    },
    /// Refuse it (HTTP 429 with `Retry-After`).
    Limited {
        /// The earliest instant a request of this key may pass again.
        retry_after: UnixTime,
    },
    /// The key is new and the limiter holds `capacity` keys that are all still active:
    /// refuse it (fail closed) until one of them goes idle. Keys already tracked are
    /// unaffected.
    AtCapacity {
        /// When to try again (the next idle sweep).
        retry_after: UnixTime,
    },
}

impl RateDecision {
    /// Whether the request may pass.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

#[derive(Debug, Clone)]
enum Entry {
    Fixed {
        window: u64,
        count: u32,
    },
    Sliding {
        secs: VecDeque<(u64, u32)>,
        total: u32,
    },
    Bucket {
        tokens: u32,
        last: u64,
    },
}

/// A per-key rate limiter holding at most `capacity` keys.
///
/// Memory is bounded by construction: at most `capacity` entries, each of fixed size
/// (fixed window, token bucket) or of at most `min(limit, window_secs)` counters (sliding
/// window). A key whose entry is idle (its window passed, its bucket full again) is
/// indistinguishable from a new key, so idle entries are dropped when room is needed,
/// which never lets more requests through. When all `capacity` entries are active, a new
/// key gets [`RateDecision::AtCapacity`] (refused) instead of evicting an active key,
/// which would reset its limit; the idle sweep runs at most once per second.
///
/// Not thread-safe by itself: wrap it in a `Mutex` (or shard by key) to share it. For a
/// limit shared by several gateway instances use the Redis adapter in `handoff-stores`.
#[derive(Debug, Clone)]
pub struct RateLimiter<K> {
    policy: RatePolicy,
    capacity: usize,
    entries: HashMap<K, Entry>,
    last_sweep: Option<u64>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter for `policy` holding at most `capacity` keys.
    ///
    /// # Errors
    /// [`LoginError::Config`] for a zero limit or refill, a window outside 1 s to 1 day,
    /// or a capacity outside 1 to 2^24.
    pub fn new(policy: RatePolicy, capacity: usize) -> Result<Self, LoginError> {
        policy.check()?;
        if capacity == 0 || capacity > MAX_KEYS {
            return Err(LoginError::Config(
                "limiter capacity must be 1 to 2^24 keys",
            ));
        }
        Ok(Self {
            policy,
            capacity,
            entries: HashMap::new(),
            last_sweep: None,
        })
    }

    /// Keys currently tracked (at most the capacity).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether no key is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The key capacity.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// The policy.
    #[must_use]
    pub fn policy(&self) -> RatePolicy {
        self.policy
    }

    /// Whether an entry is idle at `now`, i.e. equivalent to an absent one.
    fn idle(policy: RatePolicy, e: &mut Entry, now: u64) -> bool {
        match (policy, e) {
            (RatePolicy::FixedWindow { window_secs, .. }, Entry::Fixed { window, .. }) => {
                *window < now / window_secs
            }
            (RatePolicy::SlidingWindow { window_secs, .. }, Entry::Sliding { secs, total }) => {
                prune(secs, total, now, window_secs);
                *total == 0
            }
            (
                RatePolicy::TokenBucket {
                    capacity,
                    refill,
                    per_secs,
                },
                Entry::Bucket { tokens, last },
            ) => {
                refill_bucket(tokens, last, now, capacity, refill, per_secs);
                *tokens >= capacity
            }
            _ => true,
        }
    }

    fn fresh(&self, now: u64) -> Entry {
        match self.policy {
            RatePolicy::FixedWindow { window_secs, .. } => Entry::Fixed {
                window: now / window_secs,
                count: 0,
            },
            RatePolicy::SlidingWindow { .. } => Entry::Sliding {
                secs: VecDeque::new(),
                total: 0,
            },
            RatePolicy::TokenBucket { capacity, .. } => Entry::Bucket {
                tokens: capacity,
                last: now,
            },
        }
    }

    /// Counts one request of `key` at `now` and decides.
    pub fn check(&mut self, key: &K, now: UnixTime) -> RateDecision {
        let now_s = now.as_secs();
        if !self.entries.contains_key(key) && self.entries.len() >= self.capacity {
            if self.last_sweep.is_some_and(|s| s >= now_s) {
                return RateDecision::AtCapacity {
                    retry_after: now.saturating_add(1),
                };
            }
            self.last_sweep = Some(now_s);
            let policy = self.policy;
            self.entries.retain(|_, e| !Self::idle(policy, e, now_s));
            if self.entries.len() >= self.capacity {
                return RateDecision::AtCapacity {
                    retry_after: now.saturating_add(1),
                };
            }
        }
        let fresh = self.fresh(now_s);
        let policy = self.policy;
        let e = self.entries.entry(key.clone()).or_insert(fresh);
        decide(policy, e, now_s)
    }
}

fn prune(secs: &mut VecDeque<(u64, u32)>, total: &mut u32, now: u64, window: u64) {
    // Keep the seconds in (now - window, now].
    while let Some(&(s, c)) = secs.front() {
        if s.saturating_add(window) <= now {
            secs.pop_front();
            *total -= c;
        } else {
            break;
        }
    }
}

fn refill_bucket(tokens: &mut u32, last: &mut u64, now: u64, capacity: u32, refill: u32, per: u64) {
    if now <= *last {
        return;
    }
    let periods = (now - *last) / per;
    if periods == 0 {
        return;
    }
    let add = u64::from(refill).saturating_mul(periods);
    let t = u64::from(*tokens)
        .saturating_add(add)
        .min(u64::from(capacity));
    *tokens = u32::try_from(t).unwrap_or(capacity);
    if *tokens >= capacity {
        *last = now;
    } else {
        *last += periods * per;
    }
}

fn decide(policy: RatePolicy, e: &mut Entry, now: u64) -> RateDecision {
    match (policy, e) {
        (RatePolicy::FixedWindow { limit, window_secs }, Entry::Fixed { window, count }) => {
            let w = now / window_secs;
            if *window < w {
                *window = w;
                *count = 0;
            }
            if *window > w {
                // The clock went back: count it in the newer window (never resets).
                return limited_fixed(*window, window_secs, limit, count);
            }
            limited_fixed(w, window_secs, limit, count)
        }
        (RatePolicy::SlidingWindow { limit, window_secs }, Entry::Sliding { secs, total }) => {
            prune(secs, total, now, window_secs);
            if *total >= limit {
                // Passes again once enough seconds leave the window.
                let mut need = *total - limit + 1;
                let mut at = now;
                for &(s, c) in secs.iter() {
                    at = s + window_secs;
                    if c >= need {
                        break;
                    }
                    need -= c;
                }
                return RateDecision::Limited {
                    retry_after: UnixTime::from_secs(at),
                };
            }
            match secs.back_mut() {
                Some((s, c)) if *s >= now => *c += 1,
                _ => secs.push_back((now, 1)),
            }
            *total += 1;
            RateDecision::Allowed {
                remaining: limit - *total,
            }
        }
        (
            RatePolicy::TokenBucket {
                capacity,
                refill,
                per_secs,
            },
            Entry::Bucket { tokens, last },
        ) => {
            refill_bucket(tokens, last, now, capacity, refill, per_secs);
            if *tokens == 0 {
                // `now - last < per_secs` after the refill: the next token comes at
                // `last + per_secs`.
                return RateDecision::Limited {
                    retry_after: UnixTime::from_secs(last.saturating_add(per_secs).max(now + 1)),
                };
            }
            *tokens -= 1;
            RateDecision::Allowed { remaining: *tokens }
        }
        // An entry always matches its limiter's policy.
        _ => RateDecision::Limited {
            retry_after: UnixTime::from_secs(now.saturating_add(1)),
        },
    }
}

fn limited_fixed(w: u64, window_secs: u64, limit: u32, count: &mut u32) -> RateDecision {
    if *count >= limit {
        return RateDecision::Limited {
            retry_after: UnixTime::from_secs((w + 1).saturating_mul(window_secs)),
        };
    }
    *count += 1;
    RateDecision::Allowed {
        remaining: limit - *count,
    }
}

#[cfg(test)]
mod tests;
