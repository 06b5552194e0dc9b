//! The pure decision engine: tokens in, decisions with write plans out.

use core::fmt;

use handoff_core::{HmacSecret, Thumbprint, UnixTime};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::RefreshError;
use crate::policy::{GraceMode, Policy};
use crate::records::{
    AuditEvent, FamilyRecord, FamilyStatus, Guard, Loaded, ReuseKind, RevocationReason,
    TokenRecord, TokenState, Write, WritePlan,
};
use crate::token::{FamilyId, PresentedToken, RefreshToken, SecretHash, TokenId};

/// Longest subject or client id accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

const KEY_ID_TAG: &[u8] = b"refresh-family/v1/key/id-tag";
const KEY_SUCCESSOR: &[u8] = b"refresh-family/v1/key/successor";
const LABEL_ID_TAG: &[u8] = b"refresh-family/v1/id-tag\0";
const LABEL_SUCC_ID: &[u8] = b"refresh-family/v1/successor-id\0";
const LABEL_SUCC_SECRET: &[u8] = b"refresh-family/v1/successor-secret\0";

/// The refresh-family engine: the server keys and the policy. Cheap to share (`&self`
/// everywhere); it holds no state and performs no I/O.
///
/// Call order for a refresh request: [`Self::verify`] the token text, load the family and
/// token rows it names, [`Self::decide`], apply the decision's [`WritePlan`] atomically,
/// and on a conflict load and decide again. [`crate::rotate`] does exactly this against a
/// [`crate::FamilyStore`].
pub struct RefreshFamilies {
    id_key: HmacSecret,
    successor_key: HmacSecret,
    policy: Policy,
}

impl fmt::Debug for RefreshFamilies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshFamilies")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The result of a login: the first token, and what to persist.
#[derive(Debug)]
#[must_use]
pub struct NewFamily {
    /// The token to hand to the client (only after the plan applied).
    pub token: RefreshToken,
    /// The family row written by the plan.
    pub family: FamilyRecord,
    /// Insert the family and its first token.
    pub plan: WritePlan,
    /// Audit events to record once the plan applied.
    pub events: Vec<AuditEvent>,
}

/// A token to hand out, with what must be persisted first.
#[derive(Debug)]
#[must_use]
pub struct Issue {
    /// The token for the client; valid only once the plan applied.
    pub token: RefreshToken,
    /// The family.
    pub family: FamilyId,
    /// The family's subject (for the access token).
    pub subject: String,
    /// The family's client.
    pub client_id: String,
    /// What to persist atomically before answering.
    pub plan: WritePlan,
    /// Audit events to record once the plan applied.
    pub events: Vec<AuditEvent>,
}

/// A refusal, possibly with writes (a reuse revokes the family).
#[derive(Debug)]
#[must_use]
pub struct Rejection {
    /// What to report (`invalid_grant` plus a reason for the logs).
    pub error: RefreshError,
    /// What to persist (empty unless the family is revoked).
    pub plan: WritePlan,
    /// Audit events to record (once the plan applied, if any).
    pub events: Vec<AuditEvent>,
}

/// What to do with a presented refresh token.
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum Decision {
    /// The head was presented: rotate it.
    Rotate(Issue),
    /// The head's immediate predecessor within grace: hand out the same successor (or a
    /// sibling, per [`GraceMode`]).
    Grace(Issue),
    /// Refuse; the plan revokes the family on reuse and is empty otherwise.
    Reject(Rejection),
}

impl Decision {
    /// The plan to apply (possibly empty).
    pub fn plan(&self) -> &WritePlan {
        match self {
            Self::Rotate(i) | Self::Grace(i) => &i.plan,
            Self::Reject(r) => &r.plan,
        }
    }
    /// The audit events.
    #[must_use]
    pub fn events(&self) -> &[AuditEvent] {
        match self {
            Self::Rotate(i) | Self::Grace(i) => &i.events,
            Self::Reject(r) => &r.events,
        }
    }
}

/// An explicit revocation: what to persist, and events.
#[derive(Debug)]
#[must_use]
pub struct Revocation {
    /// Guards on each live family's version, then the revocations. Empty when every
    /// family was already terminal.
    pub plan: WritePlan,
    /// Audit events to record once the plan applied.
    pub events: Vec<AuditEvent>,
}

