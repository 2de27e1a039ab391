//! Request-body limits that answer the client instead of resetting its connection.
//!
//! `DefaultBodyLimit` alone stops reading at the limit and answers 413; the server
//! then closes a connection whose client is still writing, and most clients (reqwest,
//! `requests`, anything that writes the whole body before reading) see a broken pipe
//! or a reset instead of the answer. So a body whose declared length is over the
//! limit is read to its end and thrown away first (a lingering close, as nginx does),
//! within a bound on bytes and time, and then answered with the same 413 the
//! extractors give. Bodies without a declared length still meet `DefaultBodyLimit`.

use super::{ApiError, ApiState};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{CONTENT_LENGTH, EXPECT};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use futures::StreamExt;
use std::time::Duration;

/// Most bytes of an oversized body read and discarded before answering; a client
/// declaring more gets its answer at once and whatever its connection makes of it.
const DRAIN_MAX_BYTES: u64 = 256 << 20;

/// Longest an oversized body is read for before answering anyway.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// What a route's body is, which decides the limit and the 413's words.
#[derive(Clone, Copy)]
pub(super) enum BodyKind {
    /// A component upload, held to `max_module_bytes`.
    Module,
    /// A JSON request, held to `max_payload_bytes` and room for its envelope.
    Json,
}

impl BodyKind {
    /// The most bytes of a body of this kind the HTTP layer reads.
    fn limit(self, state: &ApiState) -> usize {
        match self {
            // A byte over the server's limit reaches the engine, so that an upload
            // just over it is refused by the namespace's quota (which is at most the
            // server's limit) with the quota named.
            BodyKind::Module => state.max_module_bytes + 1,
            // Room for the JSON envelope around a maximal payload.
            BodyKind::Json => state.max_payload_bytes + 64 * 1024,
        }
    }

    /// The answer to a body over the limit.
    pub(super) fn too_large(self, state: &ApiState) -> ApiError {
        match self {
            BodyKind::Module => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "module_too_large",
                format!("the module exceeds {} bytes", state.max_module_bytes),
            ),
            BodyKind::Json => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the request body is too large: payloads may have up to {} bytes",
                    state.max_payload_bytes
                ),
            ),
        }
    }
}

/// `route` with its request bodies held to `kind`'s limit.
pub(super) fn limited(
    route: MethodRouter<ApiState>,
    kind: BodyKind,
    state: &ApiState,
) -> MethodRouter<ApiState> {
    route.layer(DefaultBodyLimit::max(kind.limit(state))).layer(
        axum::middleware::from_fn_with_state(
            state.clone(),
            move |state: State<ApiState>, request: Request, next: Next| {
                refuse_declared_oversize(state, kind, request, next)
            },
        ),
    )
}

async fn refuse_declared_oversize(
    State(state): State<ApiState>,
    kind: BodyKind,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    let Some(declared) = declared.filter(|&len| len > kind.limit(&state) as u64) else {
        return next.run(request).await;
    };
    // A client that waits for `100 Continue` has not sent its body: it reads the
    // answer as it is, so there is nothing to drain.
    let waits_to_send = request.headers().contains_key(EXPECT);
    if declared <= DRAIN_MAX_BYTES && !waits_to_send {
        let mut body = request.into_body().into_data_stream();
        let drain = async { while let Some(Ok(_chunk)) = body.next().await {} };
        // Past the deadline the client gets its answer on a connection closed under it.
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    }
    kind.too_large(&state).into_response()
}
