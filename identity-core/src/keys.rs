//! Signing and verifying keys, each made for exactly one [`Algorithm`].
//!
//! Keys come from generation (with the caller's RNG), JWK or PEM, and go back out as
//! JWK (public projection or full private key) and PEM. The crypto libraries stay behind
//! these types, so no `p256` or `rsa` type appears in the family's signatures.

use core::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use hmac::{Hmac, KeyInit, Mac};
use jose_jwk::jose_b64::serde::{Bytes, Secret};
use jose_jwk::{
    Ec, EcCurves, Jwk, Key, Oct, Okp, OkpCurves, Parameters, Rsa, RsaOptional, RsaPrivate,
};
use p256::pkcs8::LineEnding;
use rand_core::CryptoRng;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BoxedUint, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::clip;
use crate::{Algorithm, Error, b64};

/// Smallest RSA modulus accepted, in bits (RFC 8725 section 3.5, NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits: bigger keys are a verification-cost DoS vector.
pub const MAX_RSA_BITS: usize = 4096;
/// Smallest HMAC secret accepted, in bytes (the output size of SHA-256).
pub const MIN_HMAC_BYTES: usize = 32;
/// Largest `kid` accepted, in bytes (RFC 8725: `kid` is an opaque, length-limited map key).
pub const MAX_KID_BYTES: usize = 256;

type HmacSha256 = Hmac<Sha256>;

/// An HMAC-SHA256 secret: at least 32 bytes, zeroized on drop, compared in constant time,
/// never printed.
///
/// The keyed HMAC state (SHA-256 after absorbing the padded key XOR ipad and XOR opad) is
/// prepared once and cloned per MAC, saving two compression-function calls per MAC. That
/// state is secret-equivalent: it is zeroized on drop too (the `zeroize` features of `sha2` and
/// `hmac`, checked by a unit test).
#[derive(Clone)]
pub struct HmacSecret {
    bytes: Vec<u8>,
    prepared: HmacSha256,
}

impl HmacSecret {
    /// Wraps secret bytes.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] when shorter than [`MIN_HMAC_BYTES`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.len() < MIN_HMAC_BYTES {
            return Err(Error::KeyRejected(format!(
                "HMAC secret of {} bytes; use at least {MIN_HMAC_BYTES} random bytes",
                bytes.len()
            )));
        }
        Ok(Self::prepare(bytes.to_vec()))
    }

    /// A fresh 32-byte secret from the caller's RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = vec![0u8; 32];
        rng.fill_bytes(&mut b);
        Self::prepare(b)
    }

    fn prepare(bytes: Vec<u8>) -> Self {
        let prepared = keyed(&bytes);
        Self { bytes, prepared }
    }

    /// The secret bytes. Handle with care.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes
    }

    /// HMAC-SHA256 of `msg` under this secret.
    #[must_use]
    pub fn mac(&self, msg: &[u8]) -> [u8; 32] {
        self.mac_parts(&[msg])
    }

    /// HMAC-SHA256 over the concatenation of `parts`, without copying them together.
    #[must_use]
    pub fn mac_parts(&self, parts: &[&[u8]]) -> [u8; 32] {
        // The clone is dropped (and zeroized) by finalize.
        let mut m = self.prepared.clone();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Checks `tag` against HMAC-SHA256 of `parts` in constant time (length first).
    #[must_use]
    pub fn verify_parts(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        if tag.len() != 32 {
            return false;
        }
        let mut m = self.prepared.clone();
        for p in parts {
            m.update(p);
        }
        // The hmac crate's own constant-time tag comparison (ctutils).
        m.verify_slice(tag).is_ok()
    }
}

/// The HMAC-SHA256 state keyed with `key`.
fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length: new_from_slice cannot fail.
    match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    }
}

impl Zeroize for HmacSecret {
    fn zeroize(&mut self) {
        self.bytes.zeroize();
        // Replacing the state drops (and so wipes) the keyed one.
        self.prepared = keyed(&[]);
    }
}

impl Drop for HmacSecret {
    fn drop(&mut self) {
        // `prepared` wipes itself when dropped right after this.
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for HmacSecret {}

#[cold]
fn unreachable_hmac() -> ! {
    // HMAC's KeyInit::new_from_slice accepts every key length (keys are hashed or padded).
    unreachable!("HMAC accepts keys of every length")
}

impl PartialEq for HmacSecret {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}
impl Eq for HmacSecret {}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacSecret").finish_non_exhaustive()
    }
}

