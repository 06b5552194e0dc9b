//! A rate limiter shared by every gateway instance through Redis / Valkey: one Lua
//! script per check, so the count and the decision are one atomic step on the server
//! (never a `GET` then a `SET` from the client).
//!
//! It is the shared counterpart of `handoff_login::RateLimiter` (same policies: fixed
//! window, sliding window, token bucket; same rules, the caller's clock; a test holds the
//! two to the same decisions over a long request sequence): use the in-memory limiter
//! within one process and this one when several instances must share a limit.
//!
//! The limiter holds no connection: each check runs on the connection the caller passes
//! (`redis::Connection`, a pooled one, anything implementing [`redis::ConnectionLike`]).

use std::sync::LazyLock;

use handoff_core::UnixTime;
use redis::Script;

use crate::StoresError;

/// Longest prefix accepted, in bytes.
pub const MAX_PREFIX_BYTES: usize = 64;
/// Longest caller key accepted, in bytes (stored hex-encoded).
pub const MAX_KEY_BYTES: usize = 128;
/// Longest window, in seconds (1 day).
pub const MAX_WINDOW_SECS: u64 = 86_400;
/// Largest limit: a sliding window keeps one member per admitted request.
pub const MAX_LIMIT: u32 = 1_000_000;

/// `INCR` the counter of the current aligned window; the first increment sets its
/// expiry (`PEXPIRE` when the counter is 1), so a counter never outlives its window.
/// Returns the count after this request.
const FIXED_WINDOW: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

/// The scripts, each hashed once: a check sends `EVALSHA` (40 bytes of hash) and the
/// redis crate falls back to `EVAL` once when the server answers `NOSCRIPT` (after a
/// restart or a `SCRIPT FLUSH`).
static FIXED_WINDOW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FIXED_WINDOW));
static SLIDING_WINDOW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SLIDING_WINDOW));
static TOKEN_BUCKET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TOKEN_BUCKET));

/// Token bucket, the rules of `handoff_login::RatePolicy::TokenBucket`: a hash holds the
/// tokens left (`t`) and the instant of the last refill (`l`); a missing hash is a full
/// bucket. Whole periods elapsed since `l` add `refill` tokens each, up to `capacity`
/// (a full bucket restarts its period at `now`); a caller whose `now` lags `l` gets no
/// refill. Admits when a token is left (and takes it), else refuses with the instant the
/// next token comes. The hash expires once a bucket would be full again. Returns
/// `{admitted, tokens_left_or_0, retry_at_or_now}`.
const TOKEN_BUCKET: &str = r"
local now = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local refill = tonumber(ARGV[3])
local per = tonumber(ARGV[4])
local s = redis.call('HMGET', KEYS[1], 't', 'l')
local tokens = capacity
local last = now
if s[1] and s[2] then
  tokens = tonumber(s[1])
  last = tonumber(s[2])
end
if now > last then
  local periods = math.floor((now - last) / per)
  if periods > 0 then
    tokens = math.min(capacity, tokens + refill * periods)
    if tokens >= capacity then
      last = now
    else
      last = last + periods * per
    end
  end
end
if tokens < 1 then
  return {0, 0, math.max(last + per, now + 1)}
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 't', tokens, 'l', last)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, tokens, now}
";

/// Exact sliding window: one sorted-set member per admitted request, scored by the
/// second it was counted at. The key's clock never runs backwards: a request whose `now`
/// lags the latest instant seen for the key (instances' clocks differ slightly) is
/// counted at that latest instant, so the set always holds exactly the admissions of
/// `(t - window, t]` for the key's own time `t`. Drops members at or before `t - window`,
/// admits when fewer than `limit` remain (so the set never holds more than `limit`
/// members), and returns `{admitted, count, oldest, t}`. Members are made unique by a
/// per-key sequence kept, with the latest instant, in a small hash.
const SLIDING_WINDOW: &str = r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '0')
if last > now then now = last end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
redis.call('HSET', KEYS[2], 'last', now)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if n < limit then
  local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  redis.call('ZADD', KEYS[1], now, now .. ':' .. seq)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {1, n + 1, 0, now}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, n, tonumber(oldest[2]), now}
";

/// How many requests a key may make (the rules of `handoff_login::RatePolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisRatePolicy {
    /// At most `limit` per aligned window (`now / window_secs`); one counter per key and
    /// window. A burst straddling a window edge can reach twice the limit.
    FixedWindow {
        /// Requests per window.
        limit: u32,
        /// Window length in seconds.
        window_secs: u64,
    },
    /// At most `limit` within any `window_secs` consecutive seconds (exact, one-second
    /// resolution); at most `limit` sorted-set members per key.
    SlidingWindow {
        /// Requests per window.
        limit: u32,
        /// Window length in seconds.
        window_secs: u64,
    },
    /// A bucket of `capacity` tokens refilled by `refill` tokens every `per_secs` seconds:
    /// bursts up to `capacity`, then the refill rate (one small hash per key).
    TokenBucket {
        /// Bucket size (the largest burst).
        capacity: u32,
        /// Tokens added per period.
        refill: u32,
        /// Period length in seconds.
        per_secs: u64,
    },
}

