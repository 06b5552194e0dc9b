//! Identifiers, the canonical MAC input and the handshake wire form.

use core::fmt;

use handoff_core::{HmacSecret, UnixTime, b64};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::DeviceError;

/// Largest identifier accepted (device id, key id, operator id, gateway id), in bytes.
pub const MAX_ID_BYTES: usize = 64;
/// Largest handshake message accepted on the wire, in bytes; longer input is refused before
/// anything is parsed.
pub const MAX_HANDSHAKE_BYTES: usize = 512;
/// Smallest nonce accepted, in bytes (128 bits).
pub const MIN_NONCE_BYTES: usize = 16;
/// Largest nonce accepted, in bytes.
pub const MAX_NONCE_BYTES: usize = 64;
/// Largest MAC segment accepted by the parser, in bytes. The MAC step then requires
/// exactly 32 bytes (HMAC-SHA256); anything else is a bad MAC.
pub const MAX_MAC_BYTES: usize = 64;

/// Domain tag that opens every handshake MAC input.
pub const HANDSHAKE_DOMAIN: &str = "identity/device-handshake";
/// Version piece of the MAC input and of the wire prefix.
pub const HANDSHAKE_VERSION: &str = "v1";
/// Wire prefix of a version 1 handshake message.
pub const HANDSHAKE_PREFIX: &str = "dvh1.";

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_BYTES
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// 1 to 64 bytes of ASCII letters, digits, `-`, `_` and `:` (no `.`, which
        /// separates the wire form's fields).
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = DeviceError;
            fn try_from(s: String) -> Result<Self, DeviceError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl $name {
            /// Validates and wraps an identifier.
            ///
            /// # Errors
            /// [`DeviceError::InvalidId`] when empty, longer than [`MAX_ID_BYTES`] or
            /// outside the allowed characters.
            pub fn new(s: impl Into<String>) -> Result<Self, DeviceError> {
                let s = s.into();
                if valid_id(&s) {
                    Ok(Self(s))
                } else {
                    Err(DeviceError::InvalidId($what))
                }
            }

            /// The identifier text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A device identifier, chosen at provisioning.
    DeviceId,
    "device id"
);
id_type!(
    /// Identifier of one of a device's HMAC keys (keys rotate with an overlap).
    KeyId,
    "key id"
);
id_type!(
    /// The operator who took a decision (approval, denial, suspension, revocation).
    OperatorId,
    "operator id"
);
id_type!(
    /// The gateway (audience) a handshake is meant for; covered by the MAC so a message
    /// made for one gateway is refused by every other.
    GatewayId,
    "gateway id"
);

