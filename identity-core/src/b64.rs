//! Strict unpadded base64url, the only encoding JOSE compact serialization allows.

use base64ct::{Base64UrlUnpadded, Encoding};

/// Encodes bytes as unpadded base64url.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// Decodes unpadded base64url, refusing padding, the standard alphabet, whitespace and
/// non-canonical trailing bits.
///
/// # Errors
/// [`base64ct::Error`] on any character or length outside the canonical encoding.
pub fn decode(text: &str) -> Result<Vec<u8>, base64ct::Error> {
    Base64UrlUnpadded::decode_vec(text)
}
