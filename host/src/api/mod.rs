//! The HTTP API: JSON under `/api/v1/namespaces/{ns}/…`, described in `openapi.yaml`.
//!
//! Handlers translate between HTTP and the engine and nothing more. Errors are JSON
//! `{"error": {"code", "message"}}` with a stable code; internal details are logged,
//! not sent.

mod admin;
mod auth;
mod body_limit;
mod error;
mod tasks;
mod views;

pub use error::ApiError;

use crate::engine::{Engine, EngineError, StartRequest, UpdateOutcome, UpdateRequest};
use crate::ids::{ModuleHash, Namespace, TypeName, WorkflowId};
use crate::journal::{ModuleKind, RunFilter, RunStatus};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use body_limit::{limited, BodyKind};
use serde::Deserialize;
use spool_formats::api::{
    ReasonBody, RepinBody, SignalBody, SignalWithStartBody, StartBody, UpdateBody,
};
use std::time::Duration;
use views::{EventView, ModuleView, RunView};

/// The one route that needs no key: load balancers probe it.
const HEALTH: &str = "/api/v1/health";

/// Most runs one `list` answers with.
const MAX_LIST: u32 = 1_000;

/// Longest a `result` call may wait before answering with the still-open run.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct ApiState {
    pub engine: Engine,
    pub max_module_bytes: usize,
    pub max_payload_bytes: usize,
}

pub fn router(state: ApiState) -> Router {
    let json = |route| limited(route, BodyKind::Json, &state);
    let ns = "/api/v1/namespaces/{ns}";
    let admin = "/api/v1/admin/namespaces";
    Router::new()
        .route(HEALTH, get(health))
        .route(
            admin,
            get(admin::list_namespaces).post(admin::create_namespace),
        )
        .route(
            &format!("{admin}/{{ns}}"),
            get(admin::describe_namespace)
                .patch(admin::patch_namespace)
                .delete(admin::delete_namespace),
        )
        .route(
            &format!("{admin}/{{ns}}/keys"),
            get(admin::list_keys).post(admin::create_key),
        )
        .route(
            &format!("{admin}/{{ns}}/keys/{{key_id}}"),
            axum::routing::delete(admin::revoke_key),
        )
        .route(ns, get(admin::describe_namespace))
        .route(
            &format!("{ns}/modules"),
            limited(
                post(upload_module).get(list_modules),
                BodyKind::Module,
                &state,
            ),
        )
        .route(
            &format!("{ns}/workflows"),
            json(post(start_workflow).get(list_workflows)),
        )
        .route(&format!("{ns}/workflows/{{id}}"), get(describe_workflow))
        .route(
            &format!("{ns}/workflows/{{id}}/result"),
            get(workflow_result),
        )
        .route(
            &format!("{ns}/workflows/{{id}}/history"),
            get(workflow_history),
        )
        .route(
            &format!("{ns}/workflows/{{id}}/repin"),
            post(repin_workflow),
        )
        .route(
            &format!("{ns}/workflows/{{id}}/signals"),
            json(post(signal_workflow)),
        )
        .route(
            &format!("{ns}/workflows/{{id}}/query"),
            json(post(query_workflow)),
        )
        .route(
            &format!("{ns}/workflows/{{id}}/updates"),
            json(post(update_workflow)),
        )
        .route(
            &format!("{ns}/workflows/{{id}}/cancel"),
            json(post(cancel_workflow)),
        )
        .route(
            &format!("{ns}/workflows/{{id}}/terminate"),
            json(post(terminate_workflow)),
        )
        .route(
            &format!("{ns}/workflows/{{id}}/signal-with-start"),
            json(post(signal_with_start)),
        )
        .route(
            &format!("{ns}/task-queues/{{queue}}/poll"),
            post(tasks::poll),
        )
        .route(
            &format!("{ns}/tasks/{{token}}/heartbeat"),
            json(post(tasks::heartbeat)),
        )
        .route(
            &format!("{ns}/tasks/{{token}}/complete"),
            json(post(tasks::complete)),
        )
        .route(
            &format!("{ns}/tasks/{{token}}/fail"),
            json(post(tasks::fail)),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .with_state(state)
}

/// `Json`, answering a malformed or oversized body with a JSON error.
struct ApiJson<T>(T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<ApiState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &ApiState,
    ) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(BodyKind::Json.too_large(state))
            }
            Err(e) => Err(ApiError::invalid(e.body_text())),
        }
    }
}

