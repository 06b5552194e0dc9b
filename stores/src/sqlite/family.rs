//! [`FamilyStore`] in the SQLite file: `apply(plan)` is one `BEGIN IMMEDIATE`
//! transaction (the write lock is held from the first guard to the commit), every guard
//! must find exactly its row and every write must change exactly one row; anything else
//! rolls back and answers `Conflict`.

use core::fmt;
use std::sync::Arc;

use handoff_core::UnixTime;
use handoff_refresh::{
    ApplyOutcome, FamilyId, FamilyRecord, FamilyStore, GcReport, Guard, Loaded, RefreshError,
    TokenId, TokenRecord, Write, WritePlan,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{Shared, cells, describe, is_conflict, to_i64};
use crate::rows::cols::*;
use crate::rows::{
    EncodeError, FamilyColumns, TokenColumns, decode_family, decode_token, encode_family,
    encode_token, text_column,
};

const FAMILY_COLS: &str = "f.id, f.subject, f.client_id, f.created_at, f.absolute_expires_at, \
     f.head, f.head_parent, f.head_generation, f.version, f.status, f.revoked_at, f.revoked_reason, \
     f.dpop_jkt";
const TOKEN_COLS: &str = "t.family_id, t.id, t.parent, t.generation, t.secret_hash, t.issued_at, \
     t.state, t.state_at, t.successor, t.grace_uses";
const FAMILY_NCOLS: usize = 13;

const GUARD_FAMILY_ABSENT: &str = "SELECT 1 FROM refresh_families WHERE id = ?1";
const GUARD_FAMILY_VERSION: &str =
    "SELECT 1 FROM refresh_families WHERE id = ?1 AND version = ?2 AND status = 'active'";
const GUARD_TOKEN_ACTIVE: &str =
    "SELECT 1 FROM refresh_tokens WHERE family_id = ?1 AND id = ?2 AND state = 'active'";
const GUARD_TOKEN_GRACE_BELOW: &str = "SELECT 1 FROM refresh_tokens \
     WHERE family_id = ?1 AND id = ?2 AND state = 'rotated' AND grace_uses < ?3";
const INSERT_FAMILY: &str = "INSERT INTO refresh_families (id, subject, client_id, created_at, \
     absolute_expires_at, head, head_parent, head_generation, version, status, revoked_at, \
     revoked_reason, dpop_jkt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
     ON CONFLICT (id) DO NOTHING";
const INSERT_TOKEN: &str = "INSERT INTO refresh_tokens (family_id, id, parent, generation, \
     secret_hash, issued_at, state, state_at, successor, grace_uses) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (family_id, id) DO NOTHING";
const MARK_ROTATED: &str = "UPDATE refresh_tokens \
     SET state = 'rotated', state_at = ?3, successor = ?4, grace_uses = 0 \
     WHERE family_id = ?1 AND id = ?2 AND state = 'active'";
const INCREMENT_GRACE: &str = "UPDATE refresh_tokens SET grace_uses = grace_uses + 1 \
     WHERE family_id = ?1 AND id = ?2 AND state = 'rotated' AND grace_uses < 2147483647";
const MARK_SUPERSEDED: &str = "UPDATE refresh_tokens \
     SET state = 'superseded', state_at = ?3, successor = ?4 \
     WHERE family_id = ?1 AND id = ?2 AND state = 'active'";
const SET_HEAD: &str = "UPDATE refresh_families \
     SET head = ?2, head_parent = ?3, head_generation = ?4, version = ?5 \
     WHERE id = ?1 AND status = 'active'";
const REVOKE_FAMILY: &str = "UPDATE refresh_families \
     SET status = 'revoked', revoked_at = ?2, revoked_reason = ?3, version = ?4 \
     WHERE id = ?1 AND status = 'active'";

/// A [`FamilyStore`] in the SQLite file (tables `refresh_families`, `refresh_tokens`).
/// Make one with [`super::SqliteStore::family_store`].
pub struct SqliteFamilyStore {
    shared: Arc<Shared>,
    load: String,
    load_family: String,
    live_of_subject: String,
}

impl fmt::Debug for SqliteFamilyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteFamilyStore")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl fmt::Display) -> RefreshError {
    RefreshError::StoreUnavailable(e.to_string())
}

fn out_of_range() -> RefreshError {
    RefreshError::StoreUnavailable("a value is beyond the INTEGER range; nothing written".into())
}

fn big(v: u64) -> Result<i64, RefreshError> {
    to_i64(v).ok_or_else(out_of_range)
}

fn time(v: UnixTime) -> Result<i64, RefreshError> {
    big(v.as_secs())
}