/// What the shared limiter decided.
#[must_use = "a rate decision must be enforced"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisRateDecision {
    /// Let the request through.
    Allowed {
        /// Requests left in the window.
        remaining: u32,
        /// The instant the request was counted at: the caller's `now`, or the latest
        /// instant already seen for the key when the caller's clock lags behind it
        /// (sliding window).
        counted_at: UnixTime,
    },
    /// Refuse it (HTTP 429 with `Retry-After`).
    Limited {
        /// The earliest instant a request of this key may pass again.
        retry_after: UnixTime,
    },
}

impl RedisRateDecision {
    /// Whether the request may pass.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// A rate limiter whose counters live in Redis / Valkey, atomic across instances.
///
/// Every check is one `EVALSHA` of a short Lua script (Redis runs a script without
/// interleaving any other command; the script itself is sent again only when the server
/// lost it), with the caller's `now`: the server's clock is never
/// read, so instances must share a clock within a second (NTP). Keys expire with their
/// window. A connection or server error is an `Err`: refuse the request (fail closed).
/// Under `maxmemory` with an evicting policy, counters could be evicted early and let
/// more through; run the server with `maxmemory-policy noeviction`.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    policy: RedisRatePolicy,
    prefix: String,
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

impl RedisRateLimiter {
    /// A limiter for `policy` whose keys start with `prefix` (1 to 64 bytes of ASCII
    /// letters, digits and `:_-./`; give each limit its own).
    ///
    /// # Errors
    /// [`StoresError::Config`] for a bad prefix, a zero or oversize limit, or a window
    /// outside 1 s to 1 day.
    pub fn new(policy: RedisRatePolicy, prefix: impl Into<String>) -> Result<Self, StoresError> {
        let prefix = prefix.into();
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_BYTES {
            return Err(StoresError::Config("key prefix must be 1 to 64 bytes"));
        }
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_-./".contains(&b))
        {
            return Err(StoresError::Config(
                "key prefix may hold only ASCII letters, digits and :_-./",
            ));
        }
        let (limit, window_secs) = match policy {
            RedisRatePolicy::FixedWindow { limit, window_secs }
            | RedisRatePolicy::SlidingWindow { limit, window_secs } => (limit, window_secs),
            RedisRatePolicy::TokenBucket {
                capacity,
                refill,
                per_secs,
            } => {
                if refill == 0 || refill > MAX_LIMIT {
                    return Err(StoresError::Config(
                        "token bucket refill must be 1 to 1 000 000",
                    ));
                }
                (capacity, per_secs)
            }
        };
        if limit == 0 || limit > MAX_LIMIT {
            return Err(StoresError::Config(
                "limit (or bucket capacity) must be 1 to 1 000 000",
            ));
        }
        if window_secs == 0 || window_secs > MAX_WINDOW_SECS {
            return Err(StoresError::Config("window or period must be 1 s to 1 day"));
        }
        Ok(Self { policy, prefix })
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> RedisRatePolicy {
        self.policy
    }

    /// The Redis key that holds `key`'s counter (fixed window: the one of the window
    /// containing `now`; sliding window: the sorted set; token bucket: the hash).
    ///
    /// # Errors
    /// [`StoresError::Config`] for an empty or oversize key.
    pub fn redis_key(&self, key: &[u8], now: UnixTime) -> Result<String, StoresError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(StoresError::Config("rate-limit key must be 1 to 128 bytes"));
        }
        // The hash tag keeps a key's members in one cluster slot.
        Ok(match self.policy {
            RedisRatePolicy::FixedWindow { window_secs, .. } => format!(
                "{}{{{}}}:{}",
                self.prefix,
                hex(key),
                now.as_secs() / window_secs
            ),
            RedisRatePolicy::SlidingWindow { .. } => {
                format!("{}{{{}}}:z", self.prefix, hex(key))
            }
            RedisRatePolicy::TokenBucket { .. } => {
                format!("{}{{{}}}:b", self.prefix, hex(key))
            }
        })
    }

    /// Counts one request of `key` at `now` and decides, atomically on the server.
    ///
    /// # Errors
    /// [`StoresError::Config`] for a bad key; [`StoresError::Backend`] when the server
    /// fails or answers something unexpected (refuse the request).
    pub fn check<C: redis::ConnectionLike>(
        &self,
        conn: &mut C,
        key: &[u8],
        now: UnixTime,
    ) -> Result<RedisRateDecision, StoresError> {
        let reply = self.prepare(key, now)?.invoke(conn).map_err(backend)?;
        self.decide(reply, now)
    }