impl RefreshFamilies {
    /// An engine from a server master key (at least 32 random bytes, the same on every
    /// server instance) and a policy. The id-tag key and the successor key are derived
    /// from the master key by domain separation.
    #[must_use]
    pub fn new(master: &HmacSecret, policy: Policy) -> Self {
        Self {
            id_key: derive_key(master, KEY_ID_TAG),
            successor_key: derive_key(master, KEY_SUCCESSOR),
            policy,
        }
    }

    /// The policy in force.
    #[must_use]
    pub const fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Parses a presented token and checks its id tag in constant time.
    ///
    /// # Errors
    /// [`RefreshError::Malformed`] for a bad shape, [`RefreshError::InvalidToken`] when
    /// the tag does not verify (another server key, or tampered ids).
    pub fn verify(&self, token: &str) -> Result<PresentedToken, RefreshError> {
        let parsed = RefreshToken::parse(token)?;
        let tag = self.id_tag(parsed.family, parsed.id);
        if !bool::from(tag.ct_eq(&parsed.tag)) {
            return Err(RefreshError::InvalidToken);
        }
        Ok(PresentedToken {
            family: parsed.family,
            id: parsed.id,
            secret: parsed.secret,
        })
    }

    /// Starts a family at login: a random family id and first token.
    ///
    /// # Errors
    /// [`RefreshError::Policy`] when `subject` or `client_id` is empty or longer than
    /// [`MAX_NAME_BYTES`].
    pub fn start_family<R: CryptoRng + ?Sized>(
        &self,
        subject: &str,
        client_id: &str,
        now: UnixTime,
        rng: &mut R,
    ) -> Result<NewFamily, RefreshError> {
        self.start_family_bound(subject, client_id, None, now, rng)
    }

    /// [`Self::start_family`], binding the family to a DPoP key when `dpop_jkt` is set
    /// (RFC 9449 section 5: the RFC 7638 thumbprint of the key of the DPoP proof that came
    /// with the token request; required for public clients). Every later rotation of a
    /// bound family must present a proof made with the same key
    /// ([`Self::decide_bound`]); the binding is never changed.
    ///
    /// # Errors
    /// As [`Self::start_family`].
    pub fn start_family_bound<R: CryptoRng + ?Sized>(
        &self,
        subject: &str,
        client_id: &str,
        dpop_jkt: Option<Thumbprint>,
        now: UnixTime,
        rng: &mut R,
    ) -> Result<NewFamily, RefreshError> {
        check_name(subject, "subject must be 1 to 255 bytes")?;
        check_name(client_id, "client id must be 1 to 255 bytes")?;
        let mut fid = [0u8; 16];
        rng.fill_bytes(&mut fid);
        let family_id = FamilyId::from_bytes(fid);
        let (id, secret) = random_token(rng);
        let token = self.issue(family_id, id, &secret);
        let family = FamilyRecord {
            id: family_id,
            subject: subject.to_owned(),
            client_id: client_id.to_owned(),
            created_at: now,
            absolute_expires_at: now.saturating_add(self.policy.absolute),
            head: id,
            head_parent: None,
            head_generation: 0,
            version: 0,
            status: FamilyStatus::Active,
            dpop_jkt,
        };
        let first = TokenRecord {
            family: family_id,
            id,
            parent: None,
            generation: 0,
            secret_hash: SecretHash::of(&secret),
            issued_at: now,
            state: TokenState::Active,
        };
        let plan = WritePlan {
            guards: vec![Guard::FamilyAbsent { family: family_id }],
            writes: vec![
                Write::InsertFamily(family.clone()),
                Write::InsertToken(first),
            ],
            revoke_access_tokens: Vec::new(),
        };
        let events = vec![AuditEvent::FamilyStarted {
            family: family_id,
            subject: subject.to_owned(),
            client_id: client_id.to_owned(),
            at: now,
        }];
        Ok(NewFamily {
            token,
            family,
            plan,
            events,
        })
    }