enum SigningInner {
    Ed25519(ed25519_dalek::SigningKey),
    Es256(p256::ecdsa::SigningKey),
    Rs256(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
    Ps256(Box<rsa::pss::BlindedSigningKey<Sha256>>),
    Hs256(HmacSecret),
}

/// A private key (or HMAC secret) bound to one algorithm, with an optional `kid`.
///
/// Secrets are zeroized on drop; `Debug` shows the algorithm and `kid` only. With the
/// `aws-lc-rs` feature, EdDSA, ES256, RS256 and PS256 keys sign on aws-lc (see
/// [`crate::keys`]).
pub struct SigningKey {
    inner: SigningInner,
    kid: Option<String>,
    /// The key loaded into aws-lc (EdDSA, ES256, RS256, PS256), and its public half where
    /// aws-lc also verifies (ES256, RS256, PS256; Ed25519 verification stays on
    /// ed25519-dalek's strict rules).
    #[cfg(feature = "aws-lc-rs")]
    pub(crate) accel: Option<(crate::aws_lc::Signer, Option<crate::aws_lc::Verifier>)>,
}

#[derive(Clone)]
enum VerifyingInner {
    Ed25519(ed25519_dalek::VerifyingKey),
    Es256(p256::ecdsa::VerifyingKey),
    Rs256(Box<rsa::pkcs1v15::VerifyingKey<Sha256>>),
    Ps256(Box<rsa::pss::VerifyingKey<Sha256>>),
    Hs256(HmacSecret),
}

/// A public key (or HMAC secret) bound to one algorithm, with an optional `kid`.
///
/// With the `aws-lc-rs` feature, ES256, RS256 and PS256 keys verify on aws-lc.
#[derive(Clone)]
pub struct VerifyingKey {
    inner: VerifyingInner,
    kid: Option<String>,
    thumbprint: Thumbprint,
    /// The key loaded into aws-lc (ES256, RS256, PS256).
    #[cfg(feature = "aws-lc-rs")]
    pub(crate) accel: Option<crate::aws_lc::Verifier>,
}

/// An RFC 7638 JWK SHA-256 thumbprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thumbprint([u8; 32]);

impl Thumbprint {
    /// The 32 digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Wraps digest bytes.
    #[must_use]
    pub const fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }
    /// The base64url form used in `cnf.jkt` and `kid`s.
    #[must_use]
    pub fn to_base64url(&self) -> String {
        b64::encode(&self.0)
    }
    /// Compares with a base64url thumbprint (for example a `cnf.jkt`) in constant time.
    #[must_use]
    pub fn matches_base64url(&self, jkt: &str) -> bool {
        match b64::decode(jkt) {
            Ok(b) if b.len() == 32 => self.0.ct_eq(&b[..]).into(),
            _ => false,
        }
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({})", self.to_base64url())
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

fn rejected(msg: impl Into<String>) -> Error {
    Error::KeyRejected(msg.into())
}

fn check_kid(kid: &str) -> Result<(), Error> {
    if kid.is_empty() || kid.len() > MAX_KID_BYTES {
        return Err(rejected(format!(
            "kid must be 1 to {MAX_KID_BYTES} bytes, got {}",
            kid.len()
        )));
    }
    Ok(())
}

fn rsa_bits_ok(bits: usize) -> Result<(), Error> {
    if bits < MIN_RSA_BITS {
        return Err(rejected(format!(
            "RSA modulus of {bits} bits; use at least {MIN_RSA_BITS} bits"
        )));
    }
    if bits > MAX_RSA_BITS {
        return Err(rejected(format!(
            "RSA modulus of {bits} bits; at most {MAX_RSA_BITS} bits are accepted"
        )));
    }
    Ok(())
}

/// Bit length of a public RSA modulus, from its minimal big-endian bytes (no crypto-bigint
/// bit-count method: their names changed between 0.7 releases, see issue 16).
fn modulus_bits(n: &BoxedUint) -> usize {
    let bytes = trimmed(n);
    match bytes.first() {
        None => 0,
        Some(&top) => (bytes.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// The public exponent must be odd (so at least 3): an even `e` is no RSA key, and aws-lc
/// refuses it, so both backends refuse it at import. The `rsa` crate already bounds it
/// to `2^33 - 1` and checks that the modulus is odd.
fn rsa_exponent_ok(e: &BoxedUint) -> Result<(), Error> {
    if trimmed(e).last().is_none_or(|b| b & 1 == 0) {
        return Err(rejected(
            "RSA public exponent must be odd (65537 is the usual one)",
        ));
    }
    Ok(())
}

fn rsa_public(key: RsaPublicKey, alg: Algorithm) -> Result<VerifyingInner, Error> {
    rsa_bits_ok(modulus_bits(key.n().as_ref()))?;
    rsa_exponent_ok(key.e())?;
    Ok(match alg {
        Algorithm::RS256 => VerifyingInner::Rs256(Box::new(rsa::pkcs1v15::VerifyingKey::new(key))),
        Algorithm::PS256 => VerifyingInner::Ps256(Box::new(rsa::pss::VerifyingKey::new(key))),
        other => return Err(rejected(format!("an RSA key cannot be used with {other}"))),
    })
}

fn rsa_private(key: RsaPrivateKey, alg: Algorithm) -> Result<SigningInner, Error> {
    rsa_bits_ok(modulus_bits(key.n().as_ref()))?;
    rsa_exponent_ok(key.e())?;
    Ok(match alg {
        Algorithm::RS256 => SigningInner::Rs256(Box::new(rsa::pkcs1v15::SigningKey::new(key))),
        Algorithm::PS256 => SigningInner::Ps256(Box::new(rsa::pss::BlindedSigningKey::new(key))),
        other => return Err(rejected(format!("an RSA key cannot be used with {other}"))),
    })
}

fn ed25519_public(bytes: &[u8]) -> Result<ed25519_dalek::VerifyingKey, Error> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| rejected("Ed25519 public key must be 32 bytes"))?;
    let k = ed25519_dalek::VerifyingKey::from_bytes(&arr)
        .map_err(|_| rejected("Ed25519 public key is not a valid curve point"))?;
    if k.is_weak() {
        return Err(rejected("Ed25519 public key has small order; refused"));
    }
    Ok(k)
}

fn p256_public(x: &[u8], y: &[u8]) -> Result<p256::ecdsa::VerifyingKey, Error> {
    if x.len() != 32 || y.len() != 32 {
        return Err(rejected("P-256 coordinates must be 32 bytes each"));
    }
    let mut sec1 = [0u8; 65];
    sec1[0] = 4;
    sec1[1..33].copy_from_slice(x);
    sec1[33..].copy_from_slice(y);
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|_| rejected("P-256 point is not on the curve"))
}

fn uint(bytes: &[u8]) -> BoxedUint {
    BoxedUint::from_be_slice_vartime(bytes)
}

fn trimmed(u: &BoxedUint) -> Vec<u8> {
    u.to_be_bytes_trimmed_vartime().into_vec()
}

fn alg_from_jwk_param(prm: &Parameters) -> Result<Option<Algorithm>, Error> {
    use jose_jwk::jose_jwa::{Algorithm as Jwa, Signing};
    Ok(match &prm.alg {
        None => None,
        Some(Jwa::Signing(s)) => Some(match s {
            Signing::EdDsa => Algorithm::EdDSA,
            Signing::Es256 => Algorithm::ES256,
            Signing::Rs256 => Algorithm::RS256,
            Signing::Ps256 => Algorithm::PS256,
            Signing::Hs256 => Algorithm::HS256,
            other => return Err(rejected(format!("JWK alg {other:?} is not implemented"))),
        }),
        #[allow(unreachable_patterns)]
        Some(_) => return Err(rejected("JWK alg is not a signature algorithm")),
    })
}

fn jwa_of(alg: Algorithm) -> jose_jwk::jose_jwa::Algorithm {
    use jose_jwk::jose_jwa::Signing;
    jose_jwk::jose_jwa::Algorithm::Signing(match alg {
        Algorithm::EdDSA => Signing::EdDsa,
        Algorithm::ES256 => Signing::Es256,
        Algorithm::RS256 => Signing::Rs256,
        Algorithm::PS256 => Signing::Ps256,
        Algorithm::HS256 => Signing::Hs256,
    })
}

fn check_jwk_use(prm: &Parameters, op: jose_jwk::Operations) -> Result<(), Error> {
    if let Some(cls) = prm.cls
        && cls != jose_jwk::Class::Signing
    {
        return Err(rejected("JWK \"use\" is not \"sig\""));
    }
    if let Some(ops) = &prm.ops
        && !ops.contains(&op)
    {
        return Err(rejected("JWK \"key_ops\" does not allow this operation"));
    }
    Ok(())
}

/// Resolves the algorithm of a JWK: its `alg` if present (it must fit the key type),
/// otherwise the only algorithm of the key type (RSA without `alg` is RS256).
fn resolve_alg(key: &Key, declared: Option<Algorithm>) -> Result<Algorithm, Error> {
    let (default, allowed): (Algorithm, &[Algorithm]) = match key {
        Key::Okp(_) => (Algorithm::EdDSA, &[Algorithm::EdDSA]),
        Key::Ec(_) => (Algorithm::ES256, &[Algorithm::ES256]),
        Key::Rsa(_) => (Algorithm::RS256, &[Algorithm::RS256, Algorithm::PS256]),
        Key::Oct(_) => (Algorithm::HS256, &[Algorithm::HS256]),
        _ => return Err(rejected("unsupported JWK key type")),
    };
    match declared {
        None => Ok(default),
        Some(a) if allowed.contains(&a) => Ok(a),
        Some(a) => Err(rejected(format!("JWK alg {a} does not fit its key type"))),
    }
}

/// Largest PEM text accepted, in bytes (an RSA-4096 private key is about 3.3 KB).
const MAX_PEM_BYTES: usize = 64 * 1024;

/// Normalises PEM text pasted into an environment variable or a config file: surrounding
/// quotes and whitespace go, literal `\n` / `\r\n` escapes become line breaks, and the
/// base64 body between the `BEGIN` and matching `END` lines is re-wrapped at 64 columns
/// (so CRLF, spaces instead of line breaks, indentation and unwrapped bodies all parse).
/// Every buffer is zeroized on drop and sized up front, so no copy of a private key is
/// left behind by a reallocation.
fn normalise_pem(pem: &str) -> Result<Zeroizing<String>, Error> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(rejected(format!(
            "PEM text of {} bytes; at most {MAX_PEM_BYTES} bytes are accepted",
            pem.len()
        )));
    }
    let t = pem.trim().trim_matches(['"', '\'']).trim();
    let mut flat = Zeroizing::new(String::with_capacity(t.len()));
    let mut it = t.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' && matches!(it.peek(), Some('n')) {
            it.next();
            flat.push('\n');
        } else if c == '\\' && matches!(it.peek(), Some('r')) {
            it.next();
        } else {
            flat.push(c);
        }
    }
    let Some(begin) = flat.find("-----BEGIN ") else {
        return Err(rejected("no \"-----BEGIN \" line: this is not PEM text"));
    };
    let label_start = begin + "-----BEGIN ".len();
    let Some(label_end) = flat[label_start..].find("-----").map(|i| label_start + i) else {
        return Err(rejected("the PEM BEGIN line is not closed by \"-----\""));
    };
    let label = &flat[label_start..label_end];
    if label.is_empty() || label.len() > 64 || label.contains(['\n', '\r']) {
        return Err(rejected("the PEM BEGIN line has no valid label"));
    }
    let body_start = label_end + "-----".len();
    let end_marker = format!("-----END {label}-----");
    let Some(body_end) = flat[body_start..].find(&end_marker).map(|i| body_start + i) else {
        return Err(rejected(format!(
            "no {end_marker:?} line matches the BEGIN line"
        )));
    };
    let body = &flat[body_start..body_end];
    let mut out = Zeroizing::new(String::with_capacity(
        2 * end_marker.len() + body.len() + body.len() / 64 + 4,
    ));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut col = 0;
    for c in body.chars().filter(|c| !c.is_whitespace()) {
        out.push(c);
        col += 1;
        if col == 64 {
            out.push('\n');
            col = 0;
        }
    }
    if col != 0 {
        out.push('\n');
    }
    out.push_str(&end_marker);
    out.push('\n');
    Ok(out)
}