/// `Path`, answering a malformed segment (e.g. bad percent-encoding) with a JSON error.
struct ApiPath<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|e| ApiError::invalid(e.body_text()))
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

fn namespace(ns: String) -> Result<Namespace, ApiError> {
    crate::ids::validate_name("namespace", &ns).map_err(ApiError::invalid)?;
    Ok(Namespace(ns))
}

#[derive(Deserialize)]
struct UploadQuery {
    name: String,
    #[serde(default)]
    kind: Option<String>,
}

async fn upload_module(
    State(state): State<ApiState>,
    ApiPath(ns): ApiPath<String>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModuleView>), ApiError> {
    let namespace = namespace(ns)?;
    let Query(query) = query.map_err(|e| {
        ApiError::invalid(format!("{e}; expected ?name=TYPE[&kind=workflow|activity]"))
    })?;
    let kind = match query.kind.as_deref() {
        None => ModuleKind::Workflow,
        Some(kind) => ModuleKind::parse(kind).ok_or_else(|| {
            ApiError::invalid(format!("kind {kind:?}: expected workflow or activity"))
        })?,
    };
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            BodyKind::Module.too_large(&state)
        } else {
            ApiError::invalid(e.body_text())
        }
    })?;
    let record = state
        .engine
        .upload_module(&namespace, &TypeName(query.name), kind, bytes.to_vec())
        .await?;
    Ok((StatusCode::CREATED, Json(ModuleView::from(record))))
}

async fn list_modules(
    State(state): State<ApiState>,
    ApiPath(ns): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let modules = state.engine.list_modules(&namespace(ns)?).await?;
    let modules: Vec<ModuleView> = modules.into_iter().map(ModuleView::from).collect();
    Ok(Json(serde_json::json!({ "modules": modules })))
}

async fn start_workflow(
    State(state): State<ApiState>,
    ApiPath(ns): ApiPath<String>,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let namespace = namespace(ns)?;
    let use_existing = match body.if_running.as_deref() {
        None | Some("fail") => false,
        Some("use_existing") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "if_running {other:?}: expected \"fail\" or \"use_existing\""
            )))
        }
    };
    let input = body.input.unwrap_or(serde_json::Value::Null).to_string();
    let workflow_id = WorkflowId(body.workflow_id);
    let started = state
        .engine
        .start_workflow(StartRequest {
            namespace: namespace.clone(),
            workflow_id: workflow_id.clone(),
            workflow_type: TypeName(body.workflow_type),
            input,
        })
        .await;
    match started {
        Ok(run) => Ok((StatusCode::CREATED, Json(RunView::from(run)))),
        Err(EngineError::AlreadyRunning(_)) if use_existing => {
            let run = state.engine.describe(&namespace, &workflow_id).await?;
            Ok((StatusCode::OK, Json(RunView::from(run))))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    workflow_type: Option<String>,
    /// Only the child workflows of this workflow id.
    parent: Option<String>,
    limit: Option<u32>,
}

async fn list_workflows(
    State(state): State<ApiState>,
    ApiPath(ns): ApiPath<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let namespace = namespace(ns)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.to_string()))?;
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "status {s:?}: expected running, completed, failed, blocked, terminated, cancelled or continued_as_new"
            ))
        })?),
    };
    if let Some(t) = &query.workflow_type {
        crate::ids::validate_name("type", t).map_err(ApiError::invalid)?;
    }
    if let Some(p) = &query.parent {
        crate::ids::validate_name("parent", p).map_err(ApiError::invalid)?;
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit {limit}: expected 1 to {MAX_LIST}"
        )));
    }
    let filter = RunFilter {
        status,
        workflow_type: query.workflow_type.map(TypeName),
        parent_workflow_id: query.parent.map(WorkflowId),
        limit,
    };
    let runs = state.engine.list(&namespace, &filter).await?;
    let runs: Vec<RunView> = runs.into_iter().map(RunView::from).collect();
    Ok(Json(serde_json::json!({ "workflows": runs })))
}