    /// Decides what to do with a verified presented token, given the rows loaded for its
    /// family id and token id. Pure: writes nothing, reads no clock. `rng` is used only
    /// by [`GraceMode::IssueSibling`]. A request without a DPoP proof: a family bound to
    /// a DPoP key is refused ([`Self::decide_bound`]).
    pub fn decide<R: CryptoRng + ?Sized>(
        &self,
        presented: &PresentedToken,
        loaded: Loaded,
        now: UnixTime,
        rng: &mut R,
    ) -> Decision {
        self.decide_bound(presented, None, loaded, now, rng)
    }

    /// [`Self::decide`] for a request that came with a DPoP proof whose key has the RFC
    /// 7638 thumbprint `dpop_jkt` (verified by the caller, e.g. with `handoff-dpop`).
    ///
    /// A family bound at creation ([`FamilyRecord::dpop_jkt`]) is refused without a
    /// proof ([`RefreshError::DpopProofRequired`]) or with a proof of another key
    /// ([`RefreshError::DpopKeyMismatch`]), before any other check of the token row, with
    /// no writes: the family is **not** revoked. Reasoning: whoever holds the token but
    /// not the key cannot use it, so revoking protects nothing and would hand anyone who
    /// sees a token (logs, a proxy) a way to log the user out; the refusal's audit event
    /// carries the reason for theft monitoring. A thief who also holds the key passes the
    /// check and meets the usual reuse detection. An unbound family accepts any proof or
    /// none (confidential clients' refresh tokens are not bound) and stays unbound.
    pub fn decide_bound<R: CryptoRng + ?Sized>(
        &self,
        presented: &PresentedToken,
        dpop_jkt: Option<Thumbprint>,
        loaded: Loaded,
        now: UnixTime,
        rng: &mut R,
    ) -> Decision {
        let Some(fam) = loaded.family else {
            return refuse(RefreshError::UnknownFamily, Some(presented), now);
        };
        if fam.id != presented.family {
            return refuse(
                RefreshError::Inconsistent("loaded family does not match the token"),
                Some(presented),
                now,
            );
        }
        if let Some(t) = &loaded.token
            && (t.family != presented.family || t.id != presented.id)
        {
            return refuse(
                RefreshError::Inconsistent("loaded token does not match the token"),
                Some(presented),
                now,
            );
        }
        if let FamilyStatus::Revoked { reason, .. } = fam.status {
            return refuse(RefreshError::FamilyRevoked { reason }, Some(presented), now);
        }
        if now >= fam.absolute_expires_at {
            return refuse(
                RefreshError::FamilyExpired {
                    expired_at: fam.absolute_expires_at,
                },
                Some(presented),
                now,
            );
        }
        if let Some(bound) = fam.dpop_jkt {
            let error = match dpop_jkt {
                None => Some(RefreshError::DpopProofRequired),
                Some(k) if !bool::from(k.as_bytes().ct_eq(bound.as_bytes())) => {
                    Some(RefreshError::DpopKeyMismatch)
                }
                Some(_) => None,
            };
            if let Some(error) = error {
                return refuse(error, Some(presented), now);
            }
        }
        let Some(tok) = loaded.token else {
            // Authentic ids (the tag verified) but no row: a token of this family whose
            // row was deleted as the family rotated on (or by an older store's cleanup).
            // Only the head and its predecessor keep rows, so this is reuse.
            return self.reuse(&fam, presented.id, ReuseKind::UnknownToken, now);
        };
        if !tok.secret_hash.matches(&presented.secret) {
            return refuse(RefreshError::InvalidToken, Some(presented), now);
        }
        let idle_expiry = tok.issued_at.saturating_add(self.policy.idle);
        match tok.state {
            TokenState::Active => {
                if tok.id != fam.head || tok.generation != fam.head_generation {
                    return refuse(
                        RefreshError::Inconsistent("active token is not the family head"),
                        Some(presented),
                        now,
                    );
                }
                if now >= idle_expiry {
                    return refuse(
                        RefreshError::TokenExpired {
                            expired_at: idle_expiry,
                        },
                        Some(presented),
                        now,
                    );
                }
                self.rotate(fam, &tok, now)
            }
            TokenState::Rotated { at, grace_uses, .. } => {
                let immediate = fam.head_parent == Some(tok.id);
                if !immediate {
                    return self.reuse(&fam, tok.id, ReuseKind::OlderToken, now);
                }
                if self.policy.grace_mode == GraceMode::Off
                    || now >= at.saturating_add(self.policy.grace_window)
                {
                    return self.reuse(&fam, tok.id, ReuseKind::OutsideGrace, now);
                }
                if grace_uses >= self.policy.grace_max_uses {
                    return self.reuse(&fam, tok.id, ReuseKind::GraceUsesExhausted, now);
                }
                if now >= idle_expiry {
                    return refuse(
                        RefreshError::TokenExpired {
                            expired_at: idle_expiry,
                        },
                        Some(presented),
                        now,
                    );
                }
                self.grace(fam, &tok, grace_uses, now, rng)
            }
            TokenState::Superseded { .. } => self.reuse(&fam, tok.id, ReuseKind::Superseded, now),
        }
    }

