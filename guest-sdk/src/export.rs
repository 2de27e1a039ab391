//! The glue behind [`workflow!`](crate::workflow): turns the contract's `run(input)`
//! into a call of a typed workflow function, and its `query(name, input)` into a call
//! of a registered query handler.
//!
//! Public only so that the macro can reach it from the user's crate; not part of the
//! SDK's API.

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::__bindings::spool::workflow::context::Failure;
pub use crate::__bindings::Guest;
pub use std::string::String;

use crate::{Context, WorkflowError};

/// Answers a query once `run` has returned, from the handlers the run registered with
/// [`Context::query_handler`]: the contract's `query` export.
pub fn query(name: &str, input: &str) -> Result<String, String> {
    crate::query::answer(name, input)
}

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
    to_json(&output).map_err(|e| {
        WorkflowError::new(
            "invalid_output",
            format!("workflow output did not serialize: {e}"),
        )
        .non_retryable()
    })
}

/// `serde_json::to_string` with a gentler growth rule, for large outputs.
///
/// A `Vec` doubles when it runs out of room. A workflow returning one big string makes
/// serde_json write the string's contents in one piece and then the closing quote, and
/// that last byte doubles the buffer: for a moment the guest holds the value, the full
/// buffer and one twice its size, about four times the output against the guest's
/// memory limit. Growing to the size needed plus an eighth (and at least half again)
/// keeps that case near two times, and stays amortised O(n) for many small writes. One
/// pass only: a second, measuring pass would double the fuel a large output costs.
pub(crate) fn to_json(value: &(impl Serialize + ?Sized)) -> Result<String, serde_json::Error> {
    struct Buffer(Vec<u8>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let needed = self.0.len() + bytes.len();
            if needed > self.0.capacity() {
                let capacity = (needed + needed / 8).max(self.0.capacity() * 3 / 2);
                self.0.reserve_exact(capacity - self.0.len());
            }
            self.0.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut buffer = Buffer(Vec::with_capacity(128));
    serde_json::to_writer(&mut buffer, value)?;
    Ok(String::from_utf8(buffer.0).expect("serde_json writes UTF-8"))
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
    fn query_handlers_answer_after_run_has_returned() {
        use std::cell::Cell;
        use std::rc::Rc;

        fn counting(ctx: &Context, n: u32) -> Result<u32, WorkflowError> {
            let count = Rc::new(Cell::new(0));
            let c = Rc::clone(&count);
            ctx.query_handler("count", move |()| c.get());
            ctx.query_handler("plus", |x: u32| x + 1);
            count.set(n); // the state the run ends with
            Ok(n)
        }

        assert_eq!(run(counting, "3".to_owned()).unwrap(), "3");
        assert_eq!(query("count", "null"), Ok("3".to_owned()));
        assert_eq!(query("plus", "41"), Ok("42".to_owned()));
        assert!(query("plus", "\"x\"")
            .unwrap_err()
            .contains("did not deserialize"));
        assert_eq!(
            query("status", "null"),
            Err(r#"no query handler named "status"; registered: "count", "plus""#.to_owned())
        );
        // A run that fails keeps its handlers too; a new run starts without the old ones.
        let failing = |ctx: &Context, ()| -> Result<(), WorkflowError> {
            ctx.query_handler("why", |()| "it failed");
            Err(WorkflowError::new("nope", "failed"))
        };
        assert!(run(failing, "null".to_owned()).is_err());
        assert_eq!(query("why", "null"), Ok(r#""it failed""#.to_owned()));
        assert!(query("count", "null").is_err());
    }

    #[test]
    fn to_json_matches_serde_json() {
        let value = serde_json::json!({ "text": "x".repeat(10_000), "n": [1, 2, 3], "u": "é\n" });
        assert_eq!(
            to_json(&value).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
        let many: Vec<u32> = (0..100_000).collect();
        assert_eq!(
            to_json(&many).unwrap(),
            serde_json::to_string(&many).unwrap()
        );
    }

    #[test]
    fn one_big_string_does_not_double_the_buffer() {
        let big = "x".repeat(1 << 20);
        let json = to_json(&big).unwrap();
        assert_eq!(json.len(), big.len() + 2);
        assert!(
            json.capacity() <= json.len() + json.len() / 8 + 16,
            "{}",
            json.capacity()
        );
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
