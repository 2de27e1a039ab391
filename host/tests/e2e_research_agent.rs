//! End-to-end: the research-agent example against the real binary, with an in-process
//! server standing in for the LLM (OpenAI-compatible chat completions), the knowledge
//! base and the notification service — approve with an edited plan, reject, and a
//! SIGKILL during the approval wait that must not repeat any LLM call.

mod common;

use common::{guest, tempdir, Recorded, Recorder, Server};
use serde_json::{json, Value};
use std::time::Duration;

const CHAT: &str = "/v1/chat/completions";
const SEARCH: &str = "/search";
const NOTIFY: &str = "/notify";

/// What the stand-in LLM plans, whatever the topic.
const PLAN: [&str; 3] = [
    "What is durable execution?",
    "Why does it matter?",
    "What are its open problems?",
];

/// The kinds of LLM call, told apart by the example's system prompts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Call {
    Planning,
    Answering,
    Writing,
}

fn kind(request: &Value) -> Call {
    let system = request["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    if system.starts_with("You plan research") {
        Call::Planning
    } else if system.starts_with("Answer the question") {
        Call::Answering
    } else {
        Call::Writing
    }
}

/// The user message of an LLM request.
fn prompt(request: &Value) -> &str {
    request["messages"][1]["content"]
        .as_str()
        .unwrap_or_default()
}

fn chat_reply(content: &str) -> Value {
    json!({ "choices": [{ "index": 0, "message": { "role": "assistant", "content": content } }] })
}

/// The stand-in services, answering deterministically like `scripts/fake-llm.py`: the
/// plan (in a Markdown fence, as models like to answer), an answer quoting the first
/// passage it was given, a report repeating its notes, and one passage per search.
fn services() -> Recorder {
    let services = Recorder::start();
    services.respond(CHAT, |request| {
        let content = match kind(request) {
            Call::Planning => format!("```json\n{}\n```", json!(PLAN)),
            Call::Answering => {
                let passages = prompt(request).split_once("Passages: ").map(|(_, p)| p);
                let first: Option<Vec<String>> =
                    passages.and_then(|p| serde_json::from_str(p).ok());
                let first = first.and_then(|p| p.into_iter().next()).unwrap_or_default();
                format!("The knowledge base says: {first}")
            }
            Call::Writing => format!("REPORT\n{}", prompt(request)),
        };
        chat_reply(&content)
    });
    services.respond(SEARCH, |request| {
        json!({ "passages": [format!("passage on {}", request["query"].as_str().unwrap_or_default())] })
    });
    services
}

fn chat_calls(services: &Recorder, call: Call) -> Vec<Recorded> {
    let calls = services.calls().into_iter();
    calls
        .filter(|c| c.path == CHAT && kind(&c.body) == call)
        .collect()
}

fn agent_server(dir: &std::path::Path) -> Server {
    let module = format!("research-agent={}", guest("research-agent").display());
    Server::start(dir, &["--module", &module])
}

