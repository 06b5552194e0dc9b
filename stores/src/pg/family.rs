//! [`FamilyStore`] on PostgreSQL: `apply(plan)` is one transaction in which every guard
//! locks its row (`SELECT ... FOR UPDATE`, exactly one row) and every write is an
//! `UPDATE ... WHERE <expected state>` or `INSERT ... ON CONFLICT DO NOTHING` whose row
//! count must be exactly one; anything else rolls back and answers `Conflict`.

use core::fmt;
use std::sync::Arc;

use handoff_core::UnixTime;
use handoff_refresh::{
    ApplyOutcome, FamilyId, FamilyRecord, FamilyStore, GcReport, Guard, Loaded, RefreshError,
    TokenId, TokenRecord, Write, WritePlan,
};
use postgres::Row;
use postgres::types::ToSql;

use super::{Failure, SchemaName, Shared, cells, classify, to_i64};
use crate::rows::cols::*;
use crate::rows::{
    FamilyColumns, TokenColumns, decode_family, decode_token, encode_family, encode_token,
    text_column,
};

const FAMILY_COLS: &str = "f.id, f.subject, f.client_id, f.created_at, f.absolute_expires_at, \
     f.head, f.head_parent, f.head_generation, f.version, f.status, f.revoked_at, f.revoked_reason, \
     f.dpop_jkt";
const TOKEN_COLS: &str = "t.family_id, t.id, t.parent, t.generation, t.secret_hash, t.issued_at, \
     t.state, t.state_at, t.successor, t.grace_uses";
pub(crate) const FAMILY_NCOLS: usize = 13;

/// Every statement of the adapter, spliced with the schema name once.
pub(crate) struct Sql {
    pub(crate) load: String,
    pub(crate) load_family: String,
    pub(crate) live_of_subject: String,
    pub(crate) guard_family_absent: String,
    pub(crate) guard_family_version: String,
    pub(crate) guard_token_active: String,
    pub(crate) guard_token_grace_below: String,
    pub(crate) insert_family: String,
    pub(crate) insert_token: String,
    pub(crate) mark_rotated: String,
    pub(crate) increment_grace: String,
    pub(crate) mark_superseded: String,
    pub(crate) set_head: String,
    pub(crate) revoke_family: String,
    pub(crate) retain_tokens: String,
    pub(crate) gc: String,
}

impl Sql {
    pub(crate) fn new(schema: &SchemaName) -> Self {
        let s = |q: &str| schema.sql(&q.replace("{F}", FAMILY_COLS).replace("{T}", TOKEN_COLS));
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

pub(crate) fn unavailable(e: impl fmt::Display) -> RefreshError {
    RefreshError::StoreUnavailable(e.to_string())
}

fn out_of_range() -> RefreshError {
    RefreshError::StoreUnavailable("a value is beyond the bigint range; nothing written".into())
}

fn big(v: u64) -> Result<i64, RefreshError> {
    to_i64(v).ok_or_else(out_of_range)
}

pub(crate) fn time(v: UnixTime) -> Result<i64, RefreshError> {
    big(v.as_secs())
}

pub(crate) fn get<'a, T: postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
) -> Result<T, RefreshError> {
    row.try_get(i)
        .map_err(|_| RefreshError::Inconsistent("a column has an unexpected type or null"))
}

/// The family columns starting at `o`, decoded by [`crate::rows`]; `None` when the row
/// has no family (the left join found none).
pub(crate) fn family_at(row: &Row, o: usize) -> Result<Option<FamilyRecord>, RefreshError> {
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
pub(crate) fn token_at(row: &Row, o: usize) -> Result<Option<TokenRecord>, RefreshError> {
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
        grace_uses: cells::int4(row, o + 9, &T_GRACE_USES)?,
    };
    Ok(Some(decode_token(&c)?))
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

/// Owned statement parameters, usable by the sync and the async client alike.
pub(crate) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Borrowed views of [`Params`] for `execute` / `query`.
pub(crate) fn refs(p: &Params) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
}

fn b(v: &[u8]) -> Box<dyn ToSql + Sync + Send> {
    Box::new(v.to_vec())
}

fn ob(v: Option<&[u8]>) -> Box<dyn ToSql + Sync + Send> {
    Box::new(v.map(<[u8]>::to_vec))
}

/// A guard as a statement: its SQL, parameters, and whether it holds when the statement
/// finds no row (`FamilyAbsent`) rather than exactly one.
pub(crate) struct GuardStmt<'a> {
    pub(crate) sql: &'a str,
    pub(crate) params: Params,
    pub(crate) holds_when_absent: bool,
}

