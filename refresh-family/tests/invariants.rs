//! Property tests over random sequences of issue, present (current, immediate
//! predecessor, older, foreign, garbage-collected, tampered), revoke, gc and advance-time
//! events. The test keeps its own record of what it was handed and checks every answer
//! against the invariants, independently of the store's rows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ForgetfulStore, T0, assert_consistent, engine, foreign_engine, rng};
use handoff_core::UnixTime;
use handoff_refresh::{
    FamilyId, FamilyStore, GraceMode, MAX_TOKEN_ROWS_PER_FAMILY, Outcome, Policy, RefreshError,
    RefreshFamilies, RevocationReason, TokenId, fuzz_parse, revoke_family, rotate, start,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Pick {
    Current,
    Predecessor,
    Older(usize),
    Foreign,
    GarbageCollected(usize),
    Tampered(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Issue,
    Present(usize, Pick),
    Revoke(usize),
    Advance(u64),
    Gc,
    /// Many rotations of one family's head in a row (the row bound must hold).
    Burst(usize, usize),
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        4 => Just(Pick::Current),
        3 => Just(Pick::Predecessor),
        2 => any::<usize>().prop_map(Pick::Older),
        1 => Just(Pick::Foreign),
        1 => any::<usize>().prop_map(Pick::GarbageCollected),
        1 => (0usize..80).prop_map(Pick::Tampered),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Issue),
        10 => (any::<usize>(), pick()).prop_map(|(f, p)| Op::Present(f, p)),
        1 => any::<usize>().prop_map(Op::Revoke),
        4 => prop_oneof![0u64..5, 0u64..70, 0u64..400].prop_map(Op::Advance),
        1 => (any::<usize>(), 1usize..40).prop_map(|(f, n)| Op::Burst(f, n)),
        1 => Just(Op::Gc),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (0u8..3, 1u64..=60, 1u32..=4, 60u64..=600, 1u64..=4).prop_map(
        |(mode, window, uses, idle, factor)| {
            let b = Policy::builder()
                .idle_lifetime(idle)
                .absolute_lifetime(idle * factor);
            let b = match mode {
                0 => b,
                1 => b.grace_window(window).grace_max_uses(uses),
                _ => b
                    .grace_window(window)
                    .grace_max_uses(uses)
                    .grace_mode(GraceMode::IssueSibling),
            };
            b.build().unwrap()
        },
    )
}

struct Tok {
    text: String,
    id: TokenId,
    parent: Option<usize>,
    issued_at: UnixTime,
    rotated_at: Option<UnixTime>,
    successor: Option<String>,
    grace_accepts: u32,
}

struct Fam {
    id: FamilyId,
    created: UnixTime,
    tokens: Vec<Tok>,
    head: usize,
    dead: bool,
}

struct World {
    e: RefreshFamilies,
    policy: Policy,
    store: ForgetfulStore,
    fams: Vec<Fam>,
    foreign: String,
    now: UnixTime,
}

impl World {
    fn new(policy: Policy) -> Self {
        let other = common::ForgetfulStore::new(10);
        let foreign = start(
            &other,
            &foreign_engine(policy.clone()),
            "eve",
            "web",
            T0,
            &mut rng(),
        )
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
        Self {
            e: engine(policy.clone()),
            policy,
            store: ForgetfulStore::new(100_000),
            fams: Vec::new(),
            foreign,
            now: T0,
        }
    }

    fn check_store(&self) {
        for f in &self.fams {
            if let Some((fam, rows)) = self.store.inner.snapshot(f.id) {
                // Includes the bound: at most MAX_TOKEN_ROWS_PER_FAMILY token rows each.
                assert_consistent(&fam, &rows);
            }
        }
        // The store as a whole: a family row plus a bounded number of token rows per
        // family, whatever the rotations (issue 18 finding 2).
        assert!(
            self.store.inner.len() <= self.fams.len() * (1 + MAX_TOKEN_ROWS_PER_FAMILY),
            "{} rows for {} families",
            self.store.inner.len(),
            self.fams.len()
        );
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Issue => {
                if self.fams.len() < 4 {
                    let i =
                        start(&self.store, &self.e, "alice", "web", self.now, &mut rng()).unwrap();
                    self.fams.push(Fam {
                        id: i.family,
                        created: self.now,
                        tokens: vec![Tok {
                            text: i.token.expose_secret().to_owned(),
                            id: i.token.id(),
                            parent: None,
                            issued_at: self.now,
                            rotated_at: None,
                            successor: None,
                            grace_accepts: 0,
                        }],
                        head: 0,
                        dead: false,
                    });
                }
            }
            Op::Advance(s) => self.now = self.now.saturating_add(s),
            Op::Burst(f, n) => {
                if !self.fams.is_empty() {
                    let k = f % self.fams.len();
                    for _ in 0..n {
                        self.present(k, Pick::Current);
                        self.check_store();
                    }
                }
            }
            Op::Gc => {
                let _ = self.store.gc(self.now, 100).unwrap();
            }
            Op::Revoke(f) => {
                if self.fams.is_empty() {
                    return;
                }
                let n = f % self.fams.len();
                let id = self.fams[n].id;
                match revoke_family(&self.store, &self.e, id, RevocationReason::Admin, self.now) {
                    Ok(r) => assert!(r.families.len() <= 1),
                    Err(RefreshError::UnknownFamily) => {}
                    Err(other) => panic!("revoke failed: {other:?}"),
                }
                self.fams[n].dead = true;
            }
            Op::Present(f, p) => {
                if self.fams.is_empty() {
                    return;
                }
                let n = f % self.fams.len();
                self.present(n, p);
            }
        }
        self.check_store();
    }

    fn present(&mut self, n: usize, p: Pick) {
        let now = self.now;
        let fam = &self.fams[n];
        let head = fam.head;
        let (text, idx, must_refuse) = match p {
            Pick::Current => (fam.tokens[head].text.clone(), Some(head), false),
            Pick::Predecessor => match fam.tokens[head].parent {
                Some(i) => (fam.tokens[i].text.clone(), Some(i), false),
                None => (fam.tokens[head].text.clone(), Some(head), false),
            },
            Pick::Older(k) => {
                let parent = fam.tokens[head].parent;
                let older: Vec<usize> = (0..fam.tokens.len())
                    .filter(|i| *i != head && Some(*i) != parent)
                    .collect();
                if older.is_empty() {
                    return;
                }
                let i = older[k % older.len()];
                (fam.tokens[i].text.clone(), Some(i), true)
            }
            Pick::Foreign => (self.foreign.clone(), None, true),
            Pick::GarbageCollected(k) => {
                let rotated: Vec<usize> = (0..fam.tokens.len()).filter(|i| *i != head).collect();
                if rotated.is_empty() {
                    return;
                }
                let i = rotated[k % rotated.len()];
                self.store.forget(fam.id, fam.tokens[i].id);
                (fam.tokens[i].text.clone(), Some(i), true)
            }
            Pick::Tampered(byte) => {
                let t = &fam.tokens[head].text;
                let mut payload = handoff_core::b64::decode(&t[4..]).unwrap();
                payload[byte] ^= 0x20;
                let bad = format!("rf1.{}", handoff_core::b64::encode(&payload));
                (bad, None, true)
            }
        };
        let before = self.store.inner.snapshot(fam.id);
        let out = rotate(&self.store, &self.e, &text, now, &mut rng()).unwrap();
        let fam = &mut self.fams[n];
        let absolute_end = fam.created.saturating_add(self.policy.absolute_lifetime());
        match out {
            Outcome::Issued(i) => {
                let idx = idx.expect("only our own tokens may be accepted");
                assert!(!must_refuse, "accepted {p:?}");
                assert!(!fam.dead, "accepted a token of a revoked or reused family");
                assert_eq!(i.family, fam.id);
                let tok = &fam.tokens[idx];
                assert!(
                    now < tok.issued_at.saturating_add(self.policy.idle_lifetime()),
                    "past idle expiry"
                );
                assert!(now < absolute_end, "past absolute expiry");
                let new_text = i.token.expose_secret().to_owned();
                if i.grace {
                    assert_ne!(self.policy.grace_mode(), GraceMode::Off);
                    assert_eq!(
                        fam.tokens[head].parent,
                        Some(idx),
                        "grace for a non-predecessor"
                    );
                    let rotated_at = tok.rotated_at.expect("grace for an unrotated token");
                    assert!(
                        now < rotated_at.saturating_add(self.policy.grace_window()),
                        "grace outside window"
                    );
                    assert!(
                        tok.grace_accepts < self.policy.grace_max_uses(),
                        "grace over cap"
                    );
                    fam.tokens[idx].grace_accepts += 1;
                    if self.policy.grace_mode() == GraceMode::IdempotentSuccessor {
                        assert_eq!(
                            Some(&new_text),
                            fam.tokens[idx].successor.as_ref(),
                            "not the same successor"
                        );
                        assert_eq!(new_text, fam.tokens[head].text);
                    } else {
                        fam.tokens.push(Tok {
                            text: new_text,
                            id: i.token.id(),
                            parent: Some(idx),
                            issued_at: now,
                            rotated_at: None,
                            successor: None,
                            grace_accepts: 0,
                        });
                        fam.head = fam.tokens.len() - 1;
                    }
                } else {
                    assert_eq!(idx, head, "rotation of a token that is not the head");
                    assert!(tok.rotated_at.is_none(), "accepted twice outside grace");
                    fam.tokens[idx].rotated_at = Some(now);
                    fam.tokens[idx].successor = Some(new_text.clone());
                    fam.tokens.push(Tok {
                        text: new_text,
                        id: i.token.id(),
                        parent: Some(idx),
                        issued_at: now,
                        rotated_at: None,
                        successor: None,
                        grace_accepts: 0,
                    });
                    fam.head = fam.tokens.len() - 1;
                }
            }
            Outcome::Refused(r) => {
                assert_eq!(r.error.oauth_error(), "invalid_grant");
                if r.error == RefreshError::ReuseDetected {
                    assert_eq!(r.revoke_access_tokens, vec![fam.id]);
                    fam.dead = true;
                } else {
                    // Refusals other than reuse write nothing.
                    assert_eq!(
                        self.store.inner.snapshot(fam.id),
                        before,
                        "{:?} wrote",
                        r.error
                    );
                    assert!(r.revoke_access_tokens.is_empty());
                }
                // No false refusal: the live head inside its lifetimes is always accepted.
                if matches!(p, Pick::Current) && !fam.dead {
                    let tok = &fam.tokens[head];
                    let live = now < tok.issued_at.saturating_add(self.policy.idle_lifetime())
                        && now < absolute_end;
                    assert!(!live, "live head refused: {:?}", r.error);
                }
            }
            _ => panic!("unknown outcome"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn family_invariants_hold(policy in policy(), ops in prop::collection::vec(op(), 1..60)) {
        let mut w = World::new(policy);
        for op in ops {
            w.step(op);
        }
    }

    #[test]
    fn parsing_arbitrary_input_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        fuzz_parse(&bytes);
        let e = engine(Policy::default());
        if let Ok(text) = std::str::from_utf8(&bytes) {
            prop_assert!(e.verify(text).is_err());
        }
    }
}
