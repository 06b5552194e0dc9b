//! Fuzzing the row decoders of [`crate::rows`] (target `stores_row_decode`).
//!
//! Input: the first byte selects the table: bit 7 set, `device_sessions`; otherwise `% 3`:
//! 0 `refresh_families`, 1 `refresh_tokens`, 2 `devices` with its `device_keys`; for
//! devices, bit 2 selects the sealer: clear (2), [`DerivedSecrets`] under [`FUZZ_MASTER`];
//! set (5), [`AeadSealer`] under [`FUZZ_KEK`]. The rest is the row's columns in schema order, each as:
//! bytes (blob or text) = 2-byte little-endian length then that many bytes; integer = 8
//! bytes little-endian; a NULL-able column = one tag byte (0: NULL) then the value. A
//! device row is followed by one byte (`% 6`: how many key rows) and the key rows.
//! Missing bytes read as zeros (or an empty value), so every input is some row.

use handoff_core::HmacSecret;
use handoff_core::UnixTime;
use handoff_device::{
    DeviceId, DeviceKey, DeviceRecord, DeviceSession, DeviceState, KeyId, KeyStatus, OperatorId,
    SessionId,
};
use handoff_refresh::{
    FamilyId, FamilyRecord, FamilyStatus, RevocationReason, SecretHash, TokenId, TokenRecord,
    TokenState,
};

use crate::rows::{
    DeviceColumns, FamilyColumns, KeyColumns, SessionColumns, TokenColumns, decode_device,
    decode_family, decode_session, decode_token, encode_device, encode_family, encode_keys,
    encode_session, encode_token,
};
use crate::seal::{AeadSealer, DerivedSecrets, SecretSealer};

/// The master key of the [`DerivedSecrets`] sealer (fixed, fuzzing only).
pub(crate) const FUZZ_MASTER: [u8; 32] = *b"fuzz-only-device-master-key-32b!";
/// The key-encryption key of the [`AeadSealer`] (fixed, fuzzing only).
pub(crate) const FUZZ_KEK: [u8; 32] = *b"fuzz-only-device-sealing-kek-32!";

/// Most key rows an input holds: one more than a device may have (the load query reads
/// at most 5 rows).
const MAX_KEY_ROWS: usize = 5;

struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.rest.len());
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        head
    }

    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    fn int(&mut self) -> i64 {
        let mut b = [0u8; 8];
        let got = self.take(8);
        b[..got.len()].copy_from_slice(got);
        i64::from_le_bytes(b)
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = u16::from_le_bytes([self.byte(), self.byte()]);
        self.take(usize::from(len)).to_vec()
    }

    fn opt_int(&mut self) -> Option<i64> {
        (self.byte() != 0).then(|| self.int())
    }

    fn opt_bytes(&mut self) -> Option<Vec<u8>> {
        (self.byte() != 0).then(|| self.bytes())
    }
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn int(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes(&mut self, v: &[u8]) {
        let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(&v[..usize::from(len)]);
    }

    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.int(v);
            }
        }
    }

    fn opt_bytes(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.bytes(v);
            }
        }
    }
}

fn read_family(r: &mut Reader<'_>) -> FamilyColumns {
    FamilyColumns {
        id: r.bytes(),
        subject: r.bytes(),
        client_id: r.bytes(),
        created_at: r.int(),
        absolute_expires_at: r.int(),
        head: r.bytes(),
        head_parent: r.opt_bytes(),
        head_generation: r.int(),
        version: r.int(),
        status: r.bytes(),
        revoked_at: r.opt_int(),
        revoked_reason: r.opt_bytes(),
        dpop_jkt: r.opt_bytes(),
    }
}

fn write_family(w: &mut Writer, c: &FamilyColumns) {
    w.bytes(&c.id);
    w.bytes(&c.subject);
    w.bytes(&c.client_id);
    w.int(c.created_at);
    w.int(c.absolute_expires_at);
    w.bytes(&c.head);
    w.opt_bytes(c.head_parent.as_deref());
    w.int(c.head_generation);
    w.int(c.version);
    w.bytes(&c.status);
    w.opt_int(c.revoked_at);
    w.opt_bytes(c.revoked_reason.as_deref());
    w.opt_bytes(c.dpop_jkt.as_deref());
}

