//! The `spool` command. Server commands run the server in this process; every other
//! command is a client of the HTTP API (`SPOOL_ADDRESS`, `SPOOL_NAMESPACE`,
//! `SPOOL_API_KEY`).

mod namespace;

pub mod client;

use crate::ids::TypeName;
use crate::server::{run_server, ServerConfig};
use clap::{Parser, Subcommand};
use client::{Client, ClientError, Endpoint};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "spool",
    version,
    about = "Spool: durable workflows as WebAssembly components"
)]
struct Cli {
    /// Address of the Spool API.
    #[arg(
        long,
        global = true,
        env = "SPOOL_ADDRESS",
        default_value = "http://127.0.0.1:7233"
    )]
    address: String,
    /// Namespace to work in.
    #[arg(
        long,
        global = true,
        env = "SPOOL_NAMESPACE",
        default_value = "default"
    )]
    namespace: String,
    /// API key for servers started with `server start` (a namespace's key, or the
    /// admin key for `namespace` commands).
    #[arg(long, global = true, env = "SPOOL_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Spool server.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Upload and list workflow and activity components.
    #[command(subcommand)]
    Module(ModuleCommand),
    /// Start, inspect and wait for workflows.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Manage namespaces, their quotas and API keys (admin key; `describe` also works
    /// with a namespace's own key).
    #[command(subcommand)]
    Namespace(namespace::NamespaceCommand),
    /// Measure latency and throughput against a running server.
    Bench(crate::bench::BenchArgs),
}

#[derive(Subcommand)]
enum ServerCommand {
    /// The production server: namespaces, API keys and quotas from a config file
    /// (see spool.example.toml). Every request needs an API key.
    Start {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print a new random admin key and the SHA-256 to put in the config file.
    NewAdminKey,
    /// Everything in one process with a SQLite journal: for development and single hosts.
    StartDev {
        /// The journal file (created if missing). Compiled components are cached beside it.
        #[arg(long, default_value = "spool.db")]
        db: PathBuf,
        /// API port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 7233)]
        port: u16,
        /// Web UI port on 127.0.0.1.
        #[arg(long, default_value_t = 8233)]
        ui_port: u16,
        /// Do not serve the web UI.
        #[arg(long)]
        no_ui: bool,
        /// Upload a workflow module at start: TYPE=FILE.wasm (repeatable).
        #[arg(long = "module", value_parser = parse_module_arg)]
        modules: Vec<(TypeName, PathBuf)>,
        /// Upload an activity module at start: NAME=FILE.wasm (repeatable).
        #[arg(long = "activity-module", value_parser = parse_module_arg)]
        activity_modules: Vec<(TypeName, PathBuf)>,
        /// Restrict outgoing HTTP of activities: "[METHODS ]HOST[:PORT]", e.g.
        /// "api.example.com" or "GET,HEAD *.example.com:443" (repeatable; default: any).
        #[arg(long = "allow-http")]
        allow_http: Vec<String>,
        /// A secret for activities: NAME=VALUE, or NAME to take the value from this
        /// process's environment variable NAME (repeatable). Activity components see
        /// it as an environment variable; `http.request` header values may say
        /// {{secret:NAME}}. Never journaled or logged.
        #[arg(long = "secret", value_parser = parse_secret_arg)]
        secrets: Vec<(String, String)>,
        /// Drop a waiting guest from memory when its next timer is further away than this
        /// many milliseconds (it is rebuilt by replay). Negative: never.
        #[arg(long, default_value_t = 5_000, allow_negative_numbers = true)]
        evict_after_ms: i64,
    },
}

fn parse_secret_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) => Ok((name.to_owned(), value.to_owned())),
        None => std::env::var(s)
            .map(|value| (s.to_owned(), value))
            .map_err(|_| format!("no environment variable {s} to take the secret from")),
    }
}

fn parse_module_arg(s: &str) -> Result<(TypeName, PathBuf), String> {
    let (name, file) = s.split_once('=').ok_or("expected TYPE=FILE.wasm")?;
    Ok((TypeName(name.to_owned()), PathBuf::from(file)))
}

#[derive(Subcommand)]
enum ModuleCommand {
    /// Upload a component; prints its content hash.
    Upload {
        file: PathBuf,
        /// The workflow type (or activity name) it serves.
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "workflow", value_parser = ["workflow", "activity"])]
        kind: String,
    },
    /// List registered modules.
    List,
}

