//! Key files on disk: the one place the server and the CLI read and write them.
//!
//! Every read is bounded and checks owner-only permissions on the open handle
//! ([`read_private_file`]); the bytes are parsed as a plain keyring ([`load_key_file`]) or,
//! with feature `encrypted-keys`, as a plain or encrypted one ([`load_any_key_file`], and
//! the server's start and hot reload through `parse_any_key_file`), so a new file form is a
//! change here only.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::keyring::MAX_KEYRING_FILE_BYTES;
use crate::{Error, Keyring};

/// How strictly a private key file is checked when it is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyFileAccess {
    /// Accepts a private key file that group or others may read (mode bits `0o077`).
    /// Off by default: such a file is refused with a `chmod 600` hint.
    pub allow_insecure_permissions: bool,
}

/// The raw bytes of a key file as last read (to tell whether it changed), zeroized on drop.
pub(crate) type KeyFileBytes = Zeroizing<Vec<u8>>;

/// Reads and checks a keyring file: at most [`MAX_KEYRING_FILE_BYTES`], owner-only
/// permissions (unless `access` allows more), then [`Keyring::from_key_file`].
///
/// # Errors
/// [`Error::KeyFile`] naming the file and saying what to do.
pub fn load_key_file(path: &Path, access: KeyFileAccess) -> Result<Keyring, Error> {
    let bytes = read_private_file(path, MAX_KEYRING_FILE_BYTES, access, "keyring")?;
    parse_key_file(path, &bytes)
}

/// Reads a file that holds a secret (a keyring, a passphrase): at most `cap` bytes,
/// refused when it is not a regular file or when group or others may read it (unless
/// `access` allows it), the permissions checked on the open handle (no race with a `chmod`
/// in between). `what` names the file in errors. The bytes are zeroized on drop.
///
/// # Errors
/// [`Error::KeyFile`] naming the file and saying what to do.
pub fn read_private_file(
    path: &Path,
    cap: usize,
    access: KeyFileAccess,
    what: &str,
) -> Result<KeyFileBytes, Error> {
    let f = fs::File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound && what == "keyring" {
            Error::KeyFile(format!(
                "{} does not exist; create it with `host-issuer generate-keys --out {}`",
                path.display(),
                path.display()
            ))
        } else if e.kind() == io::ErrorKind::NotFound {
            Error::KeyFile(format!(
                "{} does not exist; check the path of the {what} file",
                path.display()
            ))
        } else {
            Error::KeyFile(format!("cannot open {}: {e}", path.display()))
        }
    })?;
    check_permissions(path, &f, access)?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(cap as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::KeyFile(format!("cannot read {}: {e}", path.display())))?;
    if buf.len() > cap {
        return Err(Error::KeyFile(format!(
            "{} is over the {cap}-byte cap of a {what} file; is it the right file?",
            path.display()
        )));
    }
    Ok(buf)
}

