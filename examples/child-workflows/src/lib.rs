//! Team onboarding: one child workflow per member, collected as they finish.
//!
//! The pattern this example teaches: **fan out to child workflows, fan in**. Each member
//! is onboarded by a run of the `onboarding` example workflow of their own, started as
//! a child: it has its own id (`onboard-<team>-<member>`), history and retries, shows
//! up in `spool workflow list --parent <team id>`, and can be inspected, signalled or
//! cancelled on its own. The parent waits for whichever child finishes next
//! (`ctx.any`), so the `progress` query moves as children finish, in any order.
//!
//! Cancelling the team's run asks every child to cancel too (their parent-close
//! policy is `RequestCancel`, so they also get a cancel request if the parent fails);
//! the parent waits for their outcomes, reports them, and ends cancelled.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use spool_sdk::{ChildWorkflowHandle, Context, Outcome, ParentClosePolicy, WorkflowError};

/// The run's input, e.g. `{"team": "apollo", "members": ["ada", "grace"],
/// "email_endpoint": "http://127.0.0.1:8025/send", "follow_up_secs": 5}`.
#[derive(Deserialize)]
struct Team {
    team: String,
    members: Vec<String>,
    email_endpoint: String,
    follow_up_secs: u64,
}

/// Where the team stands: the `progress` query's answer, and the run's output.
#[derive(Serialize, Clone, Default)]
struct Progress {
    onboarded: Vec<String>,
    failed: Vec<Failed>,
    pending: Vec<String>,
}

#[derive(Serialize, Clone)]
struct Failed {
    member: String,
    error: String,
}

fn team_onboarding(ctx: &Context, team: Team) -> Result<Progress, WorkflowError> {
    let progress = Rc::new(RefCell::new(Progress {
        pending: team.members.clone(),
        ..Progress::default()
    }));
    let reader = Rc::clone(&progress);
    ctx.query_handler("progress", move |_: serde_json::Value| {
        reader.borrow().clone()
    });

    // Fan out: every child starts now and runs on its own.
    let children: Vec<(String, ChildWorkflowHandle)> = team
        .members
        .iter()
        .map(|member| {
            let child = ctx
                .child_workflow("onboarding")
                .id(format!("onboard-{}-{member}", team.team))
                .input(&json!({
                    "user_id": member,
                    "email_endpoint": team.email_endpoint,
                    "follow_up_secs": team.follow_up_secs,
                }))
                .parent_close_policy(ParentClosePolicy::RequestCancel)
                .start();
            (member.clone(), child)
        })
        .collect();

    // Fan in, in the order the children finish.
    let mut waiting: Vec<&(String, ChildWorkflowHandle)> = children.iter().collect();
    while !waiting.is_empty() {
        let handles: Vec<&dyn spool_sdk::Awaitable> = waiting.iter().map(|(_, h)| h as _).collect();
        let ready = match ctx.any(&handles) {
            Ok(ready) => ready,
            // Cancelled: the children were asked to cancel too; keep collecting their
            // outcomes (this wait no longer listens for the cancel request).
            Err(e) if ctx.is_cancelled() => {
                ctx.log_warn(format!("team onboarding cancelled: {}", e.message()));
                continue;
            }
            Err(e) => return Err(e),
        };
        let (member, _) = waiting.swap_remove(ready.index);
        let mut progress = progress.borrow_mut();
        progress.pending.retain(|m| m != member);
        match ready.outcome {
            Outcome::Child(Ok(_)) => progress.onboarded.push(member.clone()),
            Outcome::Child(Err(e)) => progress.failed.push(Failed {
                member: member.clone(),
                error: e.to_string(),
            }),
            _ => unreachable!("only child handles are awaited"),
        }
    }

    let outcome = progress.borrow().clone();
    if ctx.is_cancelled() {
        let reason = ctx.cancel_reason().unwrap_or_default();
        return Err(WorkflowError::cancelled(reason).with_details(&outcome));
    }
    Ok(outcome)
}

spool_sdk::workflow!(team_onboarding);
