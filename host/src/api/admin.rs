//! Namespace management (`/api/v1/admin/…`, admin key only) and a namespace's view of
//! itself (`GET /api/v1/namespaces/{ns}`, its own key suffices).

use super::{namespace, ApiError, ApiJson, ApiPath, ApiState};
use crate::tenancy::{Caller, NamespaceView};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use spool_formats::api::{CreateKeyBody, CreateNamespaceBody, PatchNamespaceBody};
use std::time::Duration;

pub(super) async fn create_namespace(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateNamespaceBody>,
) -> Result<(StatusCode, Json<NamespaceView>), ApiError> {
    let tenancy = state.engine.tenancy();
    tenancy.require_admin(&caller)?;
    let view = tenancy
        .create_namespace(&namespace(body.name)?, &body.quotas)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(super) async fn list_namespaces(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tenancy = state.engine.tenancy();
    tenancy.require_admin(&caller)?;
    let namespaces = tenancy.list().await?;
    Ok(Json(serde_json::json!({ "namespaces": namespaces })))
}

/// The admin's view of any namespace and a tenant's view of its own are the same.
pub(super) async fn describe_namespace(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiPath(ns): ApiPath<String>,
) -> Result<Json<NamespaceView>, ApiError> {
    let tenancy = state.engine.tenancy();
    let name = namespace(ns)?;
    tenancy.authorize(&caller, &name)?;
    Ok(Json(tenancy.describe(&name).await?))
}

pub(super) async fn patch_namespace(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiPath(ns): ApiPath<String>,
    ApiJson(body): ApiJson<PatchNamespaceBody>,
) -> Result<Json<NamespaceView>, ApiError> {
    let tenancy = state.engine.tenancy();
    tenancy.require_admin(&caller)?;
    Ok(Json(
        tenancy.set_quotas(&namespace(ns)?, &body.quotas).await?,
    ))
}

pub(super) async fn delete_namespace(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiPath(ns): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let tenancy = state.engine.tenancy();
    tenancy.require_admin(&caller)?;
    tenancy.delete_namespace(&namespace(ns)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn create_key(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiPath(ns): ApiPath<String>,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let tenancy = state.engine.tenancy();
    tenancy.require_admin(&caller)?;
    let expires_in = body.expires_in_secs.map(Duration::from_secs);
    let created = tenancy
        .create_key(&namespace(ns)?, &body.label, expires_in)
        .await?;
    let view = serde_json::to_value(&created)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(super) async fn list_keys(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiPath(ns): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tenancy = state.engine.tenancy();
    tenancy.require_admin(&caller)?;
    let keys = tenancy.list_keys(&namespace(ns)?).await?;
    Ok(Json(serde_json::json!({ "keys": keys })))
}

pub(super) async fn revoke_key(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiPath((ns, key_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenancy = state.engine.tenancy();
    tenancy.require_admin(&caller)?;
    tenancy.revoke_key(&namespace(ns)?, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
