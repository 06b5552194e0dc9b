//! The host keyring: one active signing key, an optional next key published ahead of its
//! switch, and retiring keys that stay published until every token they signed has
//! expired.
//!
//! # Rotation playbook
//!
//! Each step is one call; persist the keyring ([`Keyring::to_key_file`]) after each step
//! (every step returns a [`KeyringChange`] marked `#[must_use]` to remind you).
//!
//! 1. **Generate** a new key: [`HostIssuerKeys::generate`].
//! 2. **Publish both**: [`Keyring::publish_next`] adds the new key to the JWKS without
//!    signing with it yet.
//! 3. **Switch signing** once every verifier has refetched the JWKS (at least
//!    [`Keyring::max_cache_age`] after step 2): [`Keyring::activate_next`]. The old key
//!    starts retiring: it stays published for the longest token lifetime plus leeway.
//! 4. **Drop the old key** after that: [`Keyring::prune`] (the JWKS already leaves it out
//!    once its time is up, so a late prune is harmless).
//!
//! [`Keyring::rotate`] does steps 2 and 3 at once, for verifiers that refetch on an unknown
//! `kid` (all of this family's verifiers do).

use core::fmt;

use handoff_core::jose_jwk::Jwk;
use handoff_core::{Jwks, UnixTime};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::clip;
use crate::mint::{MAX_TTL_SECS, MIN_TTL_SECS};
use crate::{Error, HostClaims, HostIssuerKeys, MintedHostJwt, mint_host_jwt};

/// Most keys a keyring holds (active, next and retiring together).
pub const MAX_KEYS: usize = 16;
/// Largest keyring file accepted, in bytes.
pub const MAX_KEYRING_FILE_BYTES: usize = 1024 * 1024;
/// Default clock leeway granted by verifiers, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;
/// Largest leeway a keyring accepts, in seconds (the family's verifier maximum).
pub const MAX_LEEWAY_SECS: u64 = 300;
/// Default upper bound of the JWKS `Cache-Control: max-age`, in seconds.
pub const DEFAULT_MAX_CACHE_AGE_SECS: u64 = 300;
/// The `format` member of a keyring file.
pub const KEYRING_FORMAT: &str = "host-issuer-keyring";
/// The `version` of the keyring file format written by this crate.
pub const KEYRING_VERSION: u32 = 1;

/// Where a key stands in the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyStatus {
    /// Signs new tokens; published.
    Active,
    /// Published ahead of its switch, does not sign yet.
    Next,
    /// No longer signs; published until `not_after`, then dropped.
    Retiring {
        /// When it stopped signing.
        retired_at: UnixTime,
        /// The last instant it is published: `retired_at` + longest token lifetime +
        /// leeway, unless set explicitly.
        not_after: UnixTime,
    },
}

/// One key of the ring and its rotation state.
pub struct KeyEntry {
    key: HostIssuerKeys,
    created_at: UnixTime,
    status: KeyStatus,
}

impl KeyEntry {
    /// The key.
    #[must_use]
    pub fn key(&self) -> &HostIssuerKeys {
        &self.key
    }
    /// When it joined the ring.
    #[must_use]
    pub fn created_at(&self) -> UnixTime {
        self.created_at
    }
    /// Its status.
    #[must_use]
    pub fn status(&self) -> KeyStatus {
        self.status
    }
    /// Whether the JWKS carries it at `now`.
    #[must_use]
    pub fn is_published(&self, now: UnixTime) -> bool {
        match self.status {
            KeyStatus::Active | KeyStatus::Next => true,
            KeyStatus::Retiring { not_after, .. } => now <= not_after,
        }
    }
}

impl fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEntry")
            .field("key", &self.key)
            .field("created_at", &self.created_at)
            .field("status", &self.status)
            .finish()
    }
}

/// What a keyring operation changed. Persist the keyring afterwards.
#[must_use = "persist the keyring (Keyring::to_key_file) so the change survives a restart"]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyringChange {
    published: Option<String>,
    activated: Option<String>,
    retired: Option<(String, UnixTime)>,
    dropped: Vec<String>,
}