fn start_agent(server: &Server, services: &Recorder, id: &str) {
    let input = json!({
        "topic": "durable execution",
        "llm_endpoint": format!("{}{CHAT}", services.url),
        "model": "test-model",
        "kb_endpoint": format!("{}{SEARCH}", services.url),
        "notify_endpoint": format!("{}{NOTIFY}", services.url),
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

/// Waits until the planning call happened and the agent waits for the person (the
/// wait's timer is journaled, so the notification is done too); returns its `status`.
fn awaiting_approval(server: &Server, services: &Recorder, id: &str) -> Value {
    services.wait_until(Duration::from_secs(30), "the planning call", |calls| {
        calls.iter().any(|c| c.path == CHAT)
    });
    server.wait_for_history(id, Duration::from_secs(30), |types| {
        types.iter().any(|t| t == "timer_started")
    });
    let status = server.cli_json(&["workflow", "query", "--id", id, "--name", "status"]);
    assert_eq!(status["stage"], "awaiting_approval", "{status}");
    status
}

fn signal(server: &Server, id: &str, name: &str, input: &Value) {
    let input = input.to_string();
    server.cli_ok(&[
        "workflow", "signal", "--id", id, "--name", name, "--input", &input,
    ]);
}

fn result(server: &Server, id: &str) -> Value {
    server.cli_json(&["workflow", "result", "--id", id, "--timeout", "30"])
}

#[test]
fn the_agent_plans_waits_for_approval_researches_in_parallel_and_reports() {
    let dir = tempdir();
    let services = services();
    let server = agent_server(dir.path());
    start_agent(&server, &services, "agent-1");

    let status = awaiting_approval(&server, &services, "agent-1");
    assert_eq!(status["questions"], json!(PLAN), "{status}");
    assert_eq!(status["answers"], json!([]));
    let planning = &chat_calls(&services, Call::Planning)[0].body;
    assert_eq!(planning["model"], "test-model");
    assert!(prompt(planning).contains("durable execution"), "{planning}");
    let notified: Vec<Value> = services
        .calls()
        .into_iter()
        .filter(|c| c.path == NOTIFY)
        .map(|c| c.body)
        .collect();
    assert_eq!(
        notified,
        [json!({ "template": "plan-ready", "topic": "durable execution", "questions": PLAN })]
    );

    // The person keeps the first and the last question.
    let kept = [PLAN[0], PLAN[2]];
    signal(&server, "agent-1", "approve", &json!({ "questions": kept }));
    let output = result(&server, "agent-1");
    assert_eq!(output["status"], "done", "{output}");
    assert_eq!(output["topic"], "durable execution");
    assert_eq!(output["questions"], json!(kept));
    let answers = output["answers"].as_array().expect("answers");
    assert_eq!(answers.len(), 2, "{output}");
    let report = output["report"].as_str().expect("a report");
    for (answer, question) in answers.iter().zip(kept) {
        assert_eq!(answer["question"], question);
        let text = answer["answer"].as_str().expect("an answer");
        assert!(
            text.contains(&format!("passage on {question}")),
            "answered from the passage retrieved for the question: {text}"
        );
        assert!(
            report.contains(text),
            "the report uses every answer: {report}"
        );
    }

    // One planning, one answering call per question, one report; one search per question.
    assert_eq!(chat_calls(&services, Call::Planning).len(), 1);
    assert_eq!(chat_calls(&services, Call::Answering).len(), 2);
    assert_eq!(chat_calls(&services, Call::Writing).len(), 1);
    let searches = services.calls().into_iter().filter(|c| c.path == SEARCH);
    let mut queries: Vec<String> = searches.map(|c| c.body["query"].to_string()).collect();
    let mut expected: Vec<String> = kept.iter().map(|q| json!(q).to_string()).collect();
    // In any order: the searches run at once.
    queries.sort();
    expected.sort();
    assert_eq!(queries, expected);

    // In parallel: both searches were scheduled before either finished, and so were
    // both answers (the journal's order, not a timing).
    let history = server.cli_json(&["workflow", "history", "--id", "agent-1"]);
    let events = history["events"].as_array().expect("events");
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default())
        .collect();
    let approved = types
        .iter()
        .position(|t| *t == "signal_received")
        .expect("the approval");
    let (scheduled, completed) = ("activity_scheduled", "activity_completed");
    assert_eq!(
        types[approved + 1..approved + 9],
        [scheduled, scheduled, completed, completed, scheduled, scheduled, completed, completed],
        "{types:?}"
    );
    let status = server.cli_json(&["workflow", "query", "--id", "agent-1", "--name", "status"]);
    assert_eq!(status["stage"], "done");
    assert_eq!(status["answers"], output["answers"]);
}

#[test]
fn a_crash_during_the_approval_wait_repeats_no_llm_call() {
    let dir = tempdir();
    let services = services();
    let mut server = agent_server(dir.path());
    start_agent(&server, &services, "agent-2");
    awaiting_approval(&server, &services, "agent-2");

    server.kill9();
    server.restart();
    // The run is replayed from the journal: the plan is there, not asked for again.
    let status = awaiting_approval(&server, &services, "agent-2");
    assert_eq!(status["questions"], json!(PLAN));
    signal(&server, "agent-2", "approve", &Value::Null);
    let output = result(&server, "agent-2");
    assert_eq!(output["status"], "done", "{output}");
    assert_eq!(output["questions"], json!(PLAN));

    assert_eq!(
        chat_calls(&services, Call::Planning).len(),
        1,
        "planned once"
    );
    assert_eq!(chat_calls(&services, Call::Answering).len(), 3);
    assert_eq!(chat_calls(&services, Call::Writing).len(), 1);
    assert_eq!(services.count(SEARCH), 3);
    assert_eq!(services.count(NOTIFY), 1, "the person was asked once");
}

#[test]
fn a_rejected_plan_ends_the_run_without_research() {
    let dir = tempdir();
    let services = services();
    let server = agent_server(dir.path());
    start_agent(&server, &services, "agent-3");
    awaiting_approval(&server, &services, "agent-3");

    signal(
        &server,
        "agent-3",
        "reject",
        &json!({ "reason": "out of scope" }),
    );
    let output = result(&server, "agent-3");
    assert_eq!(
        output,
        json!({
            "topic": "durable execution", "status": "rejected", "questions": PLAN,
            "reason": "out of scope",
        })
    );
    let status = server.cli_json(&["workflow", "query", "--id", "agent-3", "--name", "status"]);
    assert_eq!(status["stage"], "rejected");
    assert_eq!(services.count(CHAT), 1, "only the planning call");
    assert_eq!(services.count(SEARCH), 0);
}
