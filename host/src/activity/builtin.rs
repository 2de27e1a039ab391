//! Built-in activities: `spool.echo` (returns its input; for tests and benchmarks) and
//! `http.request` (one HTTP call with a JSON body).

use super::{ActivityExecutor, ActivityQuotas};
use crate::ids::Namespace;
use crate::journal::{Failure, FailureKind};
use crate::tenancy::quotas::within;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const NAMES: &[&str] = &["http.request", "spool.echo"];

pub fn is_builtin(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Runs `name` if it is a built-in; None if it is not one.
pub(super) async fn execute(
    executor: &ActivityExecutor,
    namespace: &Namespace,
    name: &str,
    input: &str,
    quotas: &ActivityQuotas,
) -> Option<Result<String, Failure>> {
    match name {
        "spool.echo" => Some(Ok(input.to_owned())),
        "http.request" => Some(http_request(executor, namespace, input, quotas).await),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpRequest {
    #[serde(default = "default_method")]
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Sent as JSON; a JSON string is sent as it is (text).
    #[serde(default)]
    body: Option<serde_json::Value>,
}

fn default_method() -> String {
    "GET".into()
}

#[derive(Debug, Serialize)]
struct HttpResponse {
    status: u16,
    headers: BTreeMap<String, String>,
    /// The body parsed as JSON when it is JSON, else as text.
    body: serde_json::Value,
}

fn invalid(message: String) -> Failure {
    Failure::new(FailureKind::Application, "invalid_input", message).non_retryable()
}

async fn http_request(
    executor: &ActivityExecutor,
    namespace: &Namespace,
    input: &str,
    quotas: &ActivityQuotas,
) -> Result<String, Failure> {
    let request: HttpRequest =
        serde_json::from_str(input).map_err(|e| invalid(format!("http.request input: {e}")))?;
    let url = reqwest::Url::parse(&request.url)
        .map_err(|e| invalid(format!("url {:?}: {e}", request.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "url scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    let host = url.host_str().unwrap_or_default();
    let method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| invalid(format!("method {:?}", request.method)))?;
    let port = url.port_or_known_default();
    if !executor.allow.allows(method.as_str(), host, port) {
        return Err(Failure::new(
            FailureKind::Application,
            "http_forbidden",
            format!("outgoing HTTP {method} to {host} is not in the allow-list"),
        )
        .non_retryable());
    }
    // The namespace's own list narrows the server's: a request must pass both.
    if !quotas.namespace_allows(method.as_str(), host, port) {
        return Err(Failure::new(
            FailureKind::Application,
            "http_forbidden",
            format!(
                "outgoing HTTP {method} to {host} is not in the namespace's allow-list \
                 (quota allow_http)"
            ),
        )
        .non_retryable());
    }
    let mut builder = executor.http.request(method, url);
    let secrets = executor.secrets.of(namespace);
    for (name, value) in &request.headers {
        // `{{secret:NAME}}` is filled in here, after the input was journaled.
        let value = secrets.substitute(value).map_err(|e| {
            Failure::new(FailureKind::Application, "unknown_secret", e).non_retryable()
        })?;
        builder = builder.header(name, value);
    }
    builder = match request.body {
        None => builder,
        Some(serde_json::Value::String(text)) => builder.body(text),
        Some(json) => {
            let has_content_type = request
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("content-type"));
            let builder = if has_content_type {
                builder
            } else {
                builder.header("content-type", "application/json")
            };
            builder.body(json.to_string())
        }
    };
    let response = builder.send().await.map_err(|e| {
        Failure::new(
            FailureKind::Application,
            "http_transport",
            format!("request failed: {e}"),
        )
    })?;
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let limit = within(quotas.max_payload_bytes, executor.max_payload_bytes);
    let body = read_limited(response, limit).await?;
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    if !status.is_success() {
        let retryable =
            status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408;
        let failure = Failure {
            details: Some(body.to_string()),
            ..Failure::new(
                FailureKind::Application,
                "http_status",
                format!("HTTP status {status}"),
            )
        };
        return Err(if retryable {
            failure
        } else {
            failure.non_retryable()
        });
    }
    let output = HttpResponse {
        status: status.as_u16(),
        headers,
        body,
    };
    serde_json::to_string(&output).map_err(|e| invalid(e.to_string()))
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        Failure::new(
            FailureKind::Application,
            "http_transport",
            format!("reading the response failed: {e}"),
        )
    })? {
        if body.len() + chunk.len() > limit {
            return Err(Failure::new(
                FailureKind::Application,
                "payload_too_large",
                format!("response body exceeds {limit} bytes"),
            )
            .non_retryable());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
