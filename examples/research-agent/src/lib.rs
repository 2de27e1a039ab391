//! A research agent: an LLM plans, a person approves, retrieval and the LLM answer each
//! question in parallel, and the LLM writes the report.
//!
//! The pattern this example teaches: **an AI agent as a durable workflow**. Every LLM
//! and knowledge-base call is an activity: retried on failure, journaled once it
//! succeeded, so a crash never pays for (or changes) an answer twice. The human step is
//! a signal with a deadline, and a `status` query shows where the agent is.
//!
//! The LLM is any OpenAI-compatible chat-completions endpoint; the knowledge base any
//! endpoint that answers `POST {"query": q}` with `{"passages": [..]}`
//! (`scripts/fake-llm.py` serves both for trying it out). If `notify_endpoint` is given,
//! the plan is POSTed there when it is ready for approval.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use spool_sdk::{ActivityHandle, Context, RetryPolicy, WorkflowError};

/// The run's input.
#[derive(Deserialize)]
struct Request {
    topic: String,
    /// e.g. `http://127.0.0.1:9300/v1/chat/completions`
    llm_endpoint: String,
    #[serde(default = "default_model")]
    model: String,
    /// e.g. `http://127.0.0.1:9300/search`
    kb_endpoint: String,
    /// Told `{"template": "plan-ready", "topic", "questions"}` when the plan awaits
    /// approval, e.g. `http://127.0.0.1:9000/notify`.
    #[serde(default)]
    notify_endpoint: Option<String>,
    #[serde(default = "one_day")]
    approval_timeout_secs: u64,
}

fn default_model() -> String {
    "gpt-4o-mini".into()
}

fn one_day() -> u64 {
    24 * 3_600
}

/// The input of the `approve` signal; `questions` replaces the plan if given.
#[derive(Deserialize)]
struct Approval {
    #[serde(default)]
    questions: Option<Vec<String>>,
}

/// The input of the `reject` signal: `{"reason": "..."}`, or none.
#[derive(Deserialize)]
struct Rejection {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Stage {
    Planning,
    AwaitingApproval,
    Researching,
    Writing,
    Done,
    Rejected,
    TimedOut,
}

#[derive(Serialize, Clone)]
struct Answer {
    question: String,
    answer: String,
}

/// Where the agent stands: the `status` query's answer.
#[derive(Serialize, Clone)]
struct Status {
    stage: Stage,
    questions: Vec<String>,
    answers: Vec<Answer>,
}

/// A decision on the plan, set by the signal handlers.
enum Decision {
    Approve(Option<Vec<String>>),
    Reject(Option<String>),
}

fn research_agent(ctx: &Context, request: Request) -> Result<Value, WorkflowError> {
    let status = Rc::new(RefCell::new(Status {
        stage: Stage::Planning,
        questions: Vec::new(),
        answers: Vec::new(),
    }));
    let reader = Rc::clone(&status);
    ctx.query_handler("status", move |_: Value| reader.borrow().clone());
    let decision: Rc<RefCell<Option<Decision>>> = Rc::default();
    let d = Rc::clone(&decision);
    // Input `{"questions": [..]}` to edit the plan, or none (null) to take it as is.
    ctx.on_signal("approve", move |a: Option<Approval>| {
        let edited = a.and_then(|a| a.questions);
        d.borrow_mut().get_or_insert(Decision::Approve(edited));
    });
    let d = Rc::clone(&decision);
    ctx.on_signal("reject", move |r: Option<Rejection>| {
        let reason = r.and_then(|r| r.reason);
        d.borrow_mut().get_or_insert(Decision::Reject(reason));
    });
    let llm = Llm {
        ctx,
        endpoint: &request.llm_endpoint,
        model: &request.model,
    };

    // 1. Plan.
    let plan = llm.ask(
        "You plan research. Answer with a JSON array of at most 5 short questions, nothing else.",
        &format!("Topic: {}", request.topic),
    )?;
    let planned = parse_plan(&plan)?;
    {
        let mut s = status.borrow_mut();
        s.questions = planned.clone();
        s.stage = Stage::AwaitingApproval;
    }
    if let Some(endpoint) = &request.notify_endpoint {
        let note =
            json!({ "template": "plan-ready", "topic": request.topic, "questions": planned });
        let _response: Value = post(ctx, endpoint, &note).result()?;
    }

    // 2. A person approves (possibly with edited questions), rejects, or lets it lapse.
    let timeout = Duration::from_secs(request.approval_timeout_secs);
    if !ctx.wait_condition(|| decision.borrow().is_some(), Some(timeout))? {
        status.borrow_mut().stage = Stage::TimedOut;
        return Ok(json!({ "topic": request.topic, "status": "timed_out", "questions": planned }));
    }
    match decision.borrow_mut().take() {
        Some(Decision::Approve(Some(edited))) if !edited.is_empty() => {
            status.borrow_mut().questions = edited;
        }
        Some(Decision::Reject(reason)) => {
            status.borrow_mut().stage = Stage::Rejected;
            return Ok(json!({
                "topic": request.topic, "status": "rejected", "questions": planned,
                "reason": reason,
            }));
        }
        _ => {}
    }
    status.borrow_mut().stage = Stage::Researching;
    let questions = status.borrow().questions.clone();

    // 3. Retrieve for every question at once, then answer every question at once.
    let searches: Vec<ActivityHandle> = questions
        .iter()
        .map(|q| post(ctx, &request.kb_endpoint, &json!({ "query": q })))
        .collect();
    let found = ctx
        .all::<Value>(&searches)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let answering: Vec<ActivityHandle> = questions
        .iter()
        .zip(&found)
        .map(|(question, response)| {
            let passages = response["body"]["passages"].to_string();
            llm.start(
                "Answer the question from the passages only, in one or two sentences.",
                &format!("Question: {question}\nPassages: {passages}"),
            )
        })
        .collect();
    let replies = ctx
        .all::<Value>(&answering)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let answers: Vec<Answer> = questions
        .iter()
        .zip(replies)
        .map(|(question, reply)| Answer {
            question: question.clone(),
            answer: content(&reply),
        })
        .collect();
    {
        let mut s = status.borrow_mut();
        s.answers = answers.clone();
        s.stage = Stage::Writing;
    }

    // 4. Synthesis.
    let notes: String = answers
        .iter()
        .map(|a| format!("Q: {}\nA: {}\n", a.question, a.answer))
        .collect();
    let report = llm.ask(
        "Write a short research report from these notes.",
        &format!("Topic: {}\n{notes}", request.topic),
    )?;
    status.borrow_mut().stage = Stage::Done;
    Ok(json!({
        "topic": request.topic, "status": "done", "questions": questions,
        "answers": answers, "report": report,
    }))
}

/// An OpenAI-compatible chat endpoint, called through the `http.request` activity.
struct Llm<'a> {
    ctx: &'a Context,
    endpoint: &'a str,
    model: &'a str,
}

