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

/// Marks a byte outside the base64url alphabet in [`TABLE`].
const INVALID: u8 = 0xff;

/// base64url alphabet value of each byte, [`INVALID`] for every other byte.
const TABLE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'-' as usize] = 62;
    t[b'_' as usize] = 63;
    t
};

/// Decodes strict unpadded base64url into `out`, which must be exactly
/// [`decoded_len`]`(text.len())` bytes long. It accepts exactly what [`decode`] accepts
/// (no padding, no standard alphabet, no whitespace, canonical trailing bits), but its
/// timing depends on the data: use it only for public data such as token segments, never
/// for key material.
pub(crate) fn decode_public_into(text: &[u8], out: &mut [u8]) -> Result<(), base64ct::Error> {
    if decoded_len(text.len()) != Some(out.len()) {
        return Err(base64ct::Error::InvalidLength);
    }
    // Eight characters (six bytes) at a time: one validity test and one 48-bit word per
    // block. Each block maps to exactly six output bytes, so what is left of `text` and
    // `out` after the blocks still have matching lengths for the tail loop.
    let blocks = text.len() / 8;
    let (head, text) = text.split_at(blocks * 8);
    let (head_out, out) = out.split_at_mut(blocks * 6);
    for (c, o) in head.chunks_exact(8).zip(head_out.chunks_exact_mut(6)) {
        let mut n = 0u64;
        let mut bad = 0u8;
        for &ch in c {
            let v = TABLE[usize::from(ch)];
            bad |= v;
            n = n << 6 | u64::from(v);
        }
        if bad & 0xc0 != 0 {
            return Err(base64ct::Error::InvalidEncoding);
        }
        o.copy_from_slice(n.to_be_bytes().get(2..).unwrap_or_default());
    }
    let mut chunks = text.chunks_exact(4);
    let mut outs = out.chunks_exact_mut(3);
    for (c, o) in (&mut chunks).zip(&mut outs) {
        let (a, b, x, y) = (
            TABLE[usize::from(c[0])],
            TABLE[usize::from(c[1])],
            TABLE[usize::from(c[2])],
            TABLE[usize::from(c[3])],
        );
        if (a | b | x | y) & 0xc0 != 0 {
            return Err(base64ct::Error::InvalidEncoding);
        }
        let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(x) << 6 | u32::from(y);
        o[0] = (n >> 16) as u8;
        o[1] = (n >> 8) as u8;
        o[2] = n as u8;
    }
    let rest = chunks.remainder();
    let tail = outs.into_remainder();
    match (rest, tail) {
        ([], []) => Ok(()),
        ([c0, c1], [o0]) => {
            let (a, b) = (TABLE[usize::from(*c0)], TABLE[usize::from(*c1)]);
            // Canonical: the 4 bits past the last byte must be zero.
            if (a | b) & 0xc0 != 0 || b & 0x0f != 0 {
                return Err(base64ct::Error::InvalidEncoding);
            }
            *o0 = a << 2 | b >> 4;
            Ok(())
        }
        ([c0, c1, c2], [o0, o1]) => {
            let (a, b, x) = (
                TABLE[usize::from(*c0)],
                TABLE[usize::from(*c1)],
                TABLE[usize::from(*c2)],
            );
            // Canonical: the 2 bits past the last byte must be zero.
            if (a | b | x) & 0xc0 != 0 || x & 0x03 != 0 {
                return Err(base64ct::Error::InvalidEncoding);
            }
            *o0 = a << 2 | b >> 4;
            *o1 = b << 4 | x >> 2;
            Ok(())
        }
        _ => Err(base64ct::Error::InvalidLength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(text: &str) -> Result<Vec<u8>, base64ct::Error> {
        let len = decoded_len(text.len()).ok_or(base64ct::Error::InvalidLength)?;
        let mut out = vec![0; len];
        decode_public_into(text.as_bytes(), &mut out).map(|()| out)
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
        for len in 0..200 {
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
                // one corrupted character
                if !good.is_empty() {
                    let pos = (state as usize) % good.len();
                    let mut bad: Vec<char> = good.chars().collect();
                    bad[pos] = alphabet[(state as usize >> 8) % alphabet.len()];
                    inputs.push(bad.into_iter().collect());
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