impl SigningKey {
    /// Generates a key for `alg` from the caller's RNG (RSA: 2048 bits).
    ///
    /// # Errors
    /// [`Error::KeyRejected`] if RSA key generation fails.
    pub fn generate<R: CryptoRng + ?Sized>(alg: Algorithm, rng: &mut R) -> Result<Self, Error> {
        Self::generate_with_rsa_bits(alg, MIN_RSA_BITS, rng)
    }

    /// Generates a key, with an explicit RSA modulus size (ignored for other algorithms).
    ///
    /// # Errors
    /// [`Error::KeyRejected`] for an RSA size outside 2048..=4096 or a generation failure.
    pub fn generate_with_rsa_bits<R: CryptoRng + ?Sized>(
        alg: Algorithm,
        rsa_bits: usize,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let inner = match alg {
            Algorithm::EdDSA => SigningInner::Ed25519(ed25519_dalek::SigningKey::generate(rng)),
            Algorithm::ES256 => {
                use p256::elliptic_curve::Generate;
                SigningInner::Es256(p256::ecdsa::SigningKey::generate_from_rng(rng))
            }
            Algorithm::RS256 | Algorithm::PS256 => {
                rsa_bits_ok(rsa_bits)?;
                let k = RsaPrivateKey::new(rng, rsa_bits)
                    .map_err(|e| rejected(format!("RSA generation failed: {e}")))?;
                rsa_private(k, alg)?
            }
            Algorithm::HS256 => SigningInner::Hs256(HmacSecret::generate(rng)),
        };
        Self::from_inner(inner)
    }

    /// An HS256 key from a secret of at least 32 bytes.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] when the secret is too short.
    pub fn hs256(secret: impl Into<Vec<u8>>) -> Result<Self, Error> {
        Self::from_inner(SigningInner::Hs256(HmacSecret::new(secret)?))
    }

    /// A key without `kid`; with `aws-lc-rs`, EdDSA/ES256/RS256/PS256 keys are loaded into
    /// aws-lc here (from the seed, or the PKCS#8 form the RustCrypto key writes).
    fn from_inner(inner: SigningInner) -> Result<Self, Error> {
        #[cfg(feature = "aws-lc-rs")]
        let accel = {
            let alg = signing_alg(&inner);
            let der = match &inner {
                SigningInner::Es256(k) => Some(k.to_pkcs8_der()),
                SigningInner::Rs256(k) => Some(RsaPrivateKey::to_pkcs8_der((**k).as_ref())),
                SigningInner::Ps256(k) => Some(RsaPrivateKey::to_pkcs8_der((**k).as_ref())),
                SigningInner::Ed25519(_) | SigningInner::Hs256(_) => None,
            };
            match (&inner, der) {
                (SigningInner::Ed25519(k), _) => {
                    let seed = zeroize::Zeroizing::new(k.to_bytes());
                    let public = k.verifying_key().to_bytes();
                    Some((crate::aws_lc::Signer::ed25519(&seed, &public)?, None))
                }
                (_, None) => None,
                (_, Some(der)) => {
                    let der = der.map_err(|e| rejected(format!("PKCS#8 encoding failed: {e}")))?;
                    let signer = crate::aws_lc::Signer::new(alg, der.as_bytes())?;
                    let public = rust_crypto_verifying(&inner);
                    let verifier = crate::aws_lc::Verifier::new(alg, &spki_der(&public)?)?;
                    Some((signer, Some(verifier)))
                }
            }
        };
        Ok(Self {
            inner,
            kid: None,
            #[cfg(feature = "aws-lc-rs")]
            accel,
        })
    }