    /// Revokes families explicitly (logout, admin, security event, every family of a
    /// subject). The plan takes the same compare-and-set on each family's version as a
    /// rotation, so a racing refresh cannot outlive the revocation: whichever lands second
    /// conflicts, reloads and sees the other's result. Terminal families are skipped.
    pub fn revoke(
        &self,
        families: &[FamilyRecord],
        reason: RevocationReason,
        now: UnixTime,
    ) -> Revocation {
        let mut plan = WritePlan::default();
        let mut events = Vec::new();
        for fam in families.iter().filter(|f| !f.is_terminal(now)) {
            push_revocation(&mut plan, &mut events, fam, reason, now);
        }
        Revocation { plan, events }
    }

    /// Logout: revokes the family of an authentic presented token (any token of the
    /// family: one whose row is held must match its secret; one whose row was deleted as
    /// the family rotated is authenticated by its id tag alone, exactly as when it is
    /// presented for rotation, which revokes the family as reuse). Revocation needs no
    /// DPoP proof, even for a bound family (RFC 7009 revocation takes the token alone): it
    /// only ends access.
    ///
    /// # Errors
    /// [`RefreshError::UnknownFamily`] when the family row is gone,
    /// [`RefreshError::InvalidToken`] when the secret does not match the token row,
    /// [`RefreshError::Inconsistent`] when the rows do not match the token.
    pub fn logout(
        &self,
        presented: &PresentedToken,
        loaded: Loaded,
        now: UnixTime,
    ) -> Result<Revocation, RefreshError> {
        let fam = loaded.family.ok_or(RefreshError::UnknownFamily)?;
        if fam.id != presented.family {
            return Err(RefreshError::Inconsistent(
                "loaded rows do not match the token",
            ));
        }
        // A token whose row is gone (superseded and deleted as the family rotated) has
        // authentic ids (the tag verified); presenting it to rotate would revoke the
        // family as reuse, so it may end the session too.
        if let Some(tok) = loaded.token {
            if tok.family != presented.family || tok.id != presented.id {
                return Err(RefreshError::Inconsistent(
                    "loaded rows do not match the token",
                ));
            }
            if !tok.secret_hash.matches(&presented.secret) {
                return Err(RefreshError::InvalidToken);
            }
        }
        Ok(self.revoke(core::slice::from_ref(&fam), RevocationReason::Logout, now))
    }

