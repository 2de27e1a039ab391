//! Parent and child workflows in one component, for child-workflow tests. The role is
//! in the input; upload the module once (as type `family`) and it starts itself.
//!
//! Parent input `{"role": "parent", "wait": bool, "children": [{"id"?: ID, "policy"?:
//! "terminate" | "request_cancel" | "abandon", "input": <child input>}]}`: starts every
//! child (type `family`), then
//! - with `wait`: waits for each in order and returns `{"results": [{"id", "ok": V} |
//!   {"id", "error": {"kind", "type", "message"}}]}`. If its own cancel request arrives
//!   meanwhile, it waits for each child's own outcome anyway (the children were asked to
//!   cancel too) and ends cancelled, with the results as the failure's details;
//! - without: returns `{"started": [ids]}` at once, leaving the children to their
//!   parent-close policies.
//!
//! Child input `{"role": "child", "value": V, "sleep_ms"?: N, "fail"?: TYPE,
//! "continue_times"?: K}`: continues as new K times first (K-1, …, 0), sleeps N ms (a
//! cancel request ends it as cancelled), echoes V through the `spool.echo` activity,
//! then fails with error type TYPE if given, or returns `{"value": V}`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use spool_sdk::{Context, FailureKind, ParentClosePolicy, WorkflowError};

#[derive(Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
enum Input {
    Parent {
        #[serde(default)]
        wait: bool,
        children: Vec<ChildSpec>,
    },
    Child {
        #[serde(default)]
        value: Value,
        #[serde(default)]
        sleep_ms: u64,
        fail: Option<String>,
        #[serde(default)]
        continue_times: u32,
    },
}

#[derive(Deserialize)]
struct ChildSpec {
    id: Option<String>,
    policy: Option<String>,
    input: Value,
}

fn family(ctx: &Context, input: Input) -> Result<Value, WorkflowError> {
    match input {
        Input::Parent { wait, children } => parent(ctx, wait, children),
        Input::Child {
            value,
            sleep_ms,
            fail,
            continue_times,
        } => {
            if continue_times > 0 {
                let next = json!({
                    "role": "child", "value": value, "sleep_ms": sleep_ms, "fail": fail,
                    "continue_times": continue_times - 1,
                });
                ctx.continue_as_new(&next);
            }
            if sleep_ms > 0 {
                ctx.sleep(Duration::from_millis(sleep_ms))?;
            }
            let echoed: Value = ctx.activity("spool.echo").input(&value).call()?;
            match fail {
                Some(error_type) => Err(WorkflowError::new(
                    error_type,
                    "the child was asked to fail",
                )),
                None => Ok(json!({ "value": echoed })),
            }
        }
    }
}

fn parent(ctx: &Context, wait: bool, specs: Vec<ChildSpec>) -> Result<Value, WorkflowError> {
    let handles: Vec<_> = specs
        .iter()
        .map(|spec| {
            let mut child = ctx.child_workflow("family").input(&spec.input);
            if let Some(id) = &spec.id {
                child = child.id(id.clone());
            }
            let policy = match spec.policy.as_deref() {
                Some("request_cancel") => ParentClosePolicy::RequestCancel,
                Some("abandon") => ParentClosePolicy::Abandon,
                _ => ParentClosePolicy::Terminate,
            };
            child.parent_close_policy(policy).start()
        })
        .collect();
    if !wait {
        let ids: Vec<&str> = handles.iter().map(|h| h.workflow_id()).collect();
        return Ok(json!({ "started": ids }));
    }
    let mut results = Vec::new();
    for handle in &handles {
        let mut outcome = handle.result::<Value>();
        if matches!(&outcome, Err(e) if e.kind() == FailureKind::Cancelled) && ctx.is_cancelled() {
            // The parent's own cancel interrupted the wait: the child's outcome follows.
            outcome = handle.result::<Value>();
        }
        results.push(match outcome {
            Ok(v) => json!({ "id": handle.workflow_id(), "ok": v["value"] }),
            Err(e) => json!({ "id": handle.workflow_id(), "error": {
                "kind": format!("{:?}", e.kind()), "type": e.error_type(), "message": e.message(),
            }}),
        });
    }
    if ctx.is_cancelled() {
        let reason = ctx.cancel_reason().unwrap_or_default();
        return Err(WorkflowError::cancelled(reason).with_details(&results));
    }
    Ok(json!({ "results": results }))
}

spool_sdk::workflow!(family);