    /// Sets the `kid` (1 to 256 bytes) written into headers and JWKs.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] for an empty or oversize `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Result<Self, Error> {
        let kid = kid.into();
        check_kid(&kid)?;
        self.kid = Some(kid);
        Ok(self)
    }

    /// The key's `kid`, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key signs with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        signing_alg(&self.inner)
    }

    /// The matching verifying key (for HS256, the same secret), with the same `kid`.
    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        let inner = rust_crypto_verifying(&self.inner);
        let thumbprint = compute_thumbprint(&inner);
        VerifyingKey {
            inner,
            kid: self.kid.clone(),
            thumbprint,
            #[cfg(feature = "aws-lc-rs")]
            accel: self.accel.as_ref().and_then(|(_, v)| v.clone()),
        }
    }

    /// Signs `msg` with the key's algorithm. ECDSA signatures come out in raw `r || s`
    /// form; PS256 draws its salt from `rng`, RSA signing is blinded with `rng`.
    /// With the `aws-lc-rs` feature, EdDSA, ES256, RS256 and PS256 sign on aws-lc, which
    /// draws nonces, salts and blinding from its own generator (seeded by the operating
    /// system) and ignores `rng`; Ed25519 signatures are deterministic (RFC 8032), the same
    /// bytes on both backends.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] if the primitive fails (it does not for valid keys).
    pub fn sign<R: CryptoRng + ?Sized>(&self, msg: &[u8], rng: &mut R) -> Result<Vec<u8>, Error> {
        #[cfg(feature = "aws-lc-rs")]
        if let Some((signer, _)) = &self.accel {
            return signer.sign(msg);
        }
        self.sign_rust_crypto(msg, rng)
    }

    /// [`Self::sign`] on the RustCrypto backend, whatever the features.
    pub(crate) fn sign_rust_crypto<R: CryptoRng + ?Sized>(
        &self,
        msg: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        use rsa::signature::{RandomizedSigner, Signer};
        Ok(match &self.inner {
            SigningInner::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
            SigningInner::Es256(k) => {
                let sig: p256::ecdsa::Signature =
                    k.try_sign(msg).map_err(|_| Error::InvalidSignature)?;
                sig.to_bytes().to_vec()
            }
            SigningInner::Rs256(k) => {
                let sig = k
                    .try_sign_with_rng(rng, msg)
                    .map_err(|_| Error::InvalidSignature)?;
                Box::<[u8]>::from(sig).into_vec()
            }
            SigningInner::Ps256(k) => {
                let sig = k
                    .try_sign_with_rng(rng, msg)
                    .map_err(|_| Error::InvalidSignature)?;
                Box::<[u8]>::from(sig).into_vec()
            }
            SigningInner::Hs256(s) => s.mac(msg).to_vec(),
        })
    }

    /// Imports a private JWK. The algorithm is the JWK's `alg` when present, otherwise the
    /// key type's (RSA: RS256).
    ///
    /// # Errors
    /// [`Error::KeyRejected`] for public-only, malformed, weak or inconsistent keys.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, Error> {
        let declared = alg_from_jwk_param(&jwk.prm)?;
        let alg = resolve_alg(&jwk.key, declared)?;
        check_jwk_use(&jwk.prm, jose_jwk::Operations::Sign)?;
        let inner = match &jwk.key {
            Key::Okp(okp) => {
                if okp.crv != OkpCurves::Ed25519 {
                    return Err(rejected("only the Ed25519 OKP curve is supported"));
                }
                let d = okp
                    .d
                    .as_ref()
                    .ok_or_else(|| rejected("JWK has no private member d"))?;
                let d_bytes: &[u8] = (**d).as_ref();
                if d_bytes.len() != 32 {
                    return Err(rejected("Ed25519 d must be 32 bytes"));
                }
                let mut d = Zeroizing::new([0u8; 32]);
                d.copy_from_slice(d_bytes);
                let k = ed25519_dalek::SigningKey::from_bytes(&d);
                if k.verifying_key().as_bytes()[..] != okp.x[..] {
                    return Err(rejected("Ed25519 x does not match d"));
                }
                SigningInner::Ed25519(k)
            }
            Key::Ec(ec) => {
                if ec.crv != EcCurves::P256 {
                    return Err(rejected("only the P-256 EC curve is supported"));
                }
                let d =
                    ec.d.as_ref()
                        .ok_or_else(|| rejected("JWK has no private member d"))?;
                let k = p256::ecdsa::SigningKey::from_slice(d)
                    .map_err(|_| rejected("P-256 d is not a valid scalar"))?;
                let public = p256_public(&ec.x, &ec.y)?;
                if *k.verifying_key() != public {
                    return Err(rejected("P-256 x/y do not match d"));
                }
                SigningInner::Es256(k)
            }
            Key::Rsa(r) => {
                let prv = r
                    .prv
                    .as_ref()
                    .ok_or_else(|| rejected("JWK has no private member d"))?;
                // Bound the work before any big-number arithmetic on untrusted sizes.
                if r.n.len() * 8 > MAX_RSA_BITS || r.e.len() > 8 || prv.d.len() > r.n.len() {
                    return Err(rejected(format!(
                        "RSA key members exceed a {MAX_RSA_BITS}-bit key; refused"
                    )));
                }
                let primes = match &prv.opt {
                    Some(o) => {
                        if !o.oth.is_empty() {
                            return Err(rejected("multi-prime RSA keys are not supported"));
                        }
                        vec![uint(&o.p), uint(&o.q)]
                    }
                    None => Vec::new(),
                };
                let k =
                    RsaPrivateKey::from_components(uint(&r.n), uint(&r.e), uint(&prv.d), primes)
                        .map_err(|e| rejected(format!("RSA private key is inconsistent: {e}")))?;
                rsa_private(k, alg)?
            }
            Key::Oct(o) => SigningInner::Hs256(HmacSecret::new(o.k.to_vec())?),
            _ => return Err(rejected("unsupported JWK key type")),
        };
        let key = Self::from_inner(inner)?;
        match &jwk.prm.kid {
            Some(kid) => key.with_kid(kid.clone()),
            None => Ok(key),
        }
    }

    /// Exports the full private JWK, with `kid`, `alg` and `use`. Contains secrets.
    #[must_use]
    pub fn to_private_jwk(&self) -> Jwk {
        let key = match &self.inner {
            SigningInner::Ed25519(k) => Key::Okp(Okp {
                crv: OkpCurves::Ed25519,
                x: Bytes::from(k.verifying_key().to_bytes().to_vec()),
                d: Some(Secret::from(Zeroizing::new(k.to_bytes()).to_vec())),
            }),
            SigningInner::Es256(k) => {
                let (x, y) = ec_xy(k.verifying_key());
                Key::Ec(Ec {
                    crv: EcCurves::P256,
                    x: Bytes::from(x),
                    y: Bytes::from(y),
                    d: Some(Secret::from(Zeroizing::new(k.to_bytes()).to_vec())),
                })
            }
            SigningInner::Rs256(k) => rsa_private_jwk((**k).as_ref()),
            SigningInner::Ps256(k) => rsa_private_jwk((**k).as_ref()),
            SigningInner::Hs256(s) => Key::Oct(Oct {
                k: Secret::from(s.bytes.clone()),
            }),
        };
        Jwk {
            key,
            prm: params(self.algorithm(), self.kid.as_deref()),
        }
    }

    /// Imports a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`; RSA also as
    /// PKCS#1 `RSA PRIVATE KEY`, P-256 also as SEC1 `EC PRIVATE KEY`) for `alg`. Literal
    /// `\n` escapes (PEM pasted into an environment variable) are accepted.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] when the PEM does not hold a key for `alg`.
    pub fn from_pem(pem: &str, alg: Algorithm) -> Result<Self, Error> {
        let pem = normalise_pem(pem)?;
        let inner = match alg {
            Algorithm::EdDSA => SigningInner::Ed25519(
                ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|e| rejected(format!("not an Ed25519 PKCS#8 PEM key: {e}")))?,
            ),
            Algorithm::ES256 => {
                let k = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem).or_else(|_| {
                    p256::SecretKey::from_sec1_pem(&pem).map(p256::ecdsa::SigningKey::from)
                });
                SigningInner::Es256(
                    k.map_err(|e| rejected(format!("not a P-256 PKCS#8 or SEC1 PEM key: {e}")))?,
                )
            }
            Algorithm::RS256 | Algorithm::PS256 => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                let k = RsaPrivateKey::from_pkcs8_pem(&pem)
                    .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&pem))
                    .map_err(|e| rejected(format!("not an RSA PKCS#8 or PKCS#1 PEM key: {e}")))?;
                rsa_private(k, alg)?
            }
            Algorithm::HS256 => return Err(rejected("HS256 secrets have no PEM form")),
        };
        Self::from_inner(inner)
    }

    /// Exports the private key as PKCS#8 PEM. Contains secrets.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] for HS256 keys, which have no PEM form.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        let r = match &self.inner {
            SigningInner::Ed25519(k) => k.to_pkcs8_pem(LineEnding::LF),
            SigningInner::Es256(k) => k.to_pkcs8_pem(LineEnding::LF),
            SigningInner::Rs256(k) => {
                let pk: &RsaPrivateKey = (**k).as_ref();
                pk.to_pkcs8_pem(LineEnding::LF)
            }
            SigningInner::Ps256(k) => {
                let pk: &RsaPrivateKey = (**k).as_ref();
                pk.to_pkcs8_pem(LineEnding::LF)
            }
            SigningInner::Hs256(_) => return Err(rejected("HS256 secrets have no PEM form")),
        };
        r.map_err(|e| rejected(format!("PEM encoding failed: {e}")))
    }
}

