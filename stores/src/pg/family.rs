//! [`FamilyStore`] on PostgreSQL: `apply(plan)` is one transaction in which every guard
//! locks its row (`SELECT ... FOR UPDATE`, exactly one row) and every write is an
//! `UPDATE ... WHERE <expected state>` or `INSERT ... ON CONFLICT DO NOTHING` whose row
//! count must be exactly one; anything else rolls back and answers `Conflict`.

use core::fmt;
use std::sync::Arc;

use handoff_core::{Thumbprint, UnixTime};
use handoff_refresh::{
    ApplyOutcome, FamilyId, FamilyRecord, FamilyStatus, FamilyStore, GcReport, Guard, Loaded,
    RefreshError, RevocationReason, SecretHash, TokenId, TokenRecord, TokenState, Write, WritePlan,
};
use postgres::Row;
use postgres::types::ToSql;

use super::{Failure, Shared, classify, to_i64, to_u64};

const FAMILY_COLS: &str = "f.id, f.subject, f.client_id, f.created_at, f.absolute_expires_at, \
     f.head, f.head_parent, f.head_generation, f.version, f.status, f.revoked_at, f.revoked_reason, \
     f.dpop_jkt";
const TOKEN_COLS: &str = "t.family_id, t.id, t.parent, t.generation, t.secret_hash, t.issued_at, \
     t.state, t.state_at, t.successor, t.grace_uses";
const FAMILY_NCOLS: usize = 13;

/// Every statement of the adapter, spliced with the schema name once.
struct Sql {
    load: String,
    load_family: String,
    live_of_subject: String,
    guard_family_absent: String,
    guard_family_version: String,
    guard_token_active: String,
    guard_token_grace_below: String,
    insert_family: String,
    insert_token: String,
    mark_rotated: String,
    increment_grace: String,
    mark_superseded: String,
    set_head: String,
    revoke_family: String,
    retain_tokens: String,
    gc: String,
}

impl Sql {
    fn new(shared: &Shared) -> Self {
        let s = |q: &str| {
            shared
                .schema
                .sql(&q.replace("{F}", FAMILY_COLS).replace("{T}", TOKEN_COLS))
        };
        Self {
            // One statement, so family and token come from one snapshot: two separate
            // reads could straddle a rotation and make a benign race look like reuse.
            load: s("SELECT {F}, {T} FROM (SELECT 1) AS one \
                 LEFT JOIN {s}.refresh_families f ON f.id = $1 \
                 LEFT JOIN {s}.refresh_tokens t ON t.family_id = $1 AND t.id = $2"),
            load_family: s("SELECT {F} FROM {s}.refresh_families f WHERE f.id = $1"),
            live_of_subject: s("SELECT {F} FROM {s}.refresh_families f \
                 WHERE f.subject = $1 AND f.status = 'active' AND f.absolute_expires_at > $2 \
                 ORDER BY f.id LIMIT $3"),
            guard_family_absent: s("SELECT 1 FROM {s}.refresh_families WHERE id = $1"),
            guard_family_version: s("SELECT 1 FROM {s}.refresh_families \
                 WHERE id = $1 AND version = $2 AND status = 'active' FOR UPDATE"),
            guard_token_active: s("SELECT 1 FROM {s}.refresh_tokens \
                 WHERE family_id = $1 AND id = $2 AND state = 'active' FOR UPDATE"),
            guard_token_grace_below: s("SELECT 1 FROM {s}.refresh_tokens \
                 WHERE family_id = $1 AND id = $2 AND state = 'rotated' AND grace_uses < $3 \
                 FOR UPDATE"),
            insert_family: s("INSERT INTO {s}.refresh_families (id, subject, client_id, \
                 created_at, absolute_expires_at, head, head_parent, head_generation, version, \
                 status, revoked_at, revoked_reason, dpop_jkt) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (id) DO NOTHING"),
            insert_token: s(
                "INSERT INTO {s}.refresh_tokens (family_id, id, parent, generation, \
                 secret_hash, issued_at, state, state_at, successor, grace_uses) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (family_id, id) DO NOTHING",
            ),
            mark_rotated: s("UPDATE {s}.refresh_tokens \
                 SET state = 'rotated', state_at = $3, successor = $4, grace_uses = 0 \
                 WHERE family_id = $1 AND id = $2 AND state = 'active'"),
            increment_grace: s("UPDATE {s}.refresh_tokens SET grace_uses = grace_uses + 1 \
                 WHERE family_id = $1 AND id = $2 AND state = 'rotated' \
                 AND grace_uses < 2147483647"),
            mark_superseded: s("UPDATE {s}.refresh_tokens \
                 SET state = 'superseded', state_at = $3, successor = $4 \
                 WHERE family_id = $1 AND id = $2 AND state = 'active'"),
            set_head: s("UPDATE {s}.refresh_families \
                 SET head = $2, head_parent = $3, head_generation = $4, version = $5 \
                 WHERE id = $1 AND status = 'active'"),
            revoke_family: s("UPDATE {s}.refresh_families \
                 SET status = 'revoked', revoked_at = $2, revoked_reason = $3, version = $4 \
                 WHERE id = $1 AND status = 'active'"),
            // Bounded rows per family: everything but the rows the engine keeps.
            retain_tokens: s("DELETE FROM {s}.refresh_tokens \
                 WHERE family_id = $1 AND NOT (id = ANY($2))"),
            // Terminal and past the tombstone = past the absolute expiry. SKIP LOCKED lets
            // concurrent collectors share the work; tokens go with their family.
            gc: s("WITH doomed AS ( \
                     SELECT id FROM {s}.refresh_families WHERE absolute_expires_at <= $1 \
                     ORDER BY absolute_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
                 dt AS (DELETE FROM {s}.refresh_tokens \
                     WHERE family_id IN (SELECT id FROM doomed) RETURNING 1), \
                 df AS (DELETE FROM {s}.refresh_families \
                     WHERE id IN (SELECT id FROM doomed) RETURNING 1) \
                 SELECT (SELECT count(*) FROM df), (SELECT count(*) FROM dt)"),
        }
    }
}

/// A [`FamilyStore`] on PostgreSQL (tables `refresh_families` and `refresh_tokens`).
/// Make one with [`super::PgStore::family_store`].
pub struct PgFamilyStore {
    shared: Arc<Shared>,
    sql: Sql,
}

impl fmt::Debug for PgFamilyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgFamilyStore")
            .field("schema", &self.shared.schema.as_str())
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl fmt::Display) -> RefreshError {
    RefreshError::StoreUnavailable(e.to_string())
}

