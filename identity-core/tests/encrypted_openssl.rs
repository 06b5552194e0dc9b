#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Encrypted PKCS#8 against OpenSSL, both ways (feature `encrypted-keys`): OpenSSL opens
//! what the family writes, the family opens what OpenSSL writes (scrypt and PBKDF2), a
//! wrong passphrase is a clear error, and damaged files never panic.
//!
//! Needs the `openssl` command (Debian: `apt-get install openssl`). Without it the
//! OpenSSL tests print a SKIP line, and fail when `CI=true`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use handoff_core::encrypted::{
    EncryptedKeyError, Passphrase, decrypt_hmac_secret, decrypt_signing_key, encrypt_hmac_secret,
    encrypt_signing_key,
};
use handoff_core::{Algorithm, HmacSecret, SigningKey, VerifyingKey};

const PASS_ENV: &str = "HANDOFF_TEST_PASSPHRASE";
const PASS: &str = "correct horse battery staple";

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// The `openssl` command, or `None` after a loud SKIP line (a failure under `CI=true`).
fn openssl(test: &str) -> Option<&'static str> {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("openssl");
    }
    let msg = format!(
        "SKIP {test}: the `openssl` command is missing; install it (apt-get install openssl) to run the OpenSSL interop tests"
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg} (CI=true: failing)"
    );
    eprintln!("{msg}");
    None
}