fn read_token(r: &mut Reader<'_>) -> TokenColumns {
    TokenColumns {
        family_id: r.bytes(),
        id: r.bytes(),
        parent: r.opt_bytes(),
        generation: r.int(),
        secret_hash: r.bytes(),
        issued_at: r.int(),
        state: r.bytes(),
        state_at: r.opt_int(),
        successor: r.opt_bytes(),
        grace_uses: r.int(),
    }
}

fn write_token(w: &mut Writer, c: &TokenColumns) {
    w.bytes(&c.family_id);
    w.bytes(&c.id);
    w.opt_bytes(c.parent.as_deref());
    w.int(c.generation);
    w.bytes(&c.secret_hash);
    w.int(c.issued_at);
    w.bytes(&c.state);
    w.opt_int(c.state_at);
    w.opt_bytes(c.successor.as_deref());
    w.int(c.grace_uses);
}

fn read_device(r: &mut Reader<'_>) -> (DeviceColumns, Vec<KeyColumns>) {
    let device = DeviceColumns {
        device_id: r.bytes(),
        state: r.bytes(),
        state_by: r.opt_bytes(),
        state_at: r.opt_int(),
        expires_at: r.opt_int(),
        version: r.int(),
    };
    let n = usize::from(r.byte()) % (MAX_KEY_ROWS + 1);
    let keys = (0..n)
        .map(|_| KeyColumns {
            key_id: r.bytes(),
            position: r.int(),
            status: r.bytes(),
            retiring_until: r.opt_int(),
            sealed_secret: r.bytes(),
        })
        .collect();
    (device, keys)
}

fn write_device(w: &mut Writer, d: &DeviceColumns, keys: &[KeyColumns]) {
    w.bytes(&d.device_id);
    w.bytes(&d.state);
    w.opt_bytes(d.state_by.as_deref());
    w.opt_int(d.state_at);
    w.opt_int(d.expires_at);
    w.int(d.version);
    w.0.push(u8::try_from(keys.len()).unwrap_or(0));
    for k in keys {
        w.bytes(&k.key_id);
        w.int(k.position);
        w.bytes(&k.status);
        w.opt_int(k.retiring_until);
        w.bytes(&k.sealed_secret);
    }
}

/// The selector bit of a `device_sessions` row.
const SESSION_SELECTOR: u8 = 0x80;

fn read_session(r: &mut Reader<'_>) -> SessionColumns {
    SessionColumns {
        session_id: r.bytes(),
        device_id: r.bytes(),
        created_at: r.int(),
        last_seen: r.int(),
        idle_timeout: r.int(),
        max_lifetime: r.int(),
        rotated_at: r.int(),
        current_hash: r.bytes(),
        previous_hash: r.opt_bytes(),
        overlap_until: r.int(),
        generation: r.int(),
        revoked_at: r.opt_int(),
        version: r.int(),
        expires_at: r.int(),
    }
}

fn write_session(w: &mut Writer, c: &SessionColumns) {
    w.bytes(&c.session_id);
    w.bytes(&c.device_id);
    w.int(c.created_at);
    w.int(c.last_seen);
    w.int(c.idle_timeout);
    w.int(c.max_lifetime);
    w.int(c.rotated_at);
    w.bytes(&c.current_hash);
    w.opt_bytes(c.previous_hash.as_deref());
    w.int(c.overlap_until);
    w.int(c.generation);
    w.opt_int(c.revoked_at);
    w.int(c.version);
    w.int(c.expires_at);
}