#[derive(Subcommand)]
enum WorkflowCommand {
    /// Start a workflow; answers once the start is durable.
    Start {
        #[arg(long = "type")]
        workflow_type: String,
        #[arg(long)]
        id: String,
        /// JSON input.
        #[arg(long, default_value = "null")]
        input: String,
        /// When the id already has an open run: fail, or use that run.
        #[arg(long, default_value = "fail", value_parser = ["fail", "use-existing"])]
        if_running: String,
    },
    /// Wait for a workflow to end; print its JSON result, or its error and exit 1.
    Result {
        #[arg(long)]
        id: String,
        /// Give up after this many seconds (exit 2).
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Send a signal to a running workflow; answers once the signal is durable.
    Signal {
        #[arg(long)]
        id: String,
        /// The signal's name.
        #[arg(long)]
        name: String,
        /// JSON input of the signal.
        #[arg(long, default_value = "null")]
        input: String,
        /// Start the workflow with this type first if it is not running (signal-with-start).
        #[arg(long)]
        start_type: Option<String>,
        /// JSON input of the started workflow (with --start-type).
        #[arg(long, default_value = "null")]
        start_input: String,
    },
    /// Ask a running workflow to stop: it sees a cancellation error, may clean up
    /// (compensate), and ends as cancelled.
    Cancel {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// End a running workflow at once (no clean-up runs); recorded in its history.
    Terminate {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Ask a workflow about its state through a query handler it registered; works on
    /// running and finished workflows and never changes them. Prints the JSON answer.
    Query {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// JSON input of the query.
        #[arg(long, default_value = "null")]
        input: String,
    },
    /// Send an update (a request the workflow handles and answers) and wait for the
    /// answer. Exit 1 if the workflow rejected or failed it, 2 if it is still pending.
    Update {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// JSON input of the update.
        #[arg(long, default_value = "null")]
        input: String,
        /// Repeat an earlier update's id to wait for its answer again (it is never
        /// applied twice).
        #[arg(long)]
        update_id: Option<String>,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Show a workflow's newest run.
    Describe {
        #[arg(long)]
        id: String,
    },
    /// Resume a blocked run (stopped by non-determinism) with another module: the
    /// deliberate override of pinning. Upload the fixed module first; pass its hash.
    Repin {
        #[arg(long)]
        id: String,
        #[arg(long)]
        module_hash: String,
    },
    /// Print a workflow's events as JSON.
    History {
        #[arg(long)]
        id: String,
    },
    /// List workflows, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long = "type")]
        workflow_type: Option<String>,
        /// Only the child workflows of this workflow id.
        #[arg(long)]
        parent: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPOOL_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
            }),
        )
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(worker_threads());
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

/// The cores and two more. A namespace's guests may keep as many threads busy as it
/// has activation permits (`max_concurrent_activations`: the cores by default) for up
/// to `FUEL_YIELD_INTERVAL` at a time; with only as many threads as cores, a flood of
/// one namespace's guests leaves every other request, journal result and run waiting
/// for one of them to yield. The spare threads keep those moving, with the operating
/// system sharing the cores. (Measured by `e2e_noisy_neighbour` on 2 cores: the calm
/// namespace's p99 under a flood goes from ~170 ms to ~25 ms; throughput alone drops
/// by under a tenth.) `TOKIO_WORKER_THREADS` overrides it.
fn worker_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) + 2
}