fn out_of_range() -> RefreshError {
    RefreshError::StoreUnavailable("a value is beyond the bigint range; nothing written".into())
}

fn big(v: u64) -> Result<i64, RefreshError> {
    to_i64(v).ok_or_else(out_of_range)
}

fn time(v: UnixTime) -> Result<i64, RefreshError> {
    big(v.as_secs())
}

fn corrupt(what: &'static str) -> RefreshError {
    RefreshError::Inconsistent(what)
}

fn id16(v: Vec<u8>) -> Result<[u8; 16], RefreshError> {
    v.try_into()
        .map_err(|_| corrupt("an id column does not hold 16 bytes"))
}

fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, RefreshError> {
    row.try_get(i)
        .map_err(|_| corrupt("a column has an unexpected type or null"))
}

fn unsigned(v: i64) -> Result<u64, RefreshError> {
    to_u64(v).ok_or(corrupt("a negative time, generation or version"))
}

fn reason_from(s: &str) -> Result<RevocationReason, RefreshError> {
    Ok(match s {
        "reuse_detected" => RevocationReason::ReuseDetected,
        "logout" => RevocationReason::Logout,
        "admin" => RevocationReason::Admin,
        "security_event" => RevocationReason::SecurityEvent,
        _ => return Err(corrupt("unknown revocation reason")),
    })
}

/// Decodes the family columns starting at `o`; `None` when the row has no family.
fn family_at(row: &Row, o: usize) -> Result<Option<FamilyRecord>, RefreshError> {
    let Some(id) = get::<Option<Vec<u8>>>(row, o)? else {
        return Ok(None);
    };
    let status = match get::<&str>(row, o + 9)? {
        "active" => FamilyStatus::Active,
        "revoked" => FamilyStatus::Revoked {
            at: UnixTime::from_secs(unsigned(get(row, o + 10)?)?),
            reason: reason_from(get(row, o + 11)?)?,
        },
        _ => return Err(corrupt("unknown family status")),
    };
    Ok(Some(FamilyRecord {
        id: FamilyId::from_bytes(id16(id)?),
        subject: get(row, o + 1)?,
        client_id: get(row, o + 2)?,
        created_at: UnixTime::from_secs(unsigned(get(row, o + 3)?)?),
        absolute_expires_at: UnixTime::from_secs(unsigned(get(row, o + 4)?)?),
        head: TokenId::from_bytes(id16(get(row, o + 5)?)?),
        head_parent: get::<Option<Vec<u8>>>(row, o + 6)?
            .map(|v| id16(v).map(TokenId::from_bytes))
            .transpose()?,
        head_generation: unsigned(get(row, o + 7)?)?,
        version: unsigned(get(row, o + 8)?)?,
        status,
        dpop_jkt: get::<Option<Vec<u8>>>(row, o + 12)?
            .map(|v| {
                <[u8; 32]>::try_from(v)
                    .map(Thumbprint::from_bytes)
                    .map_err(|_| corrupt("a dpop_jkt does not hold 32 bytes"))
            })
            .transpose()?,
    }))
}