/// Fuzzing entry point: builds a stored row from `data` (format in this module's doc)
/// and decodes it. A row that decodes must re-encode to the same columns (the decoders
/// accept only what the adapters write) and decode again to the same record; a refused
/// row names its column. Never panics otherwise.
#[doc(hidden)]
pub fn fuzz_decode_rows(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut r = Reader { rest };
    if selector & SESSION_SELECTOR != 0 {
        let c = read_session(&mut r);
        match decode_session(&c) {
            Ok(rec) => {
                let again = encode_session(&rec);
                debug_assert_eq!(again.as_ref(), Ok(&c), "a decoded session re-encodes");
                if let Ok(again) = again {
                    debug_assert_eq!(decode_session(&again), Ok(rec));
                }
            }
            Err(e) => debug_assert!(e.message.starts_with(e.column)),
        }
        return;
    }
    match selector % 3 {
        0 => {
            let c = read_family(&mut r);
            match decode_family(&c) {
                Ok(rec) => {
                    let again = encode_family(&rec);
                    debug_assert_eq!(again.as_ref(), Ok(&c), "a decoded family re-encodes");
                    if let Ok(again) = again {
                        debug_assert_eq!(decode_family(&again), Ok(rec));
                    }
                }
                Err(e) => debug_assert!(e.message.starts_with(e.column)),
            }
        }
        1 => {
            let c = read_token(&mut r);
            match decode_token(&c) {
                Ok(rec) => {
                    let again = encode_token(&rec);
                    debug_assert_eq!(again.as_ref(), Ok(&c), "a decoded token re-encodes");
                    if let Ok(again) = again {
                        debug_assert_eq!(decode_token(&again), Ok(rec));
                    }
                }
                Err(e) => debug_assert!(e.message.starts_with(e.column)),
            }
        }
        _ => {
            let (d, keys) = read_device(&mut r);
            if selector & 4 == 0 {
                device_round_trip(&d, &keys, &derived());
            } else {
                device_round_trip(&d, &keys, &AeadSealer::new(FUZZ_KEK));
            }
        }
    }
}

fn derived() -> DerivedSecrets {
    // A 32-byte master key is always accepted.
    DerivedSecrets::new(HmacSecret::new(FUZZ_MASTER.to_vec()).unwrap_or_else(|_| unreachable!()))
}

fn device_round_trip<S: SecretSealer>(d: &DeviceColumns, keys: &[KeyColumns], sealer: &S) {
    let Ok(rec) = decode_device(d, keys, sealer) else {
        return;
    };
    let again = encode_device(&rec);
    debug_assert_eq!(again.as_ref(), Ok(d), "a decoded device re-encodes");
    let again_keys = encode_keys(&rec, sealer);
    debug_assert!(again_keys.is_ok(), "a decoded device's keys seal again");
    if let (Ok(again), Ok(again_keys)) = (again, again_keys) {
        debug_assert_eq!(
            decode_device(&again, &again_keys, sealer).ok().as_ref(),
            Some(&rec),
            "a re-encoded device decodes to the same record"
        );
    }
}

