//! The glue behind [`workflow!`](crate::workflow): turns the contract's `run(input)`
//! into a call of a typed workflow function.
//!
//! Public only so that the macro can reach it from the user's crate; not part of the
//! SDK's API.

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::__bindings::spool::workflow::context::Failure;
pub use crate::__bindings::Guest;
pub use std::string::String;

use crate::{Context, WorkflowError};

/// Decodes `input`, runs `workflow` with a fresh [`Context`], and encodes its result.
pub fn run<I, O, F>(workflow: F, input: String) -> Result<String, Failure>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(&Context, I) -> Result<O, WorkflowError>,
{
    run_typed(workflow, &input).map_err(WorkflowError::into_wit)
}

fn run_typed<I, O, F>(workflow: F, input: &str) -> Result<String, WorkflowError>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(&Context, I) -> Result<O, WorkflowError>,
{
    let input: I = serde_json::from_str(input).map_err(|e| {
        WorkflowError::new(
            "invalid_input",
            format!("workflow input did not deserialize: {e}"),
        )
        .non_retryable()
    })?;
    let output = workflow(&Context::new(), input)?;
    serde_json::to_string(&output).map_err(|e| {
        WorkflowError::new(
            "invalid_output",
            format!("workflow output did not serialize: {e}"),
        )
        .non_retryable()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::__bindings::spool::workflow::context::FailureKind as WitKind;

    #[derive(Deserialize)]
    struct Greet {
        name: String,
    }

    fn greet(_ctx: &Context, input: Greet) -> Result<String, WorkflowError> {
        if input.name.is_empty() {
            return Err(WorkflowError::new("no_name", "name is empty"));
        }
        Ok(format!("hello {}", input.name))
    }

    #[test]
    fn output_is_json() {
        let out = run(greet, r#"{"name":"ada"}"#.to_owned()).unwrap();
        assert_eq!(out, r#""hello ada""#);
    }

    #[test]
    fn bad_input_is_a_non_retryable_invalid_input_failure() {
        let failure = run(greet, r#"{"nom":"ada"}"#.to_owned()).unwrap_err();
        assert_eq!(failure.kind, WitKind::Application);
        assert_eq!(failure.error_type, "invalid_input");
        assert!(failure.non_retryable);
        assert!(failure.message.contains("name"), "{}", failure.message);
    }

    #[test]
    fn workflow_errors_become_the_failure() {
        let failure = run(greet, r#"{"name":""}"#.to_owned()).unwrap_err();
        assert_eq!(failure.error_type, "no_name");
        assert_eq!(failure.message, "name is empty");
        assert!(!failure.non_retryable);
    }

    #[test]
    fn output_that_does_not_serialize_is_a_failure() {
        fn bad(_ctx: &Context, _: ()) -> Result<BTreeMap<(u8, u8), u8>, WorkflowError> {
            Ok(BTreeMap::from([((1, 2), 3)]))
        }
        let failure = run(bad, "null".to_owned()).unwrap_err();
        assert_eq!(failure.error_type, "invalid_output");
        assert!(failure.non_retryable);
    }
}