impl Llm<'_> {
    fn start(&self, system: &str, user: &str) -> ActivityHandle {
        let body = json!({
            "model": self.model,
            "messages": [
                { "role": "system", "content": system },
                { "role": "user", "content": user },
            ],
        });
        post(self.ctx, self.endpoint, &body)
    }

    /// Asks and waits; the reply's text.
    fn ask(&self, system: &str, user: &str) -> Result<String, WorkflowError> {
        let reply: Value = self.start(system, user).result()?;
        Ok(content(&reply))
    }
}

/// The text of a chat-completions response, as `http.request` returns it.
fn content(response: &Value) -> String {
    response["body"]["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The plan as a list of questions: a JSON array of strings. Models like to wrap it in
/// prose or a Markdown code fence, so only the outermost `[...]` is read.
fn parse_plan(plan: &str) -> Result<Vec<String>, WorkflowError> {
    let array = match (plan.find('['), plan.rfind(']')) {
        (Some(start), Some(end)) if start < end => &plan[start..=end],
        _ => plan,
    };
    let questions: Vec<String> = serde_json::from_str(array).map_err(|e| {
        WorkflowError::new(
            "bad_plan",
            format!("the plan is not a JSON list of questions: {e}"),
        )
        .non_retryable()
    })?;
    if questions.is_empty() {
        return Err(WorkflowError::new("bad_plan", "the plan has no questions").non_retryable());
    }
    Ok(questions)
}

/// Starts a JSON POST through `http.request`. LLM calls are slow and rate-limited:
/// generous timeouts, and retries with backoff (429 and 5xx are retried, other 4xx not).
/// Searches and the notification get the same policy; it costs them nothing.
fn post(ctx: &Context, url: &str, body: &Value) -> ActivityHandle {
    let retry = RetryPolicy::new()
        .initial_interval(Duration::from_millis(500))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(30))
        .maximum_attempts(8);
    ctx.activity("http.request")
        .input(&json!({
            "method": "POST", "url": url,
            "headers": { "content-type": "application/json" }, "body": body,
        }))
        .retry(retry)
        .start_to_close(Duration::from_secs(120))
        .start()
}

spool_sdk::workflow!(research_agent);