impl KeyringChange {
    /// The `kid` newly published, if any.
    #[must_use]
    pub fn published(&self) -> Option<&str> {
        self.published.as_deref()
    }
    /// The `kid` that now signs, if it changed.
    #[must_use]
    pub fn activated(&self) -> Option<&str> {
        self.activated.as_deref()
    }
    /// The `kid` that stopped signing, and the last instant it stays published.
    #[must_use]
    pub fn retired(&self) -> Option<(&str, UnixTime)> {
        self.retired.as_ref().map(|(k, t)| (k.as_str(), *t))
    }
    /// The `kid`s dropped from the ring.
    #[must_use]
    pub fn dropped(&self) -> &[String] {
        &self.dropped
    }
    /// Whether anything changed (if not, there is nothing to persist).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The public key set to serve, with the HTTP headers a caller needs. No server inside:
/// hand these to your own framework.
#[must_use = "serve the body with its headers"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksResponse {
    body: Vec<u8>,
    max_age: u64,
}

impl JwksResponse {
    /// The `Content-Type` of the body.
    pub const CONTENT_TYPE: &'static str = "application/json";

    /// The JWKS document, public members only.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// Consumes into the body bytes.
    #[must_use]
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
    /// `application/json`.
    #[must_use]
    pub fn content_type(&self) -> &'static str {
        Self::CONTENT_TYPE
    }
    /// The `max-age`, in seconds: at most the keyring's cache bound, and never past the
    /// instant the next retiring key leaves the set.
    #[must_use]
    pub fn max_age(&self) -> u64 {
        self.max_age
    }
    /// `public, max-age=N`.
    #[must_use]
    pub fn cache_control(&self) -> String {
        format!("public, max-age={}", self.max_age)
    }
    /// Both headers as (name, value) pairs.
    #[must_use]
    pub fn headers(&self) -> [(&'static str, String); 2] {
        [
            ("Content-Type", Self::CONTENT_TYPE.to_owned()),
            ("Cache-Control", self.cache_control()),
        ]
    }
}

/// One active signing key plus the keys still (or already) published. See the
/// [module docs](self) for the rotation playbook.
pub struct Keyring {
    entries: Vec<KeyEntry>,
    max_token_lifetime: u64,
    leeway: u64,
    max_cache_age: u64,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("entries", &self.entries)
            .field("max_token_lifetime", &self.max_token_lifetime)
            .field("leeway", &self.leeway)
            .field("max_cache_age", &self.max_cache_age)
            .finish()
    }
}

impl Keyring {
    /// A ring with `active` as its signing key, longest token lifetime 3600 s, leeway
    /// 60 s and JWKS cache bound 300 s.
    #[must_use]
    pub fn new(active: HostIssuerKeys, now: UnixTime) -> Self {
        Self {
            entries: vec![KeyEntry {
                key: active,
                created_at: now,
                status: KeyStatus::Active,
            }],
            max_token_lifetime: MAX_TTL_SECS,
            leeway: DEFAULT_LEEWAY_SECS,
            max_cache_age: DEFAULT_MAX_CACHE_AGE_SECS,
        }
    }

