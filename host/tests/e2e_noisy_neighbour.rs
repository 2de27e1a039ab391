//! The noisy neighbour: namespace `calm` runs a steady stream of ordinary workflows
//! while namespace `noisy` floods the same server (production mode) with hostile guests
//! (infinite loops, memory bombs, deep recursion), a flood of starts and garbage uploads.
//! Every one of `calm`'s workflows must complete, and its p99 latency must stay within a
//! loose bound of its baseline measured alone on the same server. The numbers are printed
//! (`--nocapture`) for the record; the bound is loose on purpose, since this is a shared
//! CI machine, and only catches starvation (a tenant waiting behind another's work).

mod common;

use common::{guest, tempdir, Server};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 40;

struct Tenant {
    base: String,
    key: String,
    http: Client,
}

impl Tenant {
    fn new(server: &Server, namespace: &str) -> Self {
        let created = server.cli_json(&["namespace", "key", "create", namespace]);
        Self {
            base: format!("{}/api/v1/namespaces/{namespace}", server.address),
            key: created["key"].as_str().unwrap().to_owned(),
            http: Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    fn upload(&self, name: &str, bytes: Vec<u8>) -> u16 {
        self.http
            .post(format!("{}/modules?name={name}", self.base))
            .bearer_auth(&self.key)
            .body(bytes)
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    fn start(&self, id: &str, workflow_type: &str, input: Value) -> u16 {
        self.http
            .post(format!("{}/workflows", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"workflow_id": id, "workflow_type": workflow_type, "input": input}))
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    fn result(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/workflows/{id}/result?wait_secs=60", self.base))
            .bearer_auth(&self.key)
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    }

    /// Starts one ordinary workflow and waits for it; returns its latency.
    fn run_one(&self, id: &str) -> Duration {
        let began = Instant::now();
        let status = self.start(id, "steps", json!({"steps": 3, "mode": "sequential"}));
        assert_eq!(status, 201, "start {id}");
        let run = self.result(id);
        assert_eq!(run["status"], "completed", "{id}: {run}");
        assert_eq!(run["output"]["sum"], 6, "{id}: {run}");
        began.elapsed()
    }
}

fn p(latencies: &[Duration], q: f64) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
fn a_flood_of_hostile_guests_in_one_namespace_does_not_starve_another() {
    let dir = tempdir();
    let server = Server::start_production(dir.path(), "[namespaces.calm]\n[namespaces.noisy]\n");
    let calm = Tenant::new(&server, "calm");
    let noisy = Arc::new(Tenant::new(&server, "noisy"));
    let steps = std::fs::read(guest("steps")).unwrap();
    assert_eq!(calm.upload("steps", steps.clone()), 201);
    assert_eq!(noisy.upload("steps", steps), 201);
    assert_eq!(
        noisy.upload("hostile", std::fs::read(guest("hostile")).unwrap()),
        201
    );

    // Warm up (compiled component cached, connections open), then the baseline alone.
    for i in 0..5 {
        calm.run_one(&format!("warm-{i}"));
    }
    let baseline: Vec<Duration> = (0..RUNS)
        .map(|i| calm.run_one(&format!("base-{i}")))
        .collect();

    // The noise: hostile guests, a start flood and garbage uploads, on their own threads.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let mut noise = Vec::new();
    for thread in 0..3 {
        let (noisy, stop, started) = (noisy.clone(), stop.clone(), started.clone());
        noise.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("noise-{thread}-{i}");
                let status = match i % 4 {
                    0 => noisy.start(&id, "hostile", json!({"mode": "loop"})),
                    1 => noisy.start(&id, "hostile", json!({"mode": "memory"})),
                    2 => noisy.start(&id, "hostile", json!({"mode": "recursion"})),
                    _ => noisy.start(&id, "steps", json!({"steps": 20, "mode": "parallel"})),
                };
                if status == 201 {
                    started.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    {
        let (noisy, stop) = (noisy.clone(), stop.clone());
        noise.push(std::thread::spawn(move || {
            let garbage = b"\0asm\x0d\0\x01\0garbage".repeat(1000);
            while !stop.load(Ordering::Relaxed) {
                noisy.upload("junk", garbage.clone());
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(1));
    let noisy_latencies: Vec<Duration> = (0..RUNS)
        .map(|i| calm.run_one(&format!("busy-{i}")))
        .collect();
    stop.store(true, Ordering::Relaxed);
    for thread in noise {
        thread.join().unwrap();
    }

    let (base_p50, base_p99) = (p(&baseline, 0.5), p(&baseline, 0.99));
    let (busy_p50, busy_p99) = (p(&noisy_latencies, 0.5), p(&noisy_latencies, 0.99));
    println!(
        "noisy neighbour: calm alone p50 {:.1} ms p99 {:.1} ms; with noisy flooding \
         ({} hostile/flood runs started) p50 {:.1} ms p99 {:.1} ms",
        ms(base_p50),
        ms(base_p99),
        started.load(Ordering::Relaxed),
        ms(busy_p50),
        ms(busy_p99),
    );
    // Loose on purpose (a 2-core CI machine, other tests beside this one): measured
    // alone on such a machine the p99 under the flood is 20-50 ms, while starvation
    // shows up as seconds, since one hostile activation alone burns its whole fuel
    // budget (about a quarter second) and the flood starts hundreds of them.
    let bound = base_p99 * 10 + Duration::from_millis(750);
    assert!(
        busy_p99 <= bound,
        "calm's p99 went from {:.1} ms to {:.1} ms (bound {:.1} ms)",
        ms(base_p99),
        ms(busy_p99),
        ms(bound)
    );
    // The server is still whole: the noisy namespace's runs ended with errors of their own.
    let listed: Value = noisy
        .http
        .get(format!("{}/workflows?status=failed&limit=5", noisy.base))
        .bearer_auth(&noisy.key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        !listed["workflows"].as_array().unwrap().is_empty(),
        "hostile runs fail: {listed}"
    );
}
