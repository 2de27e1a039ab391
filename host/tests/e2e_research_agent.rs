//! End-to-end: the research-agent example against the real binary, with
//! `scripts/fake-llm.py` standing in for the LLM and the knowledge base — approve,
//! reject, and a SIGKILL during the approval wait that must not repeat any LLM call.

mod common;

use common::{guest, tempdir, Server};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `scripts/fake-llm.py` on a free port, with the requests it printed.
struct FakeLlm {
    child: Child,
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeLlm {
    fn start() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/fake-llm.py");
        let mut child = Command::new("python3")
            .args([script.to_str().expect("path"), "0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start scripts/fake-llm.py");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let banner = lines.next().expect("a banner").expect("a line");
        let base = banner
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .and_then(|url| url.strip_suffix("/v1/chat/completions,"))
            .expect("the banner names the URL")
            .to_owned();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = requests.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            base,
            requests,
        }
    }

    /// How many requests went to `path` and mentioned `text`. The lines arrive from
    /// the script's output a moment after the answers: wait for `at_least` of them
    /// (up to 5 s), then count.
    fn count(&self, path: &str, text: &str, at_least: usize) -> usize {
        let count = || {
            self.requests
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.starts_with(path) && l.contains(text))
                .count()
        };
        for _ in 0..500 {
            if count() >= at_least {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        count()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_server(dir: &std::path::Path) -> Server {
    let module = format!("research-agent={}", guest("research-agent").display());
    Server::start(dir, &["--module", &module])
}

fn start_agent(server: &Server, llm: &FakeLlm, id: &str) {
    let input = json!({
        "topic": "durable execution",
        "llm_endpoint": format!("{}/v1/chat/completions", llm.base),
        "kb_endpoint": format!("{}/search", llm.base),
        "approval_timeout_secs": 3_600,
    })
    .to_string();
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "research-agent",
        "--id",
        id,
        "--input",
        &input,
    ]);
}

/// Waits until the agent asks for approval, and returns its status.
fn awaiting_approval(server: &Server, id: &str) -> Value {
    for _ in 0..400 {
        let status = server.cli_json(&["workflow", "query", "--id", id, "--name", "status"]);
        if status["stage"] == "awaiting_approval" {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{id} never asked for approval\n{}", server.log_tail());
}

const PLANNING: &str = "You plan research";
const ANSWERING: &str = "Answer the question";
const WRITING: &str = "Write a short research report";

#[test]
fn the_agent_plans_waits_for_approval_researches_in_parallel_and_reports() {
    let dir = tempdir();
    let llm = FakeLlm::start();
    let server = agent_server(dir.path());
    start_agent(&server, &llm, "agent-1");
    let status = awaiting_approval(&server, "agent-1");
    assert_eq!(
        status["questions"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );

    // The person keeps two of the three questions.
    let kept = json!({ "questions": [status["questions"][0], status["questions"][2]] });
    server.cli_ok(&[
        "workflow",
        "signal",
        "--id",
        "agent-1",
        "--name",
        "approve",
        "--input",
        &kept.to_string(),
    ]);
    let output = server.cli_json(&["workflow", "result", "--id", "agent-1", "--timeout", "30"]);
    assert_eq!(output["status"], "done", "{output}");
    assert_eq!(output["questions"], kept["questions"]);
    let answers = output["answers"].as_array().expect("answers");
    assert_eq!(answers.len(), 2);
    let report = output["report"].as_str().expect("report");
    for answer in answers {
        let text = answer["answer"].as_str().expect("answer text");
        assert!(
            text.contains("passage 1"),
            "answered from the passages: {text}"
        );
        assert!(
            report.contains(text),
            "the report uses every answer: {report}"
        );
    }
    assert_eq!(llm.count("/v1/chat/completions", PLANNING, 1), 1);
    assert_eq!(llm.count("/v1/chat/completions", ANSWERING, 2), 2);
    assert_eq!(llm.count("/v1/chat/completions", WRITING, 1), 1);
    assert_eq!(llm.count("/search", "query", 2), 2);
}

#[test]
fn a_crash_during_the_approval_wait_repeats_no_llm_call() {
    let dir = tempdir();
    let llm = FakeLlm::start();
    let mut server = agent_server(dir.path());
    start_agent(&server, &llm, "agent-2");
    awaiting_approval(&server, "agent-2");
    server.kill9();
    server.restart();
    // After the restart the run is replayed from the journal: the plan is there.
    let status = awaiting_approval(&server, "agent-2");
    assert_eq!(status["questions"].as_array().map(Vec::len), Some(3));
    server.cli_ok(&["workflow", "signal", "--id", "agent-2", "--name", "approve"]);
    let output = server.cli_json(&["workflow", "result", "--id", "agent-2", "--timeout", "30"]);
    assert_eq!(output["status"], "done", "{output}");
    assert_eq!(
        llm.count("/v1/chat/completions", PLANNING, 1),
        1,
        "planned once"
    );
    assert_eq!(llm.count("/v1/chat/completions", ANSWERING, 3), 3);
    assert_eq!(llm.count("/v1/chat/completions", WRITING, 1), 1);
}

#[test]
fn a_rejected_plan_ends_the_run_without_research() {
    let dir = tempdir();
    let llm = FakeLlm::start();
    let server = agent_server(dir.path());
    start_agent(&server, &llm, "agent-3");
    awaiting_approval(&server, "agent-3");
    server.cli_ok(&["workflow", "signal", "--id", "agent-3", "--name", "reject"]);
    let output = server.cli_json(&["workflow", "result", "--id", "agent-3", "--timeout", "30"]);
    assert_eq!(output["status"], "rejected");
    let status = server.cli_json(&["workflow", "query", "--id", "agent-3", "--name", "status"]);
    assert_eq!(status["stage"], "rejected");
    assert_eq!(llm.count("/search", "query", 0), 0);
    assert_eq!(llm.count("/v1/chat/completions", ANSWERING, 0), 0);
}