    /// Sets the longest lifetime of tokens this ring mints (1 to 3600 s). Retiring keys
    /// stay published this long plus the leeway.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] out of range.
    pub fn with_max_token_lifetime(mut self, secs: u64) -> Result<Self, Error> {
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&secs) {
            return Err(Error::input(
                "max_token_lifetime",
                format!("{secs} s; use {MIN_TTL_SECS} to {MAX_TTL_SECS} seconds"),
            ));
        }
        self.max_token_lifetime = secs;
        Ok(self)
    }

    /// Sets the clock leeway verifiers grant (0 to 300 s, default 60).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] out of range.
    pub fn with_leeway(mut self, secs: u64) -> Result<Self, Error> {
        if secs > MAX_LEEWAY_SECS {
            return Err(Error::input(
                "leeway",
                format!("{secs} s; use 0 to {MAX_LEEWAY_SECS} seconds"),
            ));
        }
        self.leeway = secs;
        Ok(self)
    }

    /// Sets the upper bound of the JWKS `max-age` (1 to 86400 s, default 300).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] out of range.
    pub fn with_max_cache_age(mut self, secs: u64) -> Result<Self, Error> {
        if !(1..=86_400).contains(&secs) {
            return Err(Error::input(
                "max_cache_age",
                format!("{secs} s; use 1 to 86400 seconds"),
            ));
        }
        self.max_cache_age = secs;
        Ok(self)
    }

    /// The longest token lifetime, in seconds.
    #[must_use]
    pub fn max_token_lifetime(&self) -> u64 {
        self.max_token_lifetime
    }
    /// The leeway, in seconds.
    #[must_use]
    pub fn leeway(&self) -> u64 {
        self.leeway
    }
    /// The JWKS cache bound, in seconds.
    #[must_use]
    pub fn max_cache_age(&self) -> u64 {
        self.max_cache_age
    }

    /// How long a key stays published after it stops signing by default: the longest
    /// token lifetime plus the leeway.
    #[must_use]
    pub fn retire_after(&self) -> u64 {
        self.max_token_lifetime.saturating_add(self.leeway)
    }

    /// The signing key.
    #[must_use]
    pub fn active(&self) -> &HostIssuerKeys {
        // The constructors and the file loader guarantee exactly one active entry.
        match self.entries.iter().find(|e| e.status == KeyStatus::Active) {
            Some(e) => &e.key,
            None => &self.entries[0].key,
        }
    }

    /// The key published ahead of its switch, if any.
    #[must_use]
    pub fn next(&self) -> Option<&HostIssuerKeys> {
        self.entries
            .iter()
            .find(|e| e.status == KeyStatus::Next)
            .map(|e| &e.key)
    }

    /// Every entry: active, next and retiring (including retiring keys whose time is up
    /// but that [`Self::prune`] has not dropped yet).
    #[must_use]
    pub fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// Mints a host JWT with the active key. The lifetime must not exceed
    /// [`Self::max_token_lifetime`], so that retiring keys outlive their tokens.
    ///
    /// # Errors
    /// As [`mint_host_jwt`], and [`Error::InvalidInput`] for a ttl over the ring's maximum.
    pub fn mint<R: CryptoRng + ?Sized>(
        &self,
        claims: &HostClaims,
        now: UnixTime,
        rng: &mut R,
    ) -> Result<MintedHostJwt, Error> {
        claims.validate()?;
        if claims.ttl > self.max_token_lifetime {
            return Err(Error::input(
                "ttl",
                format!(
                    "{} s exceeds this keyring's longest token lifetime of {} s; lower the ttl",
                    claims.ttl, self.max_token_lifetime
                ),
            ));
        }
        mint_host_jwt(claims, self.active(), now, rng)
    }

    fn check_new(&self, key: &HostIssuerKeys) -> Result<(), Error> {
        if self.entries.iter().any(|e| e.key.kid() == key.kid()) {
            return Err(Error::Keyring(format!(
                "kid {:?} is already in the ring; give the new key another kid",
                clip(key.kid())
            )));
        }
        if self.entries.len() >= MAX_KEYS {
            return Err(Error::Keyring(format!(
                "the ring already holds {MAX_KEYS} keys; call prune (or wait for retiring keys to expire) first"
            )));
        }
        Ok(())
    }

    /// Playbook step 2: publishes `key` next to the active key without signing with it.
    ///
    /// # Errors
    /// [`Error::Keyring`] when a next key is already staged, the `kid` is taken, or the
    /// ring is full.
    pub fn publish_next(
        &mut self,
        key: HostIssuerKeys,
        now: UnixTime,
    ) -> Result<KeyringChange, Error> {
        if let Some(n) = self.next() {
            return Err(Error::Keyring(format!(
                "key {:?} is already published as next; activate it first",
                clip(n.kid())
            )));
        }
        self.check_new(&key)?;
        let kid = key.kid().to_owned();
        self.entries.push(KeyEntry {
            key,
            created_at: now,
            status: KeyStatus::Next,
        });
        Ok(KeyringChange {
            published: Some(kid),
            ..KeyringChange::default()
        })
    }

    /// Playbook step 3: the next key starts signing and the active one starts retiring
    /// (published for [`Self::retire_after`] more seconds).
    ///
    /// Refused until [`Self::max_cache_age`] has passed since the next key was published,
    /// because verifiers may still hold a cached JWKS without it.
    ///
    /// # Errors
    /// [`Error::Keyring`] when no key is staged or it was published too recently.
    pub fn activate_next(&mut self, now: UnixTime) -> Result<KeyringChange, Error> {
        let Some(idx) = self
            .entries
            .iter()
            .position(|e| e.status == KeyStatus::Next)
        else {
            return Err(Error::Keyring(
                "no next key is published; call publish_next first (or rotate to switch at once)"
                    .into(),
            ));
        };
        let ready = self.entries[idx]
            .created_at
            .saturating_add(self.max_cache_age);
        if now < ready {
            return Err(Error::Keyring(format!(
                "the next key was published at {}; verifiers may cache the old key set until {ready}: activate at or after {ready}, or rotate to switch at once",
                self.entries[idx].created_at
            )));
        }
        let retire_after = self.retire_after();
        Ok(self.switch_to(idx, now, retire_after))
    }

    fn switch_to(&mut self, idx: usize, now: UnixTime, retire_after: u64) -> KeyringChange {
        let not_after = now.saturating_add(retire_after);
        let mut change = KeyringChange::default();
        for e in &mut self.entries {
            if e.status == KeyStatus::Active {
                e.status = KeyStatus::Retiring {
                    retired_at: now,
                    not_after,
                };
                change.retired = Some((e.key.kid().to_owned(), not_after));
            }
        }
        self.entries[idx].status = KeyStatus::Active;
        change.activated = Some(self.entries[idx].key.kid().to_owned());
        change
    }

    /// Steps 2 and 3 at once: `key` signs from `now` on, and the previous active key stays
    /// published for [`Self::retire_after`] seconds. A staged next key stays staged.
    ///
    /// # Errors
    /// [`Error::Keyring`] when the `kid` is taken or the ring is full.
    pub fn rotate(&mut self, key: HostIssuerKeys, now: UnixTime) -> Result<KeyringChange, Error> {
        let after = self.retire_after();
        self.rotate_with_retire_after(key, now, after)
    }

    /// As [`Self::rotate`], keeping the previous key published for `retire_after` seconds,
    /// which must be at least [`Self::retire_after`] (tokens it signed must keep verifying).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a too-short `retire_after`; as [`Self::rotate`].
    pub fn rotate_with_retire_after(
        &mut self,
        key: HostIssuerKeys,
        now: UnixTime,
        retire_after: u64,
    ) -> Result<KeyringChange, Error> {
        if retire_after < self.retire_after() {
            return Err(Error::input(
                "retire_after",
                format!(
                    "{retire_after} s would drop the old key while tokens it signed are still valid; use at least {} s (longest token lifetime {} s + leeway {} s)",
                    self.retire_after(),
                    self.max_token_lifetime,
                    self.leeway
                ),
            ));
        }
        self.check_new(&key)?;
        let kid = key.kid().to_owned();
        self.entries.push(KeyEntry {
            key,
            created_at: now,
            status: KeyStatus::Next,
        });
        let idx = self.entries.len() - 1;
        let mut change = self.switch_to(idx, now, retire_after);
        change.published = Some(kid);
        Ok(change)
    }

    /// Playbook step 4: drops the retiring keys whose time is up (`now > not_after`).
    pub fn prune(&mut self, now: UnixTime) -> KeyringChange {
        let mut dropped = Vec::new();
        self.entries.retain(|e| {
            let keep = e.is_published(now);
            if !keep {
                dropped.push(e.key.kid().to_owned());
            }
            keep
        });
        KeyringChange {
            dropped,
            ..KeyringChange::default()
        }
    }

    /// The public key set at `now`: active first, then next, then the retiring keys still
    /// within their time. Public members only.
    #[must_use]
    pub fn jwks(&self, now: UnixTime) -> Jwks {
        let mut set = Jwks::new();
        for status in [0u8, 1, 2] {
            for e in &self.entries {
                let rank = match e.status {
                    KeyStatus::Active => 0,
                    KeyStatus::Next => 1,
                    KeyStatus::Retiring { .. } => 2,
                };
                if rank == status && e.is_published(now) {
                    // Host keys are asymmetric, which is all `push` checks.
                    let _ = set.push(e.key.verifying_key());
                }
            }
        }
        set
    }

    /// The JWKS body and its headers. `max-age` is the cache bound, lowered so that no
    /// verifier keeps the set past the moment the next retiring key leaves it.
    pub fn jwks_response(&self, now: UnixTime) -> JwksResponse {
        JwksResponse {
            body: self.jwks(now).to_json().into_bytes(),
            max_age: self.jwks_max_age(now),
        }
    }

    /// The `max-age` of the JWKS at `now` (as in [`Self::jwks_response`]), without
    /// rendering the body.
    #[must_use]
    pub fn jwks_max_age(&self, now: UnixTime) -> u64 {
        match self.jwks_stable_until(now) {
            Some(until) => self.max_cache_age.min(until.secs_since(now)),
            None => self.max_cache_age,
        }
    }

    /// The last instant the published set stays what it is at `now`: the earliest
    /// `not_after` of the retiring keys still published, or `None` when no retiring key
    /// will leave (only a keyring change alters the set then). A server may reuse the body
    /// rendered at `now` until then.
    #[must_use]
    pub fn jwks_stable_until(&self, now: UnixTime) -> Option<UnixTime> {
        self.entries
            .iter()
            .filter_map(|e| match e.status {
                KeyStatus::Retiring { not_after, .. } if now <= not_after => Some(not_after),
                _ => None,
            })
            .min()
    }

    /// The keyring file (JSON): settings and every key with its private JWK and status.
    /// Holds private material: store it with owner-only permissions.
    #[must_use]
    pub fn to_key_file(&self) -> Zeroizing<String> {
        let file = KeyringFile {
            format: KEYRING_FORMAT.to_owned(),
            version: KEYRING_VERSION,
            max_token_lifetime: self.max_token_lifetime,
            leeway: self.leeway,
            max_cache_age: self.max_cache_age,
            keys: self
                .entries
                .iter()
                .map(|e| {
                    let (status, retired_at, not_after) = match e.status {
                        KeyStatus::Active => (FileStatus::Active, None, None),
                        KeyStatus::Next => (FileStatus::Next, None, None),
                        KeyStatus::Retiring {
                            retired_at,
                            not_after,
                        } => (FileStatus::Retiring, Some(retired_at), Some(not_after)),
                    };
                    FileEntry {
                        status,
                        created_at: e.created_at,
                        retired_at,
                        not_after,
                        jwk: e.key.signing_key().to_private_jwk(),
                    }
                })
                .collect(),
        };
        // Sized exactly before writing: a keyring of 16 RSA-4096 keys is over 50 KiB,
        // and a growing buffer would leave unzeroized copies of private keys behind.
        crate::error::secret_json_pretty(&file)
    }

    /// Reads a keyring file written by [`Self::to_key_file`], checking it whole: format and
    /// version, settings in range, exactly one active key, at most one next key, unique
    /// `kid`s, host algorithms only.
    ///
    /// # Errors
    /// [`Error::KeyFile`] saying what is wrong with the file.
    pub fn from_key_file(json: &str) -> Result<Self, Error> {
        if json.len() > MAX_KEYRING_FILE_BYTES {
            return Err(Error::KeyFile(format!(
                "{} bytes, over the {MAX_KEYRING_FILE_BYTES}-byte cap; is this a keyring file?",
                json.len()
            )));
        }
        let file: KeyringFile =
            serde_json::from_str(json).map_err(|e| Error::KeyFile(not_a_keyring(json, &e)))?;
        if file.format != KEYRING_FORMAT {
            return Err(Error::KeyFile(format!(
                "format {:?} where {KEYRING_FORMAT:?} is expected",
                clip(&file.format)
            )));
        }
        if file.version != KEYRING_VERSION {
            return Err(Error::KeyFile(format!(
                "version {} is not supported (this build reads version {KEYRING_VERSION}); upgrade host-issuer",
                file.version
            )));
        }
        if file.keys.is_empty() || file.keys.len() > MAX_KEYS {
            return Err(Error::KeyFile(format!(
                "{} keys; a keyring holds 1 to {MAX_KEYS}",
                file.keys.len()
            )));
        }
        let mut entries = Vec::with_capacity(file.keys.len());
        for (i, fe) in file.keys.iter().enumerate() {
            let key = HostIssuerKeys::from_private_jwk(&fe.jwk)
                .map_err(|e| Error::KeyFile(format!("key #{i}: {e}")))?;
            let status = match (fe.status, fe.retired_at, fe.not_after) {
                (FileStatus::Active, None, None) => KeyStatus::Active,
                (FileStatus::Next, None, None) => KeyStatus::Next,
                (FileStatus::Retiring, Some(retired_at), Some(not_after)) => KeyStatus::Retiring {
                    retired_at,
                    not_after,
                },
                (FileStatus::Retiring, _, _) => {
                    return Err(Error::KeyFile(format!(
                        "key #{i} is retiring but lacks retired_at or not_after"
                    )));
                }
                _ => {
                    return Err(Error::KeyFile(format!(
                        "key #{i}: only retiring keys carry retired_at and not_after"
                    )));
                }
            };
            if entries.iter().any(|e: &KeyEntry| e.key.kid() == key.kid()) {
                return Err(Error::KeyFile(format!(
                    "kid {:?} appears twice; kids must be unique",
                    clip(key.kid())
                )));
            }
            entries.push(KeyEntry {
                key,
                created_at: fe.created_at,
                status,
            });
        }
        let count = |s: KeyStatus| entries.iter().filter(|e| e.status == s).count();
        if count(KeyStatus::Active) != 1 {
            return Err(Error::KeyFile(format!(
                "{} active keys; a keyring has exactly one",
                count(KeyStatus::Active)
            )));
        }
        if count(KeyStatus::Next) > 1 {
            return Err(Error::KeyFile("more than one next key".into()));
        }
        Self {
            entries,
            max_token_lifetime: MAX_TTL_SECS,
            leeway: DEFAULT_LEEWAY_SECS,
            max_cache_age: DEFAULT_MAX_CACHE_AGE_SECS,
        }
        .with_max_token_lifetime(file.max_token_lifetime)
        .and_then(|k| k.with_leeway(file.leeway))
        .and_then(|k| k.with_max_cache_age(file.max_cache_age))
        .map_err(|e| Error::KeyFile(e.to_string()))
    }

    /// The public JWKs of the published keys (convenience for callers building their own
    /// documents).
    ///
    /// # Errors
    /// Only if a key cannot be published (host keys always can).
    pub fn public_jwks(&self, now: UnixTime) -> Result<Vec<Jwk>, Error> {
        self.jwks(now)
            .keys()
            .iter()
            .map(|k| k.to_public_jwk().map_err(Error::from))
            .collect()
    }
}