    /// As [`Self::check`], on an async connection (the redis crate's
    /// `MultiplexedConnection` or `ConnectionManager`, feature `redis-async`): the same
    /// script, the same decision, without blocking the runtime.
    ///
    /// # Errors
    /// As [`Self::check`].
    #[cfg(feature = "redis-async")]
    pub async fn check_async<C: redis::aio::ConnectionLike + Send>(
        &self,
        conn: &mut C,
        key: &[u8],
        now: UnixTime,
    ) -> Result<RedisRateDecision, StoresError> {
        let call = self.prepare(key, now)?;
        let reply = call.invoke_async(conn).await.map_err(backend)?;
        self.decide(reply, now)
    }

    /// The script call for one request of `key` at `now`.
    fn prepare(
        &self,
        key: &[u8],
        now: UnixTime,
    ) -> Result<redis::ScriptInvocation<'static>, StoresError> {
        let k = self.redis_key(key, now)?;
        Ok(match self.policy {
            RedisRatePolicy::FixedWindow { window_secs, .. } => {
                // Lives until its window ends, plus a second of slack for clock skew.
                let end = window_end(now, window_secs);
                let ttl_ms = (end - now.as_secs() + 1).saturating_mul(1000);
                let mut invocation = FIXED_WINDOW_SCRIPT.prepare_invoke();
                invocation.key(&k).arg(ttl_ms);
                invocation
            }
            RedisRatePolicy::SlidingWindow { limit, window_secs } => {
                let ttl_ms = (window_secs + 1).saturating_mul(1000);
                let mut invocation = SLIDING_WINDOW_SCRIPT.prepare_invoke();
                invocation
                    .key(&k)
                    .key(format!("{k}:meta"))
                    .arg(now.as_secs())
                    .arg(window_secs)
                    .arg(limit)
                    .arg(ttl_ms);
                invocation
            }
            RedisRatePolicy::TokenBucket {
                capacity,
                refill,
                per_secs,
            } => {
                // A bucket is full again (the same as no hash) after this long.
                let refill_secs = u64::from(capacity.div_ceil(refill)).saturating_mul(per_secs);
                let ttl_ms = refill_secs.saturating_add(1).saturating_mul(1000);
                let mut invocation = TOKEN_BUCKET_SCRIPT.prepare_invoke();
                invocation
                    .key(&k)
                    .arg(now.as_secs())
                    .arg(capacity)
                    .arg(refill)
                    .arg(per_secs)
                    .arg(ttl_ms);
                invocation
            }
        })
    }

    /// The decision the script's reply carries.
    fn decide(&self, reply: redis::Value, now: UnixTime) -> Result<RedisRateDecision, StoresError> {
        let unexpected =
            || StoresError::Backend("unexpected reply from the rate-limit script".into());
        match self.policy {
            RedisRatePolicy::FixedWindow { limit, window_secs } => {
                let n: u64 = redis::from_redis_value(reply).map_err(|_| unexpected())?;
                if n <= u64::from(limit) {
                    Ok(RedisRateDecision::Allowed {
                        remaining: limit - u32::try_from(n).unwrap_or(limit),
                        counted_at: now,
                    })
                } else {
                    Ok(RedisRateDecision::Limited {
                        retry_after: UnixTime::from_secs(window_end(now, window_secs)),
                    })
                }
            }
            RedisRatePolicy::SlidingWindow { limit, window_secs } => {
                let r: (u8, u64, u64, u64) =
                    redis::from_redis_value(reply).map_err(|_| unexpected())?;
                match r {
                    (1, n, _, at) => Ok(RedisRateDecision::Allowed {
                        remaining: limit.saturating_sub(u32::try_from(n).unwrap_or(limit)),
                        counted_at: UnixTime::from_secs(at),
                    }),
                    (0, _, oldest, at) => Ok(RedisRateDecision::Limited {
                        retry_after: UnixTime::from_secs(
                            oldest.saturating_add(window_secs).max(at + 1),
                        ),
                    }),
                    _ => Err(unexpected()),
                }
            }
            RedisRatePolicy::TokenBucket { .. } => {
                let r: (u8, u64, u64) = redis::from_redis_value(reply).map_err(|_| unexpected())?;
                match r {
                    (1, left, at) => Ok(RedisRateDecision::Allowed {
                        remaining: u32::try_from(left).unwrap_or(0),
                        counted_at: UnixTime::from_secs(at),
                    }),
                    (0, _, at) => Ok(RedisRateDecision::Limited {
                        retry_after: UnixTime::from_secs(at),
                    }),
                    _ => Err(unexpected()),
                }
            }
        }
    }
}

/// The end of the aligned window that contains `now`.
fn window_end(now: UnixTime, window_secs: u64) -> u64 {
    (now.as_secs() / window_secs + 1).saturating_mul(window_secs)
}

fn backend(e: redis::RedisError) -> StoresError {
    StoresError::Backend(format!("redis: {e}"))
}
