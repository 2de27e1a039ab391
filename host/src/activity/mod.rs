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
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which hosts, and with which methods, outgoing HTTP (the `http.request` built-in and
/// activity components) may reach. A pattern is `[METHODS ]HOST[:PORT]`: HOST is `*`
/// (any), `example.com` (that host) or `*.example.com` (its subdomains); METHODS, if
/// given, a comma-separated list such as `GET,HEAD` (otherwise any method).
#[derive(Clone, Debug)]
pub struct HttpAllowList {
    rules: Vec<AllowRule>,
}

#[derive(Clone, Debug)]
struct AllowRule {
    /// Upper case; empty means any method.
    methods: Vec<String>,
    host: String,
    port: Option<u16>,
}

impl HttpAllowList {
    pub fn any() -> Self {
        Self::new(vec!["*".into()])
    }

    pub fn new(patterns: Vec<String>) -> Self {
        let rules = patterns
            .iter()
            .map(|pattern| {
                let (methods, target) = match pattern.trim().split_once(' ') {
                    Some((methods, target)) => (
                        methods
                            .split(',')
                            .map(|m| m.trim().to_ascii_uppercase())
                            .filter(|m| !m.is_empty())
                            .collect(),
                        target.trim(),
                    ),
                    None => (Vec::new(), pattern.trim()),
                };
                let target = target.to_ascii_lowercase();
                let (host, port) = match target.rsplit_once(':') {
                    Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
                        (h.to_owned(), p.parse::<u16>().ok())
                    }
                    _ => (target.clone(), None),
                };
                AllowRule {
                    methods,
                    host,
                    port,
                }
            })
            .collect();
        Self { rules }
    }

    /// Checks one rule's shape, for rules that come from users (config, admin API).
    pub fn check_rule(pattern: &str) -> Result<(), String> {
        let (methods, target) = match pattern.trim().split_once(' ') {
            Some((methods, target)) => (methods, target.trim()),
            None => ("", pattern.trim()),
        };
        if let Some(bad) = methods
            .split(',')
            .find(|m| !m.chars().all(|c| c.is_ascii_alphabetic()))
        {
            return Err(format!("rule {pattern:?}: {bad:?} is not an HTTP method"));
        }
        let host = target.rsplit_once(':').map_or(target, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                target
            }
        });
        let host_ok = host == "*"
            || (!host.is_empty()
                && host
                    .trim_start_matches("*.")
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c)));
        if !host_ok {
            return Err(format!(
                "rule {pattern:?}: expected [METHODS ]HOST[:PORT] with HOST `*`, a host name \
                 or `*.domain`"
            ));
        }
        Ok(())
    }

    pub fn allows(&self, method: &str, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        self.rules.iter().any(|rule| {
            let host_ok = rule.host == "*"
                || rule.host == host
                || rule
                    .host
                    .strip_prefix("*.")
                    .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")));
            let method_ok = rule.methods.is_empty()
                || rule.methods.iter().any(|m| m.eq_ignore_ascii_case(method));
            host_ok && method_ok && (rule.port.is_none() || rule.port == port)
        })
    }
}

/// Secrets for activities, set in the server's configuration: environment variables of
/// activity components, and `{{secret:NAME}}` in `http.request` header values. Never
/// part of an activity's input, so never journaled; never logged.
///
/// The server's own (`shared`) reach the activities of every namespace; a namespace's
/// own reach only its activities, and win over a shared one of the same name.
#[derive(Clone, Default)]
pub struct Secrets {
    shared: BTreeMap<String, String>,
    own: BTreeMap<Namespace, BTreeMap<String, String>>,
}

impl std::fmt::Debug for Secrets {
    /// Names only: a secret's value never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let own: BTreeMap<_, Vec<_>> = self
            .own
            .iter()
            .map(|(namespace, values)| (namespace.as_str(), values.keys().collect()))
            .collect();
        f.debug_struct("Secrets")
            .field("shared", &self.shared.keys().collect::<Vec<_>>())
            .field("own", &own)
            .finish()
    }
}

impl Secrets {
    /// The server's secrets, shared by every namespace.
    pub fn new(values: impl IntoIterator<Item = (String, String)>) -> Result<Self, String> {
        Ok(Self {
            shared: checked(values)?,
            own: BTreeMap::new(),
        })
    }

