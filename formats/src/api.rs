//! The JSON bodies of the HTTP API's requests (`openapi.yaml`), as its handlers
//! (`host/src/api`) receive them. Every body rejects unknown fields. axum's `Json`
//! extractor decodes them as [`decode_body`] does (`serde_json` from a slice, the whole
//! body one value; axum also tracks the path for its error message); `fuzz/` runs
//! [`decode_body`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Decodes a request body: the whole of `bytes` must be one JSON value of type `T`.
/// Never panics, whatever the bytes (`fuzz/`).
pub fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// `POST …/workflows`: start a run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    pub workflow_id: String,
    pub workflow_type: String,
    #[serde(default)]
    pub input: Option<serde_json::Value>,
    /// What to do when the id has an open run: "fail" (409, the default) or
    /// "use_existing" (answer 200 with the open run).
    #[serde(default)]
    pub if_running: Option<String>,
}

/// `POST …/workflows/{id}/repin`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepinBody {
    pub module_hash: String,
}

/// The body of `signals` and `query`: a name and JSON input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalBody {
    pub name: String,
    #[serde(default)]
    pub input: Option<serde_json::Value>,
}

/// `POST …/workflows/{id}/signal-with-start`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalWithStartBody {
    pub workflow_type: String,
    #[serde(default)]
    pub input: Option<serde_json::Value>,
    pub signal_name: String,
    #[serde(default)]
    pub signal_input: Option<serde_json::Value>,
}

/// The body of `terminate` and `cancel`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST …/workflows/{id}/updates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    pub name: String,
    #[serde(default)]
    pub input: Option<serde_json::Value>,
    /// Send the same id again to get the same update's answer (never a second update).
    #[serde(default)]
    pub update_id: Option<String>,
    #[serde(default)]
    pub wait_secs: Option<u64>,
}

/// `POST …/task-queues/{queue}/poll`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PollBody {
    /// How long to wait for an attempt; at most 60 s.
    #[serde(default)]
    pub wait_secs: Option<u64>,
}

/// `POST …/tasks/{token}/heartbeat`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    /// Progress to hand to the next attempt if this one fails.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

/// `POST …/tasks/{token}/complete`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    #[serde(default)]
    pub output: Option<serde_json::Value>,
}

/// `POST …/tasks/{token}/fail`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    pub error_type: String,
    pub message: String,
    #[serde(default)]
    pub non_retryable: bool,
    #[serde(default)]
    pub details: Option<serde_json::Value>,
    /// The worker stopped because the workflow cancelled the activity.
    #[serde(default)]
    pub cancelled: bool,
}

/// `POST /api/v1/admin/namespaces`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespaceBody {
    pub name: String,
    #[serde(default)]
    pub quotas: QuotaPatch,
}

/// `PATCH /api/v1/admin/namespaces/{ns}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchNamespaceBody {
    pub quotas: QuotaPatch,
}

/// `POST /api/v1/admin/namespaces/{ns}/keys`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    #[serde(default)]
    pub label: String,
    /// The key stops working this many seconds from now; none: it does not expire.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// A partial change of quotas, as the config file and the admin API give them: fields
/// left out keep their value. A quota that may be off is turned off with `0`. Applied
/// by `Quotas::patched` (`host/src/tenancy/quotas.rs`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaPatch {
    pub max_running_workflows: Option<u64>,
    pub starts_per_second: Option<f64>,
    pub start_burst: Option<u32>,
    pub fuel_per_activation: Option<u64>,
    pub max_memory_bytes: Option<u64>,
    pub max_payload_bytes: Option<u64>,
    pub max_events_per_run: Option<u64>,
    pub max_module_bytes: Option<u64>,
    pub max_concurrent_activations: Option<u32>,
    pub allow_http: Option<Vec<String>>,
}