/// Decodes the token columns starting at `o`; `None` when the row has no token.
fn token_at(row: &Row, o: usize) -> Result<Option<TokenRecord>, RefreshError> {
    let Some(family) = get::<Option<Vec<u8>>>(row, o)? else {
        return Ok(None);
    };
    let hash: [u8; 32] = get::<Vec<u8>>(row, o + 4)?
        .try_into()
        .map_err(|_| corrupt("a secret hash does not hold 32 bytes"))?;
    let state = match get::<&str>(row, o + 6)? {
        "active" => TokenState::Active,
        "rotated" => TokenState::Rotated {
            at: UnixTime::from_secs(unsigned(get(row, o + 7)?)?),
            successor: TokenId::from_bytes(id16(get(row, o + 8)?)?),
            grace_uses: u32::try_from(get::<i32>(row, o + 9)?)
                .map_err(|_| corrupt("negative grace uses"))?,
        },
        "superseded" => TokenState::Superseded {
            at: UnixTime::from_secs(unsigned(get(row, o + 7)?)?),
            by: TokenId::from_bytes(id16(get(row, o + 8)?)?),
        },
        _ => return Err(corrupt("unknown token state")),
    };
    Ok(Some(TokenRecord {
        family: FamilyId::from_bytes(id16(family)?),
        id: TokenId::from_bytes(id16(get(row, o + 1)?)?),
        parent: get::<Option<Vec<u8>>>(row, o + 2)?
            .map(|v| id16(v).map(TokenId::from_bytes))
            .transpose()?,
        generation: unsigned(get(row, o + 3)?)?,
        secret_hash: SecretHash::from_bytes(hash),
        issued_at: UnixTime::from_secs(unsigned(get(row, o + 5)?)?),
        state,
    }))
}

/// Ordering of guards: families before tokens, each in ascending id order, so that two
/// transactions never lock the same rows in opposite orders.
fn guard_order(g: &Guard) -> (u8, [u8; 16], [u8; 16]) {
    match g {
        Guard::FamilyAbsent { family } | Guard::FamilyVersion { family, .. } => {
            (0, *family.as_bytes(), [0; 16])
        }
        Guard::TokenActive { family, token } | Guard::TokenGraceBelow { family, token, .. } => {
            (1, *family.as_bytes(), *token.as_bytes())
        }
        _ => (2, [0; 16], [0; 16]),
    }
}

/// What went wrong inside the apply transaction.
enum Abort {
    /// Fail closed with this error, having written nothing.
    Refuse(RefreshError),
    /// A statement failed.
    Sql(postgres::Error),
}