    /// Adds `namespace`'s own secrets.
    pub fn with_namespace(
        mut self,
        namespace: Namespace,
        values: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, String> {
        let values = checked(values).map_err(|e| format!("namespace {namespace}: {e}"))?;
        self.own.insert(namespace, values);
        Ok(self)
    }

    /// What the activities of `namespace` see.
    fn of(&self, namespace: &Namespace) -> NamespaceSecrets<'_> {
        NamespaceSecrets {
            own: self.own.get(namespace),
            shared: &self.shared,
        }
    }
}

/// Checks secret names: `A-Z`, `0-9`, `_`, not starting with a digit (they become
/// environment variable names).
fn checked(
    values: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, String> {
    let values: BTreeMap<String, String> = values.into_iter().collect();
    for name in values.keys() {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(format!(
                "secret name {name:?}: use A-Z, 0-9 and _, not starting with a digit"
            ));
        }
    }
    Ok(values)
}

/// The secrets one namespace's activities see: its own over the server's.
struct NamespaceSecrets<'a> {
    own: Option<&'a BTreeMap<String, String>>,
    shared: &'a BTreeMap<String, String>,
}

impl NamespaceSecrets<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.own
            .and_then(|own| own.get(name))
            .or_else(|| self.shared.get(name))
            .map(String::as_str)
    }

    fn as_env(&self) -> Vec<(String, String)> {
        let mut all = self.shared.clone();
        all.extend(
            self.own
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        all.into_iter().collect()
    }

    /// Replaces every `{{secret:NAME}}` in `text`; an unknown name is an error that
    /// names it.
    fn substitute(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{secret:") {
            out.push_str(&rest[..start]);
            let after = &rest[start + "{{secret:".len()..];
            let end = after
                .find("}}")
                .ok_or_else(|| "an unclosed {{secret:...}}".to_owned())?;
            let name = &after[..end];
            let value = self
                .get(name)
                .ok_or_else(|| format!("no secret named {name:?} is configured"))?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// What a namespace's quotas allow one attempt of its activities, within the server's
/// limits (the executor's own allow-list, memory limit and payload ceiling).
#[derive(Clone, Debug, Default)]
pub struct ActivityQuotas {
    /// The namespace's `allow_http`: outgoing HTTP of `http.request` and of activity
    /// components must pass it as well as the server's list. None: the server's alone.
    pub allow_http: Option<Arc<HttpAllowList>>,
    /// The namespace's `max_memory_bytes`: linear memory of a component's instance (at
    /// most the server's limit). None: the server's limit.
    pub max_memory_bytes: Option<u64>,
    /// Fuel for one attempt of a component. None: `component::ACTIVITY_FUEL`.
    pub fuel_per_attempt: Option<u64>,
    /// The namespace's `max_payload_bytes`: how much of an HTTP response `http.request`
    /// reads (at most the server's ceiling). None: the ceiling.
    pub max_payload_bytes: Option<u64>,
}

impl ActivityQuotas {
    /// The quotas of `tenant`'s activities. An attempt of a component gets the fuel of
    /// `component::ACTIVITY_ATTEMPT_ACTIVATIONS` workflow activations: activities are
    /// bounded by their timeouts, fuel only stops a runaway between timeout checks.
    pub fn of(tenant: &crate::tenancy::Tenant) -> Self {
        let quotas = &tenant.quotas;
        Self {
            allow_http: tenant.allow_http().cloned(),
            max_memory_bytes: Some(quotas.max_memory_bytes),
            fuel_per_attempt: Some(
                quotas
                    .fuel_per_activation
                    .saturating_mul(component::ACTIVITY_ATTEMPT_ACTIVATIONS),
            ),
            max_payload_bytes: Some(quotas.max_payload_bytes),
        }
    }

    /// Whether the namespace's own list (if any) allows a request; the server's list is
    /// checked separately.
    fn namespace_allows(&self, method: &str, host: &str, port: Option<u16>) -> bool {
        self.allow_http
            .as_ref()
            .is_none_or(|own| own.allows(method, host, port))
    }
}

/// What one attempt of an activity knows, and where its heartbeats go.
#[derive(Debug, Default)]
pub struct AttemptContext {
    pub attempt: u32,
    /// The previous attempt's last heartbeat details.
    pub heartbeat_details: Option<String>,
    /// Receives this attempt's heartbeats (their details), if anyone listens.
    pub heartbeats: Option<tokio::sync::mpsc::UnboundedSender<Option<String>>>,
}

pub struct ActivityExecutor {
    journal: Arc<dyn Journal>,
    runtime: Arc<Runtime>,
    components: component::Components,
    http: reqwest::Client,
    allow: Arc<HttpAllowList>,
    secrets: Secrets,
    max_payload_bytes: usize,
    task_queues: task_queue::TaskQueues,
}

impl ActivityExecutor {
    pub fn new(
        journal: Arc<dyn Journal>,
        runtime: Arc<Runtime>,
        allow: HttpAllowList,
        secrets: Secrets,
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
            secrets,
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

    /// Runs one attempt of activity `name` in `namespace`, within `quotas` (the
    /// namespace's).
    pub async fn execute(
        &self,
        namespace: &Namespace,
        name: &str,
        input: &str,
        attempt: AttemptContext,
        quotas: &ActivityQuotas,
    ) -> Result<String, Failure> {
        if let Some(result) = builtin::execute(self, namespace, name, input, quotas).await {
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
                    .execute(self, namespace, &module, input, attempt, quotas)
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
            "GET,HEAD reports.example.com".into(),
        ]);
        assert!(list.allows("POST", "api.example.com", Some(443)));
        assert!(list.allows("GET", "API.example.com", None));
        assert!(!list.allows("GET", "evil.com", Some(443)));
        assert!(!list.allows("GET", "example.com", Some(443)));
        assert!(list.allows("GET", "db.internal", Some(5432)));
        assert!(!list.allows("GET", "internal", Some(5432)));
        assert!(list.allows("GET", "127.0.0.1", Some(8080)));
        assert!(!list.allows("GET", "127.0.0.1", Some(9090)));
        assert!(list.allows("get", "reports.example.com", Some(443)));
        assert!(!list.allows("POST", "reports.example.com", Some(443)));
        assert!(HttpAllowList::any().allows("DELETE", "anything", Some(1)));
    }

    #[test]
    fn secrets_fill_placeholders_and_never_show_their_values() {
        let secrets = Secrets::new([("API_KEY".to_owned(), "s3cr3t".to_owned())]).unwrap();
        let seen = secrets.of(&Namespace("default".into()));
        assert_eq!(
            seen.substitute("Bearer {{secret:API_KEY}}").unwrap(),
            "Bearer s3cr3t"
        );
        assert_eq!(seen.substitute("plain").unwrap(), "plain");
        let unknown = seen.substitute("{{secret:OTHER}}").unwrap_err();
        assert!(unknown.contains("OTHER") && !unknown.contains("s3cr3t"));
        assert!(!format!("{secrets:?}").contains("s3cr3t"));
        assert!(Secrets::new([("lower".to_owned(), String::new())]).is_err());
    }

    #[test]
    fn a_namespaces_own_secrets_reach_only_its_activities_and_win_over_shared_ones() {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let secrets = Secrets::new([pair("REGION", "eu"), pair("TOKEN", "shared")])
            .unwrap()
            .with_namespace(
                Namespace("acme".into()),
                [pair("TOKEN", "acme-token"), pair("STRIPE", "sk-acme")],
            )
            .unwrap();
        let acme = secrets.of(&Namespace("acme".into()));
        let other = secrets.of(&Namespace("other".into()));
        assert_eq!(
            acme.substitute("{{secret:TOKEN}} {{secret:STRIPE}} {{secret:REGION}}"),
            Ok("acme-token sk-acme eu".to_owned())
        );
        assert_eq!(
            other.substitute("{{secret:TOKEN}}"),
            Ok("shared".to_owned())
        );
        assert!(other.substitute("{{secret:STRIPE}}").is_err());
        assert_eq!(
            acme.as_env(),
            [
                pair("REGION", "eu"),
                pair("STRIPE", "sk-acme"),
                pair("TOKEN", "acme-token")
            ]
        );
        assert_eq!(
            other.as_env(),
            [pair("REGION", "eu"), pair("TOKEN", "shared")]
        );
        let shown = format!("{secrets:?}");
        assert!(
            shown.contains("STRIPE") && !shown.contains("sk-acme"),
            "{shown}"
        );
        let bad = Secrets::default().with_namespace(Namespace("acme".into()), [pair("x", "")]);
        assert!(bad.unwrap_err().contains("namespace acme"));
    }
}
