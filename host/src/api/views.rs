//! The JSON shapes of API responses. Payloads, stored as JSON text, are embedded as JSON
//! values, so clients never decode JSON inside JSON.

use crate::journal::{Event, EventKind, Failure, ModuleRecord, ParentLink, RunRecord};
use serde::Serialize;

pub(crate) fn json_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

#[derive(Serialize)]
pub struct RunView {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub module_hash: String,
    pub status: &'static str,
    pub input: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_reason: Option<String>,
    pub created_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at_ms: Option<u64>,
    /// The run this one continues (continue-as-new).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continued_from: Option<String>,
    /// The run that started this one as a child workflow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentView>,
}

#[derive(Serialize)]
pub struct ParentView {
    pub workflow_id: String,
    pub run_id: String,
    pub handle: u32,
    pub close_policy: &'static str,
}

impl From<ParentLink> for ParentView {
    fn from(p: ParentLink) -> Self {
        Self {
            workflow_id: p.workflow_id.0,
            run_id: p.run_id.0,
            handle: p.handle.0,
            close_policy: p.close_policy.as_str(),
        }
    }
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> Self {
        Self {
            namespace: r.namespace.0,
            workflow_id: r.workflow_id.0,
            run_id: r.run_id.0,
            workflow_type: r.workflow_type.0,
            module_hash: r.module_hash.0,
            status: r.status.as_str(),
            input: json_value(&r.input),
            output: r.output.as_deref().map(json_value),
            failure: r.failure,
            blocked_reason: r.blocked_reason,
            created_at_ms: r.created_at_ms,
            closed_at_ms: r.closed_at_ms,
            continued_from: r.continued_from.map(|r| r.0),
            parent: r.parent.map(ParentView::from),
        }
    }
}

#[derive(Serialize)]
pub struct ModuleView {
    pub name: String,
    pub kind: &'static str,
    pub hash: String,
    pub size_bytes: u64,
    pub uploaded_at_ms: u64,
}

impl From<ModuleRecord> for ModuleView {
    fn from(m: ModuleRecord) -> Self {
        Self {
            name: m.name.0,
            kind: m.kind.as_str(),
            hash: m.hash.0,
            size_bytes: m.size_bytes,
            uploaded_at_ms: m.uploaded_at_ms,
        }
    }
}

/// An event as the history shows it: the journal's JSON with payload strings expanded.
#[derive(Serialize)]
pub struct EventView(serde_json::Value);

impl From<Event> for EventView {
    fn from(event: Event) -> Self {
        let payload_fields: &[&str] = match &event.kind {
            EventKind::RunStarted { .. }
            | EventKind::ActivityScheduled { .. }
            | EventKind::SignalReceived { .. }
            | EventKind::RunContinuedAsNew { .. } => &["input"],
            EventKind::ActivityCompleted { .. } | EventKind::RunCompleted { .. } => &["output"],
            _ => &[],
        };
        let mut value = serde_json::to_value(&event).unwrap_or(serde_json::Value::Null);
        if let Some(object) = value.as_object_mut() {
            for field in payload_fields {
                if let Some(serde_json::Value::String(text)) = object.get(*field) {
                    let expanded = json_value(text);
                    object.insert((*field).to_owned(), expanded);
                }
            }
        }
        Self(value)
    }
}
