//! The production server's configuration file (`spool server start --config FILE`).
//!
//! Read once at start and checked whole: an unknown key, a bad address, a quota out of
//! range or a missing admin key stops the server with a message naming the file, the
//! key and what is expected. `spool.example.toml` at the repository root documents
//! every key.

use crate::ids::{validate_name, Namespace};
use crate::server::ServerConfig;
use crate::tenancy::quotas::{Ceilings, QuotaPatch, Quotas};
use crate::tenancy::AuthMode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: ServerSection,
    auth: AuthSection,
    #[serde(default)]
    activities: ActivitiesSection,
    /// Quotas of every namespace, over the built-in defaults.
    #[serde(default)]
    defaults: QuotaPatch,
    /// Namespaces to create (or update) at start, with their own quotas over `defaults`.
    #[serde(default)]
    namespaces: BTreeMap<String, QuotaPatch>,
    /// Secrets of one namespace's activities: namespace → secret name → the
    /// environment variable its value is read from at start.
    #[serde(default)]
    namespace_secrets: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    /// The journal file, relative to the config file's folder.
    db: PathBuf,
    #[serde(default = "default_listen")]
    listen: String,
    /// Drop a guest waiting on a far timer from memory after this many ms (-1: never).
    #[serde(default = "default_evict_after_ms")]
    evict_after_ms: i64,
    /// Server-wide ceilings; namespace quotas may not exceed them.
    max_payload_bytes: Option<u64>,
    max_module_bytes: Option<u64>,
    max_memory_bytes: Option<u64>,
}

fn default_listen() -> String {
    "127.0.0.1:7233".into()
}

fn default_evict_after_ms() -> i64 {
    5_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    /// SHA-256 (hex) of the admin key; `spool server new-admin-key` prints a pair.
    admin_key_sha256: Option<String>,
    /// Or: the environment variable that holds the admin key at start.
    admin_key_env: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActivitiesSection {
    /// Where activities may send HTTP: `[METHODS ]HOST[:PORT]` rules. Empty: nowhere.
    #[serde(default)]
    allow_http: Vec<String>,
    /// Secrets for activities, each read from the environment variable of its name.
    #[serde(default)]
    secrets_from_env: Vec<String>,
}

/// Reads and checks the config file.
pub fn load(path: &Path) -> Result<ServerConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, |name| std::env::var(name).ok())
        .map_err(|e| format!("config file {}: {e}", path.display()))
}

