//! API errors: an HTTP status, a stable machine-readable code and a human message.

use crate::engine::EngineError;
use crate::runtime::ModuleError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
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
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
