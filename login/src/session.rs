//! Session tokens with roles: the family's access tokens (`at+jwt`) carrying the
//! caller's claims, and the admin allow-list decision.

use core::fmt;
use std::collections::BTreeSet;

use handoff_core::jws::{self, SignHeader};
use handoff_core::{KeySource, SigningKey, UnixTime, b64};
use handoff_verify::{
    ACCESS_TOKEN_TYP, AccessClaims, MAX_ACCESS_TTL_SECS, TokenKind, VerifiedToken, Verifier,
    VerifyError,
};
use rand_core::CryptoRng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::LoginError;
use crate::id_token::IdToken;

/// Claim names the caller's claims may not use: the registered claims and those that
/// tell the family's token kinds apart.
pub const RESERVED_CLAIMS: [&str; 15] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "cnf",
    "host_tenant_id",
    "htm",
    "htu",
    "ath",
    "typ",
];

/// Largest serialized caller-claims object, in bytes.
pub const MAX_EXTRA_CLAIMS_BYTES: usize = 4096;

/// A minted session token: a bearer credential, so `Debug` does not print it.
#[must_use = "a minted session token must be handed to the app"]
#[derive(Clone)]
pub struct SessionToken {
    token: String,
    jti: String,
    expires_at: UnixTime,
}

impl SessionToken {
    /// The compact JWT.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.token
    }
    /// Its `jti`.
    #[must_use]
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// Its `exp`.
    #[must_use]
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionToken")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn session_err(e: impl fmt::Display) -> LoginError {
    LoginError::Session(e.to_string())
}

/// Mints an access token of the family (`typ` `at+jwt`, RFC 9068 claims as
/// `handoff_verify::mint_access_token` writes them) with the caller's claims `extra`
/// (for example `{"roles": ["admin"]}`) added at the top level.
///
/// # Errors
/// [`LoginError::Session`] when `extra` is not a JSON object, uses a reserved claim
/// name, is over [`MAX_EXTRA_CLAIMS_BYTES`], or the base claims break the access-token
/// rules (empty values, no audience, lifetime 0 or over an hour).
pub fn mint_session_token<C: Serialize, R: CryptoRng + ?Sized>(
    claims: &AccessClaims,
    extra: &C,
    key: &SigningKey,
    now: UnixTime,
    rng: &mut R,
) -> Result<SessionToken, LoginError> {
    let extra = match serde_json::to_value(extra).map_err(session_err)? {
        Value::Object(m) => m,
        _ => {
            return Err(LoginError::Session(
                "caller claims must be a JSON object".into(),
            ));
        }
    };
    if let Some(k) = extra.keys().find(|k| RESERVED_CLAIMS.contains(&k.as_str())) {
        return Err(LoginError::Session(format!(
            "caller claim {k:?} is reserved; rename it"
        )));
    }
    if serde_json::to_vec(&extra).map_err(session_err)?.len() > MAX_EXTRA_CLAIMS_BYTES {
        return Err(LoginError::Session("caller claims over 4096 bytes".into()));
    }
    for (v, what) in [
        (&claims.iss, "iss"),
        (&claims.sub, "sub"),
        (&claims.client_id, "client_id"),
    ] {
        if v.is_empty() || v.len() > 1024 {
            return Err(LoginError::Session(format!(
                "{what} must be 1 to 1024 bytes"
            )));
        }
    }
    if claims.aud.is_empty() || claims.aud.iter().any(|a| a.is_empty() || a.len() > 1024) {
        return Err(LoginError::Session(
            "a session token needs 1 or more audiences of 1 to 1024 bytes".into(),
        ));
    }
    if claims.ttl_secs == 0 || claims.ttl_secs > MAX_ACCESS_TTL_SECS {
        return Err(LoginError::Session("lifetime must be 1 to 3600 s".into()));
    }
    let mut jti_bytes = [0u8; 16];
    rng.fill_bytes(&mut jti_bytes);
    let jti = b64::encode(&jti_bytes);
    let exp = now.saturating_add(claims.ttl_secs);
    let mut m = Map::new();
    m.insert("iss".into(), claims.iss.clone().into());
    m.insert("sub".into(), claims.sub.clone().into());
    m.insert(
        "aud".into(),
        match claims.aud.as_slice() {
            [one] => one.clone().into(),
            many => many.to_vec().into(),
        },
    );
    m.insert("exp".into(), exp.as_secs().into());
    m.insert("iat".into(), now.as_secs().into());
    m.insert("jti".into(), jti.clone().into());
    m.insert("client_id".into(), claims.client_id.clone().into());
    if let Some(s) = &claims.scope {
        m.insert("scope".into(), s.clone().into());
    }
    if let Some(t) = &claims.jkt {
        m.insert("cnf".into(), serde_json::json!({ "jkt": t.to_base64url() }));
    }
    m.extend(extra);
    let payload = serde_json::to_vec(&m).map_err(session_err)?;
    let header = SignHeader {
        typ: Some(ACCESS_TOKEN_TYP),
        ..SignHeader::default()
    };
    let token = jws::sign(key, &header, &payload, rng).map_err(session_err)?;
    Ok(SessionToken {
        token,
        jti,
        expires_at: exp,
    })
}

