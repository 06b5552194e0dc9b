//! axum extractors: one per thing a handler needs. Each finds the [`EdgeAuth`] in the
//! router state through `FromRef` and answers refusals with an [`AuthRejection`].

use core::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts, OriginalUri};
use handoff_verify::{AccessToken, HostToken, NoCustomClaims, ServiceToken};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::auth::{AuthRejection, DpopAccess, EdgeAuth};

/// The request path as the client sent it (before any `nest`), for the DPoP `htu`.
fn path(parts: &Parts) -> String {
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    uri.path().to_owned()
}

/// A verified one-time host token (`Authorization: Bearer <host+jwt>`), with the
/// caller's claims `T`. Its `jti` is recorded before the handler runs.
#[derive(Debug, Clone)]
pub struct Host<T = NoCustomClaims>(pub HostToken<T>);

impl<S, T> FromRequestParts<S> for Host<T>
where
    EdgeAuth: FromRef<S>,
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = EdgeAuth::from_ref(state);
        auth.verify_host::<T>(&parts.headers).await.map(Host)
    }
}

/// A verified DPoP-bound access token and its proof (`Authorization: DPoP` and one
/// `DPoP` header). Bearer presentations are refused.
#[derive(Debug, Clone)]
pub struct Dpop(pub DpopAccess);

impl<S> FromRequestParts<S> for Dpop
where
    EdgeAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = EdgeAuth::from_ref(state);
        let path = path(parts);
        auth.verify_dpop(&parts.method, &path, &parts.headers)
            .await
            .map(Dpop)
    }
}

/// A verified access token, DPoP-presented, or `Bearer` when the [`EdgeAuth`] allows it
/// and the token is not DPoP-bound.
#[derive(Debug, Clone)]
pub struct Access(pub AccessToken);

impl<S> FromRequestParts<S> for Access
where
    EdgeAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = EdgeAuth::from_ref(state);
        let path = path(parts);
        auth.verify_access(&parts.method, &path, &parts.headers)
            .await
            .map(Access)
    }
}

/// The scopes a [`Service`] extractor requires, all of them.
///
/// ```
/// struct OrdersRead;
/// impl handoff_edge::RequiredScopes for OrdersRead {
///     const SCOPES: &'static [&'static str] = &["orders:read"];
/// }
/// ```
pub trait RequiredScopes: Send + Sync + 'static {
    /// Every scope the token must carry.
    const SCOPES: &'static [&'static str];
}

/// A verified service token carrying every scope of `R`; `403 insufficient_scope`
/// otherwise.
#[derive(Debug, Clone)]
pub struct Service<R: RequiredScopes>(pub ServiceToken, PhantomData<R>);

impl<R: RequiredScopes> Service<R> {
    /// The token.
    #[must_use]
    pub fn token(&self) -> &ServiceToken {
        &self.0
    }
}

impl<S, R> FromRequestParts<S> for Service<R>
where
    EdgeAuth: FromRef<S>,
    S: Send + Sync,
    R: RequiredScopes,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = EdgeAuth::from_ref(state);
        auth.verify_service(&parts.headers, R::SCOPES)
            .map(|t| Service(t, PhantomData))
    }
}