/// The family columns starting at `o`, decoded by [`crate::rows`]; `None` when the row
/// has no family (the left join found none).
fn family_at(row: &Row<'_>, o: usize) -> Result<Option<FamilyRecord>, RefreshError> {
    let Some(id) = cells::opt_blob(row, o, &F_ID)? else {
        return Ok(None);
    };
    let c = FamilyColumns {
        id,
        subject: cells::text(row, o + 1, &F_SUBJECT)?,
        client_id: cells::text(row, o + 2, &F_CLIENT_ID)?,
        created_at: cells::int(row, o + 3, &F_CREATED_AT)?,
        absolute_expires_at: cells::int(row, o + 4, &F_ABSOLUTE_EXPIRES_AT)?,
        head: cells::blob(row, o + 5, &F_HEAD)?,
        head_parent: cells::opt_blob(row, o + 6, &F_HEAD_PARENT)?,
        head_generation: cells::int(row, o + 7, &F_HEAD_GENERATION)?,
        version: cells::int(row, o + 8, &F_VERSION)?,
        status: cells::text(row, o + 9, &F_STATUS)?,
        revoked_at: cells::opt_int(row, o + 10, &F_REVOKED_AT)?,
        revoked_reason: cells::opt_text(row, o + 11, &F_REVOKED_REASON)?,
        dpop_jkt: cells::opt_blob(row, o + 12, &F_DPOP_JKT)?,
    };
    Ok(Some(decode_family(&c)?))
}

/// The token columns starting at `o`, decoded by [`crate::rows`]; `None` when the row
/// has no token.
fn token_at(row: &Row<'_>, o: usize) -> Result<Option<TokenRecord>, RefreshError> {
    let Some(family_id) = cells::opt_blob(row, o, &T_FAMILY_ID)? else {
        return Ok(None);
    };
    let c = TokenColumns {
        family_id,
        id: cells::blob(row, o + 1, &T_ID)?,
        parent: cells::opt_blob(row, o + 2, &T_PARENT)?,
        generation: cells::int(row, o + 3, &T_GENERATION)?,
        secret_hash: cells::blob(row, o + 4, &T_SECRET_HASH)?,
        issued_at: cells::int(row, o + 5, &T_ISSUED_AT)?,
        state: cells::text(row, o + 6, &T_STATE)?,
        state_at: cells::opt_int(row, o + 7, &T_STATE_AT)?,
        successor: cells::opt_blob(row, o + 8, &T_SUCCESSOR)?,
        grace_uses: cells::int(row, o + 9, &T_GRACE_USES)?,
    };
    Ok(Some(decode_token(&c)?))
}

fn blob(b: &[u8]) -> Value {
    Value::Blob(b.to_vec())
}

fn opt_blob(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, blob)
}

