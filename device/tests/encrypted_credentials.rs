#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Device secrets at rest (feature `encrypted-keys`): encrypted PKCS#8, a wrong passphrase
//! named as such, damage refused without a panic, and the decrypted credentials pass a
//! real handshake.

use handoff_core::encrypted::{EncryptedKeyError, Passphrase};
use handoff_core::replay::InMemoryReplayLog;
use handoff_core::{HmacSecret, UnixTime};
use handoff_device::*;
use rand_core::UnwrapErr;

#[test]
fn encrypted_device_secret_round_trips_into_a_working_handshake() {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let t0 = UnixTime::from_secs(1_700_000_000);
    let (d, k) = (DeviceId::new("dev-1").unwrap(), KeyId::new("k1").unwrap());
    let secret = HmacSecret::generate(&mut rng);
    let creds = DeviceCredentials::new(d.clone(), k.clone(), secret.clone());
    let pass = Passphrase::new("device passphrase").unwrap();
    let pem = creds.secret_to_encrypted_pem(&pass, &mut rng).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let hex: String = secret
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        !pem.contains(&hex) && !pem.contains(&handoff_core::b64::encode(secret.expose_secret()))
    );

    let wrong = DeviceCredentials::from_encrypted_pem(
        d.clone(),
        k.clone(),
        &pem,
        &Passphrase::new("guess").unwrap(),
    );
    assert_eq!(wrong.err(), Some(EncryptedKeyError::WrongPassphrase));
    for cut in [0, 20, pem.len() / 2] {
        assert!(
            DeviceCredentials::from_encrypted_pem(d.clone(), k.clone(), &pem[..cut], &pass)
                .is_err()
        );
    }

    let restored =
        DeviceCredentials::from_encrypted_pem(d.clone(), k.clone(), &pem, &pass).unwrap();
    let gateway = Gateway::builder(
        GatewayId::new("gw").unwrap(),
        t0,
        HmacSecret::generate(&mut rng),
    )
    .build()
    .unwrap();
    let registry = InMemoryDeviceRegistry::new(4);
    let req = DeviceRecord::request_pairing(d, k, secret, t0, 60);
    registry.insert(&req.record).unwrap();
    let _ = req
        .record
        .approve(&OperatorId::new("op").unwrap(), t0)
        .unwrap()
        .commit(&registry)
        .unwrap();
    let wire = restored
        .handshake(gateway.gateway_id(), t0, body_hash(b""), &mut rng)
        .to_wire();
    let nonces = InMemoryReplayLog::new(10);
    assert!(
        gateway
            .handshake(wire.as_bytes(), b"", &registry, &nonces, t0, &mut rng)
            .is_ok()
    );
}