/// Says what a file that is not a keyring looks like, and what a keyring holds.
fn not_a_keyring(text: &str, err: &serde_json::Error) -> String {
    const WANT: &str = "a keyring file is the JSON written by `host-issuer generate-keys` (format \"host-issuer-keyring\", settings, and the private JWK of every key)";
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return format!("the file is empty; {WANT}");
    }
    if trimmed.starts_with("-----BEGIN") {
        return format!(
            "this is a PEM file, not a keyring; {WANT}; import a PEM key with the library (HostIssuerKeys::from_pem)"
        );
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        if map.contains_key("keys") && !map.contains_key("format") {
            return format!(
                "this is a public JWKS (a \"keys\" array without private members), not a keyring: it cannot sign; {WANT}"
            );
        }
        if map.contains_key("kty") {
            return format!("this is a single JWK, not a keyring; {WANT}");
        }
    }
    format!("not a keyring file ({}); {WANT}", clip(&err.to_string()))
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FileStatus {
    Active,
    Next,
    Retiring,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    status: FileStatus,
    created_at: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<UnixTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_after: Option<UnixTime>,
    jwk: Jwk,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    format: String,
    version: u32,
    max_token_lifetime: u64,
    leeway: u64,
    max_cache_age: u64,
    keys: Vec<FileEntry>,
}
