//! How a guest instance ended, in words for the user: traps named, outputs checked.

use crate::journal::{Failure, FailureKind};

/// Names a guest's trap for the user.
pub(super) fn describe_trap(error: &wasmtime::Error) -> (&'static str, String) {
    use wasmtime::Trap;
    let root = error.root_cause().to_string();
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (
            "fuel_exhausted",
            "fuel exhausted: the workflow ran too long without waiting on the host (an endless loop?)".into(),
        ),
        Some(Trap::StackOverflow) => ("stack_overflow", "stack overflow: the workflow recursed too deeply".into()),
        Some(Trap::Interrupt) => (
            "deadline_exceeded",
            "the workflow exceeded its wall-clock deadline for one activation".into(),
        ),
        Some(Trap::UnreachableCodeReached) => ("trap", "the workflow trapped (a panic or abort)".into()),
        Some(trap) => ("trap", format!("the workflow trapped: {trap}")),
        None if root.contains("grow") || root.contains("memory") => (
            "memory_exhausted",
            format!("memory limit reached: {root}"),
        ),
        None => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => ("exit", format!("the workflow called exit({})", exit.0)),
            None => ("trap", format!("{error:#}")),
        },
    }
}

/// Payloads are JSON of bounded size; anything else fails the activity or run.
pub(super) fn check_output(
    what: &str,
    output: String,
    limit: usize,
    kind: FailureKind,
) -> Result<String, Failure> {
    if output.len() > limit {
        return Err(Failure::new(
            kind,
            "payload_too_large",
            format!(
                "{what} of {} bytes exceeds the limit of {limit} (quota max_payload_bytes)",
                output.len()
            ),
        )
        .non_retryable());
    }
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&output) {
        return Err(
            Failure::new(kind, "invalid_output", format!("{what} is not JSON: {e}"))
                .non_retryable(),
        );
    }
    Ok(output)
}

pub(super) fn sandbox_failure(error_type: &str, message: String, stderr: &str) -> Failure {
    // A guest's panic message goes to stderr; its tail is what the user needs.
    let tail: String = {
        let trimmed = stderr.trim_end();
        let start = trimmed
            .char_indices()
            .rev()
            .nth(2_000)
            .map(|(i, _)| i)
            .unwrap_or(0);
        trimmed[start..].to_owned()
    };
    let message = if tail.is_empty() {
        message
    } else {
        format!("{message}; stderr: {tail}")
    };
    Failure::new(FailureKind::Sandbox, error_type, message).non_retryable()
}
