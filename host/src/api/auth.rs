//! Who may call what: every request but `health` passes through [`authenticate`], which
//! checks the bearer key (in key mode) and, for namespaced routes, that the key belongs
//! to the namespace in the path. A key of another namespace gets the same 404 as a
//! namespace that does not exist, so keys reveal nothing beyond their own namespace.

use super::{ApiError, ApiState};
use crate::ids::Namespace;
use crate::tenancy::TenancyError;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

impl From<TenancyError> for ApiError {
    fn from(e: TenancyError) -> Self {
        let (status, code) = match &e {
            TenancyError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            TenancyError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            TenancyError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            TenancyError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            TenancyError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
            TenancyError::Storage(message) => {
                tracing::error!(error = %message, "storage error while serving a request");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the journal is unavailable; retry later",
                );
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// The bearer token of a request, if it has one.
fn bearer(request: &Request) -> Result<Option<&str>, ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let refused = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the Authorization header must be `Bearer KEY`",
        )
    };
    let value = value.to_str().map_err(|_| refused())?;
    match value.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(key.trim())),
        _ => Err(refused()),
    }
}

/// The namespace segment of `/api/v1/namespaces/{ns}/…`. It is checked as sent: a
/// namespace name has no characters that need percent-encoding, so an encoded one is
/// refused rather than decoded (the route's own `{ns}` then always means the same).
fn path_namespace(path: &str) -> Option<Result<Namespace, ApiError>> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let segment = rest.split('/').next().unwrap_or_default();
    Some(super::namespace(segment.to_owned()))
}

/// Authenticates the request and puts the [`Caller`] in its extensions; on a namespaced
/// route, also checks the caller may see that namespace.
pub(super) async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if request.uri().path() == super::HEALTH {
        return Ok(next.run(request).await);
    }
    let tenancy = state.engine.tenancy();
    let caller = tenancy.authenticate(bearer(&request)?)?;
    if let Some(namespace) = path_namespace(request.uri().path()) {
        tenancy.authorize(&caller, &namespace?)?;
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}
