//! Sealing device key secrets: the registry never stores them in plain text.

use core::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use handoff_core::HmacSecret;
use handoff_device::{DeviceId, KeyId, derive_device_secret};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::StoresError;

/// Most bytes a sealed secret may take in the database.
pub const MAX_SEALED_BYTES: usize = 512;

/// Turns a device key secret into bytes safe to store, and back. The device and key ids
/// are bound to the sealed bytes, so a sealed secret copied onto another row does not open.
pub trait SecretSealer: Send + Sync {
    /// Seals `secret` for (`device`, `key`).
    ///
    /// # Errors
    /// [`StoresError::Seal`] when sealing fails, or [`StoresError::Config`] when this
    /// sealer refuses the secret (see [`DerivedSecrets`]).
    fn seal(
        &self,
        device: &DeviceId,
        key: &KeyId,
        secret: &HmacSecret,
    ) -> Result<Vec<u8>, StoresError>;

    /// Opens what [`SecretSealer::seal`] produced for the same ids.
    ///
    /// # Errors
    /// [`StoresError::Seal`] when the bytes were altered, moved to another row, or sealed
    /// under another key.
    fn open(
        &self,
        device: &DeviceId,
        key: &KeyId,
        sealed: &[u8],
    ) -> Result<HmacSecret, StoresError>;
}

/// Associated data: domain tag and the ids, each length-prefixed.
fn aad(device: &DeviceId, key: &KeyId) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    for part in [
        b"stores/device-secret/v1".as_slice(),
        device.as_str().as_bytes(),
        key.as_str().as_bytes(),
    ] {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

const AEAD_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// Seals with XChaCha20-Poly1305 under a 32-byte key-encryption key that the database does
/// not hold (keep it in the gateways' secret store). Stored form: version byte, random
/// 24-byte nonce, ciphertext and tag; the device and key ids are the associated data.
pub struct AeadSealer {
    kek: Zeroizing<[u8; 32]>,
}

impl AeadSealer {
    /// A sealer under `kek` (32 random bytes).
    #[must_use]
    pub fn new(kek: [u8; 32]) -> Self {
        Self {
            kek: Zeroizing::new(kek),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.kek).into())
    }
}

impl fmt::Debug for AeadSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadSealer").finish_non_exhaustive()
    }
}

impl SecretSealer for AeadSealer {
    fn seal(
        &self,
        device: &DeviceId,
        key: &KeyId,
        secret: &HmacSecret,
    ) -> Result<Vec<u8>, StoresError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| StoresError::Seal)?;
        let aad = aad(device, key);
        let ct = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret.expose_secret(),
                    aad: &aad,
                },
            )
            .map_err(|_| StoresError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(AEAD_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        if out.len() > MAX_SEALED_BYTES {
            return Err(StoresError::Config(
                "device secret too long to seal (over 471 bytes)",
            ));
        }
        Ok(out)
    }

    fn open(
        &self,
        device: &DeviceId,
        key: &KeyId,
        sealed: &[u8],
    ) -> Result<HmacSecret, StoresError> {
        if sealed.len() > MAX_SEALED_BYTES || sealed.len() < 1 + NONCE_LEN + 16 {
            return Err(StoresError::Seal);
        }
        let (version, rest) = sealed.split_at(1);
        if version != [AEAD_VERSION] {
            return Err(StoresError::Seal);
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| StoresError::Seal)?;
        let aad = aad(device, key);
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: &aad })
                .map_err(|_| StoresError::Seal)?,
        );
        HmacSecret::new(plain.as_slice()).map_err(|_| StoresError::Seal)
    }
}

const DERIVED_MARKER: &[u8] = b"derived/v1";

/// Stores no secret at all: every key secret is derived from a master key and the device
/// and key ids with [`derive_device_secret`]. `seal` refuses any other secret, so a record
/// whose secret was not derived can never be written by mistake.
pub struct DerivedSecrets {
    master: HmacSecret,
}

impl DerivedSecrets {
    /// Derives from `master` (at least 32 random bytes, from the secret store).
    #[must_use]
    pub fn new(master: HmacSecret) -> Self {
        Self { master }
    }

    /// The secret of (`device`, `key`): give it to the device at provisioning.
    ///
    /// # Errors
    /// [`StoresError::Seal`] if derivation fails (it does not in practice).
    pub fn secret_for(&self, device: &DeviceId, key: &KeyId) -> Result<HmacSecret, StoresError> {
        derive_device_secret(&self.master, device, key).map_err(|_| StoresError::Seal)
    }
}

impl fmt::Debug for DerivedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedSecrets").finish_non_exhaustive()
    }
}

impl SecretSealer for DerivedSecrets {
    fn seal(
        &self,
        device: &DeviceId,
        key: &KeyId,
        secret: &HmacSecret,
    ) -> Result<Vec<u8>, StoresError> {
        let derived = self.secret_for(device, key)?;
        let same: bool = derived.expose_secret().ct_eq(secret.expose_secret()).into();
        if !same {
            return Err(StoresError::Config(
                "the key secret is not derived from this registry's master key; derive it with DerivedSecrets::secret_for",
            ));
        }
        Ok(DERIVED_MARKER.to_vec())
    }

    fn open(
        &self,
        device: &DeviceId,
        key: &KeyId,
        sealed: &[u8],
    ) -> Result<HmacSecret, StoresError> {
        if sealed != DERIVED_MARKER {
            return Err(StoresError::Seal);
        }
        self.secret_for(device, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(d: &str, k: &str) -> (DeviceId, KeyId) {
        (DeviceId::new(d).unwrap(), KeyId::new(k).unwrap())
    }

    #[test]
    fn aead_round_trips_and_binds_the_ids() {
        let s = AeadSealer::new([7; 32]);
        let (d, k) = ids("dev-1", "k1");
        let secret = HmacSecret::new(vec![9u8; 32]).unwrap();
        let sealed = s.seal(&d, &k, &secret).unwrap();
        assert!(
            !sealed.windows(32).any(|w| w == [9u8; 32]),
            "plain text stored"
        );
        assert_eq!(s.open(&d, &k, &sealed).unwrap(), secret);
        let (d2, k2) = ids("dev-2", "k1");
        assert_eq!(s.open(&d2, &k2, &sealed), Err(StoresError::Seal));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(s.open(&d, &k, &tampered), Err(StoresError::Seal));
        assert_eq!(
            AeadSealer::new([8; 32]).open(&d, &k, &sealed),
            Err(StoresError::Seal)
        );
        assert_eq!(s.open(&d, &k, &[]), Err(StoresError::Seal));
        assert_eq!(format!("{s:?}"), "AeadSealer { .. }");
    }

    #[test]
    fn derived_secrets_refuse_foreign_secrets() {
        let s = DerivedSecrets::new(HmacSecret::new(vec![1u8; 32]).unwrap());
        let (d, k) = ids("dev-1", "k1");
        let good = s.secret_for(&d, &k).unwrap();
        let sealed = s.seal(&d, &k, &good).unwrap();
        assert_eq!(sealed, DERIVED_MARKER);
        assert_eq!(s.open(&d, &k, &sealed).unwrap(), good);
        let foreign = HmacSecret::new(vec![2u8; 32]).unwrap();
        assert!(matches!(
            s.seal(&d, &k, &foreign),
            Err(StoresError::Config(_))
        ));
        assert_eq!(s.open(&d, &k, b"other"), Err(StoresError::Seal));
    }
}