fn workflow_id(id: String) -> Result<WorkflowId, ApiError> {
    crate::ids::validate_name("workflow id", &id).map_err(ApiError::invalid)?;
    Ok(WorkflowId(id))
}

async fn describe_workflow(
    State(state): State<ApiState>,
    ApiPath((ns, id)): ApiPath<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (namespace, workflow_id) = (namespace(ns)?, workflow_id(id)?);
    let run = state.engine.describe(&namespace, &workflow_id).await?;
    let runs = state.engine.runs_of(&namespace, &workflow_id).await?;
    let mut view = serde_json::to_value(RunView::from(run)).unwrap_or_default();
    // The newest run, plus every run of this workflow id (newest first), so a chain of
    // continue-as-new runs can be followed.
    view["runs"] = runs
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "run_id": r.run_id.0,
                "status": r.status.as_str(),
                "created_at_ms": r.created_at_ms,
                "closed_at_ms": r.closed_at_ms,
                "continued_from": r.continued_from.map(|c| c.0),
            })
        })
        .collect();
    Ok(Json(view))
}

#[derive(Deserialize)]
struct ResultQuery {
    /// Seconds to wait for the run to close (at most 60); 0 answers at once.
    wait_secs: Option<u64>,
}

async fn workflow_result(
    State(state): State<ApiState>,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    query: Result<Query<ResultQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunView>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.to_string()))?;
    let wait = Duration::from_secs(query.wait_secs.unwrap_or(30)).min(MAX_WAIT);
    let run = state
        .engine
        .wait_closed(&namespace(ns)?, &workflow_id(id)?, wait)
        .await?;
    Ok(Json(RunView::from(run)))
}

async fn workflow_history(
    State(state): State<ApiState>,
    ApiPath((ns, id)): ApiPath<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (namespace, workflow_id) = (namespace(ns)?, workflow_id(id)?);
    let events = state.engine.history(&namespace, &workflow_id).await?;
    let attempts = state
        .engine
        .failed_attempts(&namespace, &workflow_id)
        .await?;
    let events: Vec<EventView> = events.into_iter().map(EventView::from).collect();
    // Failed activity attempts: not part of the journal's events (replay never sees
    // them), shown beside them.
    let attempts: Vec<serde_json::Value> = attempts
        .into_iter()
        .map(|a| {
            serde_json::json!({
                "activity_handle": a.handle.0, "attempt": a.attempt,
                "started_at_ms": a.started_at_ms, "ended_at_ms": a.ended_at_ms,
                "failure": a.failure,
            })
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "events": events, "failed_attempts": attempts }),
    ))
}

async fn repin_workflow(
    State(state): State<ApiState>,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RepinBody>,
) -> Result<Json<RunView>, ApiError> {
    if body.module_hash.len() != 64 || !body.module_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(
            "module_hash must be 64 hex digits (as printed by `spool module upload`)",
        ));
    }
    let run = state
        .engine
        .repin(
            &namespace(ns)?,
            &workflow_id(id)?,
            &ModuleHash(body.module_hash.to_ascii_lowercase()),
        )
        .await?;
    Ok(Json(RunView::from(run)))
}

