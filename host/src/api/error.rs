//! API errors: an HTTP status, a stable machine-readable code and a human message.

use crate::engine::EngineError;
use crate::runtime::ModuleError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::time::Duration;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For `quota_exceeded`: which quota.
    pub quota: Option<&'static str>,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            quota: None,
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        let (status, code) = match &e {
            EngineError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
            EngineError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            EngineError::InvalidModule(ModuleError::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "module_too_large")
            }
            EngineError::InvalidModule(ModuleError::ForbiddenImports { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "forbidden_imports")
            }
            EngineError::InvalidModule(ModuleError::WrongWorld { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "wrong_world")
            }
            EngineError::InvalidModule(ModuleError::Invalid(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_module")
            }
            EngineError::UnknownWorkflowType(_) => (StatusCode::NOT_FOUND, "unknown_workflow_type"),
            EngineError::WrongModuleKind { .. } => (StatusCode::BAD_REQUEST, "wrong_module_kind"),
            EngineError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            EngineError::AlreadyRunning(_) => (StatusCode::CONFLICT, "already_running"),
            EngineError::NotOpen(..) => (StatusCode::CONFLICT, "workflow_closed"),
            EngineError::QueryRejected(_) => (StatusCode::BAD_REQUEST, "query_rejected"),
            EngineError::QueryFailed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "query_failed"),
            EngineError::UpdateRejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "update_rejected"),
            EngineError::QuotaExceeded {
                quota, retry_after, ..
            } => {
                // Rates and counts pass with time; a size never does.
                let status = if quota.starts_with("max_") && quota.ends_with("_bytes") {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::TOO_MANY_REQUESTS
                };
                let mut error = Self::new(status, "quota_exceeded", message);
                error.quota = Some(quota);
                error.retry_after = *retry_after;
                return error;
            }
            EngineError::Storage(_) => {
                tracing::error!(error = %message, "storage error while serving a request");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the journal is unavailable; retry later",
                );
            }
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({ "code": self.code, "message": self.message });
        if let Some(quota) = self.quota {
            error["quota"] = quota.into();
        }
        let mut response =
            (self.status, Json(serde_json::json!({ "error": error }))).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs.max(1)),
            );
        }
        response
    }
}