enum Abort {
    Refuse(RefreshError),
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for Abort {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<RefreshError> for Abort {
    fn from(e: RefreshError) -> Self {
        Self::Refuse(e)
    }
}

impl From<EncodeError> for Abort {
    fn from(e: EncodeError) -> Self {
        Self::Refuse(e.into())
    }
}

fn exists(c: &Connection, sql: &str, p: &[Value]) -> Result<bool, rusqlite::Error> {
    Ok(c.prepare_cached(sql)?
        .query_row(rusqlite::params_from_iter(p), |_| Ok(()))
        .optional()?
        .is_some())
}

fn run_guard(c: &Connection, g: &Guard) -> Result<bool, Abort> {
    Ok(match g {
        Guard::FamilyAbsent { family } => {
            !exists(c, GUARD_FAMILY_ABSENT, &[blob(family.as_bytes())])?
        }
        Guard::FamilyVersion { family, version } => exists(
            c,
            GUARD_FAMILY_VERSION,
            &[blob(family.as_bytes()), Value::Integer(big(*version)?)],
        )?,
        Guard::TokenActive { family, token } => exists(
            c,
            GUARD_TOKEN_ACTIVE,
            &[blob(family.as_bytes()), blob(token.as_bytes())],
        )?,
        Guard::TokenGraceBelow {
            family,
            token,
            max_uses,
        } => exists(
            c,
            GUARD_TOKEN_GRACE_BELOW,
            &[
                blob(family.as_bytes()),
                blob(token.as_bytes()),
                Value::Integer(i64::from(*max_uses)),
            ],
        )?,
        _ => {
            return Err(Abort::Refuse(unavailable(
                "the plan has a guard this adapter does not know; upgrade the stores crate",
            )));
        }
    })
}

fn run_write(c: &Connection, w: &Write) -> Result<usize, Abort> {
    let (sql, p): (&str, Vec<Value>) = match w {
        Write::InsertFamily(f) => {
            let c = encode_family(f)?;
            (
                INSERT_FAMILY,
                vec![
                    Value::Blob(c.id),
                    Value::Text(text_column(c.subject)?),
                    Value::Text(text_column(c.client_id)?),
                    Value::Integer(c.created_at),
                    Value::Integer(c.absolute_expires_at),
                    Value::Blob(c.head),
                    Value::from(c.head_parent),
                    Value::Integer(c.head_generation),
                    Value::Integer(c.version),
                    Value::Text(text_column(c.status)?),
                    Value::from(c.revoked_at),
                    Value::from(c.revoked_reason.map(text_column).transpose()?),
                    Value::from(c.dpop_jkt),
                ],
            )
        }
        Write::InsertToken(t) => {
            let c = encode_token(t)?;
            (
                INSERT_TOKEN,
                vec![
                    Value::Blob(c.family_id),
                    Value::Blob(c.id),
                    Value::from(c.parent),
                    Value::Integer(c.generation),
                    Value::Blob(c.secret_hash),
                    Value::Integer(c.issued_at),
                    Value::Text(text_column(c.state)?),
                    Value::from(c.state_at),
                    Value::from(c.successor),
                    Value::Integer(c.grace_uses),
                ],
            )
        }
        Write::MarkRotated {
            family,
            token,
            at,
            successor,
        } => (
            MARK_ROTATED,
            vec![
                blob(family.as_bytes()),
                blob(token.as_bytes()),
                Value::Integer(time(*at)?),
                blob(successor.as_bytes()),
            ],
        ),
        Write::IncrementGraceUses { family, token } => (
            INCREMENT_GRACE,
            vec![blob(family.as_bytes()), blob(token.as_bytes())],
        ),
        Write::MarkSuperseded {
            family,
            token,
            at,
            by,
        } => (
            MARK_SUPERSEDED,
            vec![
                blob(family.as_bytes()),
                blob(token.as_bytes()),
                Value::Integer(time(*at)?),
                blob(by.as_bytes()),
            ],
        ),
        Write::SetHead {
            family,
            head,
            head_parent,
            head_generation,
            version,
        } => (
            SET_HEAD,
            vec![
                blob(family.as_bytes()),
                blob(head.as_bytes()),
                opt_blob(head_parent.as_ref().map(|p| p.as_bytes().as_slice())),
                Value::Integer(big(*head_generation)?),
                Value::Integer(big(*version)?),
            ],
        ),
        Write::RevokeFamily {
            family,
            at,
            reason,
            version,
        } => (
            REVOKE_FAMILY,
            vec![
                blob(family.as_bytes()),
                Value::Integer(time(*at)?),
                Value::Text(reason.as_str().to_owned()),
                Value::Integer(big(*version)?),
            ],
        ),
        Write::RetainTokens { family, keep } => {
            // Bounded rows per family: delete every row the engine does not keep. Any
            // number of rows (0 included); never a conflict.
            if keep.len() > handoff_refresh::MAX_TOKEN_ROWS_PER_FAMILY {
                return Err(Abort::Refuse(unavailable(
                    "a plan keeps more token rows than a family may hold; nothing written",
                )));
            }
            let mut sql = String::from("DELETE FROM refresh_tokens WHERE family_id = ?1");
            let mut p = vec![blob(family.as_bytes())];
            if !keep.is_empty() {
                sql.push_str(" AND id NOT IN (");
                for (i, k) in keep.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("?{}", i + 2));
                    p.push(blob(k.as_bytes()));
                }
                sql.push(')');
            }
            c.prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(p))?;
            return Ok(1);
        }
        _ => {
            return Err(Abort::Refuse(unavailable(
                "the plan has a write this adapter does not know; upgrade the stores crate",
            )));
        }
    };
    Ok(c.prepare_cached(sql)?
        .execute(rusqlite::params_from_iter(p))?)
}

fn apply_in(c: &mut Connection, plan: &WritePlan) -> Result<ApplyOutcome, Abort> {
    // IMMEDIATE: the write lock is taken now, so the guards read what the writes change.
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for g in &plan.guards {
        if !run_guard(&tx, g)? {
            tx.rollback()?;
            return Ok(ApplyOutcome::Conflict);
        }
    }
    for w in &plan.writes {
        if run_write(&tx, w)? != 1 {
            tx.rollback()?;
            return Ok(ApplyOutcome::Conflict);
        }
    }
    tx.commit()?;
    Ok(ApplyOutcome::Applied)
}