    fn rotate(&self, fam: FamilyRecord, tok: &TokenRecord, now: UnixTime) -> Decision {
        let generation = tok.generation.saturating_add(1);
        let (succ_id, secret) = self.derive_successor(fam.id, tok.id, generation);
        let token = self.issue(fam.id, succ_id, &secret);
        let plan = WritePlan {
            guards: vec![
                Guard::FamilyVersion {
                    family: fam.id,
                    version: fam.version,
                },
                Guard::TokenActive {
                    family: fam.id,
                    token: tok.id,
                },
            ],
            writes: vec![
                Write::MarkRotated {
                    family: fam.id,
                    token: tok.id,
                    at: now,
                    successor: succ_id,
                },
                Write::InsertToken(TokenRecord {
                    family: fam.id,
                    id: succ_id,
                    parent: Some(tok.id),
                    generation,
                    secret_hash: SecretHash::of(&secret),
                    issued_at: now,
                    state: TokenState::Active,
                }),
                Write::SetHead {
                    family: fam.id,
                    head: succ_id,
                    head_parent: Some(tok.id),
                    head_generation: generation,
                    version: fam.version.saturating_add(1),
                },
                // The old predecessor (and any displaced sibling) is no longer needed:
                // presenting it is reuse with or without its row.
                Write::RetainTokens {
                    family: fam.id,
                    keep: vec![succ_id, tok.id],
                },
            ],
            revoke_access_tokens: Vec::new(),
        };
        let events = vec![AuditEvent::Rotated {
            family: fam.id,
            from: tok.id,
            to: succ_id,
            generation,
            at: now,
        }];
        Decision::Rotate(Issue {
            token,
            family: fam.id,
            subject: fam.subject,
            client_id: fam.client_id,
            plan,
            events,
        })
    }

    fn grace<R: CryptoRng + ?Sized>(
        &self,
        fam: FamilyRecord,
        tok: &TokenRecord,
        grace_uses: u32,
        now: UnixTime,
        rng: &mut R,
    ) -> Decision {
        let mut guards = vec![
            Guard::FamilyVersion {
                family: fam.id,
                version: fam.version,
            },
            Guard::TokenGraceBelow {
                family: fam.id,
                token: tok.id,
                max_uses: self.policy.grace_max_uses,
            },
        ];
        let mut writes = vec![Write::IncrementGraceUses {
            family: fam.id,
            token: tok.id,
        }];
        let generation = tok.generation.saturating_add(1);
        let token = match self.policy.grace_mode {
            GraceMode::IssueSibling => {
                let (sib, secret) = random_token(rng);
                guards.push(Guard::TokenActive {
                    family: fam.id,
                    token: fam.head,
                });
                writes.push(Write::MarkSuperseded {
                    family: fam.id,
                    token: fam.head,
                    at: now,
                    by: sib,
                });
                writes.push(Write::InsertToken(TokenRecord {
                    family: fam.id,
                    id: sib,
                    parent: Some(tok.id),
                    generation,
                    secret_hash: SecretHash::of(&secret),
                    issued_at: now,
                    state: TokenState::Active,
                }));
                writes.push(Write::SetHead {
                    family: fam.id,
                    head: sib,
                    head_parent: Some(tok.id),
                    head_generation: generation,
                    version: fam.version.saturating_add(1),
                });
                // Keep the new head, the grace predecessor and the head just displaced
                // (so its reuse is reported precisely); earlier siblings go.
                writes.push(Write::RetainTokens {
                    family: fam.id,
                    keep: vec![sib, tok.id, fam.head],
                });
                self.issue(fam.id, sib, &secret)
            }
            // Off never reaches here; IdempotentSuccessor (and any future mode) re-derives.
            _ => {
                let (succ_id, secret) = self.derive_successor(fam.id, tok.id, generation);
                if succ_id != fam.head || fam.head_generation != generation {
                    return refuse_ids(
                        RefreshError::GraceSuccessorUnavailable,
                        fam.id,
                        tok.id,
                        now,
                    );
                }
                self.issue(fam.id, succ_id, &secret)
            }
        };
        let events = vec![AuditEvent::GraceReplay {
            family: fam.id,
            token: tok.id,
            issued: token.id(),
            uses: grace_uses.saturating_add(1),
            at: now,
        }];
        Decision::Grace(Issue {
            token,
            family: fam.id,
            subject: fam.subject,
            client_id: fam.client_id,
            plan: WritePlan {
                guards,
                writes,
                revoke_access_tokens: Vec::new(),
            },
            events,
        })
    }

    fn reuse(
        &self,
        fam: &FamilyRecord,
        token: TokenId,
        kind: ReuseKind,
        now: UnixTime,
    ) -> Decision {
        let mut plan = WritePlan::default();
        let mut events = vec![AuditEvent::ReuseDetected {
            family: fam.id,
            token,
            kind,
            at: now,
        }];
        push_revocation(
            &mut plan,
            &mut events,
            fam,
            RevocationReason::ReuseDetected,
            now,
        );
        Decision::Reject(Rejection {
            error: RefreshError::ReuseDetected,
            plan,
            events,
        })
    }

