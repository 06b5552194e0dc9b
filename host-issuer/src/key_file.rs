//! The CLI's key-file load and save path: plain or encrypted keyrings, the passphrase from
//! `HOST_ISSUER_PASSPHRASE` or a terminal prompt (never a command-line argument).

use std::fs;
use std::io::{IsTerminal, Read};
use std::path::Path;

use handoff_issuer::encrypted::{PASSPHRASE_ENV, Passphrase, load_key_file, to_encrypted_key_file};
use handoff_issuer::keyring::MAX_KEYRING_FILE_BYTES;
use handoff_issuer::{Error, Keyring};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// The passphrase: the environment variable when set, else a prompt on the terminal
/// (twice when `confirm`, for a new file).
pub(crate) fn passphrase(what: &str, confirm: bool) -> Result<Passphrase, Error> {
    let bad = |e: handoff_core::encrypted::EncryptedKeyError| Error::KeyFile(e.to_string());
    if let Some(v) = std::env::var_os(PASSPHRASE_ENV) {
        let v = Zeroizing::new(v.into_encoded_bytes());
        return Passphrase::new(v.to_vec()).map_err(bad);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::KeyFile(format!(
            "{what} needs a passphrase: set {PASSPHRASE_ENV} (the passphrase is never taken as an argument) or run in a terminal to be prompted"
        )));
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| Error::KeyFile(format!("cannot read the passphrase: {e}")))
    };
    let first = ask(&format!("passphrase for {what}: "))?;
    if confirm {
        let again = ask("same passphrase again: ")?;
        if *first != *again {
            return Err(Error::KeyFile(
                "the two passphrases differ; nothing was written".into(),
            ));
        }
    }
    Passphrase::new(first.as_bytes().to_vec()).map_err(bad)
}

/// Reads a keyring file, plain or encrypted; returns the passphrase used, if any, so a
/// rewrite keeps the file encrypted under it.
pub(crate) fn read_keyring(path: &Path) -> Result<(Keyring, Option<Passphrase>), Error> {
    let f = fs::File::open(path).map_err(|e| {
        Error::KeyFile(format!(
            "cannot open {}: {e}; create it with `host-issuer generate-keys --out {}`",
            path.display(),
            path.display()
        ))
    })?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(MAX_KEYRING_FILE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::KeyFile(format!("cannot read {}: {e}", path.display())))?;
    if buf.len() > MAX_KEYRING_FILE_BYTES {
        return Err(Error::KeyFile(format!(
            "{} is over the {MAX_KEYRING_FILE_BYTES}-byte cap; is it a keyring file?",
            path.display()
        )));
    }
    let text = core::str::from_utf8(&buf)
        .map_err(|_| Error::KeyFile(format!("{} is not UTF-8 text", path.display())))?;
    let mut used = None;
    let (ring, _) = load_key_file(text, || {
        let p = passphrase(&path.display().to_string(), false)?;
        used = Some(p.clone());
        Ok(p)
    })
    .map_err(|e| match e {
        Error::KeyFile(m) => Error::KeyFile(format!("{}: {m}", path.display())),
        other => other,
    })?;
    Ok((ring, used))
}

/// The text to write: the plain keyring, or the encrypted one under `passphrase`.
pub(crate) fn keyring_text<R: CryptoRng + ?Sized>(
    ring: &Keyring,
    passphrase: Option<&Passphrase>,
    rng: &mut R,
) -> Result<Zeroizing<String>, Error> {
    match passphrase {
        Some(p) => to_encrypted_key_file(ring, p, rng),
        None => Ok(ring.to_key_file()),
    }
}