/// Parses config text; relative paths are taken from `base`, environment variables
/// through `env`.
pub fn parse(
    text: &str,
    base: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ServerConfig, String> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let server = file.server;
    let listen: SocketAddr = server.listen.parse().map_err(|_| {
        format!(
            "server.listen {:?}: expected IP:PORT, e.g. \"127.0.0.1:7233\"",
            server.listen
        )
    })?;
    let defaults_ceilings = Ceilings::default();
    let ceilings = Ceilings {
        max_payload_bytes: server
            .max_payload_bytes
            .unwrap_or(defaults_ceilings.max_payload_bytes),
        max_module_bytes: server
            .max_module_bytes
            .unwrap_or(defaults_ceilings.max_module_bytes),
        max_memory_bytes: server
            .max_memory_bytes
            .unwrap_or(defaults_ceilings.max_memory_bytes),
    };
    if ceilings.max_payload_bytes > 64 << 20 || ceilings.max_payload_bytes < 1024 {
        return Err("server.max_payload_bytes must be 1 KiB to 64 MiB".into());
    }
    if ceilings.max_module_bytes > 1 << 30 || ceilings.max_module_bytes < 1024 {
        return Err("server.max_module_bytes must be 1 KiB to 1 GiB".into());
    }
    let auth = admin_key(&file.auth, &env)?;
    let builtin = Quotas {
        max_payload_bytes: ceilings
            .max_payload_bytes
            .min(Quotas::default().max_payload_bytes),
        max_module_bytes: ceilings
            .max_module_bytes
            .min(Quotas::default().max_module_bytes),
        ..Quotas::default()
    };
    let defaults = builtin
        .patched(&file.defaults, &ceilings)
        .map_err(|e| format!("[defaults]: {e}"))?;
    let mut namespaces = Vec::new();
    for (name, patch) in file.namespaces {
        validate_name("namespace", &name).map_err(|e| format!("[namespaces.{name}]: {e}"))?;
        defaults
            .patched(&patch, &ceilings)
            .map_err(|e| format!("[namespaces.{name}]: {e}"))?;
        namespaces.push((Namespace(name), patch));
    }
    for rule in &file.activities.allow_http {
        crate::activity::HttpAllowList::check_rule(rule)
            .map_err(|e| format!("activities.allow_http: {e}"))?;
    }
    let mut secrets = Vec::new();
    for name in file.activities.secrets_from_env {
        let value = env(&name).ok_or_else(|| {
            format!("activities.secrets_from_env: the environment has no variable {name}")
        })?;
        secrets.push((name, value));
    }
    let mut namespace_secrets = Vec::new();
    for (name, from_env) in file.namespace_secrets {
        let here = format!("[namespace_secrets.{name}]");
        if !namespaces
            .iter()
            .any(|(declared, _)| declared.as_str() == name)
        {
            return Err(format!(
                "{here}: the file declares no [namespaces.{name}]; secrets are for \
                 namespaces it declares"
            ));
        }
        let mut values = Vec::new();
        for (secret, var) in from_env {
            let value = env(&var)
                .ok_or_else(|| format!("{here} {secret}: the environment has no variable {var}"))?;
            values.push((secret, value));
        }
        namespace_secrets.push((Namespace(name), values));
    }
    let evict_after = u64::try_from(server.evict_after_ms)
        .ok()
        .map(Duration::from_millis);
    Ok(ServerConfig {
        db: base.join(server.db),
        listen,
        ui_listen: None,
        modules: Vec::new(),
        activity_modules: Vec::new(),
        // No rule means no outgoing HTTP in production (the dev server allows any).
        allow_http: Some(file.activities.allow_http),
        secrets,
        namespace_secrets,
        evict_after,
        auth,
        defaults,
        ceilings,
        namespaces,
    })
}

