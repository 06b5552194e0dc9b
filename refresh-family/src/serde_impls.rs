//! `serde` (feature `serde`) for the records and audit events users persist or log: ids,
//! secret hashes and DPoP thumbprints as lowercase hex strings (never a token or secret:
//! a `SecretHash` is the SHA-256 of one).

use core::fmt::Write as _;

use handoff_core::Thumbprint;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::token::{FamilyId, SecretHash, TokenId};

fn to_hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn from_hex<const N: usize, E: serde::de::Error>(s: &str) -> Result<[u8; N], E> {
    if s.len() != 2 * N {
        return Err(E::custom(format_args!(
            "expected {} lowercase hex digits",
            2 * N
        )));
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let pair = s
            .get(2 * i..2 * i + 2)
            .ok_or_else(|| E::custom("not ASCII hex"))?;
        if pair.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(E::custom("expected lowercase hex"));
        }
        *o = u8::from_str_radix(pair, 16).map_err(|_| E::custom("not hex"))?;
    }
    Ok(out)
}

macro_rules! hex_serde {
    ($t:ty, $n:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&to_hex(self.as_bytes()))
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::from_bytes(from_hex::<$n, D::Error>(&s)?))
            }
        }
    };
}

hex_serde!(FamilyId, 16);
hex_serde!(TokenId, 16);
hex_serde!(SecretHash, 32);

/// `Option<Thumbprint>` as `null` or 64 lowercase hex digits.
pub(crate) mod opt_thumbprint {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<Thumbprint>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_some(&to_hex(t.as_bytes())),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Thumbprint>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| from_hex::<32, D::Error>(&s).map(Thumbprint::from_bytes))
            .transpose()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_refusals() {
        let id = FamilyId::from_bytes([0xab; 16]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(16)));
        assert_eq!(serde_json::from_str::<FamilyId>(&json).unwrap(), id);
        for bad in [
            "\"ab\"",
            &format!("\"{}\"", "AB".repeat(16)),
            &format!("\"{}\"", "zz".repeat(16)),
        ] {
            assert!(serde_json::from_str::<FamilyId>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_round_trip() {
        use crate::records::{FamilyRecord, FamilyStatus, RevocationReason};
        use handoff_core::UnixTime;
        let rec = FamilyRecord {
            id: FamilyId::from_bytes([1; 16]),
            subject: "u".into(),
            client_id: "c".into(),
            created_at: UnixTime::from_secs(10),
            absolute_expires_at: UnixTime::from_secs(20),
            head: TokenId::from_bytes([2; 16]),
            head_parent: None,
            head_generation: 0,
            version: 3,
            status: FamilyStatus::Revoked {
                at: UnixTime::from_secs(15),
                reason: RevocationReason::ReuseDetected,
            },
            dpop_jkt: Some(Thumbprint::from_bytes([3; 32])),
        };
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["status"]["status"], "revoked");
        assert_eq!(json["status"]["reason"], "reuse_detected");
        assert_eq!(json["dpop_jkt"], "03".repeat(32));
        let back: FamilyRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
    }
}