    fn id_tag(&self, family: FamilyId, id: TokenId) -> [u8; 16] {
        let mac = self
            .id_key
            .mac_parts(&[LABEL_ID_TAG, family.as_bytes(), id.as_bytes()]);
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&mac[..16]);
        tag
    }

    /// The deterministic successor of `parent` at `generation`: HMAC(successor key,
    /// label || family || parent || generation), one label for the id, one for the secret.
    fn derive_successor(
        &self,
        family: FamilyId,
        parent: TokenId,
        generation: u64,
    ) -> (TokenId, Zeroizing<[u8; 32]>) {
        let g = generation.to_be_bytes();
        let parts_id: [&[u8]; 4] = [LABEL_SUCC_ID, family.as_bytes(), parent.as_bytes(), &g];
        let mac = self.successor_key.mac_parts(&parts_id);
        let mut id = [0u8; 16];
        id.copy_from_slice(&mac[..16]);
        let parts_secret: [&[u8]; 4] =
            [LABEL_SUCC_SECRET, family.as_bytes(), parent.as_bytes(), &g];
        let secret = Zeroizing::new(self.successor_key.mac_parts(&parts_secret));
        (TokenId::from_bytes(id), secret)
    }

    fn issue(&self, family: FamilyId, id: TokenId, secret: &[u8; 32]) -> RefreshToken {
        RefreshToken::encode(family, id, secret, &self.id_tag(family, id))
    }
}

fn push_revocation(
    plan: &mut WritePlan,
    events: &mut Vec<AuditEvent>,
    fam: &FamilyRecord,
    reason: RevocationReason,
    now: UnixTime,
) {
    plan.guards.push(Guard::FamilyVersion {
        family: fam.id,
        version: fam.version,
    });
    plan.writes.push(Write::RevokeFamily {
        family: fam.id,
        at: now,
        reason,
        version: fam.version.saturating_add(1),
    });
    plan.revoke_access_tokens.push(fam.id);
    events.push(AuditEvent::FamilyRevoked {
        family: fam.id,
        subject: fam.subject.clone(),
        reason,
        at: now,
    });
}

fn refuse(error: RefreshError, presented: Option<&PresentedToken>, now: UnixTime) -> Decision {
    let events = vec![AuditEvent::Refused {
        family: presented.map(|p| p.family),
        token: presented.map(|p| p.id),
        reason: error.reason(),
        at: now,
    }];
    Decision::Reject(Rejection {
        error,
        plan: WritePlan::default(),
        events,
    })
}

fn refuse_ids(error: RefreshError, family: FamilyId, token: TokenId, now: UnixTime) -> Decision {
    let events = vec![AuditEvent::Refused {
        family: Some(family),
        token: Some(token),
        reason: error.reason(),
        at: now,
    }];
    Decision::Reject(Rejection {
        error,
        plan: WritePlan::default(),
        events,
    })
}

fn check_name(s: &str, msg: &'static str) -> Result<(), RefreshError> {
    if s.is_empty() || s.len() > MAX_NAME_BYTES {
        return Err(RefreshError::Policy(msg));
    }
    Ok(())
}

fn random_token<R: CryptoRng + ?Sized>(rng: &mut R) -> (TokenId, Zeroizing<[u8; 32]>) {
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let mut secret = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut secret[..]);
    (TokenId::from_bytes(id), secret)
}

fn derive_key(master: &HmacSecret, label: &[u8]) -> HmacSecret {
    let k = Zeroizing::new(master.mac(label));
    match HmacSecret::new(k.to_vec()) {
        Ok(key) => key,
        Err(_) => unreachable_key(),
    }
}

#[cold]
fn unreachable_key() -> ! {
    // HMAC-SHA256 output is 32 bytes, exactly the minimum HmacSecret accepts.
    unreachable!("a 32-byte derived key is always accepted")
}