impl From<postgres::Error> for Abort {
    fn from(e: postgres::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<RefreshError> for Abort {
    fn from(e: RefreshError) -> Self {
        Self::Refuse(e)
    }
}

impl PgFamilyStore {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let sql = Sql::new(&shared);
        Self { shared, sql }
    }

    fn run_guard(&self, tx: &mut postgres::Transaction<'_>, g: &Guard) -> Result<bool, Abort> {
        Ok(match g {
            Guard::FamilyAbsent { family } => tx
                .query(
                    self.sql.guard_family_absent.as_str(),
                    &[&family.as_bytes().as_slice()],
                )?
                .is_empty(),
            Guard::FamilyVersion { family, version } => {
                tx.query(
                    self.sql.guard_family_version.as_str(),
                    &[&family.as_bytes().as_slice(), &big(*version)?],
                )?
                .len()
                    == 1
            }
            Guard::TokenActive { family, token } => {
                tx.query(
                    self.sql.guard_token_active.as_str(),
                    &[&family.as_bytes().as_slice(), &token.as_bytes().as_slice()],
                )?
                .len()
                    == 1
            }
            Guard::TokenGraceBelow {
                family,
                token,
                max_uses,
            } => {
                let max = i32::try_from(*max_uses).unwrap_or(i32::MAX);
                tx.query(
                    self.sql.guard_token_grace_below.as_str(),
                    &[
                        &family.as_bytes().as_slice(),
                        &token.as_bytes().as_slice(),
                        &max,
                    ],
                )?
                .len()
                    == 1
            }
            _ => {
                return Err(Abort::Refuse(unavailable(
                    "the plan has a guard this adapter does not know; upgrade the stores crate",
                )));
            }
        })
    }

    fn run_write(&self, tx: &mut postgres::Transaction<'_>, w: &Write) -> Result<u64, Abort> {
        let n = match w {
            Write::InsertFamily(f) => {
                let (status, revoked_at, reason) = match f.status {
                    FamilyStatus::Active => ("active", None, None),
                    FamilyStatus::Revoked { at, reason } => {
                        ("revoked", Some(time(at)?), Some(reason.as_str()))
                    }
                    _ => return Err(Abort::Refuse(unavailable("unknown family status"))),
                };
                let params: [&(dyn ToSql + Sync); 13] = [
                    &f.id.as_bytes().as_slice(),
                    &f.subject,
                    &f.client_id,
                    &time(f.created_at)?,
                    &time(f.absolute_expires_at)?,
                    &f.head.as_bytes().as_slice(),
                    &f.head_parent.as_ref().map(|p| p.as_bytes().as_slice()),
                    &big(f.head_generation)?,
                    &big(f.version)?,
                    &status,
                    &revoked_at,
                    &reason,
                    &f.dpop_jkt.as_ref().map(|k| k.as_bytes().as_slice()),
                ];
                tx.execute(self.sql.insert_family.as_str(), &params)?
            }
            Write::InsertToken(t) => {
                let (state, at, successor, uses): (&str, Option<i64>, Option<&[u8]>, i32) =
                    match &t.state {
                        TokenState::Active => ("active", None, None, 0),
                        TokenState::Rotated {
                            at,
                            successor,
                            grace_uses,
                        } => (
                            "rotated",
                            Some(time(*at)?),
                            Some(successor.as_bytes().as_slice()),
                            i32::try_from(*grace_uses).map_err(|_| out_of_range())?,
                        ),
                        TokenState::Superseded { at, by } => (
                            "superseded",
                            Some(time(*at)?),
                            Some(by.as_bytes().as_slice()),
                            0,
                        ),
                        _ => return Err(Abort::Refuse(unavailable("unknown token state"))),
                    };
                let params: [&(dyn ToSql + Sync); 10] = [
                    &t.family.as_bytes().as_slice(),
                    &t.id.as_bytes().as_slice(),
                    &t.parent.as_ref().map(|p| p.as_bytes().as_slice()),
                    &big(t.generation)?,
                    &t.secret_hash.as_bytes().as_slice(),
                    &time(t.issued_at)?,
                    &state,
                    &at,
                    &successor,
                    &uses,
                ];
                tx.execute(self.sql.insert_token.as_str(), &params)?
            }
            Write::MarkRotated {
                family,
                token,
                at,
                successor,
            } => tx.execute(
                self.sql.mark_rotated.as_str(),
                &[
                    &family.as_bytes().as_slice(),
                    &token.as_bytes().as_slice(),
                    &time(*at)?,
                    &successor.as_bytes().as_slice(),
                ],
            )?,
            Write::IncrementGraceUses { family, token } => tx.execute(
                self.sql.increment_grace.as_str(),
                &[&family.as_bytes().as_slice(), &token.as_bytes().as_slice()],
            )?,
            Write::MarkSuperseded {
                family,
                token,
                at,
                by,
            } => tx.execute(
                self.sql.mark_superseded.as_str(),
                &[
                    &family.as_bytes().as_slice(),
                    &token.as_bytes().as_slice(),
                    &time(*at)?,
                    &by.as_bytes().as_slice(),
                ],
            )?,
            Write::SetHead {
                family,
                head,
                head_parent,
                head_generation,
                version,
            } => tx.execute(
                self.sql.set_head.as_str(),
                &[
                    &family.as_bytes().as_slice(),
                    &head.as_bytes().as_slice(),
                    &head_parent.as_ref().map(|p| p.as_bytes().as_slice()),
                    &big(*head_generation)?,
                    &big(*version)?,
                ],
            )?,
            Write::RevokeFamily {
                family,
                at,
                reason,
                version,
            } => tx.execute(
                self.sql.revoke_family.as_str(),
                &[
                    &family.as_bytes().as_slice(),
                    &time(*at)?,
                    &reason.as_str(),
                    &big(*version)?,
                ],
            )?,
            Write::RetainTokens { family, keep } => {
                let keep: Vec<&[u8]> = keep.iter().map(|k| k.as_bytes().as_slice()).collect();
                tx.execute(
                    self.sql.retain_tokens.as_str(),
                    &[&family.as_bytes().as_slice(), &keep],
                )?;
                // Deletes any number of rows (0 included); never a conflict.
                1
            }
            _ => {
                return Err(Abort::Refuse(unavailable(
                    "the plan has a write this adapter does not know; upgrade the stores crate",
                )));
            }
        };
        Ok(n)
    }

    fn apply_in(
        &self,
        client: &mut postgres::Client,
        plan: &WritePlan,
    ) -> Result<ApplyOutcome, Abort> {
        let mut tx = client.transaction()?;
        let mut guards: Vec<&Guard> = plan.guards.iter().collect();
        guards.sort_by_key(|g| guard_order(g));
        for g in guards {
            if !self.run_guard(&mut tx, g)? {
                tx.rollback()?;
                return Ok(ApplyOutcome::Conflict);
            }
        }
        for w in &plan.writes {
            if self.run_write(&mut tx, w)? != 1 {
                tx.rollback()?;
                return Ok(ApplyOutcome::Conflict);
            }
        }
        tx.commit()?;
        Ok(ApplyOutcome::Applied)
    }
}

impl FamilyStore for PgFamilyStore {
    fn load(&self, family: FamilyId, token: TokenId) -> Result<Loaded, RefreshError> {
        let row = self
            .shared
            .with_client(|c| {
                c.query_one(
                    self.sql.load.as_str(),
                    &[&family.as_bytes().as_slice(), &token.as_bytes().as_slice()],
                )
            })
            .map_err(unavailable)?
            .map_err(unavailable)?;
        Ok(Loaded {
            family: family_at(&row, 0)?,
            token: token_at(&row, FAMILY_NCOLS)?,
        })
    }

