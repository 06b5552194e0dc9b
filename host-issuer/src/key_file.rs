//! The CLI's key-file load and save path: plain or encrypted keyrings, the passphrase from
//! `--passphrase-file`, `HOST_ISSUER_PASSPHRASE` or a terminal prompt (never a command-line
//! argument).

use std::io::IsTerminal;
use std::path::Path;

use handoff_core::encrypted::MAX_PASSPHRASE_BYTES;
use handoff_issuer::server::{KeyFileAccess, read_private_file};

use handoff_issuer::encrypted::{PASSPHRASE_ENV, Passphrase, to_encrypted_key_file};
use handoff_issuer::{Error, Keyring};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// Where the passphrase comes from, in order: `--passphrase-file`, then
/// `HOST_ISSUER_PASSPHRASE`, then a terminal prompt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassphraseArgs<'a> {
    /// A file holding the passphrase (owner-only permissions unless `access` allows more).
    pub(crate) file: Option<&'a Path>,
    pub(crate) access: KeyFileAccess,
}

/// The passphrase: from `--passphrase-file` when given (one trailing newline dropped),
/// else the environment variable when set, else a prompt on the terminal (twice when
/// `confirm`, for a new file).
pub(crate) fn passphrase(
    what: &str,
    confirm: bool,
    from: PassphraseArgs<'_>,
) -> Result<Passphrase, Error> {
    let bad = |e: handoff_core::encrypted::EncryptedKeyError| Error::KeyFile(e.to_string());
    if let Some(path) = from.file {
        let bytes = read_private_file(path, MAX_PASSPHRASE_BYTES + 2, from.access, "passphrase")?;
        let text = bytes
            .strip_suffix(b"\r\n")
            .or_else(|| bytes.strip_suffix(b"\n"))
            .unwrap_or(&bytes);
        return Passphrase::new(text.to_vec())
            .map_err(|e| Error::KeyFile(format!("{}: {e}", path.display())));
    }
    if let Some(v) = std::env::var_os(PASSPHRASE_ENV) {
        let v = Zeroizing::new(v.into_encoded_bytes());
        return Passphrase::new(v.to_vec()).map_err(bad);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::KeyFile(format!(
            "{what} needs a passphrase: pass --passphrase-file FILE, set {PASSPHRASE_ENV} (the passphrase is never taken as an argument) or run in a terminal to be prompted"
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
