//! The worker side of task queues: long-poll for an activity attempt, heartbeat,
//! complete, fail. The protocol is documented in `workers/README.md`.

use super::{namespace, ApiError, ApiJson, ApiPath, ApiState};
use crate::activity::task_queue::{Task, TaskError, MAX_POLL_WAIT};
use crate::journal::{Failure, FailureKind};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use spool_formats::api::{CompleteBody, FailBody, HeartbeatBody, PollBody};
use std::time::Duration;

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "task_not_found", e.to_string())
    }
}

fn check_queue(queue: &str) -> Result<(), ApiError> {
    crate::ids::validate_name("task queue", queue).map_err(ApiError::invalid)
}

/// 200 with the attempt, or 204 if none came within the wait.
pub(super) async fn poll(
    State(state): State<ApiState>,
    ApiPath((ns, queue)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PollBody>,
) -> Result<Response, ApiError> {
    let namespace = namespace(ns)?;
    check_queue(&queue)?;
    let wait = Duration::from_secs(body.wait_secs.unwrap_or(30)).min(MAX_POLL_WAIT);
    let task = state
        .engine
        .task_queues()
        .poll(&namespace, &queue, wait)
        .await;
    Ok(match task {
        Some(task) => Json(task_view(task)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// The attempt as a worker sees it: payloads as JSON values, not JSON in strings.
fn task_view(task: Task) -> serde_json::Value {
    let json = |text: &str| super::views::json_value(text);
    serde_json::json!({
        "task_token": task.task_token,
        "activity": task.activity,
        "input": json(&task.input),
        "attempt": task.attempt,
        "heartbeat_details": task.heartbeat_details.as_deref().map(json),
        "workflow_id": task.workflow_id,
        "run_id": task.run_id,
        "activity_handle": task.activity_handle,
        "heartbeat_timeout_ms": task.heartbeat_timeout_ms,
        "start_to_close_timeout_ms": task.start_to_close_timeout_ms,
    })
}

pub(super) async fn heartbeat(
    State(state): State<ApiState>,
    ApiPath((ns, token)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<HeartbeatBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let namespace = namespace(ns)?;
    let details = body.details.map(|d| d.to_string());
    let ack = state
        .engine
        .task_queues()
        .heartbeat(&namespace, &token, details)?;
    Ok(Json(
        serde_json::json!({ "cancel_requested": ack.cancel_requested }),
    ))
}

pub(super) async fn complete(
    State(state): State<ApiState>,
    ApiPath((ns, token)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<CompleteBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let namespace = namespace(ns)?;
    let output = body.output.unwrap_or(serde_json::Value::Null).to_string();
    state
        .engine
        .task_queues()
        .finish(&namespace, &token, Ok(output))?;
    Ok(Json(serde_json::json!({})))
}

pub(super) async fn fail(
    State(state): State<ApiState>,
    ApiPath((ns, token)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<FailBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let namespace = namespace(ns)?;
    let kind = if body.cancelled {
        FailureKind::Cancelled
    } else {
        FailureKind::Application
    };
    let failure = Failure {
        kind,
        error_type: body.error_type,
        message: body.message,
        non_retryable: body.non_retryable || body.cancelled,
        details: body.details.map(|d| d.to_string()),
    };
    state
        .engine
        .task_queues()
        .finish(&namespace, &token, Err(failure))?;
    Ok(Json(serde_json::json!({})))
}