/// Realistic rows for the seed corpus of `stores_row_decode`, as fuzz inputs: every
/// family status and revocation reason, every token state, every device state with one
/// to four keys under both sealers, device sessions (fresh, rotated, revoked, at the
/// 64-bit signed limit). Names are the seed file names.
#[doc(hidden)]
#[must_use]
pub fn fuzz_seed_rows() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let t0 = 1_767_225_600; // 2026-01-01
    let id = |b: u8| [b; 16];
    let family = |status, jkt: Option<[u8; 32]>, parent: Option<u8>| FamilyRecord {
        id: FamilyId::from_bytes(id(0x11)),
        subject: "user-4242@example.com".into(),
        client_id: "mobile-app".into(),
        created_at: handoff_core::UnixTime::from_secs(t0),
        absolute_expires_at: handoff_core::UnixTime::from_secs(t0 + 30 * 86_400),
        head: TokenId::from_bytes(id(0x22)),
        head_parent: parent.map(|p| TokenId::from_bytes(id(p))),
        head_generation: u64::from(parent.is_some()) * 7,
        version: 3,
        status,
        dpop_jkt: jkt.map(handoff_core::Thumbprint::from_bytes),
    };
    let mut families = vec![
        ("family-active", family(FamilyStatus::Active, None, None)),
        (
            "family-active-bound",
            family(FamilyStatus::Active, Some([0x5a; 32]), Some(0x21)),
        ),
    ];
    for (name, reason) in [
        ("family-revoked-reuse", RevocationReason::ReuseDetected),
        ("family-revoked-logout", RevocationReason::Logout),
        ("family-revoked-admin", RevocationReason::Admin),
        ("family-revoked-security", RevocationReason::SecurityEvent),
    ] {
        let status = FamilyStatus::Revoked {
            at: handoff_core::UnixTime::from_secs(t0 + 3_600),
            reason,
        };
        families.push((name, family(status, None, Some(0x21))));
    }
    for (name, f) in &families {
        if let Ok(c) = encode_family(f) {
            let mut w = Writer(vec![0]);
            write_family(&mut w, &c);
            out.push(((*name).to_owned(), w.0));
        }
    }
    let token = |state| TokenRecord {
        family: FamilyId::from_bytes(id(0x11)),
        id: TokenId::from_bytes(id(0x22)),
        parent: Some(TokenId::from_bytes(id(0x21))),
        generation: 7,
        secret_hash: SecretHash::from_bytes([0x33; 32]),
        issued_at: handoff_core::UnixTime::from_secs(t0 + 600),
        state,
    };
    let at = handoff_core::UnixTime::from_secs(t0 + 1_200);
    for (name, state) in [
        ("token-active", TokenState::Active),
        (
            "token-rotated",
            TokenState::Rotated {
                at,
                successor: TokenId::from_bytes(id(0x23)),
                grace_uses: 1,
            },
        ),
        (
            "token-superseded",
            TokenState::Superseded {
                at,
                by: TokenId::from_bytes(id(0x24)),
            },
        ),
    ] {
        if let Ok(c) = encode_token(&token(state)) {
            let mut w = Writer(vec![1]);
            write_token(&mut w, &c);
            out.push((name.to_owned(), w.0));
        }
    }
    let op = || OperatorId::new("ops-alice").ok();
    let at = handoff_core::UnixTime::from_secs(t0);
    let mut states = vec![
        (
            "pending",
            Some(DeviceState::Pending {
                requested_at: at,
                expires_at: handoff_core::UnixTime::from_secs(t0 + 600),
            }),
        ),
        ("expired", Some(DeviceState::Expired { at })),
    ];
    states.push(("approved", op().map(|by| DeviceState::Approved { by, at })));
    states.push((
        "suspended",
        op().map(|by| DeviceState::Suspended { by, at }),
    ));
    states.push(("revoked", op().map(|by| DeviceState::Revoked { by, at })));
    states.push(("denied", op().map(|by| DeviceState::Denied { by, at })));
    let master = derived();
    let aead = AeadSealer::new(FUZZ_KEK);
    let device = DeviceId::new("thermostat-0042").ok();
    for (n_keys, (name, state)) in (1..=4).cycle().zip(states) {
        let (Some(state), Some(device)) = (state, device.clone()) else {
            continue;
        };
        for (sealer_name, selector) in [("derived", 2u8), ("aead", 5u8)] {
            let mut keys = Vec::new();
            for i in 0..n_keys {
                let Ok(key_id) = KeyId::new(format!("k{i}")) else {
                    continue;
                };
                let status = if i + 1 == n_keys {
                    KeyStatus::Active
                } else {
                    KeyStatus::Retiring {
                        until: handoff_core::UnixTime::from_secs(t0 + 86_400),
                    }
                };
                let secret = if selector == 2 {
                    master.secret_for(&device, &key_id).ok()
                } else {
                    HmacSecret::new(vec![0x44 + i; 32]).ok()
                };
                if let Some(secret) = secret {
                    keys.push(DeviceKey::new(key_id, status, secret));
                }
            }
            let Ok(rec) = DeviceRecord::from_parts(device.clone(), state.clone(), keys, 5) else {
                continue;
            };
            let cols = if selector == 2 {
                encode_keys(&rec, &master)
            } else {
                encode_keys(&rec, &aead)
            };
            if let (Ok(d), Ok(keys)) = (encode_device(&rec), cols) {
                let mut w = Writer(vec![selector]);
                write_device(&mut w, &d, &keys);
                out.push((format!("device-{name}-{n_keys}keys-{sealer_name}"), w.0));
            }
        }
    }
    out.extend(session_seeds(t0));
    out
}