async fn signal_workflow(
    State(state): State<ApiState>,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SignalBody>,
) -> Result<Json<RunView>, ApiError> {
    let input = body.input.unwrap_or(serde_json::Value::Null).to_string();
    let run = state
        .engine
        .signal(&namespace(ns)?, &workflow_id(id)?, &body.name, &input)
        .await?;
    Ok(Json(RunView::from(run)))
}

async fn signal_with_start(
    State(state): State<ApiState>,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SignalWithStartBody>,
) -> Result<Json<RunView>, ApiError> {
    let request = StartRequest {
        namespace: namespace(ns)?,
        workflow_id: workflow_id(id)?,
        workflow_type: TypeName(body.workflow_type),
        input: body.input.unwrap_or(serde_json::Value::Null).to_string(),
    };
    let signal_input = body
        .signal_input
        .unwrap_or(serde_json::Value::Null)
        .to_string();
    let run = state
        .engine
        .signal_with_start(request, &body.signal_name, &signal_input)
        .await?;
    Ok(Json(RunView::from(run)))
}

async fn terminate_workflow(
    State(state): State<ApiState>,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<RunView>, ApiError> {
    stop_workflow(&state, ns, id, body, Stop::Terminate).await
}

async fn cancel_workflow(
    State(state): State<ApiState>,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<RunView>, ApiError> {
    stop_workflow(&state, ns, id, body, Stop::Cancel).await
}

/// The two ways an operator stops a run.
#[derive(Clone, Copy)]
enum Stop {
    /// At once, without the workflow's say.
    Terminate,
    /// Through the workflow, which may clean up first.
    Cancel,
}

async fn stop_workflow(
    state: &ApiState,
    ns: String,
    id: String,
    body: ReasonBody,
    how: Stop,
) -> Result<Json<RunView>, ApiError> {
    let (namespace, workflow_id) = (namespace(ns)?, workflow_id(id)?);
    let run = match how {
        Stop::Terminate => {
            let reason = body
                .reason
                .unwrap_or_else(|| "terminated by an operator".into());
            state
                .engine
                .terminate(&namespace, &workflow_id, &reason)
                .await?
        }
        Stop::Cancel => {
            let reason = body
                .reason
                .unwrap_or_else(|| "cancelled by an operator".into());
            state
                .engine
                .cancel(&namespace, &workflow_id, &reason)
                .await?
        }
    };
    Ok(Json(RunView::from(run)))
}

async fn query_workflow(
    State(state): State<ApiState>,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SignalBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let input = body.input.unwrap_or(serde_json::Value::Null).to_string();
    let answer = state
        .engine
        .query(&namespace(ns)?, &workflow_id(id)?, &body.name, &input)
        .await?;
    let result = serde_json::from_str(&answer).unwrap_or(serde_json::Value::String(answer));
    Ok(Json(serde_json::json!({ "result": result })))
}

/// 200 with the answer (`status` completed or failed), 202 if it is not answered
/// within the wait (ask again with the update id), 422 `update_rejected` if the
/// validator refused it.
async fn update_workflow(
    State(state): State<ApiState>,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let request = UpdateRequest {
        name: body.name,
        input: body.input.unwrap_or(serde_json::Value::Null).to_string(),
        update_id: body.update_id,
        wait: Duration::from_secs(body.wait_secs.unwrap_or(30)).min(MAX_WAIT),
    };
    let (update_id, outcome) = state
        .engine
        .update(&namespace(ns)?, &workflow_id(id)?, request)
        .await?;
    let (status, body) = match outcome {
        UpdateOutcome::Completed(output) => (
            StatusCode::OK,
            serde_json::json!({ "update_id": update_id, "status": "completed",
                "output": views::json_value(&output) }),
        ),
        UpdateOutcome::Failed(message) => (
            StatusCode::OK,
            serde_json::json!({ "update_id": update_id, "status": "failed", "error": message }),
        ),
        UpdateOutcome::Pending => (
            StatusCode::ACCEPTED,
            serde_json::json!({ "update_id": update_id, "status": "pending" }),
        ),
    };
    Ok((status, Json(body)))
}