/// Verifies session tokens presented as bearer tokens into the caller's type.
#[derive(Debug, Clone)]
pub struct SessionVerifier {
    verifier: Verifier,
}

impl SessionVerifier {
    /// Wraps an access-token profile.
    ///
    /// # Errors
    /// [`LoginError::Config`] when the profile is not for [`TokenKind::Access`].
    pub fn new(verifier: Verifier) -> Result<Self, LoginError> {
        if verifier.kind() != TokenKind::Access {
            return Err(LoginError::Config(
                "session tokens are access tokens: build the profile for TokenKind::Access",
            ));
        }
        Ok(Self { verifier })
    }

    /// Verifies a bearer session token; a DPoP-bound one is refused (RFC 9449 section
    /// 7.2: verify it with `handoff_verify::AccessTokenVerifier` and its proof).
    ///
    /// # Errors
    /// [`LoginError::SessionRefused`] carrying the [`VerifyError`] (signature, `typ`,
    /// claims, a DPoP-bound token presented as bearer).
    pub fn verify<T: DeserializeOwned, K: KeySource + ?Sized>(
        &self,
        token: &str,
        keys: &K,
        now: UnixTime,
    ) -> Result<VerifiedToken<T>, LoginError> {
        let v = self
            .verifier
            .verify::<T, K>(token, keys, now)
            .map_err(LoginError::SessionRefused)?;
        if v.jkt().is_some() {
            return Err(LoginError::SessionRefused(VerifyError::BoundTokenAsBearer));
        }
        Ok(v)
    }
}

/// A `roles` claim, for minting and for verifying.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    /// The roles.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Roles {
    /// One role.
    #[must_use]
    pub fn one(role: Role) -> Self {
        Self {
            roles: vec![role.as_str().to_owned()],
        }
    }
    /// Whether the role is held.
    #[must_use]
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r == role.as_str())
    }
}

/// The roles of the PLAT design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// A regular user (host).
    User,
    /// An administrator: only for allow-listed accounts.
    Admin,
}

impl Role {
    /// `"user"` or `"admin"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
    /// Parses `"user"` / `"admin"`.
    ///
    /// # Errors
    /// [`LoginError::Config`] for anything else.
    pub fn parse(s: &str) -> Result<Self, LoginError> {
        match s {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            _ => Err(LoginError::Config("role must be \"user\" or \"admin\"")),
        }
    }
}

/// The accounts that may hold the admin role: verified emails (compared
/// case-insensitively) or exact `(issuer, subject)` pairs.
#[derive(Debug, Clone, Default)]
pub struct AdminAllowList {
    emails: BTreeSet<String>,
    subjects: BTreeSet<(String, String)>,
}

impl AdminAllowList {
    /// An empty list: nobody is admin.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    /// Allows an email (it must be verified in the ID token).
    #[must_use]
    pub fn email(mut self, email: &str) -> Self {
        self.emails.insert(email.to_ascii_lowercase());
        self
    }
    /// Allows an account by issuer and subject (stable, unlike an email).
    #[must_use]
    pub fn subject(mut self, issuer: &str, sub: &str) -> Self {
        self.subjects.insert((issuer.to_owned(), sub.to_owned()));
        self
    }

    /// Decides the role for a verified ID token: [`Role::User`] always, [`Role::Admin`]
    /// only when the subject is listed or the email is listed **and verified**.
    ///
    /// # Errors
    /// [`LoginError::RoleDenied`] when admin was requested and is not granted.
    pub fn decide<T>(&self, id: &IdToken<T>, requested: Role) -> Result<Role, LoginError> {
        match requested {
            Role::User => Ok(Role::User),
            Role::Admin => {
                let by_sub = self
                    .subjects
                    .iter()
                    .any(|(i, s)| i == id.issuer() && s == id.subject());
                let by_email = id
                    .verified_email()
                    .is_some_and(|e| self.emails.contains(&e.to_ascii_lowercase()));
                if by_sub || by_email {
                    Ok(Role::Admin)
                } else {
                    Err(LoginError::RoleDenied("admin"))
                }
            }
        }
    }
}
