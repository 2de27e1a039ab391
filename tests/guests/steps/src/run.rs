//! The body shared by `steps` and `steps-changed` (which includes this file by path, so
//! the two differ only in what they do before calling [`steps`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use spool_sdk::{ActivityHandle, Context, WorkflowError};

#[derive(Deserialize)]
pub struct Input {
    pub steps: u64,
    pub mode: Mode,
    /// Sequential: sleep this long before each step. Parallel: sleep once, before
    /// starting the activities.
    #[serde(default)]
    pub sleep_ms: Option<u64>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Sequential,
    Parallel,
}

#[derive(Serialize)]
pub struct Output {
    pub steps: u64,
    /// Sum of the step numbers the echoes returned: 1 + 2 + ... + steps.
    pub sum: u64,
    /// The u64 drawn from `ctx.random_u64()` at the start, as a decimal string.
    pub random: String,
}

#[derive(Deserialize)]
struct Echoed {
    step: u64,
}

fn echo(ctx: &Context, step: u64) -> ActivityHandle {
    ctx.activity("spool.echo")
        .input(&json!({ "step": step }))
        .start()
}

/// Draws one random u64, then runs steps 1..=N of `spool.echo`.
pub fn steps(ctx: &Context, input: Input) -> Result<Output, WorkflowError> {
    let random = ctx.random_u64();
    let pause = input.sleep_ms.map(Duration::from_millis);
    let mut sum = 0;
    match input.mode {
        Mode::Sequential => {
            for step in 1..=input.steps {
                if let Some(pause) = pause {
                    ctx.sleep(pause)?;
                }
                sum += echo(ctx, step).result::<Echoed>()?.step;
            }
        }
        Mode::Parallel => {
            if let Some(pause) = pause {
                ctx.sleep(pause)?;
            }
            let handles: Vec<_> = (1..=input.steps).map(|step| echo(ctx, step)).collect();
            for echoed in ctx.all::<Echoed>(&handles) {
                sum += echoed?.step;
            }
        }
    }
    Ok(Output {
        steps: input.steps,
        sum,
        random: random.to_string(),
    })
}