impl SqliteFamilyStore {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let s = |q: &str| q.replace("{F}", FAMILY_COLS).replace("{T}", TOKEN_COLS);
        Self {
            shared,
            // One statement: family and token from one snapshot.
            load: s("SELECT {F}, {T} FROM (SELECT 1) AS one \
                 LEFT JOIN refresh_families f ON f.id = ?1 \
                 LEFT JOIN refresh_tokens t ON t.family_id = ?1 AND t.id = ?2"),
            load_family: s("SELECT {F} FROM refresh_families f WHERE f.id = ?1"),
            live_of_subject: s("SELECT {F} FROM refresh_families f \
                 WHERE f.subject = ?1 AND f.status = 'active' AND f.absolute_expires_at > ?2 \
                 ORDER BY f.id LIMIT ?3"),
        }
    }
}

/// Decoding errors inside a row callback travel out as this.
fn smuggle(e: RefreshError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, Box::new(e))
}

fn unsmuggle(e: rusqlite::Error) -> RefreshError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(_, _, b) => match b.downcast::<RefreshError>() {
            Ok(r) => *r,
            Err(other) => unavailable(other),
        },
        other => unavailable(describe(&other)),
    }
}

impl FamilyStore for SqliteFamilyStore {
    fn load(&self, family: FamilyId, token: TokenId) -> Result<Loaded, RefreshError> {
        let res = self.shared.with_conn(|c| {
            c.prepare_cached(&self.load)?.query_row(
                params![family.as_bytes().as_slice(), token.as_bytes().as_slice()],
                |row| {
                    Ok(Loaded {
                        family: family_at(row, 0).map_err(smuggle)?,
                        token: token_at(row, FAMILY_NCOLS).map_err(smuggle)?,
                    })
                },
            )
        });
        res.map_err(unavailable)?.map_err(unsmuggle)
    }

    fn load_family(&self, family: FamilyId) -> Result<Option<FamilyRecord>, RefreshError> {
        let res = self.shared.with_conn(|c| {
            c.prepare_cached(&self.load_family)?
                .query_row(params![family.as_bytes().as_slice()], |row| {
                    family_at(row, 0).map_err(smuggle)
                })
                .optional()
        });
        Ok(res.map_err(unavailable)?.map_err(unsmuggle)?.flatten())
    }

    fn live_families_of_subject(
        &self,
        subject: &str,
        now: UnixTime,
        max: usize,
    ) -> Result<Vec<FamilyRecord>, RefreshError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let now = time(now)?;
        let res = self.shared.with_conn(|c| {
            let mut st = c.prepare_cached(&self.live_of_subject)?;
            st.query_map(params![subject, now, max], |row| {
                family_at(row, 0).map_err(smuggle)
            })?
            .collect::<Result<Vec<_>, _>>()
        });
        Ok(res
            .map_err(unavailable)?
            .map_err(unsmuggle)?
            .into_iter()
            .flatten()
            .collect())
    }

    fn apply(&self, plan: &WritePlan) -> Result<ApplyOutcome, RefreshError> {
        if plan.guards.is_empty() && plan.writes.is_empty() {
            return Ok(ApplyOutcome::Applied);
        }
        let res = self.shared.with_conn(|c| match apply_in(c, plan) {
            Ok(o) => Ok(Ok(o)),
            Err(Abort::Sql(e)) => Err(e),
            Err(Abort::Refuse(e)) => Ok(Err(e)),
        });
        match res.map_err(unavailable)? {
            Ok(inner) => inner,
            Err(e) if is_conflict(&e) => Ok(ApplyOutcome::Conflict),
            Err(e) => Err(RefreshError::StoreUnavailable(describe(&e))),
        }
    }

    fn gc(&self, now: UnixTime, max_batch: usize) -> Result<GcReport, RefreshError> {
        if max_batch == 0 {
            return Ok(GcReport::default());
        }
        let max = i64::try_from(max_batch).unwrap_or(i64::MAX);
        let now = time(now)?;
        let res = self.shared.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "CREATE TEMP TABLE IF NOT EXISTS gc_doomed (id BLOB PRIMARY KEY)",
                [],
            )?;
            tx.execute("DELETE FROM temp.gc_doomed", [])?;
            tx.execute(
                "INSERT INTO temp.gc_doomed (id) SELECT id FROM refresh_families \
                 WHERE absolute_expires_at <= ?1 ORDER BY absolute_expires_at LIMIT ?2",
                params![now, max],
            )?;
            let tokens = tx.execute(
                "DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM temp.gc_doomed)",
                [],
            )?;
            let families = tx.execute(
                "DELETE FROM refresh_families WHERE id IN (SELECT id FROM temp.gc_doomed)",
                [],
            )?;
            tx.execute("DELETE FROM temp.gc_doomed", [])?;
            tx.commit()?;
            Ok(GcReport { families, tokens })
        });
        res.map_err(unavailable)?
            .map_err(|e| unavailable(describe(&e)))
    }
}
