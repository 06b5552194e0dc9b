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

/// Length of the bytes that `len` characters of unpadded base64 decode to, or `None` for a
/// length no canonical encoding has (one character past a multiple of four).
pub(crate) const fn decoded_len(len: usize) -> Option<usize> {
    match len % 4 {
        1 => None,
        0 => Some(len / 4 * 3),
        r => Some(len / 4 * 3 + r - 1),
    }
}

/// Decodes strict unpadded base64url into `out`, which must be exactly
/// [`decoded_len`]`(text.len())` bytes long. It accepts exactly what [`decode`] accepts
/// (no padding, no standard alphabet, no whitespace, canonical trailing bits: the test
/// below holds the two to the same verdicts and bytes), but its timing depends on the
/// data: use it only for public data such as token segments, never for key material.
///
/// `base64-simd` (SSE4.1/AVX2/NEON, detected at run time, with a scalar fallback) decodes
/// 3 to 4 times faster than a scalar table decoder on this path, which every token
/// verification takes for its payload and signature (`benches/RESULTS.md`).
pub(crate) fn decode_public_into(text: &[u8], out: &mut [u8]) -> Result<(), base64ct::Error> {
    if decoded_len(text.len()) != Some(out.len()) {
        return Err(base64ct::Error::InvalidLength);
    }
    base64_simd::URL_SAFE_NO_PAD
        .decode(text, base64_simd::Out::from_slice(out))
        .map(|_| ())
        .map_err(|_| base64ct::Error::InvalidEncoding)
}

/// [`decode_public_into`] into a new vector of exactly the decoded length (written once,
/// not zeroed first).
pub(crate) fn decode_public(text: &[u8]) -> Result<Vec<u8>, base64ct::Error> {
    if decoded_len(text.len()).is_none() {
        return Err(base64ct::Error::InvalidLength);
    }
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(text)
        .map_err(|_| base64ct::Error::InvalidEncoding)
}

/// [`decode_public_into`] appended to `out` (which keeps its capacity between tokens).
pub(crate) fn decode_public_append(text: &[u8], out: &mut Vec<u8>) -> Result<(), base64ct::Error> {
    if decoded_len(text.len()).is_none() {
        return Err(base64ct::Error::InvalidLength);
    }
    base64_simd::URL_SAFE_NO_PAD
        .decode_append(text, out)
        .map_err(|_| base64ct::Error::InvalidEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(text: &str) -> Result<Vec<u8>, base64ct::Error> {
        let whole = decode_public(text.as_bytes());
        let len = decoded_len(text.len()).ok_or(base64ct::Error::InvalidLength);
        let into = len.and_then(|len| {
            let mut out = vec![0; len];
            decode_public_into(text.as_bytes(), &mut out).map(|()| out)
        });
        // both public decoders give the same verdict and bytes
        assert_eq!(whole.as_ref().ok(), into.as_ref().ok(), "{text:?}");
        into
    }

    /// The fast decoder accepts exactly what the constant-time one accepts, with the same
    /// bytes, over every string of up to 3 characters from an alphabet with the edge cases
    /// and over pseudo-random longer strings.
    #[test]
    fn fast_decoder_agrees_with_base64ct() {
        let alphabet: Vec<char> = "AQgwBCDPfgh_-09+/=. \u{e9}".chars().collect();
        let mut inputs = vec![String::new()];
        for len in 1..=3 {
            let mut idx = vec![0usize; len];
            loop {
                inputs.push(idx.iter().map(|&i| alphabet[i]).collect());
                let mut k = 0;
                while k < len {
                    idx[k] += 1;
                    if idx[k] < alphabet.len() {
                        break;
                    }
                    idx[k] = 0;
                    k += 1;
                }
                if k == len {
                    break;
                }
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let lengths = (0..200).chain([255, 256, 257, 1000, 4096, 16_384, 16_385, 16_386]);
        for len in lengths {
            for _ in 0..20 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state >> 24) as u8
                    })
                    .collect();
                let good = encode(&bytes);
                inputs.push(good.clone());
                // one corrupted character anywhere, and one in the last character (the
                // trailing bits and the SIMD decoders' scalar tail)
                if !good.is_empty() {
                    let pos = (state as usize) % good.len();
                    let mut bad: Vec<char> = good.chars().collect();
                    bad[pos] = alphabet[(state as usize >> 8) % alphabet.len()];
                    inputs.push(bad.into_iter().collect());
                    let mut last: Vec<char> = good.chars().collect();
                    let n = last.len();
                    last[n - 1] = alphabet[(state as usize >> 16) % alphabet.len()];
                    inputs.push(last.into_iter().collect());
                }
                assert_eq!(fast(&good).unwrap(), bytes);
            }
        }
        let mut refused = 0;
        for s in &inputs {
            let slow = decode(s);
            assert_eq!(fast(s).ok(), slow.as_ref().ok().cloned(), "{s:?}");
            refused += usize::from(slow.is_err());
        }
        // the corpus really exercises refusals (non-canonical bits, bad characters)
        assert!(refused > 1000, "{refused}");
        assert_eq!(fast("QQ").unwrap(), b"A");
        assert!(fast("QR").is_err());
        assert!(fast("QUE").is_ok() && fast("QUF").is_err());
        assert!(fast("QQ==").is_err() && fast("Q").is_err());
    }
}
