//! Encrypted keyring files (feature `encrypted-keys`).
//!
//! The same keyring as [`Keyring::to_key_file`], with each private key stored as a
//! passphrase-encrypted PKCS#8 PEM (`ENCRYPTED PRIVATE KEY`: PBES2, scrypt, AES-256-CBC;
//! see [`handoff_core::encrypted`]) instead of a private JWK. Each entry keeps its `kid`,
//! `alg` and RFC 7638 thumbprint in clear, so the file can be inspected without the
//! passphrase and a damaged ciphertext that decrypts to another key is caught. Any entry's
//! `pkcs8` member opens with `openssl pkey -in FILE -passin env:VAR`.
//!
//! Sans-IO like the rest of the library: text and passphrase in, text or keyring out.

use handoff_core::encrypted::{EncryptedKeyError, decrypt_signing_key, encrypt_signing_key};
use handoff_core::jose_jwk::Jwk;
use handoff_core::{Algorithm, UnixTime};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use handoff_core::encrypted::Passphrase;

use crate::error::clip;
use crate::keyring::{KEYRING_FORMAT, KEYRING_VERSION, MAX_KEYRING_FILE_BYTES};
use crate::{Error, HostIssuerKeys, Keyring};

/// `format` member of an encrypted keyring file.
pub const ENCRYPTED_KEYRING_FORMAT: &str = "host-issuer-keyring+pkcs8";
/// The environment variable the `host-issuer` CLI reads the passphrase from.
pub const PASSPHRASE_ENV: &str = "HOST_ISSUER_PASSPHRASE";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainEntry {
    status: String,
    created_at: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<UnixTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_after: Option<UnixTime>,
    jwk: Jwk,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainFile {
    format: String,
    version: u32,
    max_token_lifetime: u64,
    leeway: u64,
    max_cache_age: u64,
    keys: Vec<PlainEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptedEntry {
    status: String,
    created_at: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<UnixTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_after: Option<UnixTime>,
    kid: String,
    alg: String,
    thumbprint: String,
    pkcs8: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptedFile {
    format: String,
    version: u32,
    max_token_lifetime: u64,
    leeway: u64,
    max_cache_age: u64,
    keys: Vec<EncryptedEntry>,
}

fn enc_err(i: usize, e: EncryptedKeyError) -> Error {
    match e {
        EncryptedKeyError::WrongPassphrase => Error::KeyFile(format!(
            "key #{i}: wrong passphrase (check {PASSPHRASE_ENV} or what you typed)"
        )),
        other => Error::KeyFile(format!("key #{i}: {other}")),
    }
}

/// Whether `text` is an encrypted keyring file (by its `format` member).
#[must_use]
pub fn is_encrypted_key_file(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        format: String,
    }
    serde_json::from_str::<Probe>(text).is_ok_and(|p| p.format == ENCRYPTED_KEYRING_FORMAT)
}

/// The keyring as an encrypted keyring file: every private key encrypted under
/// `passphrase` (fresh salt and IV per key from `rng`).
///
/// # Errors
/// [`Error::KeyFile`] when a key cannot be encrypted.
pub fn to_encrypted_key_file<R: CryptoRng + ?Sized>(
    ring: &Keyring,
    passphrase: &Passphrase,
    rng: &mut R,
) -> Result<Zeroizing<String>, Error> {
    let plain = ring.to_key_file();
    let file: PlainFile = serde_json::from_str(&plain)
        .map_err(|e| Error::KeyFile(format!("cannot re-read the keyring: {e}")))?;
    let mut keys = Vec::with_capacity(file.keys.len());
    for (i, entry) in file.keys.into_iter().enumerate() {
        let key = HostIssuerKeys::from_private_jwk(&entry.jwk)?;
        let pem =
            encrypt_signing_key(key.signing_key(), passphrase, rng).map_err(|e| enc_err(i, e))?;
        keys.push(EncryptedEntry {
            status: entry.status,
            created_at: entry.created_at,
            retired_at: entry.retired_at,
            not_after: entry.not_after,
            kid: key.kid().to_owned(),
            alg: key.algorithm().as_str().to_owned(),
            thumbprint: key.verifying_key().thumbprint().to_base64url(),
            pkcs8: pem.to_string(),
        });
    }
    let out = EncryptedFile {
        format: ENCRYPTED_KEYRING_FORMAT.to_owned(),
        version: KEYRING_VERSION,
        max_token_lifetime: file.max_token_lifetime,
        leeway: file.leeway,
        max_cache_age: file.max_cache_age,
        keys,
    };
    let mut text = serde_json::to_string_pretty(&out)
        .map_err(|e| Error::KeyFile(format!("cannot write the keyring: {e}")))?;
    text.push('\n');
    Ok(Zeroizing::new(text))
}

/// Reads an encrypted keyring file written by [`to_encrypted_key_file`].
///
/// # Errors
/// [`Error::KeyFile`] for a wrong passphrase (named as such), a damaged file (what is
/// wrong with it, never a panic), or a key that decrypts to another key than the
/// thumbprint recorded next to it.
pub fn from_encrypted_key_file(text: &str, passphrase: &Passphrase) -> Result<Keyring, Error> {
    if text.len() > MAX_KEYRING_FILE_BYTES {
        return Err(Error::KeyFile(format!(
            "{} bytes, over the {MAX_KEYRING_FILE_BYTES}-byte cap; is this a keyring file?",
            text.len()
        )));
    }
    let file: EncryptedFile = serde_json::from_str(text).map_err(|e| {
        Error::KeyFile(format!(
            "not an encrypted keyring file: {}",
            clip(&e.to_string())
        ))
    })?;
    if file.format != ENCRYPTED_KEYRING_FORMAT {
        return Err(Error::KeyFile(format!(
            "format {:?} where {ENCRYPTED_KEYRING_FORMAT:?} is expected",
            clip(&file.format)
        )));
    }
    if file.keys.len() > 16 {
        return Err(Error::KeyFile(format!(
            "{} keys; a keyring holds a handful",
            file.keys.len()
        )));
    }
    let mut keys = Vec::with_capacity(file.keys.len());
    for (i, entry) in file.keys.into_iter().enumerate() {
        let alg = Algorithm::from_name(&entry.alg).ok_or_else(|| {
            Error::KeyFile(format!("key #{i}: unknown alg {:?}", clip(&entry.alg)))
        })?;
        let key =
            decrypt_signing_key(&entry.pkcs8, passphrase, Some(alg)).map_err(|e| enc_err(i, e))?;
        let key = HostIssuerKeys::from_signing_key(key, Some(&entry.kid))?;
        if key.verifying_key().thumbprint().to_base64url() != entry.thumbprint {
            return Err(Error::KeyFile(format!(
                "key #{i} ({}) decrypted to another key than the one recorded: the file was altered or damaged; restore it from a backup",
                clip(&entry.kid)
            )));
        }
        keys.push(PlainEntry {
            status: entry.status,
            created_at: entry.created_at,
            retired_at: entry.retired_at,
            not_after: entry.not_after,
            jwk: key.signing_key().to_private_jwk(),
        });
    }
    let plain = PlainFile {
        format: KEYRING_FORMAT.to_owned(),
        version: file.version,
        max_token_lifetime: file.max_token_lifetime,
        leeway: file.leeway,
        max_cache_age: file.max_cache_age,
        keys,
    };
    let text = Zeroizing::new(
        serde_json::to_string(&plain)
            .map_err(|e| Error::KeyFile(format!("cannot rebuild the keyring: {e}")))?,
    );
    Keyring::from_key_file(&text)
}

/// Reads a keyring file, plain or encrypted; `passphrase` is asked for only when the file
/// is encrypted. Returns the keyring and whether the file was encrypted.
///
/// # Errors
/// As [`Keyring::from_key_file`] and [`from_encrypted_key_file`], or the error of
/// `passphrase`.
pub fn load_key_file(
    text: &str,
    passphrase: impl FnOnce() -> Result<Passphrase, Error>,
) -> Result<(Keyring, bool), Error> {
    if is_encrypted_key_file(text) {
        let pass = passphrase()?;
        Ok((from_encrypted_key_file(text, &pass)?, true))
    } else {
        Ok((Keyring::from_key_file(text)?, false))
    }
}
