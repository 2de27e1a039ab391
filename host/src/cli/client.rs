//! A small client of the HTTP API, shared by the CLI commands and the bench runner.

use serde_json::Value;
use std::time::Duration;

/// Where the API is, which namespace to work in, and the key to show.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub address: String,
    pub namespace: String,
    /// Sent as `Authorization: Bearer KEY` (servers started with `server start`).
    pub api_key: Option<String>,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    namespace: String,
}

/// An error answer of the API, or a failure to reach it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{message} [{code}]")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach the Spool server at {address}: {source}")]
    Unreachable {
        address: String,
        source: reqwest::Error,
    },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

impl Client {
    pub fn new(endpoint: &Endpoint) -> Result<Self, ClientError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = endpoint.api_key.as_deref().filter(|k| !k.is_empty()) {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ClientError::Protocol("the API key has invalid characters".into()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .default_headers(headers)
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Self {
            http,
            base: endpoint.address.trim_end_matches('/').to_owned(),
            namespace: endpoint.namespace.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/namespaces/{}{}", self.base, self.namespace, path)
    }

    /// Any API route, by its path under `/api/v1`; for the admin commands.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        self.send_for_status(request).await.map(|(_, body)| body)
    }

    /// Like `send`, with the HTTP status of a successful answer.
    async fn send_for_status(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Value), ClientError> {
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                address: self.base.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let body: Value = if status == 204 {
            Value::Null
        } else {
            response
                .json()
                .await
                .map_err(|e| ClientError::Protocol(format!("HTTP {status}: {e}")))?
        };
        if (200..300).contains(&status) {
            return Ok((status, body));
        }
        let error = &body["error"];
        Err(ClientError::Api {
            status,
            code: error["code"].as_str().unwrap_or("unknown").to_owned(),
            message: error["message"]
                .as_str()
                .unwrap_or("(no message)")
                .to_owned(),
        })
    }

    pub async fn upload(
        &self,
        name: &str,
        kind: &str,
        bytes: Vec<u8>,
    ) -> Result<Value, ClientError> {
        let request = self
            .http
            .post(self.url("/modules"))
            .query(&[("name", name), ("kind", kind)])
            .header("content-type", "application/wasm")
            .body(bytes);
        self.send(request).await
    }

    pub async fn list_modules(&self) -> Result<Value, ClientError> {
        self.send(self.http.get(self.url("/modules"))).await
    }

    /// Starts a run. `if_running`: "fail" or "use_existing" (see the API). Returns
    /// whether a run was created (false: the open run was reused) and the run.
    pub async fn start(
        &self,
        workflow_type: &str,
        id: &str,
        input: Value,
        if_running: &str,
    ) -> Result<(bool, Value), ClientError> {
        let body = serde_json::json!({
            "workflow_type": workflow_type, "workflow_id": id, "input": input,
            "if_running": if_running,
        });
        let request = self.http.post(self.url("/workflows")).json(&body);
        let (status, run) = self.send_for_status(request).await?;
        Ok((status == 201, run))
    }

    /// Waits until the run closes (polling the long-poll endpoint) and returns it.
    pub async fn result(&self, id: &str, timeout: Option<Duration>) -> Result<Value, ClientError> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let wait = deadline
                .map(|d| {
                    d.saturating_duration_since(tokio::time::Instant::now())
                        .as_secs()
                        .min(30)
                })
                .unwrap_or(30);
            let request = self
                .http
                .get(self.url(&format!("/workflows/{id}/result")))
                .query(&[("wait_secs", wait)]);
            let run = self.send(request).await?;
            // A blocked run waits for an operator (a fixed module and a repin), not
            // for time: report it instead of waiting.
            let open = run["status"] == "running";
            let expired = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
            if !open || expired {
                return Ok(run);
            }
        }
    }

    pub async fn repin(&self, id: &str, module_hash: &str) -> Result<Value, ClientError> {
        let body = serde_json::json!({ "module_hash": module_hash });
        self.send(
            self.http
                .post(self.url(&format!("/workflows/{id}/repin")))
                .json(&body),
        )
        .await
    }

    pub async fn signal(&self, id: &str, name: &str, input: Value) -> Result<Value, ClientError> {
        let body = serde_json::json!({ "name": name, "input": input });
        self.send(
            self.http
                .post(self.url(&format!("/workflows/{id}/signals")))
                .json(&body),
        )
        .await
    }

    pub async fn signal_with_start(
        &self,
        id: &str,
        workflow_type: &str,
        input: Value,
        name: &str,
        signal_input: Value,
    ) -> Result<Value, ClientError> {
        let body = serde_json::json!({
            "workflow_type": workflow_type, "input": input,
            "signal_name": name, "signal_input": signal_input,
        });
        let url = self.url(&format!("/workflows/{id}/signal-with-start"));
        self.send(self.http.post(url).json(&body)).await
    }

    /// `action`: "terminate" or "cancel".
    pub async fn stop(
        &self,
        id: &str,
        action: &str,
        reason: Option<&str>,
    ) -> Result<Value, ClientError> {
        let body = serde_json::json!({ "reason": reason });
        let url = self.url(&format!("/workflows/{id}/{action}"));
        self.send(self.http.post(url).json(&body)).await
    }

    pub async fn query(&self, id: &str, name: &str, input: Value) -> Result<Value, ClientError> {
        let body = serde_json::json!({ "name": name, "input": input });
        let url = self.url(&format!("/workflows/{id}/query"));
        self.send(self.http.post(url).json(&body)).await
    }

    /// Sends an update and waits for its answer (asking again with the same update id
    /// while it is pending) until `timeout` passes; returns the last answer.
    pub async fn update(
        &self,
        id: &str,
        name: &str,
        input: Value,
        update_id: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut update_id = update_id.map(str::to_owned);
        loop {
            let wait = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .as_secs()
                .min(30);
            let body = serde_json::json!({
                "name": name, "input": input, "update_id": update_id, "wait_secs": wait,
            });
            let url = self.url(&format!("/workflows/{id}/updates"));
            let answer = self.send(self.http.post(url).json(&body)).await?;
            if answer["status"] != "pending" || tokio::time::Instant::now() >= deadline {
                return Ok(answer);
            }
            update_id = answer["update_id"].as_str().map(str::to_owned);
        }
    }

    pub async fn describe(&self, id: &str) -> Result<Value, ClientError> {
        self.send(self.http.get(self.url(&format!("/workflows/{id}"))))
            .await
    }

    pub async fn history(&self, id: &str) -> Result<Value, ClientError> {
        self.send(self.http.get(self.url(&format!("/workflows/{id}/history"))))
            .await
    }

    pub async fn list(&self, filter: &ListFilter<'_>) -> Result<Value, ClientError> {
        let mut query: Vec<(&str, String)> = vec![("limit", filter.limit.to_string())];
        let optional = [
            ("status", filter.status),
            ("type", filter.workflow_type),
            ("parent", filter.parent),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                query.push((key, value.to_owned()));
            }
        }
        self.send(self.http.get(self.url("/workflows")).query(&query))
            .await
    }
}

/// What `list` selects; `None` selects everything.
pub struct ListFilter<'a> {
    pub status: Option<&'a str>,
    pub workflow_type: Option<&'a str>,
    /// Only the children of this workflow id.
    pub parent: Option<&'a str>,
    pub limit: u32,
}