fn signing_alg(inner: &SigningInner) -> Algorithm {
    match inner {
        SigningInner::Ed25519(_) => Algorithm::EdDSA,
        SigningInner::Es256(_) => Algorithm::ES256,
        SigningInner::Rs256(_) => Algorithm::RS256,
        SigningInner::Ps256(_) => Algorithm::PS256,
        SigningInner::Hs256(_) => Algorithm::HS256,
    }
}

/// The public half of a private key, as RustCrypto keys.
fn rust_crypto_verifying(inner: &SigningInner) -> VerifyingInner {
    match inner {
        SigningInner::Ed25519(k) => VerifyingInner::Ed25519(k.verifying_key()),
        SigningInner::Es256(k) => VerifyingInner::Es256(*k.verifying_key()),
        SigningInner::Rs256(k) => {
            let pk: &RsaPrivateKey = (**k).as_ref();
            VerifyingInner::Rs256(Box::new(rsa::pkcs1v15::VerifyingKey::new(
                pk.to_public_key(),
            )))
        }
        SigningInner::Ps256(k) => {
            let pk: &RsaPrivateKey = (**k).as_ref();
            VerifyingInner::Ps256(Box::new(rsa::pss::VerifyingKey::new(pk.to_public_key())))
        }
        SigningInner::Hs256(s) => VerifyingInner::Hs256(s.clone()),
    }
}

/// The SPKI DER of an ES256 or RSA public key (what aws-lc loads).
#[cfg(feature = "aws-lc-rs")]
fn spki_der(inner: &VerifyingInner) -> Result<Vec<u8>, Error> {
    let der = match inner {
        VerifyingInner::Es256(k) => k.to_public_key_der(),
        VerifyingInner::Rs256(k) => RsaPublicKey::to_public_key_der((**k).as_ref()),
        VerifyingInner::Ps256(k) => RsaPublicKey::to_public_key_der((**k).as_ref()),
        VerifyingInner::Ed25519(k) => k.to_public_key_der(),
        VerifyingInner::Hs256(_) => return Err(rejected("HS256 secrets have no SPKI form")),
    };
    der.map(|d| d.into_vec())
        .map_err(|e| rejected(format!("SPKI encoding failed: {e}")))
}

fn ec_xy(k: &p256::ecdsa::VerifyingKey) -> (Vec<u8>, Vec<u8>) {
    let p = k.to_sec1_point(false);
    let b = p.as_bytes();
    // Uncompressed SEC1: 0x04 || x (32) || y (32).
    (b[1..33].to_vec(), b[33..65].to_vec())
}

fn rsa_public_jwk(k: &RsaPublicKey) -> Key {
    Key::Rsa(Rsa {
        n: Bytes::from(trimmed(k.n().as_ref())),
        e: Bytes::from(trimmed(k.e())),
        prv: None,
    })
}

fn rsa_private_jwk(k: &RsaPrivateKey) -> Key {
    let primes = k.primes();
    let opt = match (primes, k.dp(), k.dq(), k.crt_coefficient()) {
        ([p, q], Some(dp), Some(dq), Some(qi)) => Some(RsaOptional {
            p: Secret::from(trimmed(p)),
            q: Secret::from(trimmed(q)),
            dp: Secret::from(trimmed(dp)),
            dq: Secret::from(trimmed(dq)),
            qi: Secret::from(trimmed(&qi)),
            oth: Vec::new(),
        }),
        _ => None,
    };
    Key::Rsa(Rsa {
        n: Bytes::from(trimmed(k.n().as_ref())),
        e: Bytes::from(trimmed(k.e())),
        prv: Some(RsaPrivate {
            d: Secret::from(trimmed(k.d())),
            opt,
        }),
    })
}