/// PASETO PAE-style encoding: the piece count, then each piece as a little-endian 64-bit
/// length followed by its bytes. Unambiguous whatever the pieces contain.
pub(crate) fn pae(pieces: &[&[u8]]) -> Vec<u8> {
    let total: usize = pieces.iter().map(|p| p.len() + 8).sum::<usize>() + 8;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(pieces.len() as u64).to_le_bytes());
    for p in pieces {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// The exact bytes the handshake MAC covers:
/// `PAE(["identity/device-handshake", "v1", device_id, key_id, gateway_id, nonce,
/// timestamp as u64-LE, body_hash])`.
#[must_use]
pub fn handshake_mac_input(
    device_id: &DeviceId,
    key_id: &KeyId,
    gateway_id: &GatewayId,
    nonce: &[u8],
    timestamp: UnixTime,
    body_hash: &[u8; 32],
) -> Vec<u8> {
    pae(&[
        HANDSHAKE_DOMAIN.as_bytes(),
        HANDSHAKE_VERSION.as_bytes(),
        device_id.as_str().as_bytes(),
        key_id.as_str().as_bytes(),
        gateway_id.as_str().as_bytes(),
        nonce,
        &timestamp.as_secs().to_le_bytes(),
        body_hash,
    ])
}

/// SHA-256 of a request body, the `body_hash` a handshake covers (use `&[]` when there is
/// no body).
#[must_use]
pub fn body_hash(body: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(body).into()
}

/// A device's credentials (client side): its id, the id of its current key and the
/// HMAC secret (at least 32 bytes, zeroized on drop, never printed).
#[derive(Clone)]
pub struct DeviceCredentials {
    device_id: DeviceId,
    key_id: KeyId,
    secret: HmacSecret,
}

impl DeviceCredentials {
    /// Bundles a device's id, key id and secret.
    #[must_use]
    pub fn new(device_id: DeviceId, key_id: KeyId, secret: HmacSecret) -> Self {
        Self {
            device_id,
            key_id,
            secret,
        }
    }

    /// The device id.
    #[must_use]
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// The key id.
    #[must_use]
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// Builds a handshake for `gateway` at `now` with a fresh 16-byte nonce from `rng`,
    /// covering `body_hash` (see [`body_hash`]).
    pub fn handshake<R: CryptoRng + ?Sized>(
        &self,
        gateway: &GatewayId,
        now: UnixTime,
        body_hash: [u8; 32],
        rng: &mut R,
    ) -> HandshakeMessage {
        let mut nonce = vec![0u8; MIN_NONCE_BYTES];
        rng.fill_bytes(&mut nonce);
        let input = handshake_mac_input(
            &self.device_id,
            &self.key_id,
            gateway,
            &nonce,
            now,
            &body_hash,
        );
        let mac = self.secret.mac(&input).to_vec();
        HandshakeMessage {
            device_id: self.device_id.clone(),
            key_id: self.key_id.clone(),
            timestamp: now,
            nonce,
            body_hash,
            mac: Mac(mac),
        }
    }
}

#[cfg(feature = "encrypted-keys")]
impl DeviceCredentials {
    /// The secret as a passphrase-encrypted PKCS#8 PEM (`ENCRYPTED PRIVATE KEY`, PBES2 with
    /// scrypt and AES-256-CBC, algorithm `hmacWithSHA256`), for storing on the device or
    /// in a provisioning vault. The ids are not secret and are kept by the caller.
    ///
    /// # Errors
    /// [`handoff_core::encrypted::EncryptedKeyError::Encrypt`] when encryption fails.
    pub fn secret_to_encrypted_pem<R: CryptoRng + ?Sized>(
        &self,
        passphrase: &handoff_core::encrypted::Passphrase,
        rng: &mut R,
    ) -> Result<zeroize::Zeroizing<String>, handoff_core::encrypted::EncryptedKeyError> {
        handoff_core::encrypted::encrypt_hmac_secret(&self.secret, passphrase, rng)
    }

    /// Credentials whose secret is read from what [`Self::secret_to_encrypted_pem`] wrote.
    ///
    /// # Errors
    /// [`handoff_core::encrypted::EncryptedKeyError::WrongPassphrase`] for a wrong
    /// passphrase, or what is wrong with the document (never a panic).
    pub fn from_encrypted_pem(
        device_id: DeviceId,
        key_id: KeyId,
        pem: &str,
        passphrase: &handoff_core::encrypted::Passphrase,
    ) -> Result<Self, handoff_core::encrypted::EncryptedKeyError> {
        let secret = handoff_core::encrypted::decrypt_hmac_secret(pem, passphrase)?;
        Ok(Self::new(device_id, key_id, secret))
    }
}

impl fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCredentials")
            .field("device_id", &self.device_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A MAC tag as received; compared in constant time, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Mac(pub(crate) Vec<u8>);

impl PartialEq for Mac {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for Mac {}

/// One handshake message: what a device sends to a gateway.
///
/// Wire form (ASCII, at most [`MAX_HANDSHAKE_BYTES`]):
///
/// ```text
/// dvh1.<device_id>.<key_id>.<timestamp>.<nonce>.<body_hash>.<mac>
/// ```
///
/// `device_id` and `key_id` are identifiers as defined by [`DeviceId`]; `timestamp` is
/// decimal seconds since the Unix epoch without leading zeros; `nonce` (16 to 64 bytes),
/// `body_hash` (32 bytes) and `mac` (HMAC-SHA256, 32 bytes) are unpadded base64url. The
/// gateway id is not sent: the gateway puts its own into the MAC input, so a message made
/// for another gateway fails the MAC.
#[derive(Clone, PartialEq, Eq)]
pub struct HandshakeMessage {
    device_id: DeviceId,
    key_id: KeyId,
    timestamp: UnixTime,
    nonce: Vec<u8>,
    body_hash: [u8; 32],
    mac: Mac,
}

impl HandshakeMessage {
    /// The device id the message claims (unauthenticated until the MAC is checked).
    #[must_use]
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// The key id the message claims.
    #[must_use]
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The device's timestamp.
    #[must_use]
    pub fn timestamp(&self) -> UnixTime {
        self.timestamp
    }

    /// The nonce.
    #[must_use]
    pub fn nonce(&self) -> &[u8] {
        &self.nonce
    }

    /// The body hash the MAC covers.
    #[must_use]
    pub fn body_hash(&self) -> &[u8; 32] {
        &self.body_hash
    }

    pub(crate) fn mac(&self) -> &[u8] {
        &self.mac.0
    }

    /// The compact wire form.
    #[must_use]
    pub fn to_wire(&self) -> String {
        format!(
            "{HANDSHAKE_PREFIX}{}.{}.{}.{}.{}.{}",
            self.device_id,
            self.key_id,
            self.timestamp.as_secs(),
            b64::encode(&self.nonce),
            b64::encode(&self.body_hash),
            b64::encode(&self.mac.0)
        )
    }

    /// Parses the wire form, size cap first.
    ///
    /// # Errors
    /// [`DeviceError::MessageTooLarge`] over [`MAX_HANDSHAKE_BYTES`];
    /// [`DeviceError::Malformed`] naming the first field that is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Self, DeviceError> {
        if bytes.len() > MAX_HANDSHAKE_BYTES {
            return Err(DeviceError::MessageTooLarge {
                len: bytes.len(),
                max: MAX_HANDSHAKE_BYTES,
            });
        }
        let text = core::str::from_utf8(bytes)
            .map_err(|_| DeviceError::Malformed("the message is not ASCII text"))?;
        let rest = text
            .strip_prefix(HANDSHAKE_PREFIX)
            .ok_or(DeviceError::Malformed(
                "the message does not start with dvh1. (unknown version or not a device handshake)",
            ))?;
        let mut it = rest.split('.');
        let mut field = |what: &'static str| it.next().ok_or(DeviceError::Malformed(what));
        let device_id = field("the device id field is missing")?;
        let key_id = field("the key id field is missing")?;
        let ts = field("the timestamp field is missing")?;
        let nonce = field("the nonce field is missing")?;
        let bh = field("the body hash field is missing")?;
        let mac = field("the mac field is missing")?;
        if it.next().is_some() {
            return Err(DeviceError::Malformed(
                "the message has more than seven dot-separated fields",
            ));
        }
        let device_id = DeviceId::new(device_id).map_err(|_| {
            DeviceError::Malformed(
                "the device id is empty, too long or has characters outside A-Z a-z 0-9 - _ :",
            )
        })?;
        let key_id = KeyId::new(key_id).map_err(|_| {
            DeviceError::Malformed(
                "the key id is empty, too long or has characters outside A-Z a-z 0-9 - _ :",
            )
        })?;
        let timestamp = parse_decimal(ts).ok_or(DeviceError::Malformed(
            "the timestamp is not canonical decimal seconds (digits only, no leading zeros, fits in 64 bits)",
        ))?;
        let nonce = decode_bounded(nonce, MAX_NONCE_BYTES).ok_or(DeviceError::Malformed(
            "the nonce is not unpadded base64url of at most 64 bytes",
        ))?;
        if nonce.len() < MIN_NONCE_BYTES {
            return Err(DeviceError::Malformed(
                "the nonce is shorter than 16 bytes; use at least 128 random bits",
            ));
        }
        let body_hash: [u8; 32] = decode_bounded(bh, 32)
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or(DeviceError::Malformed(
                "the body hash is not unpadded base64url of exactly 32 bytes (SHA-256)",
            ))?;
        let mac = decode_bounded(mac, MAX_MAC_BYTES).ok_or(DeviceError::Malformed(
            "the mac is not unpadded base64url of at most 64 bytes",
        ))?;
        Ok(Self {
            device_id,
            key_id,
            timestamp: UnixTime::from_secs(timestamp),
            nonce,
            body_hash,
            mac: Mac(mac),
        })
    }
}

impl fmt::Debug for HandshakeMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeMessage")
            .field("device_id", &self.device_id)
            .field("key_id", &self.key_id)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// Decodes base64url only when the decoded length cannot exceed `max` (checked on the
/// text length first, so nothing large is allocated).
fn decode_bounded(text: &str, max: usize) -> Option<Vec<u8>> {
    if text.len() > (max * 4).div_ceil(3) {
        return None;
    }
    b64::decode(text).ok().filter(|v| v.len() <= max)
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_unambiguous() {
        assert_ne!(pae(&[b"ab", b"c"]), pae(&[b"a", b"bc"]));
        assert_ne!(pae(&[b"a"]), pae(&[b"a", b""]));
        assert_eq!(pae(&[]), 0u64.to_le_bytes().to_vec());
    }

    #[test]
    fn ids_are_validated() {
        assert!(DeviceId::new("sensor-01:ab_c").is_ok());
        assert!(DeviceId::new("").is_err());
        assert!(DeviceId::new("a.b").is_err());
        assert!(DeviceId::new("é").is_err());
        assert!(DeviceId::new("a".repeat(65)).is_err());
        assert!(DeviceId::new("a".repeat(64)).is_ok());
    }

    #[test]
    fn decimal_is_canonical() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_decimal("01"), None);
        assert_eq!(parse_decimal("+1"), None);
        assert_eq!(parse_decimal("18446744073709551616"), None);
        assert_eq!(parse_decimal(""), None);
    }
}