    fn load_family(&self, family: FamilyId) -> Result<Option<FamilyRecord>, RefreshError> {
        let row = self
            .shared
            .with_client(|c| {
                c.query_opt(
                    self.sql.load_family.as_str(),
                    &[&family.as_bytes().as_slice()],
                )
            })
            .map_err(unavailable)?
            .map_err(unavailable)?;
        row.map(|r| family_at(&r, 0))
            .transpose()
            .map(Option::flatten)
    }

    fn live_families_of_subject(
        &self,
        subject: &str,
        now: UnixTime,
        max: usize,
    ) -> Result<Vec<FamilyRecord>, RefreshError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let now = time(now)?;
        let rows = self
            .shared
            .with_client(|c| c.query(self.sql.live_of_subject.as_str(), &[&subject, &now, &max]))
            .map_err(unavailable)?
            .map_err(unavailable)?;
        rows.iter()
            .filter_map(|r| family_at(r, 0).transpose())
            .collect()
    }

    fn apply(&self, plan: &WritePlan) -> Result<ApplyOutcome, RefreshError> {
        if plan.guards.is_empty() && plan.writes.is_empty() {
            return Ok(ApplyOutcome::Applied);
        }
        let res = self
            .shared
            .with_client(|c| match self.apply_in(c, plan) {
                Ok(o) => Ok(Ok(o)),
                Err(Abort::Sql(e)) => Err(e),
                Err(Abort::Refuse(e)) => Ok(Err(e)),
            })
            .map_err(unavailable)?;
        match res {
            Ok(inner) => inner,
            Err(e) => match classify(&e) {
                Failure::Conflict => Ok(ApplyOutcome::Conflict),
                Failure::Error(msg) => Err(RefreshError::StoreUnavailable(msg)),
            },
        }
    }

    fn gc(&self, now: UnixTime, max_batch: usize) -> Result<GcReport, RefreshError> {
        if max_batch == 0 {
            return Ok(GcReport::default());
        }
        let max = i64::try_from(max_batch).unwrap_or(i64::MAX);
        let now = time(now)?;
        let row = self
            .shared
            .with_client(|c| c.query_one(self.sql.gc.as_str(), &[&now, &max]))
            .map_err(unavailable)?
            .map_err(unavailable)?;
        let count = |i: usize| -> Result<usize, RefreshError> {
            usize::try_from(get::<i64>(&row, i)?).map_err(|_| corrupt("negative count"))
        };
        Ok(GcReport {
            families: count(0)?,
            tokens: count(1)?,
        })
    }
}