fn params(alg: Algorithm, kid: Option<&str>) -> Parameters {
    Parameters {
        alg: Some(jwa_of(alg)),
        kid: kid.map(str::to_owned),
        cls: Some(jose_jwk::Class::Signing),
        ..Parameters::default()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.algorithm())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// A key without `kid`; with `aws-lc-rs`, ES256/RS256/PS256 keys are loaded into
    /// aws-lc here (from the SPKI form the RustCrypto key writes).
    fn from_inner(inner: VerifyingInner) -> Result<Self, Error> {
        #[cfg(feature = "aws-lc-rs")]
        let accel = match &inner {
            VerifyingInner::Es256(_) | VerifyingInner::Rs256(_) | VerifyingInner::Ps256(_) => {
                let alg = verifying_alg(&inner);
                Some(crate::aws_lc::Verifier::new(alg, &spki_der(&inner)?)?)
            }
            VerifyingInner::Ed25519(_) | VerifyingInner::Hs256(_) => None,
        };
        let thumbprint = compute_thumbprint(&inner);
        Ok(Self {
            inner,
            kid: None,
            thumbprint,
            #[cfg(feature = "aws-lc-rs")]
            accel,
        })
    }

    /// An HS256 verifying key from a secret of at least 32 bytes.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] when the secret is too short.
    pub fn hs256(secret: impl Into<Vec<u8>>) -> Result<Self, Error> {
        Self::from_inner(VerifyingInner::Hs256(HmacSecret::new(secret)?))
    }

    /// Sets the `kid` (1 to 256 bytes).
    ///
    /// # Errors
    /// [`Error::KeyRejected`] for an empty or oversize `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Result<Self, Error> {
        let kid = kid.into();
        check_kid(&kid)?;
        self.kid = Some(kid);
        Ok(self)
    }

    /// The key's `kid`, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        verifying_alg(&self.inner)
    }

    /// The RFC 7638 thumbprint (computed once, at import).
    #[must_use]
    pub fn thumbprint(&self) -> Thumbprint {
        self.thumbprint
    }

    /// Whether this is a symmetric (HS256) key, which must never be published.
    #[must_use]
    pub fn is_symmetric(&self) -> bool {
        matches!(self.inner, VerifyingInner::Hs256(_))
    }

    /// Verifies `sig` over `msg` with the key's algorithm: Ed25519 strictly (canonical
    /// `S`, no small-order points), ECDSA in raw `r || s` form only, RSA signatures of
    /// exactly the modulus length, HMAC tags in constant time.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`], whatever the cause.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), Error> {
        #[cfg(feature = "aws-lc-rs")]
        if let Some(accel) = &self.accel {
            // The same length rules as the RustCrypto path, then aws-lc.
            let want = match &self.inner {
                VerifyingInner::Rs256(k) => RsaPublicKey::size((**k).as_ref()),
                VerifyingInner::Ps256(k) => RsaPublicKey::size((**k).as_ref()),
                _ => 64,
            };
            return if sig.len() == want && accel.verify(msg, sig) {
                Ok(())
            } else {
                Err(Error::InvalidSignature)
            };
        }
        self.verify_rust_crypto(msg, sig)
    }

    /// [`Self::verify`] on the RustCrypto backend, whatever the features.
    pub(crate) fn verify_rust_crypto(&self, msg: &[u8], sig: &[u8]) -> Result<(), Error> {
        use rsa::signature::Verifier;
        let ok = match &self.inner {
            VerifyingInner::Ed25519(k) => {
                let Ok(bytes) = <[u8; 64]>::try_from(sig) else {
                    return Err(Error::InvalidSignature);
                };
                let s = ed25519_dalek::Signature::from_bytes(&bytes);
                k.verify_strict(msg, &s).is_ok()
            }
            VerifyingInner::Es256(k) => {
                if sig.len() != 64 {
                    return Err(Error::InvalidSignature);
                }
                match p256::ecdsa::Signature::from_slice(sig) {
                    Ok(s) => k.verify(msg, &s).is_ok(),
                    Err(_) => false,
                }
            }
            VerifyingInner::Rs256(k) => {
                let pk: &RsaPublicKey = (**k).as_ref();
                if sig.len() != pk.size() {
                    return Err(Error::InvalidSignature);
                }
                match rsa::pkcs1v15::Signature::try_from(sig) {
                    Ok(s) => k.verify(msg, &s).is_ok(),
                    Err(_) => false,
                }
            }
            VerifyingInner::Ps256(k) => {
                let pk: &RsaPublicKey = (**k).as_ref();
                if sig.len() != pk.size() {
                    return Err(Error::InvalidSignature);
                }
                match rsa::pss::Signature::try_from(sig) {
                    Ok(s) => k.verify(msg, &s).is_ok(),
                    Err(_) => false,
                }
            }
            VerifyingInner::Hs256(s) => s.verify_parts(&[msg], sig),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidSignature)
        }
    }

    /// Imports a public JWK. Private members (`d`, RSA primes) and symmetric (`oct`) keys
    /// are refused: a public key set never carries them. The algorithm is the JWK's `alg`
    /// when present, otherwise the key type's (RSA: RS256).
    ///
    /// # Errors
    /// [`Error::KeyRejected`] for private, malformed, weak or inconsistent keys.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, Error> {
        let declared = alg_from_jwk_param(&jwk.prm)?;
        Self::from_jwk_inner(jwk, declared)
    }

    /// Imports a public JWK for an algorithm chosen by the caller (the JWK's own `alg`,
    /// if any, must agree).
    ///
    /// # Errors
    /// As [`Self::from_jwk`], and when the JWK's `alg` differs from `alg`.
    pub fn from_jwk_with_alg(jwk: &Jwk, alg: Algorithm) -> Result<Self, Error> {
        if let Some(declared) = alg_from_jwk_param(&jwk.prm)?
            && declared != alg
        {
            return Err(rejected(format!("JWK alg {declared} is not {alg}")));
        }
        Self::from_jwk_inner(jwk, Some(alg))
    }

    fn from_jwk_inner(jwk: &Jwk, declared: Option<Algorithm>) -> Result<Self, Error> {
        let alg = resolve_alg(&jwk.key, declared)?;
        check_jwk_use(&jwk.prm, jose_jwk::Operations::Verify)?;
        let inner = match &jwk.key {
            Key::Okp(okp) => {
                if okp.crv != OkpCurves::Ed25519 {
                    return Err(rejected("only the Ed25519 OKP curve is supported"));
                }
                if okp.d.is_some() {
                    return Err(rejected("public JWK carries the private member d"));
                }
                VerifyingInner::Ed25519(ed25519_public(&okp.x)?)
            }
            Key::Ec(ec) => {
                if ec.crv != EcCurves::P256 {
                    return Err(rejected("only the P-256 EC curve is supported"));
                }
                if ec.d.is_some() {
                    return Err(rejected("public JWK carries the private member d"));
                }
                VerifyingInner::Es256(p256_public(&ec.x, &ec.y)?)
            }
            Key::Rsa(r) => {
                if r.prv.is_some() {
                    return Err(rejected("public JWK carries RSA private members"));
                }
                if r.n.first() == Some(&0) || r.e.first() == Some(&0) {
                    return Err(rejected(
                        "RSA n and e must be minimal big-endian (no leading zero)",
                    ));
                }
                if r.n.len() * 8 > MAX_RSA_BITS {
                    return Err(rejected(format!(
                        "RSA modulus over {MAX_RSA_BITS} bits is refused"
                    )));
                }
                let pk = RsaPublicKey::new(uint(&r.n), uint(&r.e))
                    .map_err(|e| rejected(format!("RSA public key invalid: {e}")))?;
                rsa_public(pk, alg)?
            }
            Key::Oct(_) => {
                return Err(rejected(
                    "symmetric (oct) key in a public key set; HMAC secrets are never published",
                ));
            }
            _ => return Err(rejected("unsupported JWK key type")),
        };
        let key = Self::from_inner(inner)?;
        match &jwk.prm.kid {
            Some(kid) => key.with_kid(kid.clone()),
            None => Ok(key),
        }
    }

    /// The public JWK: key material, `kid`, `alg` and `use: sig`, never a private member.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] for HS256 keys, which must never be published.
    pub fn to_public_jwk(&self) -> Result<Jwk, Error> {
        let key = match &self.inner {
            VerifyingInner::Ed25519(k) => Key::Okp(Okp {
                crv: OkpCurves::Ed25519,
                x: Bytes::from(k.to_bytes().to_vec()),
                d: None,
            }),
            VerifyingInner::Es256(k) => {
                let (x, y) = ec_xy(k);
                Key::Ec(Ec {
                    crv: EcCurves::P256,
                    x: Bytes::from(x),
                    y: Bytes::from(y),
                    d: None,
                })
            }
            VerifyingInner::Rs256(k) => rsa_public_jwk((**k).as_ref()),
            VerifyingInner::Ps256(k) => rsa_public_jwk((**k).as_ref()),
            VerifyingInner::Hs256(_) => {
                return Err(rejected(
                    "HS256 secrets have no public form and are never published",
                ));
            }
        };
        Ok(Jwk {
            key,
            prm: params(self.algorithm(), self.kid.as_deref()),
        })
    }

    /// Imports a public key from SPKI PEM (`-----BEGIN PUBLIC KEY-----`; RSA also as
    /// PKCS#1 `RSA PUBLIC KEY`) for `alg`. Literal `\n` escapes are accepted.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] when the PEM does not hold a public key for `alg`.
    pub fn from_pem(pem: &str, alg: Algorithm) -> Result<Self, Error> {
        let pem = normalise_pem(pem)?;
        let inner = match alg {
            Algorithm::EdDSA => {
                let k = ed25519_dalek::VerifyingKey::from_public_key_pem(&pem)
                    .map_err(|e| rejected(format!("not an Ed25519 SPKI PEM key: {e}")))?;
                VerifyingInner::Ed25519(ed25519_public(k.as_bytes())?)
            }
            Algorithm::ES256 => VerifyingInner::Es256(
                p256::ecdsa::VerifyingKey::from_public_key_pem(&pem)
                    .map_err(|e| rejected(format!("not a P-256 SPKI PEM key: {e}")))?,
            ),
            Algorithm::RS256 | Algorithm::PS256 => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                let k = RsaPublicKey::from_public_key_pem(&pem)
                    .or_else(|_| RsaPublicKey::from_pkcs1_pem(&pem))
                    .map_err(|e| rejected(format!("not an RSA SPKI or PKCS#1 PEM key: {e}")))?;
                rsa_public(k, alg)?
            }
            Algorithm::HS256 => return Err(rejected("HS256 secrets have no PEM form")),
        };
        Self::from_inner(inner)
    }

    /// Exports the public key as SPKI PEM.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] for HS256 keys.
    pub fn to_public_key_pem(&self) -> Result<String, Error> {
        let r = match &self.inner {
            VerifyingInner::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
            VerifyingInner::Es256(k) => k.to_public_key_pem(LineEnding::LF),
            VerifyingInner::Rs256(k) => {
                let pk: &RsaPublicKey = (**k).as_ref();
                pk.to_public_key_pem(LineEnding::LF)
            }
            VerifyingInner::Ps256(k) => {
                let pk: &RsaPublicKey = (**k).as_ref();
                pk.to_public_key_pem(LineEnding::LF)
            }
            VerifyingInner::Hs256(_) => return Err(rejected("HS256 secrets have no PEM form")),
        };
        r.map_err(|e| rejected(format!("PEM encoding failed: {e}")))
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("VerifyingKey");
        d.field("alg", &self.algorithm()).field("kid", &self.kid);
        if !self.is_symmetric() {
            d.field("thumbprint", &self.thumbprint);
        }
        d.finish_non_exhaustive()
    }
}

