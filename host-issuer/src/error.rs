//! The one public error type of `host-issuer`.

/// Everything that can go wrong in `host-issuer`.
///
/// Every variant says what was wrong and what to do, except signature failures coming
/// from `identity-core`, which stay opaque.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key, JWS or claims operation of `identity-core` failed.
    #[error(transparent)]
    Core(#[from] handoff_core::Error),
    /// The algorithm cannot sign host tokens.
    #[error(
        "{0} cannot sign host tokens: use EdDSA (the default), ES256 or RS256 (asymmetric keys only, so verifiers need no secret)"
    )]
    UnsupportedAlgorithm(handoff_core::Algorithm),
    /// An input (claim, ttl, kid, option) is out of bounds.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which input.
        field: &'static str,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// A key file (keyring JSON, single-key JSON or PEM) could not be read.
    #[error("key file: {0}")]
    KeyFile(String),
    /// The keyring refused an operation (nothing staged, too many keys, ...).
    #[error("keyring: {0}")]
    Keyring(String),
    /// The JWKS / dev token server could not start or was misconfigured (feature `cli`).
    #[error("server: {0}")]
    Server(String),
}

impl Error {
    pub(crate) fn input(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

/// Most characters of untrusted text kept in an error.
const CLIP_CHARS: usize = 64;

/// Truncates untrusted text kept in an error, so errors stay small. A cut falls on a word
/// boundary (never mid-word) and is marked with an ellipsis.
pub(crate) fn clip(s: &str) -> String {
    if s.chars().count() <= CLIP_CHARS {
        return s.to_owned();
    }
    let head: String = s.chars().take(CLIP_CHARS).collect();
    let cut = match head.rfind(char::is_whitespace) {
        Some(i) if i > 0 => head[..i].trim_end(),
        // One long word: keep it whole up to the cap rather than nothing.
        _ => head.as_str(),
    };
    format!("{cut} ...")
}

/// Serializes `value` as pretty JSON into a zeroizing buffer sized exactly beforehand, so
/// no reallocation can leave a copy of private material behind.
pub(crate) fn secret_json_pretty<T: serde::Serialize>(value: &T) -> zeroize::Zeroizing<String> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    if serde_json::to_writer_pretty(&mut count, value).is_err() {
        return zeroize::Zeroizing::new(String::new());
    }
    // The trailing newline.
    let size = count.0 + 1;
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(size));
    // A `&mut [u8]`-backed writer cannot grow: writing past `size` fails instead of
    // reallocating. Serialization is deterministic, so it fits exactly.
    buf.resize(size, 0);
    let written = {
        let mut slice: &mut [u8] = &mut buf[..];
        let ok = serde_json::to_writer_pretty(&mut slice, value).is_ok();
        let left = slice.len();
        ok.then_some(size - left)
    };
    match written {
        Some(n) if n + 1 == size => buf[n] = b'\n',
        _ => return zeroize::Zeroizing::new(String::new()),
    }
    match String::from_utf8(core::mem::take(&mut *buf)) {
        Ok(s) => zeroize::Zeroizing::new(s),
        Err(e) => {
            drop(zeroize::Zeroizing::new(e.into_bytes()));
            zeroize::Zeroizing::new(String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_never_cuts_mid_word() {
        assert_eq!(clip("short"), "short");
        let long = "missing field `format` at line 1 column 2 and then some more words here";
        let c = clip(long);
        assert!(c.ends_with(" ..."), "{c}");
        let kept = c.trim_end_matches(" ...");
        assert!(long.starts_with(kept));
        // The next character in the original is a space: the cut fell between words.
        assert_eq!(long[kept.len()..].chars().next(), Some(' '), "{c}");
    }

    #[test]
    fn secret_json_is_exactly_sized() {
        let v = serde_json::json!({"a": "b".repeat(100_000), "c": [1, 2, 3]});
        let s = secret_json_pretty(&v);
        assert_eq!(s.capacity(), s.len());
        assert!(s.ends_with("}\n"));
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }
}