/// Device session seeds: fresh, rotated (with a previous hash), revoked, and one at the
/// limit: created at 0, every other number `i64::MAX` (the largest the columns hold; so
/// is its `expires_at`).
fn session_seeds(t0: u64) -> Vec<(String, Vec<u8>)> {
    let Ok(device_id) = DeviceId::new("thermostat-0042") else {
        return Vec::new();
    };
    let at = |s: u64| UnixTime::from_secs(t0 + s);
    let fresh = DeviceSession {
        session_id: SessionId::from_bytes([0x61; 16]),
        device_id,
        created_at: at(0),
        last_seen: at(0),
        idle_timeout: 180,
        max_lifetime: 86_400,
        rotated_at: at(0),
        current_hash: [0x62; 32],
        previous_hash: None,
        overlap_until: at(0),
        generation: 0,
        revoked_at: None,
        version: 0,
    };
    let rotated = DeviceSession {
        last_seen: at(900),
        rotated_at: at(900),
        current_hash: [0x63; 32],
        previous_hash: Some([0x62; 32]),
        overlap_until: at(930),
        generation: 1,
        version: 4,
        ..fresh.clone()
    };
    let revoked = DeviceSession {
        revoked_at: Some(at(1_000)),
        version: 5,
        ..rotated.clone()
    };
    let max = u64::try_from(i64::MAX).unwrap_or(0);
    let limit = DeviceSession {
        created_at: UnixTime::from_secs(0),
        last_seen: UnixTime::from_secs(max),
        idle_timeout: max,
        max_lifetime: max,
        rotated_at: UnixTime::from_secs(max),
        overlap_until: UnixTime::from_secs(max),
        generation: max,
        revoked_at: Some(UnixTime::from_secs(max)),
        version: max,
        ..revoked.clone()
    };
    [
        ("session-fresh", fresh),
        ("session-rotated", rotated),
        ("session-revoked", revoked),
        ("session-i64-max", limit),
    ]
    .into_iter()
    .filter_map(|(name, s)| {
        let c = encode_session(&s).ok()?;
        let mut w = Writer(vec![SESSION_SELECTOR]);
        write_session(&mut w, &c);
        Some((name.to_owned(), w.0))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_decodes_and_round_trips() {
        let seeds = fuzz_seed_rows();
        assert_eq!(seeds.len(), 6 + 3 + 12 + 4);
        for (name, data) in &seeds {
            let mut r = Reader { rest: &data[1..] };
            let ok = match data[0] % 3 {
                _ if data[0] & SESSION_SELECTOR != 0 => {
                    decode_session(&read_session(&mut r)).is_ok()
                }
                0 => decode_family(&read_family(&mut r)).is_ok(),
                1 => decode_token(&read_token(&mut r)).is_ok(),
                _ => {
                    let (d, k) = read_device(&mut r);
                    if data[0] & 4 == 0 {
                        decode_device(&d, &k, &derived()).is_ok()
                    } else {
                        decode_device(&d, &k, &AeadSealer::new(FUZZ_KEK)).is_ok()
                    }
                }
            };
            assert!(ok, "seed {name} does not decode");
            assert!(r.rest.is_empty(), "seed {name} has trailing bytes");
            fuzz_decode_rows(data);
        }
    }

    #[test]
    fn short_and_empty_inputs_do_not_panic() {
        for data in [
            &[][..],
            &[0],
            &[1],
            &[2],
            &[6, 0xff, 0xff],
            &[5; 40],
            &[0x80],
            &[0xff; 90],
        ] {
            fuzz_decode_rows(data);
        }
    }
}