fn admin_key(
    auth: &AuthSection,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<AuthMode, String> {
    let admin_key_sha256 = match (&auth.admin_key_sha256, &auth.admin_key_env) {
        (Some(hash), None) => {
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(
                    "auth.admin_key_sha256 must be 64 hex digits (the SHA-256 of the key; \
                     `spool server new-admin-key` prints one)"
                        .into(),
                );
            }
            hash.to_ascii_lowercase()
        }
        (None, Some(var)) => {
            let key = env(var).filter(|k| !k.is_empty()).ok_or_else(|| {
                format!("auth.admin_key_env: the environment variable {var} is not set")
            })?;
            if key.len() < 32 {
                return Err(format!(
                    "auth.admin_key_env: the key in {var} is too short (at least 32 characters)"
                ));
            }
            crate::tenancy::keys::digest(&key)
        }
        _ => return Err("[auth] needs exactly one of admin_key_sha256 or admin_key_env".into()),
    };
    Ok(AuthMode::ApiKeys { admin_key_sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse_ok(text: &str) -> ServerConfig {
        parse(text, Path::new("/etc/spool"), |_| None).unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse(text, Path::new("/etc/spool"), |_| None)
            .err()
            .unwrap()
    }

    #[test]
    fn a_full_config_parses_with_paths_from_its_folder() {
        let config = parse_ok(&format!(
            r#"
[server]
db = "data/spool.db"
listen = "0.0.0.0:9000"
[auth]
admin_key_sha256 = "{HASH}"
[defaults]
max_running_workflows = 100
[namespaces.acme]
starts_per_second = 5
[namespaces.beta]
"#
        ));
        assert_eq!(config.db, PathBuf::from("/etc/spool/data/spool.db"));
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.defaults.max_running_workflows, Some(100));
        let names: Vec<_> = config.namespaces.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["acme", "beta"]);
        assert!(matches!(config.auth, AuthMode::ApiKeys { .. }));
    }

    #[test]
    fn mistakes_are_named() {
        let base = format!("[server]\ndb = \"x.db\"\n[auth]\nadmin_key_sha256 = \"{HASH}\"\n");
        let err = parse_err(&format!("{base}[defaults]\nmax_runing_workflows = 3\n"));
        assert!(err.contains("max_runing_workflows"), "{err}");
        let err = parse_err(&format!(
            "{base}[namespaces.acme]\nfuel_per_activation = 1\n"
        ));
        assert!(
            err.contains("namespaces.acme") && err.contains("fuel_per_activation"),
            "{err}"
        );
        let err = parse_err(&format!("{base}[namespaces.\"a/b\"]\n"));
        assert!(err.contains("namespace"), "{err}");
        let err = parse_err("[server]\ndb = \"x.db\"\n[auth]\n");
        assert!(err.contains("admin_key_sha256 or admin_key_env"), "{err}");
        let err = parse_err(&format!(
            "[server]\ndb = \"x.db\"\nlisten = \"localhost\"\n[auth]\nadmin_key_sha256 = \"{HASH}\"\n"
        ));
        assert!(err.contains("server.listen"), "{err}");
        let err = parse_err("[server]\ndb = \"x.db\"\n[auth]\nadmin_key_env = \"NOPE\"\n");
        assert!(err.contains("NOPE"), "{err}");
        let err = parse_err(&format!(
            "{base}[activities]\nallow_http = [\"GET /path\"]\n"
        ));
        assert!(err.contains("allow_http"), "{err}");
    }

    #[test]
    fn a_namespaces_secrets_are_read_from_the_environment_variables_it_names() {
        let text = format!(
            "[server]\ndb = \"x.db\"\n[auth]\nadmin_key_sha256 = \"{HASH}\"\n\
             [namespaces.acme]\n[namespace_secrets.acme]\nSTRIPE_KEY = \"ACME_STRIPE\"\n"
        );
        let env = |name: &str| (name == "ACME_STRIPE").then(|| "sk-acme".to_owned());
        let config = parse(&text, Path::new("."), env).unwrap();
        assert_eq!(
            config.namespace_secrets,
            [(
                Namespace("acme".into()),
                vec![("STRIPE_KEY".to_owned(), "sk-acme".to_owned())]
            )]
        );
        let err = parse(&text, Path::new("."), |_| None).err().unwrap();
        assert!(
            err.contains("[namespace_secrets.acme] STRIPE_KEY") && err.contains("ACME_STRIPE"),
            "{err}"
        );
        let undeclared = text.replace("[namespaces.acme]\n", "");
        let err = parse(&undeclared, Path::new("."), env).err().unwrap();
        assert!(err.contains("declares no [namespaces.acme]"), "{err}");
    }

    #[test]
    fn the_admin_key_from_the_environment_is_kept_as_its_hash() {
        let key = "k".repeat(40);
        let config = parse(
            "[server]\ndb = \"x.db\"\n[auth]\nadmin_key_env = \"ADMIN\"\n",
            Path::new("."),
            |name| (name == "ADMIN").then(|| key.clone()),
        )
        .unwrap();
        let AuthMode::ApiKeys { admin_key_sha256 } = config.auth else {
            panic!("expected key mode");
        };
        assert_eq!(admin_key_sha256, crate::tenancy::keys::digest(&key));
    }

    #[test]
    fn the_example_config_in_the_repository_is_valid() {
        let text = include_str!("../../spool.example.toml");
        let config = parse(text, Path::new("."), |_| Some("x".repeat(48))).unwrap();
        assert!(!config.namespaces.is_empty());
    }
}
