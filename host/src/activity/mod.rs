//! Executing one activity attempt: built-in activities of the host and uploaded Wasm
//! activity components. Retries and timeouts are the engine's (`engine::activity_task`);
//! this module only runs an attempt and reports its outcome.

mod builtin;
mod component;
pub mod task_queue;

pub use builtin::is_builtin;

use crate::ids::{Namespace, TypeName};
use crate::journal::{Failure, FailureKind, Journal, ModuleKind};
use crate::runtime::Runtime;
use std::sync::Arc;

/// Which hosts outgoing HTTP (the `http.request` built-in and activity components) may
/// reach. Patterns: `*` (any), `example.com` (that host), `*.example.com` (subdomains),
/// each optionally with `:port`.
#[derive(Clone, Debug)]
pub struct HttpAllowList {
    patterns: Vec<String>,
}

impl HttpAllowList {
    pub fn any() -> Self {
        Self {
            patterns: vec!["*".into()],
        }
    }

    pub fn new(patterns: Vec<String>) -> Self {
        Self {
            patterns: patterns
                .into_iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn allows(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        self.patterns.iter().any(|pattern| {
            let (host_pattern, port_pattern) = match pattern.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, p.parse::<u16>().ok()),
                _ => (pattern.as_str(), None),
            };
            let host_ok = host_pattern == "*"
                || host_pattern == host
                || host_pattern
                    .strip_prefix("*.")
                    .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")));
            host_ok && (port_pattern.is_none() || port_pattern == port)
        })
    }
}

pub struct ActivityExecutor {
    journal: Arc<dyn Journal>,
    runtime: Arc<Runtime>,
    components: component::Components,
    http: reqwest::Client,
    allow: Arc<HttpAllowList>,
    max_payload_bytes: usize,
    task_queues: task_queue::TaskQueues,
}

impl ActivityExecutor {
    pub fn new(
        journal: Arc<dyn Journal>,
        runtime: Arc<Runtime>,
        allow: HttpAllowList,
        max_payload_bytes: usize,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        let components = component::Components::new(runtime.engine())?;
        Ok(Self {
            journal,
            runtime,
            components,
            http,
            allow: Arc::new(allow),
            max_payload_bytes,
            task_queues: task_queue::TaskQueues::default(),
        })
    }

    /// The queues through which remote workers take activity attempts.
    pub fn task_queues(&self) -> &task_queue::TaskQueues {
        &self.task_queues
    }

    /// Compiles and type-checks an activity component for upload.
    pub fn validate(
        &self,
        bytes: &[u8],
    ) -> Result<wasmtime::component::Component, crate::runtime::ModuleError> {
        self.components.validate(&self.runtime, bytes)
    }

    /// Runs one attempt of activity `name` in `namespace`.
    pub async fn execute(
        &self,
        namespace: &Namespace,
        name: &str,
        input: &str,
    ) -> Result<String, Failure> {
        if let Some(result) = builtin::execute(self, name, input).await {
            return result;
        }
        let module = self
            .journal
            .module_for_type(namespace, &TypeName(name.to_owned()))
            .await
            .map_err(|e| Failure::new(FailureKind::Application, "storage", e.to_string()))?;
        match module {
            Some(module) if module.kind == ModuleKind::Activity => {
                self.components
                    .execute(&*self.journal, &self.runtime, &self.allow, &module, input)
                    .await
            }
            _ => Err(Failure::new(
                FailureKind::UnknownActivity,
                "unknown_activity",
                format!(
                    "no activity {name:?}: it is neither a built-in ({}) nor an uploaded activity component",
                    builtin::NAMES.join(", ")
                ),
            )
            .non_retryable()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_patterns() {
        let list = HttpAllowList::new(vec![
            "api.example.com".into(),
            "*.internal".into(),
            "127.0.0.1:8080".into(),
        ]);
        assert!(list.allows("api.example.com", Some(443)));
        assert!(list.allows("API.example.com", None));
        assert!(!list.allows("evil.com", Some(443)));
        assert!(!list.allows("example.com", Some(443)));
        assert!(list.allows("db.internal", Some(5432)));
        assert!(!list.allows("internal", Some(5432)));
        assert!(list.allows("127.0.0.1", Some(8080)));
        assert!(!list.allows("127.0.0.1", Some(9090)));
        assert!(HttpAllowList::any().allows("anything", Some(1)));
    }
}
