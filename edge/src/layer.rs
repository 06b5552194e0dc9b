//! A tower layer for servers without axum: verifies the request, puts the verified value
//! in the request extensions, and answers refusals itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};

use crate::auth::EdgeAuth;

/// What the layer requires of every request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Require {
    /// A DPoP-bound access token: the extension is a [`crate::DpopAccess`].
    Dpop,
    /// An access token, DPoP or (when allowed) bearer: the extension is a
    /// [`handoff_verify::AccessToken`].
    Access,
    /// A service token with all these scopes: the extension is a
    /// [`handoff_verify::ServiceToken`].
    Service(Arc<[String]>),
}

/// The layer; wrap any `tower::Service<http::Request<B>>`.
#[derive(Debug, Clone)]
pub struct EdgeAuthLayer {
    auth: EdgeAuth,
    require: Require,
}

impl EdgeAuthLayer {
    /// A layer checking `require` with `auth`.
    #[must_use]
    pub fn new(auth: EdgeAuth, require: Require) -> Self {
        Self { auth, require }
    }
}

impl<S> tower_layer::Layer<S> for EdgeAuthLayer {
    type Service = EdgeAuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        EdgeAuthService {
            inner,
            auth: self.auth.clone(),
            require: self.require.clone(),
        }
    }
}

/// The service the layer builds.
#[derive(Debug, Clone)]
pub struct EdgeAuthService<S> {
    inner: S,
    auth: EdgeAuth,
    require: Require,
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for EdgeAuthService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was driven ready serves this call (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let require = self.require.clone();
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            let (method, headers) = (req.method().clone(), req.headers().clone());
            let verdict = match require {
                Require::Dpop => auth.verify_dpop(&method, &path, &headers).await.map(|v| {
                    let nonce = v.proof.next_nonce().map(str::to_owned);
                    req.extensions_mut().insert(v);
                    nonce
                }),
                Require::Access => auth.verify_access(&method, &path, &headers).await.map(|v| {
                    req.extensions_mut().insert(v);
                    None
                }),
                Require::Service(scopes) => {
                    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                    auth.verify_service(&headers, &scopes).map(|v| {
                        req.extensions_mut().insert(v);
                        None
                    })
                }
            };
            match verdict {
                Ok(nonce) => {
                    let mut resp = inner.call(req).await?;
                    if let Some(n) = nonce
                        && let Ok(v) = http::HeaderValue::from_str(&n)
                    {
                        resp.headers_mut().insert("dpop-nonce", v);
                    }
                    Ok(resp)
                }
                Err(rejection) => Ok(rejection.into_http()),
            }
        })
    }
}