/// A write as a statement: its SQL, parameters, and whether any row count is accepted
/// (`RetainTokens`) rather than exactly one.
pub(crate) struct WriteStmt<'a> {
    pub(crate) sql: &'a str,
    pub(crate) params: Params,
    pub(crate) any_count: bool,
}

impl Sql {
    /// The one translation of a guard into SQL, shared by the sync and async adapters.
    pub(crate) fn guard<'a>(&'a self, g: &Guard) -> Result<GuardStmt<'a>, RefreshError> {
        let (sql, params, holds_when_absent): (&str, Params, bool) = match g {
            Guard::FamilyAbsent { family } => (
                self.guard_family_absent.as_str(),
                vec![b(family.as_bytes())],
                true,
            ),
            Guard::FamilyVersion { family, version } => (
                self.guard_family_version.as_str(),
                vec![b(family.as_bytes()), Box::new(big(*version)?)],
                false,
            ),
            Guard::TokenActive { family, token } => (
                self.guard_token_active.as_str(),
                vec![b(family.as_bytes()), b(token.as_bytes())],
                false,
            ),
            Guard::TokenGraceBelow {
                family,
                token,
                max_uses,
            } => (
                self.guard_token_grace_below.as_str(),
                vec![
                    b(family.as_bytes()),
                    b(token.as_bytes()),
                    Box::new(i32::try_from(*max_uses).unwrap_or(i32::MAX)),
                ],
                false,
            ),
            _ => {
                return Err(unavailable(
                    "the plan has a guard this adapter does not know; upgrade the stores crate",
                ));
            }
        };
        Ok(GuardStmt {
            sql,
            params,
            holds_when_absent,
        })
    }

    /// The one translation of a write into SQL, shared by the sync and async adapters.
    pub(crate) fn write<'a>(&'a self, w: &Write) -> Result<WriteStmt<'a>, RefreshError> {
        let one = |sql: &'a String, params: Params| WriteStmt {
            sql: sql.as_str(),
            params,
            any_count: false,
        };
        Ok(match w {
            Write::InsertFamily(f) => {
                let c = encode_family(f)?;
                one(
                    &self.insert_family,
                    vec![
                        Box::new(c.id),
                        Box::new(text_column(c.subject)?),
                        Box::new(text_column(c.client_id)?),
                        Box::new(c.created_at),
                        Box::new(c.absolute_expires_at),
                        Box::new(c.head),
                        Box::new(c.head_parent),
                        Box::new(c.head_generation),
                        Box::new(c.version),
                        Box::new(text_column(c.status)?),
                        Box::new(c.revoked_at),
                        Box::new(c.revoked_reason.map(text_column).transpose()?),
                        Box::new(c.dpop_jkt),
                    ],
                )
            }
            Write::InsertToken(t) => {
                let c = encode_token(t)?;
                // `integer` (32 bits) in PostgreSQL.
                let uses = i32::try_from(c.grace_uses).map_err(|_| out_of_range())?;
                one(
                    &self.insert_token,
                    vec![
                        Box::new(c.family_id),
                        Box::new(c.id),
                        Box::new(c.parent),
                        Box::new(c.generation),
                        Box::new(c.secret_hash),
                        Box::new(c.issued_at),
                        Box::new(text_column(c.state)?),
                        Box::new(c.state_at),
                        Box::new(c.successor),
                        Box::new(uses),
                    ],
                )
            }
            Write::MarkRotated {
                family,
                token,
                at,
                successor,
            } => one(
                &self.mark_rotated,
                vec![
                    b(family.as_bytes()),
                    b(token.as_bytes()),
                    Box::new(time(*at)?),
                    b(successor.as_bytes()),
                ],
            ),
            Write::IncrementGraceUses { family, token } => one(
                &self.increment_grace,
                vec![b(family.as_bytes()), b(token.as_bytes())],
            ),
            Write::MarkSuperseded {
                family,
                token,
                at,
                by,
            } => one(
                &self.mark_superseded,
                vec![
                    b(family.as_bytes()),
                    b(token.as_bytes()),
                    Box::new(time(*at)?),
                    b(by.as_bytes()),
                ],
            ),
            Write::SetHead {
                family,
                head,
                head_parent,
                head_generation,
                version,
            } => one(
                &self.set_head,
                vec![
                    b(family.as_bytes()),
                    b(head.as_bytes()),
                    ob(head_parent.as_ref().map(|p| p.as_bytes().as_slice())),
                    Box::new(big(*head_generation)?),
                    Box::new(big(*version)?),
                ],
            ),
            Write::RevokeFamily {
                family,
                at,
                reason,
                version,
            } => one(
                &self.revoke_family,
                vec![
                    b(family.as_bytes()),
                    Box::new(time(*at)?),
                    Box::new(reason.as_str()),
                    Box::new(big(*version)?),
                ],
            ),
            Write::RetainTokens { family, keep } => {
                if keep.len() > handoff_refresh::MAX_TOKEN_ROWS_PER_FAMILY {
                    return Err(unavailable(
                        "a plan keeps more token rows than a family may hold; nothing written",
                    ));
                }
                let keep: Vec<Vec<u8>> = keep.iter().map(|k| k.as_bytes().to_vec()).collect();
                // Deletes any number of rows (0 included); never a conflict.
                WriteStmt {
                    sql: self.retain_tokens.as_str(),
                    params: vec![b(family.as_bytes()), Box::new(keep)],
                    any_count: true,
                }
            }
            _ => {
                return Err(unavailable(
                    "the plan has a write this adapter does not know; upgrade the stores crate",
                ));
            }
        })
    }
}