impl PartialEq for VerifyingKey {
    /// Same algorithm and same key material (by RFC 7638 thumbprint, in constant time).
    fn eq(&self, other: &Self) -> bool {
        self.algorithm() == other.algorithm()
            && bool::from(self.thumbprint.0.ct_eq(&other.thumbprint.0))
    }
}

fn verifying_alg(inner: &VerifyingInner) -> Algorithm {
    match inner {
        VerifyingInner::Ed25519(_) => Algorithm::EdDSA,
        VerifyingInner::Es256(_) => Algorithm::ES256,
        VerifyingInner::Rs256(_) => Algorithm::RS256,
        VerifyingInner::Ps256(_) => Algorithm::PS256,
        VerifyingInner::Hs256(_) => Algorithm::HS256,
    }
}

fn compute_thumbprint(inner: &VerifyingInner) -> Thumbprint {
    // RFC 7638 section 3.2: required members only, lexicographic order, no whitespace.
    let json = match inner {
        VerifyingInner::Ed25519(k) => format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            b64::encode(k.as_bytes())
        ),
        VerifyingInner::Es256(k) => {
            let (x, y) = ec_xy(k);
            format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64::encode(&x),
                b64::encode(&y)
            )
        }
        VerifyingInner::Rs256(k) => rsa_thumb_json((**k).as_ref()),
        VerifyingInner::Ps256(k) => rsa_thumb_json((**k).as_ref()),
        VerifyingInner::Hs256(s) => {
            // Never exposed for symmetric keys beyond equality checks; computed the RFC way.
            let k = Zeroizing::new(b64::encode(&s.bytes));
            let mut j = Zeroizing::new(String::with_capacity(k.len() + 24));
            j.push_str(r#"{"k":""#);
            j.push_str(&k);
            j.push_str(r#"","kty":"oct"}"#);
            return Thumbprint(Sha256::digest(j.as_bytes()).into());
        }
    };
    Thumbprint(Sha256::digest(json.as_bytes()).into())
}

