#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod error;
pub mod flow;
pub mod id_token;
pub mod metadata;
pub mod ratelimit;
pub mod redirect;
pub mod session;
pub mod suppress;

pub use error::LoginError;
pub use flow::{
    AppContext, AuthorizationStart, CallbackParams, ClientAuth, ClientConfig, ClientSecret,
    CodeExchange, PendingLogin, SealingKey, TokenRequest, TokenResponse, authorize,
};
pub use id_token::{GOOGLE_ISSUERS, IdToken, IdTokenVerifier, IdTokenVerifierBuilder};
pub use metadata::ProviderMetadata;
pub use ratelimit::{RateDecision, RateLimiter, RatePolicy};
pub use redirect::{AllowedRedirect, AppRedirect, OAuthErrorCode, RedirectAllowList};
pub use session::{AdminAllowList, Role, Roles, SessionToken, SessionVerifier, mint_session_token};
pub use suppress::{Suppressed, SuppressionList};
