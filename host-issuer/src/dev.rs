//! The dev issuer of the simulator story: a stand-in for a host's token issuer during
//! local development, matching the simulator's defaults exactly.
//!
//! - one RSA-2048 key with `kid` [`DEV_KID`] (`dev-key`);
//! - tokens with header `alg: RS256`, `typ: JWT`, `kid: dev-key`;
//! - claims `iss` (default [`DEV_ISSUER`], `https://issuer.local`), `aud` (configurable),
//!   `sub`, `iat`, `exp` = `iat` + 15 minutes ([`DEV_TOKEN_TTL_SECS`]) and a random `jti`.
//!
//! Sans-IO like the rest of the library: the clock and randomness come in as arguments.
//! The HTTP side (`POST /token`, JWKS, the loopback and production guards, the key
//! persistence directory) lives in [`crate::server`] (feature `server`) and the
//! `host-issuer dev-issuer` command.
//!
//! ```
//! use handoff_issuer::dev::{DevClaims, DEV_KID, mint_dev_jwt};
//! use handoff_issuer::{Algorithm, HostIssuerKeys, UnixTime};
//!
//! let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
//! # let key = HostIssuerKeys::generate(Algorithm::EdDSA, Some(DEV_KID), &mut rng)?;
//! # /* the real dev key is RSA-2048, slow to generate in a doc-test:
//! let key = handoff_issuer::dev::generate_dev_key(&mut rng)?;
//! # */
//! let t = mint_dev_jwt(&key, &DevClaims::new("dev-service", "alice"), UnixTime::from_secs(1_800_000_000), &mut rng)?;
//! assert_eq!(t.kid(), "dev-key");
//! assert_eq!(t.expires_at().as_secs() - t.issued_at().as_secs(), 900);
//! # Ok::<(), handoff_issuer::Error>(())
//! ```

use handoff_core::jws::{self, SignHeader};
use handoff_core::{Algorithm, UnixTime, b64};
use rand_core::CryptoRng;
use serde::Serialize;

use crate::mint::{JTI_BYTES, check_text};
use crate::{Error, HostIssuerKeys, MintedHostJwt};

/// The `kid` of the dev key.
pub const DEV_KID: &str = "dev-key";
/// The default `iss` of dev tokens.
pub const DEV_ISSUER: &str = "https://issuer.local";
/// The default `aud` of dev tokens.
pub const DEV_AUDIENCE: &str = "dev-service";
/// The lifetime of dev tokens: 15 minutes.
pub const DEV_TOKEN_TTL_SECS: u64 = 15 * 60;
/// The header `typ` of dev tokens.
pub const DEV_TOKEN_TYP: &str = "JWT";
/// The size of the dev key's RSA modulus.
pub const DEV_RSA_BITS: usize = 2048;

/// Generates the dev key: RSA-2048, `kid` [`DEV_KID`].
///
/// # Errors
/// Only if key generation fails.
pub fn generate_dev_key<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<HostIssuerKeys, Error> {
    HostIssuerKeys::generate_with_rsa_bits(Algorithm::RS256, DEV_RSA_BITS, Some(DEV_KID), rng)
}

/// The claims of one dev token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevClaims {
    /// `iss` (default [`DEV_ISSUER`]).
    pub iss: String,
    /// `aud`.
    pub aud: String,
    /// `sub`.
    pub sub: String,
}

impl DevClaims {
    /// `iss` [`DEV_ISSUER`], the given `aud` and `sub`.
    #[must_use]
    pub fn new(aud: impl Into<String>, sub: impl Into<String>) -> Self {
        Self {
            iss: DEV_ISSUER.to_owned(),
            aud: aud.into(),
            sub: sub.into(),
        }
    }
}

#[derive(Serialize)]
struct Payload<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: u64,
    exp: u64,
    jti: &'a str,
}

/// Mints a dev token: header `alg` of the key, `typ: JWT`, its `kid`; claims `iss`,
/// `aud`, `sub`, `iat` = `now`, `exp` = `now` + 900 s, `jti`.
///
/// # Errors
/// [`Error::InvalidInput`] for an empty, oversized or padded `iss`, `aud` or `sub`;
/// [`Error::Core`] if signing fails.
pub fn mint_dev_jwt<R: CryptoRng + ?Sized>(
    key: &HostIssuerKeys,
    claims: &DevClaims,
    now: UnixTime,
    rng: &mut R,
) -> Result<MintedHostJwt, Error> {
    check_text("iss", &claims.iss)?;
    check_text("aud", &claims.aud)?;
    check_text("sub", &claims.sub)?;
    let exp = now
        .as_secs()
        .checked_add(DEV_TOKEN_TTL_SECS)
        .ok_or_else(|| Error::input("now", "now + 900 s overflows; pass the real time"))?;
    let mut raw = [0u8; JTI_BYTES];
    rng.fill_bytes(&mut raw);
    let jti = b64::encode(&raw);
    let payload = serde_json::to_vec(&Payload {
        iss: &claims.iss,
        aud: &claims.aud,
        sub: &claims.sub,
        iat: now.as_secs(),
        exp,
        jti: &jti,
    })
    .map_err(|e| Error::input("claims", format!("not serializable: {e}")))?;
    let header = SignHeader {
        typ: Some(DEV_TOKEN_TYP),
        kid: Some(key.kid()),
        ..SignHeader::default()
    };
    let token = jws::sign(key.signing_key(), &header, &payload, rng)?;
    Ok(MintedHostJwt::new(
        token,
        key.kid().to_owned(),
        jti,
        now,
        UnixTime::from_secs(exp),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_core::{Jwks, Validation, verify};

    #[test]
    fn dev_tokens_have_the_simulator_shape() {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let key = generate_dev_key(&mut rng).unwrap();
        assert_eq!(key.algorithm(), Algorithm::RS256);
        assert_eq!(key.kid(), DEV_KID);
        let now = UnixTime::from_secs(1_800_000_000);
        let t = mint_dev_jwt(&key, &DevClaims::new("svc", "alice"), now, &mut rng).unwrap();
        let (h, rest) = t.token().split_once('.').unwrap();
        let header: serde_json::Value = serde_json::from_slice(&b64::decode(h).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "dev-key"})
        );
        let (p, _) = rest.split_once('.').unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&b64::decode(p).unwrap()).unwrap();
        assert_eq!(claims["iss"], DEV_ISSUER);
        assert_eq!(claims["aud"], "svc");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            900
        );
        let mut jwks = Jwks::new();
        jwks.push(key.verifying_key()).unwrap();
        let policy = Validation::builder()
            .issuer(DEV_ISSUER)
            .audience("svc")
            .typ("JWT")
            .algorithm(Algorithm::RS256)
            .build()
            .unwrap();
        verify::<serde_json::Value, _>(t.token(), &jwks, &policy, now).unwrap();
        let e = mint_dev_jwt(&key, &DevClaims::new("svc", ""), now, &mut rng).unwrap_err();
        assert!(e.to_string().contains("sub"), "{e}");
    }
}
