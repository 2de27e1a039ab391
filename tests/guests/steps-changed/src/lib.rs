//! `steps` with a different first command: it calls `spool.echo` with `{"step": 1000}`
//! before anything else, then does exactly what `steps` does (the body is `steps`' own
//! file). Resuming a run recorded with `steps` under this module must make the host
//! report non-determinism. The extra echo is not counted in `sum`.

use spool_sdk::{Context, WorkflowError};

#[path = "../../steps/src/run.rs"]
mod run;

fn steps_changed(ctx: &Context, input: run::Input) -> Result<run::Output, WorkflowError> {
    ctx.activity("spool.echo")
        .input(&serde_json::json!({ "step": 1000 }))
        .call::<serde_json::Value>()?;
    run::steps(ctx, input)
}

spool_sdk::workflow!(steps_changed);