async fn run(cli: Cli) -> ExitCode {
    let endpoint = Endpoint {
        address: cli.address,
        namespace: cli.namespace,
        api_key: cli.api_key,
    };
    let outcome = match cli.command {
        Command::Server(ServerCommand::StartDev {
            db,
            port,
            ui_port,
            no_ui,
            modules,
            activity_modules,
            allow_http,
            secrets,
            evict_after_ms,
        }) => {
            let config = ServerConfig {
                ui_listen: (!no_ui).then(|| std::net::SocketAddr::from(([127, 0, 0, 1], ui_port))),
                modules,
                activity_modules,
                allow_http: (!allow_http.is_empty()).then_some(allow_http),
                secrets,
                evict_after: u64::try_from(evict_after_ms)
                    .ok()
                    .map(Duration::from_millis),
                ..ServerConfig::dev(db, port)
            };
            return serve(config).await;
        }
        Command::Server(ServerCommand::Start { config }) => {
            return match crate::config::load(&config) {
                Ok(config) => serve(config).await,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Server(ServerCommand::NewAdminKey) => {
            let key = crate::tenancy::keys::mint().key;
            println!("admin key (keep it secret; give it to the CLI as SPOOL_API_KEY):\n  {key}");
            println!(
                "for the config file:\n  [auth]\n  admin_key_sha256 = \"{}\"",
                crate::tenancy::keys::digest(&key)
            );
            return ExitCode::SUCCESS;
        }
        Command::Bench(args) => return crate::bench::run(&endpoint, args).await,
        Command::Module(command) => module_command(&endpoint, command).await,
        Command::Workflow(command) => workflow_command(&endpoint, command).await,
        Command::Namespace(command) => namespace::run(&endpoint, command).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: ServerConfig) -> ExitCode {
    match run_server(config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
}

async fn module_command(endpoint: &Endpoint, command: ModuleCommand) -> Result<ExitCode, CliError> {
    let client = Client::new(endpoint)?;
    match command {
        ModuleCommand::Upload { file, name, kind } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let module = client.upload(&name, &kind, bytes).await?;
            println!("{}", module["hash"].as_str().unwrap_or_default());
        }
        ModuleCommand::List => print_json(&client.list_modules().await?),
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_json(flag: &str, text: &str) -> Result<serde_json::Value, CliError> {
    serde_json::from_str(text)
        .map_err(|e| CliError::Usage(format!("{flag} is not valid JSON: {e}")))
}

async fn workflow_command(
    endpoint: &Endpoint,
    command: WorkflowCommand,
) -> Result<ExitCode, CliError> {
    let client = Client::new(endpoint)?;
    match command {
        WorkflowCommand::Start {
            workflow_type,
            id,
            input,
            if_running,
        } => {
            let input = parse_json("--input", &input)?;
            let if_running = if_running.replace('-', "_");
            let (created, run) = client
                .start(&workflow_type, &id, input, &if_running)
                .await?;
            let run_id = run["run_id"].as_str().unwrap_or("?");
            if created {
                println!("started workflow {id} (run {run_id})");
            } else {
                println!("workflow {id} is already running (run {run_id}); using it");
            }
        }
        WorkflowCommand::Result { id, timeout } => {
            let run = client.result(&id, timeout.map(Duration::from_secs)).await?;
            match run["status"].as_str() {
                Some("completed") => print_json(&run["output"]),
                Some("failed") | Some("terminated") | Some("cancelled") => {
                    let failure = &run["failure"];
                    eprintln!(
                        "workflow {id} {}: {} [{}]",
                        run["status"].as_str().unwrap_or("failed"),
                        failure["message"].as_str().unwrap_or("?"),
                        failure["error_type"].as_str().unwrap_or("?")
                    );
                    return Ok(ExitCode::FAILURE);
                }
                Some("blocked") => {
                    eprintln!(
                        "workflow {id} is blocked: {}",
                        run["blocked_reason"].as_str().unwrap_or("?")
                    );
                    return Ok(ExitCode::from(2));
                }
                _ => {
                    eprintln!(
                        "workflow {id} is still {}",
                        run["status"].as_str().unwrap_or("open")
                    );
                    return Ok(ExitCode::from(2));
                }
            }
        }
        WorkflowCommand::Describe { id } => print_json(&client.describe(&id).await?),
        WorkflowCommand::Query { id, name, input } => {
            let input = parse_json("--input", &input)?;
            print_json(&client.query(&id, &name, input).await?["result"]);
        }
        WorkflowCommand::Update {
            id,
            name,
            input,
            update_id,
            timeout,
        } => {
            let input = parse_json("--input", &input)?;
            let timeout = Duration::from_secs(timeout);
            let answer = client
                .update(&id, &name, input, update_id.as_deref(), timeout)
                .await?;
            let update_id = answer["update_id"].as_str().unwrap_or("?");
            match answer["status"].as_str() {
                Some("completed") => print_json(&answer["output"]),
                Some("failed") => {
                    let error = answer["error"].as_str().unwrap_or("?");
                    eprintln!("update {update_id} failed: {error}");
                    return Ok(ExitCode::FAILURE);
                }
                _ => {
                    eprintln!("update {update_id} is accepted but not answered yet; ask again with --update-id {update_id}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
        WorkflowCommand::Terminate { id, reason } => {
            client.stop(&id, "terminate", reason.as_deref()).await?;
            println!("workflow {id} terminated");
        }
        WorkflowCommand::Cancel { id, reason } => {
            client.stop(&id, "cancel", reason.as_deref()).await?;
            println!("cancellation of workflow {id} requested");
        }
        WorkflowCommand::Signal {
            id,
            name,
            input,
            start_type,
            start_input,
        } => {
            let input = parse_json("--input", &input)?;
            let run = match start_type {
                None => client.signal(&id, &name, input).await?,
                Some(workflow_type) => {
                    let start_input = parse_json("--start-input", &start_input)?;
                    client
                        .signal_with_start(&id, &workflow_type, start_input, &name, input)
                        .await?
                }
            };
            println!(
                "signal {name} accepted for workflow {id} (run {})",
                run["run_id"].as_str().unwrap_or("?")
            );
        }
        WorkflowCommand::History { id } => print_json(&client.history(&id).await?),
        WorkflowCommand::Repin { id, module_hash } => {
            let run = client.repin(&id, &module_hash).await?;
            println!(
                "workflow {id} resumed with module {}",
                run["module_hash"].as_str().unwrap_or("?")
            );
        }
        WorkflowCommand::List {
            status,
            workflow_type,
            parent,
            limit,
        } => {
            let filter = client::ListFilter {
                status: status.as_deref(),
                workflow_type: workflow_type.as_deref(),
                parent: parent.as_deref(),
                limit,
            };
            print_json(&client.list(&filter).await?)
        }
    }
    Ok(ExitCode::SUCCESS)
}
