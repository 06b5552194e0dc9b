//! A bounded suppression list: keys (clients, accounts, addresses) refused until a
//! deadline.

use std::collections::HashMap;
use std::hash::Hash;

use handoff_core::UnixTime;

use crate::error::LoginError;

/// What [`SuppressionList::suppress`] did.
#[must_use = "a suppression may have been refused at capacity"]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Suppressed<K> {
    /// The key is suppressed until the given instant (a later one if it already was).
    Until(UnixTime),
    /// The list was full of live entries: the entry that would have expired first was
    /// dropped to make room (it expired sooner than the new one).
    EvictedEarliest {
        /// The new key's deadline.
        until: UnixTime,
        /// The key dropped.
        evicted: K,
    },
    /// The list was full of entries that all outlive the new one: nothing changed.
    AtCapacity,
}

/// Keys refused until a deadline (a TTL per entry), holding at most `capacity` keys.
///
/// At capacity, expired entries are dropped first; if all are live, the entry expiring
/// soonest is evicted when the new entry outlives it ([`Suppressed::EvictedEarliest`]),
/// else the new entry is refused ([`Suppressed::AtCapacity`]). Either way memory stays
/// bounded and the caller is told.
#[derive(Debug, Clone)]
pub struct SuppressionList<K> {
    capacity: usize,
    max_ttl: u64,
    entries: HashMap<K, UnixTime>,
}

impl<K: Hash + Eq + Clone> SuppressionList<K> {
    /// A list of at most `capacity` keys, each suppressed for at most `max_ttl_secs`.
    ///
    /// # Errors
    /// [`LoginError::Config`] for a zero capacity or TTL, or a capacity over 2^24.
    pub fn new(capacity: usize, max_ttl_secs: u64) -> Result<Self, LoginError> {
        if capacity == 0 || capacity > crate::ratelimit::MAX_KEYS {
            return Err(LoginError::Config(
                "suppression capacity must be 1 to 2^24 keys",
            ));
        }
        if max_ttl_secs == 0 {
            return Err(LoginError::Config(
                "suppression max TTL must be at least 1 s",
            ));
        }
        Ok(Self {
            capacity,
            max_ttl: max_ttl_secs,
            entries: HashMap::new(),
        })
    }

    /// Keys held (live or not yet purged).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether the list is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Suppresses `key` for `ttl_secs` (clamped to the maximum TTL) from `now`.
    pub fn suppress(&mut self, key: K, ttl_secs: u64, now: UnixTime) -> Suppressed<K> {
        let until = now.saturating_add(ttl_secs.min(self.max_ttl));
        if let Some(u) = self.entries.get_mut(&key) {
            *u = (*u).max(until);
            return Suppressed::Until(*u);
        }
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, u| *u > now);
        }
        if self.entries.len() >= self.capacity {
            let earliest = self
                .entries
                .iter()
                .min_by_key(|(_, u)| **u)
                .map(|(k, u)| (k.clone(), *u));
            return match earliest {
                Some((k, u)) if u < until => {
                    self.entries.remove(&k);
                    self.entries.insert(key, until);
                    Suppressed::EvictedEarliest { until, evicted: k }
                }
                _ => Suppressed::AtCapacity,
            };
        }
        self.entries.insert(key, until);
        Suppressed::Until(until)
    }

    /// When `key` is suppressed, until when; `None` when it may pass.
    #[must_use]
    pub fn check(&self, key: &K, now: UnixTime) -> Option<UnixTime> {
        self.entries.get(key).copied().filter(|u| *u > now)
    }

    /// Lifts a suppression early.
    pub fn lift(&mut self, key: &K) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Drops expired entries (optional: `suppress` purges when it needs room).
    pub fn purge(&mut self, now: UnixTime) {
        self.entries.retain(|_, u| *u > now);
    }
}
