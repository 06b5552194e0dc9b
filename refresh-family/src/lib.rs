#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod driver;
mod engine;
mod error;
mod policy;
mod records;
mod store;
mod token;

pub use driver::{
    Issued, Outcome, Refused, Revoked, SUBJECT_BATCH, logout, revoke_family, revoke_subject,
    rotate, rotate_bound, start, start_bound,
};
pub use engine::{
    Decision, Issue, MAX_NAME_BYTES, NewFamily, RefreshFamilies, Rejection, Revocation,
};
pub use error::RefreshError;
pub use policy::{
    GraceMode, MAX_ATTEMPTS, MAX_GRACE_USES, MAX_GRACE_WINDOW_SECS, MAX_LIFETIME_SECS,
    MIN_LIFETIME_SECS, Policy, PolicyBuilder,
};
pub use records::{
    AuditEvent, FamilyRecord, FamilyStatus, Guard, Loaded, MAX_TOKEN_ROWS_PER_FAMILY, ReuseKind,
    RevocationReason, TokenRecord, TokenState, Write, WritePlan,
};
pub use store::{ApplyOutcome, FamilyStore, GcReport, InMemoryFamilyStore};
pub use token::{
    FamilyId, ParsedToken, PresentedToken, RefreshToken, SecretHash, TOKEN_LEN, TOKEN_PREFIX,
    TokenId, fuzz_parse,
};