#[cfg(unix)]
fn check_permissions(path: &Path, f: &fs::File, access: KeyFileAccess) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let meta = f
        .metadata()
        .map_err(|e| Error::KeyFile(format!("cannot stat {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::KeyFile(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 && !access.allow_insecure_permissions {
        return Err(Error::KeyFile(format!(
            "{} holds private keys but group or others may read it (mode {mode:04o}); run `chmod 600 {}`, or pass --allow-insecure-key-file to use it anyway",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path, _: &fs::File, _: KeyFileAccess) -> Result<(), Error> {
    Ok(())
}

pub(crate) fn parse_key_file(path: &Path, bytes: &[u8]) -> Result<Keyring, Error> {
    Keyring::from_key_file(key_file_text(path, bytes)?).map_err(|e| in_file(path, e))
}

/// The passphrase a server keeps to re-read its encrypted key file (feature
/// `encrypted-keys`); without the feature a type with no values, so that the server's code
/// is the same in both builds.
#[cfg(feature = "encrypted-keys")]
pub(crate) type FilePassphrase = crate::encrypted::Passphrase;
/// The passphrase a server keeps to re-read its encrypted key file (feature
/// `encrypted-keys`); without the feature a type with no values.
#[cfg(not(feature = "encrypted-keys"))]
#[derive(Clone)]
pub(crate) enum FilePassphrase {}

/// Parses a key file's bytes, plain or encrypted, through the one dispatch of
/// [`crate::encrypted::load_key_file`] (feature `encrypted-keys`): `passphrase` is called
/// only for an encrypted file. Without the feature, the plain parser.
pub(crate) fn parse_any_key_file(
    path: &Path,
    bytes: &[u8],
    passphrase: impl FnOnce() -> Result<FilePassphrase, Error>,
) -> Result<Keyring, Error> {
    #[cfg(feature = "encrypted-keys")]
    {
        crate::encrypted::load_key_file(key_file_text(path, bytes)?, passphrase)
            .map(|(ring, _)| ring)
            .map_err(|e| in_file(path, e))
    }
    #[cfg(not(feature = "encrypted-keys"))]
    {
        let _ = passphrase;
        parse_key_file(path, bytes)
    }
}

/// The error for an encrypted key file the server holds no passphrase for.
pub(crate) fn no_passphrase(path: &Path) -> Error {
    Error::KeyFile(format!(
        "{} is an encrypted keyring and the server has no passphrase for it; start the server with its passphrase (`host-issuer serve` reads --passphrase-file, HOST_ISSUER_PASSPHRASE or asks on the terminal; a library server: ServerConfig::key_file_passphrase)",
        path.display()
    ))
}

/// As [`load_key_file`], for a keyring file that may also be passphrase-encrypted
/// ([`crate::encrypted`]): `passphrase` is called only for an encrypted file. Returns the
/// keyring and whether the file was encrypted.
///
/// # Errors
/// As [`load_key_file`], [`crate::encrypted::load_key_file`], or the error of `passphrase`.
#[cfg(feature = "encrypted-keys")]
pub fn load_any_key_file(
    path: &Path,
    access: KeyFileAccess,
    passphrase: impl FnOnce() -> Result<crate::encrypted::Passphrase, Error>,
) -> Result<(Keyring, bool), Error> {
    let bytes = read_private_file(path, MAX_KEYRING_FILE_BYTES, access, "keyring")?;
    crate::encrypted::load_key_file(key_file_text(path, &bytes)?, passphrase)
        .map_err(|e| in_file(path, e))
}

fn key_file_text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, Error> {
    core::str::from_utf8(bytes).map_err(|_| {
        Error::KeyFile(format!(
            "{} is not UTF-8 text; a keyring file is the JSON written by `host-issuer generate-keys`",
            path.display()
        ))
    })
}

/// Names the file in a key-file error, once (a message from a passphrase source may
/// already start with it).
fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::KeyFile(m) if m.starts_with(&path.display().to_string()) => Error::KeyFile(m),
        Error::KeyFile(m) => Error::KeyFile(format!("{}: {m}", path.display())),
        other => other,
    }
}

fn exists_error(path: &Path) -> Error {
    Error::KeyFile(format!(
        "{} already exists; pass --force to overwrite it (its keys are lost: tokens they signed stop verifying), or use `host-issuer rotate`",
        path.display()
    ))
}

/// Writes `bytes` to `path` with owner-only permissions, atomically: a temporary file
/// (mode 0600) in the same directory, then a hard link (refuses to replace) or a rename
/// (with `overwrite`). A reader such as `serve` never sees a half-written file.
///
/// # Errors
/// [`Error::KeyFile`] when the file exists (without `overwrite`) or cannot be written.
pub fn write_private_file(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), Error> {
    write_file(path, bytes, overwrite, 0o600)
}

/// As [`write_private_file`], with the file mode given (0644 for a public key).
pub(crate) fn write_file(
    path: &Path,
    bytes: &[u8],
    overwrite: bool,
    #[cfg_attr(not(unix), allow(unused_variables))] mode: u32,
) -> Result<(), Error> {
    let io_err = |what: &str, e: io::Error| Error::KeyFile(format!("{what}: {e}"));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&dir)
            .map_err(|e| io_err(&format!("cannot create {}", dir.display()), e))?;
    }
    let name = path
        .file_name()
        .ok_or_else(|| Error::KeyFile(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    let result = (|| {
        let mut f = opts
            .open(&tmp)
            .map_err(|e| io_err(&format!("cannot create {}", tmp.display()), e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(&format!("cannot write {}", tmp.display()), e))?;
        if overwrite {
            fs::rename(&tmp, path)
                .map_err(|e| io_err(&format!("cannot replace {}", path.display()), e))
        } else {
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists_error(path)),
                Err(e) => Err(io_err(&format!("cannot create {}", path.display()), e)),
            }
        }
    })();
    let _ = fs::remove_file(&tmp);
    result
}