fn rsa_thumb_json(k: &RsaPublicKey) -> String {
    format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        b64::encode(&trimmed(k.e())),
        b64::encode(&trimmed(k.n().as_ref()))
    )
}

/// The RFC 7638 thumbprint of a public JWK, validating the key first.
///
/// # Errors
/// [`Error::KeyRejected`] when the JWK is not an acceptable public key.
pub fn jwk_thumbprint(jwk: &Jwk) -> Result<Thumbprint, Error> {
    VerifyingKey::from_jwk(jwk).map(|k| k.thumbprint())
}

/// Parses a JWK from JSON text (untrusted input: size-capped by the caller).
///
/// # Errors
/// [`Error::Json`] when the text is not a JWK.
pub fn parse_jwk(json: &[u8]) -> Result<Jwk, Error> {
    serde_json::from_slice(json).map_err(|e| Error::Json {
        part: "jwk",
        detail: clip(&e.to_string()),
    })
}

/// Fuzzing entry point: imports arbitrary bytes as a JWK (public and private) and as PEM
/// text for every algorithm; must never panic.
#[doc(hidden)]
pub fn fuzz_import_key(data: &[u8]) {
    if let Ok(jwk) = parse_jwk(data) {
        let _ = VerifyingKey::from_jwk(&jwk);
        let _ = SigningKey::from_jwk(&jwk);
    }
    if let Ok(text) = core::str::from_utf8(data) {
        for alg in Algorithm::ALL {
            let _ = VerifyingKey::from_pem(text, alg);
            let _ = SigningKey::from_pem(text, alg);
        }
    }
}

/// Every piece of secret key material wipes itself on drop: the Ed25519, P-256 and RSA
/// private keys held inside (checked at compile time below) and [`HmacSecret`].
impl ZeroizeOnDrop for SigningKey {}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeroize_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn prepared_hmac_state_gives_the_rfc_4231_tags_every_time() {
        // RFC 4231 test case 6: a 131-byte key (hashed first), one block of data.
        let s = HmacSecret::new(vec![0xaa; 131]).unwrap();
        let msg = b"Test Using Larger Than Block-Size Key - Hash Key First";
        let want = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
        let hex = |t: [u8; 32]| t.iter().map(|b| format!("{b:02x}")).collect::<String>();
        // The prepared state is cloned, never consumed: the second MAC is the same.
        assert_eq!(hex(s.mac(msg)), want);
        assert_eq!(hex(s.mac_parts(&[&msg[..7], b"", &msg[7..]])), want);
        assert!(s.verify_parts(&[msg], &s.mac(msg)));
        assert!(!s.verify_parts(&[msg.as_slice(), b"x"], &s.mac(msg)));
        // A 32-byte key (padded, not hashed) and a clone agree with a freshly keyed HMAC.
        let key: Vec<u8> = (0u8..32).collect();
        let s = HmacSecret::new(key.clone()).unwrap().clone();
        let mut fresh = <HmacSha256 as KeyInit>::new_from_slice(&key).unwrap();
        fresh.update(b"payload");
        assert_eq!(
            s.mac(b"payload"),
            <[u8; 32]>::from(fresh.finalize().into_bytes())
        );
        // Zeroize wipes the bytes and re-keys the state with the (now empty) key.
        let mut z = s.clone();
        z.zeroize();
        assert!(z.expose_secret().is_empty());
        let mut empty = <HmacSha256 as KeyInit>::new_from_slice(&[]).unwrap();
        empty.update(b"payload");
        assert_eq!(
            z.mac(b"payload"),
            <[u8; 32]>::from(empty.finalize().into_bytes())
        );
        assert_ne!(z.mac(b"payload"), s.mac(b"payload"));
        assert_eq!(format!("{s:?}"), "HmacSecret { .. }");
    }

    #[test]
    fn all_private_key_material_zeroizes_on_drop() {
        zeroize_on_drop::<ed25519_dalek::SigningKey>();
        zeroize_on_drop::<p256::ecdsa::SigningKey>();
        zeroize_on_drop::<RsaPrivateKey>();
        zeroize_on_drop::<HmacSecret>();
        // The prepared HMAC state inside HmacSecret: its SHA-256 cores and block buffer
        // (the `zeroize` features of sha2 and hmac).
        zeroize_on_drop::<sha2::block_api::Sha256VarCore>();
        zeroize_on_drop::<hmac::digest::block_api::Buffer<hmac::block_api::HmacCore<Sha256>>>();
        zeroize_on_drop::<SigningKey>();
    }

    /// An even public exponent is no RSA key: both backends refuse it at import (the
    /// `rsa` crate's own check, and ours in front of aws-lc).
    #[test]
    fn rsa_keys_with_an_even_public_exponent_are_refused_on_both_backends() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/rfc-jose.json")).unwrap();
        let mut jwk = v["jws"][1]["key"].clone();
        assert_eq!(jwk["kty"], "RSA");
        let public = |j: &serde_json::Value| {
            serde_json::json!({"kty": "RSA", "n": j["n"], "e": j["e"]}).to_string()
        };
        // The real key (e = 65537) imports.
        assert!(VerifyingKey::from_jwk(&parse_jwk(public(&jwk).as_bytes()).unwrap()).is_ok());
        for e in ["AQAA", "Ag", "BA"] {
            jwk["e"] = e.into();
            let err =
                VerifyingKey::from_jwk(&parse_jwk(public(&jwk).as_bytes()).unwrap()).unwrap_err();
            assert!(matches!(&err, Error::KeyRejected(_)), "{e}: {err:?}");
        }
        assert!(rsa_exponent_ok(&uint(&[1, 0, 0])).is_err());
        assert!(rsa_exponent_ok(&uint(&[1, 0, 1])).is_ok());
    }

    #[test]
    fn pem_normalisation_rewraps_the_body_and_keeps_the_label() {
        let n = normalise_pem("  \"-----BEGIN X-----\\r\\nAB CD\\nEF-----END X-----\"  ").unwrap();
        assert_eq!(&*n, "-----BEGIN X-----\nABCDEF\n-----END X-----\n");
        let long = format!("-----BEGIN X-----{}-----END X-----", "A".repeat(130));
        let n = normalise_pem(&long).unwrap();
        let lines: Vec<&str> = n.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[3].len(), 2);
        assert!(normalise_pem("-----BEGIN -----x-----END -----").is_err());
        assert!(normalise_pem("-----BEGIN X-----abc-----END Y-----").is_err());
    }
}