/// The guards of a plan in lock order (see [`guard_order`]).
pub(crate) fn ordered_guards(plan: &WritePlan) -> Vec<&Guard> {
    let mut guards: Vec<&Guard> = plan.guards.iter().collect();
    guards.sort_by_key(|g| guard_order(g));
    guards
}

impl PgFamilyStore {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let sql = Sql::new(&shared.schema);
        Self { shared, sql }
    }

    fn apply_in(
        &self,
        client: &mut postgres::Client,
        plan: &WritePlan,
    ) -> Result<ApplyOutcome, Abort> {
        let mut tx = client.transaction()?;
        for g in ordered_guards(plan) {
            let st = self.sql.guard(g)?;
            let rows = tx.query(st.sql, &refs(&st.params))?;
            let holds = if st.holds_when_absent {
                rows.is_empty()
            } else {
                rows.len() == 1
            };
            if !holds {
                tx.rollback()?;
                return Ok(ApplyOutcome::Conflict);
            }
        }
        for w in &plan.writes {
            let st = self.sql.write(w)?;
            let n = tx.execute(st.sql, &refs(&st.params))?;
            if !st.any_count && n != 1 {
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
            usize::try_from(get::<i64>(&row, i)?)
                .map_err(|_| RefreshError::Inconsistent("negative count"))
        };
        Ok(GcReport {
            families: count(0)?,
            tokens: count(1)?,
        })
    }
}
