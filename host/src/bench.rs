//! `spool bench`: the workload runner. Against a running server it measures
//! (a) start→result latency of a workflow with one no-op activity, sequentially,
//! (b) throughput of many concurrent workflows of sequential activities, in steps/s,
//! and (c) fan-out: start→result latency of a workflow that runs N activities at once,
//! one run at a time, with the attempts the activities took.
//! It uses the `steps` test workflow (tests/guests/steps) and the `spool.echo` built-in.

use crate::cli::client::{Client, Endpoint};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The `steps` workflow component (built by scripts/build-guests.sh).
    #[arg(long, default_value = "target/guests/steps.wasm")]
    module: PathBuf,
    /// Sequential start→result runs for the latency measurement.
    #[arg(long, default_value_t = 200)]
    latency_runs: usize,
    /// Concurrent workflows for the throughput measurement.
    #[arg(long, default_value_t = 500)]
    workflows: usize,
    /// Sequential activities per workflow in the throughput measurement.
    #[arg(long, default_value_t = 10)]
    steps: u32,
    /// Activities started at once by each workflow of the fan-out measurement.
    #[arg(long, default_value_t = 100)]
    fan_out: u32,
    /// Sequential runs of the fan-out measurement.
    #[arg(long, default_value_t = 20)]
    fan_out_runs: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

pub async fn run(endpoint: &Endpoint, args: BenchArgs) -> ExitCode {
    match bench(endpoint, args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(endpoint: &Endpoint, args: BenchArgs) -> Result<(), String> {
    let client = Client::new(endpoint).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&args.module)
        .map_err(|e| format!("cannot read {}: {e}", args.module.display()))?;
    client
        .upload("bench-steps", "workflow", bytes)
        .await
        .map_err(|e| e.to_string())?;
    let tag = format!("{:x}", rand::random::<u32>());

    // (a) latency, one run at a time.
    let mut latencies = Vec::with_capacity(args.latency_runs);
    for i in 0..args.latency_runs {
        let id = format!("bench-lat-{tag}-{i}");
        let started = Instant::now();
        client
            .start(
                "bench-steps",
                &id,
                serde_json::json!({ "steps": 1, "mode": "sequential" }),
                "fail",
            )
            .await
            .map_err(|e| e.to_string())?;
        let run = client
            .result(&id, Some(Duration::from_secs(60)))
            .await
            .map_err(|e| e.to_string())?;
        latencies.push(started.elapsed());
        if run["status"] != "completed" {
            return Err(format!(
                "run {id} ended {}: {}",
                run["status"], run["failure"]
            ));
        }
    }
    latencies.sort();
    println!(
        "latency: {} runs of 1 activity: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );

    // (b) throughput: all workflows at once, each a chain of sequential activities.
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.workflows);
    for i in 0..args.workflows {
        let client = client.clone();
        let id = format!("bench-tp-{tag}-{i}");
        let steps = args.steps;
        tasks.push(tokio::spawn(async move {
            client
                .start(
                    "bench-steps",
                    &id,
                    serde_json::json!({ "steps": steps, "mode": "sequential" }),
                    "fail",
                )
                .await?;
            client.result(&id, Some(Duration::from_secs(600))).await
        }));
    }
    let mut failed = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(run)) if run["status"] == "completed" => {}
            _ => failed += 1,
        }
    }
    let elapsed = started.elapsed();
    let steps = args.workflows as f64 * f64::from(args.steps);
    println!(
        "throughput: {} workflows x {} activities in {:.2} s: {:.0} steps/s ({} failed)",
        args.workflows,
        args.steps,
        elapsed.as_secs_f64(),
        steps / elapsed.as_secs_f64(),
        failed
    );
    if failed > 0 {
        return Err(format!("{failed} workflows did not complete"));
    }
    fan_out(&client, &tag, &args).await
}

/// (c) One workflow at a time, each starting `fan_out` activities at once.
async fn fan_out(client: &Client, tag: &str, args: &BenchArgs) -> Result<(), String> {
    let mut latencies = Vec::with_capacity(args.fan_out_runs);
    let mut attempts = 0_u64;
    for i in 0..args.fan_out_runs {
        let id = format!("bench-fan-{tag}-{i}");
        let started = Instant::now();
        let input = serde_json::json!({ "steps": args.fan_out, "mode": "parallel" });
        client
            .start("bench-steps", &id, input, "fail")
            .await
            .map_err(|e| e.to_string())?;
        let run = client
            .result(&id, Some(Duration::from_secs(120)))
            .await
            .map_err(|e| e.to_string())?;
        latencies.push(started.elapsed());
        if run["status"] != "completed" {
            return Err(format!(
                "run {id} ended {}: {}",
                run["status"], run["failure"]
            ));
        }
        let history = client.history(&id).await.map_err(|e| e.to_string())?;
        attempts += history["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] == "activity_completed")
            .filter_map(|e| e["attempts"].as_u64())
            .sum::<u64>();
    }
    latencies.sort();
    let total: Duration = latencies.iter().sum();
    let activities = args.fan_out_runs as f64 * f64::from(args.fan_out);
    println!(
        "fan-out: {} runs of {} parallel activities: p50 {:.2} ms, p99 {:.2} ms per run, {:.0} activities/s, {:.2} attempts per activity",
        latencies.len(),
        args.fan_out,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        activities / total.as_secs_f64(),
        attempts as f64 / activities,
    );
    Ok(())
}
