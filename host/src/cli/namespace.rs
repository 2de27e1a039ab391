//! `spool namespace …`: namespaces, their quotas and API keys, through the admin API.

use super::client::{Client, Endpoint};
use super::{print_json, CliError};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum NamespaceCommand {
    /// Create a namespace (quotas not given take the server's defaults).
    Create {
        name: String,
        /// A quota: NAME=VALUE, e.g. max_running_workflows=100 (repeatable).
        #[arg(long = "quota", value_parser = parse_quota)]
        quotas: Vec<(String, Value)>,
    },
    /// List namespaces with their quotas and usage.
    List,
    /// Quotas and usage (fuel consumed, open runs) of a namespace; without a name, of
    /// --namespace.
    Describe { name: Option<String> },
    /// Change quotas of a namespace; those not named keep their value.
    SetQuotas {
        name: String,
        #[arg(long = "quota", value_parser = parse_quota, required = true)]
        quotas: Vec<(String, Value)>,
    },
    /// Delete a namespace and everything in it (it must have no open runs).
    Delete { name: String },
    /// API keys of a namespace.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
pub(super) enum KeyCommand {
    /// Create a key; it is printed once and cannot be shown again.
    Create {
        namespace: String,
        #[arg(long, default_value = "")]
        label: String,
        /// The key stops working after this many seconds.
        #[arg(long)]
        expires_in_secs: Option<u64>,
    },
    /// List the keys of a namespace (ids, labels, expiry; never the keys).
    List { namespace: String },
    /// Revoke a key at once.
    Revoke { namespace: String, key_id: String },
}

/// NAME=VALUE, the value as JSON if it parses (numbers, lists), else as a string.
fn parse_quota(s: &str) -> Result<(String, Value), String> {
    let (name, value) = s.split_once('=').ok_or("expected NAME=VALUE")?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((name.trim().to_owned(), value))
}

fn quota_object(quotas: Vec<(String, Value)>) -> Value {
    Value::Object(quotas.into_iter().collect::<Map<String, Value>>())
}

pub(super) async fn run(
    endpoint: &Endpoint,
    command: NamespaceCommand,
) -> Result<ExitCode, CliError> {
    let client = Client::new(endpoint)?;
    let admin = "/admin/namespaces";
    let answer = match command {
        NamespaceCommand::Create { name, quotas } => {
            let body = json!({ "name": name, "quotas": quota_object(quotas) });
            client.call(Method::POST, admin, Some(body)).await?
        }
        NamespaceCommand::List => client.call(Method::GET, admin, None).await?,
        NamespaceCommand::Describe { name } => {
            let name = name.as_deref().unwrap_or(&endpoint.namespace);
            client
                .call(Method::GET, &format!("/namespaces/{name}"), None)
                .await?
        }
        NamespaceCommand::SetQuotas { name, quotas } => {
            let body = json!({ "quotas": quota_object(quotas) });
            client
                .call(Method::PATCH, &format!("{admin}/{name}"), Some(body))
                .await?
        }
        NamespaceCommand::Delete { name } => {
            client
                .call(Method::DELETE, &format!("{admin}/{name}"), None)
                .await?;
            println!("namespace {name} deleted");
            return Ok(ExitCode::SUCCESS);
        }
        NamespaceCommand::Key(KeyCommand::Create {
            namespace,
            label,
            expires_in_secs,
        }) => {
            let body = json!({ "label": label, "expires_in_secs": expires_in_secs });
            let created = client
                .call(
                    Method::POST,
                    &format!("{admin}/{namespace}/keys"),
                    Some(body),
                )
                .await?;
            eprintln!("the key is shown once; store it now (the server keeps only its hash)");
            created
        }
        NamespaceCommand::Key(KeyCommand::List { namespace }) => {
            client
                .call(Method::GET, &format!("{admin}/{namespace}/keys"), None)
                .await?
        }
        NamespaceCommand::Key(KeyCommand::Revoke { namespace, key_id }) => {
            client
                .call(
                    Method::DELETE,
                    &format!("{admin}/{namespace}/keys/{key_id}"),
                    None,
                )
                .await?;
            println!("key {key_id} revoked");
            return Ok(ExitCode::SUCCESS);
        }
    };
    print_json(&answer);
    Ok(ExitCode::SUCCESS)
}