fn run(bin: &str, args: &[&str], pass: &str) -> Output {
    Command::new(bin)
        .args(args)
        .env(PASS_ENV, pass)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("handoff-enc-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn squash(pem: &str) -> String {
    pem.split_whitespace().collect()
}

const ALGS: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

#[test]
fn openssl_opens_keys_the_family_encrypts() {
    let Some(bin) = openssl("openssl_opens_keys_the_family_encrypts") else {
        return;
    };
    let dir = tmpdir("to-openssl");
    let pass = Passphrase::new(PASS).unwrap();
    for alg in ALGS {
        let key = SigningKey::generate(alg, &mut rng()).unwrap();
        let pem = encrypt_signing_key(&key, &pass, &mut rng()).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let path = dir.join(format!("{alg}.pem"));
        fs::write(&path, pem.as_bytes()).unwrap();
        // OpenSSL decrypts it and derives the same public key.
        let public = ok(run(
            bin,
            &[
                "pkey",
                "-in",
                s(&path),
                "-passin",
                &format!("env:{PASS_ENV}"),
                "-pubout",
            ],
            PASS,
        ));
        let ours = key.verifying_key().to_public_key_pem().unwrap();
        assert_eq!(squash(&public), squash(&ours), "{alg}");
        // It names the scheme the module documents.
        let asn1 = ok(run(bin, &["asn1parse", "-in", s(&path)], PASS));
        for name in ["PBES2", "scrypt", "aes-256-cbc"] {
            assert!(asn1.contains(name), "{alg}: {name} missing in\n{asn1}");
        }
        // OpenSSL refuses a wrong passphrase too.
        let out = run(
            bin,
            &[
                "pkey",
                "-in",
                s(&path),
                "-passin",
                &format!("env:{PASS_ENV}"),
                "-noout",
            ],
            "wrong passphrase",
        );
        assert!(
            !out.status.success(),
            "{alg}: openssl accepted a wrong passphrase"
        );
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_family_opens_keys_openssl_encrypts() {
    let Some(bin) = openssl("the_family_opens_keys_openssl_encrypts") else {
        return;
    };
    let dir = tmpdir("from-openssl");
    let pass = Passphrase::new(PASS).unwrap();
    let penv = format!("env:{PASS_ENV}");
    let gen_args: [(&str, Vec<&str>); 3] = [
        ("ed25519", vec!["-algorithm", "ED25519"]),
        (
            "p256",
            vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        (
            "rsa",
            vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
    ];
    for (name, args) in gen_args {
        let plain = dir.join(format!("{name}-plain.pem"));
        let mut a = vec!["genpkey"];
        a.extend(args.iter().copied());
        a.extend(["-out", s(&plain)]);
        ok(run(bin, &a, PASS));
        let expected = ok(run(bin, &["pkey", "-in", s(&plain), "-pubout"], PASS));
        // scrypt (`pkcs8 -topk8 -v2 aes-256-cbc -scrypt`) and PBKDF2-HMAC-SHA256
        // (`pkey -aes-256-cbc`, what `genpkey -aes-256-cbc` writes).
        let scrypt = dir.join(format!("{name}-scrypt.pem"));
        ok(run(
            bin,
            &[
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-scrypt",
                "-in",
                s(&plain),
                "-passout",
                &penv,
                "-out",
                s(&scrypt),
            ],
            PASS,
        ));
        let pbkdf2 = dir.join(format!("{name}-pbkdf2.pem"));
        ok(run(
            bin,
            &[
                "pkey",
                "-in",
                s(&plain),
                "-aes-256-cbc",
                "-passout",
                &penv,
                "-out",
                s(&pbkdf2),
            ],
            PASS,
        ));
        for file in [&scrypt, &pbkdf2] {
            let text = fs::read_to_string(file).unwrap();
            let key = decrypt_signing_key(&text, &pass, None)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let ours = key.verifying_key().to_public_key_pem().unwrap();
            assert_eq!(squash(&ours), squash(&expected), "{}", file.display());
            // The key works: a signature verifies under the key OpenSSL derived.
            let vk = VerifyingKey::from_pem(&expected, key.algorithm()).unwrap();
            let sig = key.sign(b"interop", &mut rng()).unwrap();
            vk.verify(b"interop", &sig).unwrap();
            // A wrong passphrase is a clear error.
            let wrong = decrypt_signing_key(&text, &Passphrase::new("nope").unwrap(), None);
            assert_eq!(wrong.err(), Some(EncryptedKeyError::WrongPassphrase));
        }
    }
    // OpenSSL's own genpkey with encryption in one step.
    let direct = dir.join("direct.pem");
    ok(run(
        bin,
        &[
            "genpkey",
            "-algorithm",
            "ED25519",
            "-aes-256-cbc",
            "-pass",
            &penv,
            "-out",
            s(&direct),
        ],
        PASS,
    ));
    let text = fs::read_to_string(&direct).unwrap();
    assert_eq!(
        decrypt_signing_key(&text, &pass, None).unwrap().algorithm(),
        Algorithm::EdDSA
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn openssl_decrypts_device_secrets_the_family_encrypts() {
    let Some(bin) = openssl("openssl_decrypts_device_secrets_the_family_encrypts") else {
        return;
    };
    let dir = tmpdir("hmac");
    let secret = HmacSecret::generate(&mut rng());
    let pass = Passphrase::new(PASS).unwrap();
    let pem = encrypt_hmac_secret(&secret, &pass, &mut rng()).unwrap();
    let path = dir.join("device.pem");
    fs::write(&path, pem.as_bytes()).unwrap();
    // `openssl pkcs8` decrypts the container; OpenSSL has no HMAC key type for PKCS#8,
    // so the check is on the decrypted DER: it ends with the secret's 32 bytes.
    let der = dir.join("device.der");
    let out = run(
        bin,
        &["asn1parse", "-in", s(&path), "-out", s(&der), "-noout"],
        PASS,
    );
    assert!(out.status.success());
    let out = run(
        bin,
        &[
            "pkcs8",
            "-in",
            s(&path),
            "-passin",
            &format!("env:{PASS_ENV}"),
            "-nocrypt",
            "-outform",
            "DER",
            "-out",
            s(&der),
        ],
        PASS,
    );
    if out.status.success() {
        let bytes = fs::read(&der).unwrap();
        assert!(bytes.ends_with(secret.expose_secret()));
    } else {
        // OpenSSL refuses to convert an unknown key type, but only after decrypting:
        // the error is about the key, never about the passphrase or the encryption.
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(!err.contains("bad decrypt"), "{err}");
        let wrong = run(
            bin,
            &[
                "pkcs8",
                "-in",
                s(&path),
                "-passin",
                &format!("env:{PASS_ENV}"),
                "-nocrypt",
                "-outform",
                "DER",
                "-out",
                s(&der),
            ],
            "wrong",
        );
        let werr = String::from_utf8_lossy(&wrong.stderr).to_lowercase();
        assert_ne!(
            err, werr,
            "openssl cannot tell the right passphrase from a wrong one"
        );
    }
    assert_eq!(
        decrypt_hmac_secret(&pem, &pass).unwrap().expose_secret(),
        secret.expose_secret()
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn damaged_files_are_errors_never_panics() {
    let pass = Passphrase::new(PASS).unwrap();
    let key = SigningKey::generate(Algorithm::EdDSA, &mut rng()).unwrap();
    let pem = encrypt_signing_key(&key, &pass, &mut rng()).unwrap();
    let lines: Vec<&str> = pem.lines().collect();
    // Truncations, a flipped character in every position of the body, other labels.
    for cut in [0, 10, 40, pem.len() / 2, pem.len() - 30] {
        assert!(
            decrypt_signing_key(&pem[..cut], &pass, None).is_err(),
            "cut {cut}"
        );
    }
    let body_start = lines[0].len() + 1;
    let body_end = pem.len() - lines.last().unwrap().len() - 1;
    let (mut wrong_pass, mut other_key) = (0, 0);
    for i in body_start..body_end {
        let mut b = pem.as_bytes().to_vec();
        if b[i] == b'\n' {
            continue;
        }
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        let text = String::from_utf8(b).unwrap();
        // PBES2 with AES-CBC has no integrity check (the standard format, as OpenSSL
        // writes it): damage inside the ciphertext can decrypt to another well-formed key.
        // What must hold: no panic, and never the original key from damaged bytes unless
        // the damage hit only padding-free base64 slack. Callers that must detect damage
        // keep the key's thumbprint next to the file (the host-issuer keyring does).
        match decrypt_signing_key(&text, &pass, None) {
            Ok(_) => other_key += 1,
            Err(EncryptedKeyError::WrongPassphrase) => wrong_pass += 1,
            Err(_) => {}
        }
    }
    assert!(
        wrong_pass > 0,
        "ciphertext damage was never detected as such"
    );
    assert!(
        other_key < (body_end - body_start) / 4,
        "{other_key} damaged files still decrypted"
    );
    let plain = key.to_pkcs8_pem().unwrap();
    assert!(matches!(
        decrypt_signing_key(&plain, &pass, None),
        Err(EncryptedKeyError::Malformed(_))
    ));
    assert!(matches!(
        decrypt_signing_key(&"A".repeat(70_000), &pass, None),
        Err(EncryptedKeyError::Malformed(_))
    ));
    // Asking for the wrong algorithm is refused.
    assert!(matches!(
        decrypt_signing_key(&pem, &pass, Some(Algorithm::ES256)),
        Err(EncryptedKeyError::Key(_))
    ));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn pem_of(bytes: &[u8]) -> String {
        let b64 = <base64ct::Base64 as base64ct::Encoding>::encode_string(bytes);
        let body: Vec<String> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        format!(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{}\n-----END ENCRYPTED PRIVATE KEY-----\n",
            body.join("\n")
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary DER inside the right PEM label, and arbitrary text: an error, never a
        /// panic.
        #[test]
        fn arbitrary_input_is_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..600), text in ".{0,300}") {
            let pass = Passphrase::new("p").unwrap();
            prop_assert!(decrypt_signing_key(&pem_of(&bytes), &pass, None).is_err());
            prop_assert!(decrypt_hmac_secret(&text, &pass).is_err());
        }
    }
}
