//! Queries: questions about a run's state, answered from its handlers without changing
//! the run.
//!
//! The host answers a query in an instance of its own: it replays the run's journal into
//! a fresh instance and then either
//!
//! - hands the instance a `query` event from `await-next`, at the wait where the
//!   replayed workflow stands (a run still in flight). [`Cancellation::await_next`],
//!   the one path to `await-next`, answers it here with `respond-query` and asks
//!   `await-next` again with the same handles and signals, so the waiting code never
//!   sees a query; or
//! - calls the component's `query` export after `run` has returned (a run that has
//!   ended), which [`workflow!`](crate::workflow) points at [`answer`].
//!
//! The second case is why the handlers live in a thread-local registry rather than in
//! the [`Context`]: the context is gone once `run` returns, the handlers (and the state
//! they share with the workflow through `Rc`s) are not. A new [`Context`] (one per run)
//! starts with an empty registry.
//!
//! Queries are never journaled, so answering one must not change what the workflow
//! does next: a handler cannot reach the [`Context`] (it is `'static`, the context is
//! not), so it can issue no commands, and it is `Fn`, so it should only read state.
//!
//! [`Cancellation::await_next`]: crate::cancel::Cancellation::await_next

use std::cell::RefCell;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cancel::RESERVED_PREFIX;
use crate::Context;

/// A registered handler: decodes the raw JSON input, runs the user's closure and
/// encodes its answer; `Err` is the message the host reports.
type Handler = Rc<dyn Fn(&str) -> Result<String, String>>;

thread_local! {
    /// The query handlers of the run, in registration order. Outlives the [`Context`],
    /// so that the `query` export still finds them once `run` has returned.
    static HANDLERS: RefCell<Vec<(String, Handler)>> = const { RefCell::new(Vec::new()) };
}

/// Registers `handler` for `name`, replacing (in place) any handler it had.
fn register(name: String, handler: Handler) {
    HANDLERS.with_borrow_mut(
        |handlers| match handlers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => *old = handler,
            None => handlers.push((name, handler)),
        },
    );
}

/// Forgets every handler: a new run starts with none.
pub(crate) fn clear() {
    // Dropped outside the borrow: a handler's captures may have `Drop` code of their own.
    let old = HANDLERS.with_borrow_mut(std::mem::take);
    drop(old);
}

/// The names with a handler, in registration order.
pub(crate) fn names() -> Vec<String> {
    HANDLERS.with_borrow(|handlers| handlers.iter().map(|(n, _)| n.clone()).collect())
}

/// Answers the query `name` with `input` (JSON): the handler's answer as JSON, or why
/// there is none. Used for `query` events during a wait and by the `query` export.
///
/// # Panics
///
/// If the handler panics.
pub(crate) fn answer(name: &str, input: &str) -> Result<String, String> {
    // The handler runs outside the borrow of the registry.
    let handler = HANDLERS.with_borrow(|handlers| {
        handlers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, h)| Rc::clone(h))
    });
    match handler {
        Some(handler) => handler(input),
        None => Err(unknown(name)),
    }
}

/// The error for a query nobody registered a handler for.
fn unknown(name: &str) -> String {
    let names = names();
    let registered = if names.is_empty() {
        "none".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("no query handler named {name:?}; registered: {registered}")
}

/// Refuses a query name reserved for the host.
///
/// # Panics
///
/// If `name` starts with `spool.`.
fn check_user_query(name: &str) {
    assert!(
        !name.starts_with(RESERVED_PREFIX),
        "cannot register a handler for query `{name}`: query names starting with \
         `{RESERVED_PREFIX}` are reserved for the host"
    );
}

impl Context {
    /// Registers `handler` to answer queries named `name`, replacing the handler `name`
    /// had. A query asks about the workflow's state from outside
    /// (`spool workflow query --id ID --name status`) and never changes the run.
    ///
    /// The query's JSON input is deserialized into `I` (take `()` for a query whose
    /// input is `null`, `serde_json::Value` to accept anything), and the handler's `O`
    /// is serialized as the answer. If the input does not fit `I`, or `O` does not
    /// serialize, the caller gets an error with serde's message; a query with no
    /// handler gets an error listing the names that have one.
    ///
    /// Handlers answer at any time the workflow waits (on an activity, a timer, a
    /// signal, anything), and after the run has ended too: the registry outlives the
    /// workflow function, so register handlers early and keep their state current to
    /// the end. Share state with the workflow through `Rc<Cell<..>>` or
    /// `Rc<RefCell<..>>`, and do not hold a `RefCell` borrow across a wait (the
    /// handler borrows it while the workflow waits).
    ///
    /// A handler must only read: queries are not journaled, so a handler that changed
    /// workflow state would make the run take a different path on its next replay. It
    /// cannot reach the [`Context`], so it cannot start activities or timers. A panic
    /// in a handler traps the instance the host built to answer the query; the run
    /// itself is not affected.
    ///
    /// # Panics
    ///
    /// If `name` starts with `spool.`: those names are reserved for the host.
    ///
    /// ```no_run
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use serde::Serialize;
    /// use spool_sdk::{Context, WorkflowError};
    ///
    /// #[derive(Clone, Serialize)]
    /// struct Progress {
    ///     step: &'static str,
    ///     done: u32,
    /// }
    ///
    /// fn import(ctx: &Context, files: Vec<String>) -> Result<u32, WorkflowError> {
    ///     let progress = Rc::new(RefCell::new(Progress { step: "importing", done: 0 }));
    ///     let state = Rc::clone(&progress);
    ///     // `spool workflow query --id ID --name progress` → {"step":"importing","done":3}
    ///     ctx.query_handler("progress", move |()| state.borrow().clone());
    ///     for file in &files {
    ///         ctx.activity("files.import").input(file).call::<()>()?;
    ///         progress.borrow_mut().done += 1;
    ///     }
    ///     progress.borrow_mut().step = "done"; // still answered after the run ends
    ///     let done = progress.borrow().done;
    ///     Ok(done)
    /// }
    /// ```
    pub fn query_handler<I, O, F>(&self, name: impl Into<String>, handler: F)
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: Fn(I) -> O + 'static,
    {
        let name = name.into();
        check_user_query(&name);
        let query = name.clone();
        register(
            name,
            Rc::new(move |input: &str| {
                let input: I = serde_json::from_str(input)
                    .map_err(|e| format!("query {query:?}: input did not deserialize: {e}"))?;
                serde_json::to_string(&handler(input))
                    .map_err(|e| format!("query {query:?}: answer did not serialize: {e}"))
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    //! Each test runs on its own thread, so each starts with an empty registry.

    use serde::Deserialize;
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;
    use crate::wait::testing::{listening, Script};
    use crate::wait::{any, ActivityHandle, TimerHandle};
    use crate::{Outcome, WorkflowError};

    /// A context with a `count` query answering `{"count": n}` and an `add` signal
    /// handler adding to n.
    fn counter() -> (Context, Rc<Cell<u32>>) {
        let ctx = Context::new();
        let count = Rc::new(Cell::new(0));
        let c = Rc::clone(&count);
        ctx.query_handler("count", move |()| serde_json::json!({ "count": c.get() }));
        let c = Rc::clone(&count);
        ctx.on_signal("add", move |n: u32| c.set(c.get() + n));
        (ctx, count)
    }

    #[test]
    fn a_handler_decodes_its_input_and_encodes_its_answer() {
        #[derive(Deserialize)]
        struct Ask {
            times: u32,
        }
        let ctx = Context::new();
        ctx.query_handler("twice", |ask: Ask| vec!["x"; ask.times as usize * 2]);
        assert_eq!(
            answer("twice", r#"{"times":2}"#),
            Ok(r#"["x","x","x","x"]"#.into())
        );
    }

    #[test]
    fn an_input_that_does_not_fit_is_an_error_with_the_serde_message() {
        let ctx = Context::new();
        ctx.query_handler("square", |n: u32| n * n);
        let err = answer("square", r#""seven""#).unwrap_err();
        assert!(
            err.starts_with(r#"query "square": input did not deserialize: invalid type: string"#),
            "{err}"
        );
        assert!(answer("square", "").is_err(), "empty input is not JSON");
        assert_eq!(answer("square", "7"), Ok("49".into()));
    }

    #[test]
    fn an_answer_that_does_not_serialize_is_an_error() {
        let ctx = Context::new();
        ctx.query_handler("map", |()| BTreeMap::from([((1, 2), 3)]));
        let err = answer("map", "null").unwrap_err();
        assert!(
            err.starts_with(r#"query "map": answer did not serialize: "#),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_query_lists_the_registered_names() {
        let _ = Context::new();
        assert_eq!(
            answer("status", "null"),
            Err(r#"no query handler named "status"; registered: none"#.into())
        );
        let ctx = Context::new();
        ctx.query_handler("b", |()| 1);
        ctx.query_handler("a", |()| 2);
        assert_eq!(
            answer("Status", "null"),
            Err(r#"no query handler named "Status"; registered: "b", "a""#.into())
        );
    }

    #[test]
    fn registering_a_name_again_replaces_its_handler_in_place() {
        let ctx = Context::new();
        for (name, mark) in [("a", 1), ("b", 2), ("a", 3)] {
            ctx.query_handler(name, move |()| mark);
        }
        assert_eq!(names(), ["a", "b"]);
        assert_eq!(answer("a", "null"), Ok("3".into()));
    }

    #[test]
    fn a_new_context_starts_with_no_handlers() {
        let ctx = Context::new();
        ctx.query_handler("status", |()| "old run");
        drop(ctx);
        let _ = Context::new();
        assert!(names().is_empty());
        assert!(answer("status", "null").is_err());
    }

    #[test]
    #[should_panic(
        expected = "cannot register a handler for query `spool.stack`: query names \
                               starting with `spool.` are reserved for the host"
    )]
    fn a_handler_for_a_reserved_name_is_refused() {
        Context::new().query_handler("spool.stack", |()| ());
    }

    #[test]
    fn handlers_answer_from_live_state_after_the_context_is_gone() {
        let (ctx, count) = counter();
        count.set(4);
        drop(ctx);
        assert_eq!(answer("count", "null"), Ok(r#"{"count":4}"#.into()));
        count.set(5);
        assert_eq!(answer("count", "null"), Ok(r#"{"count":5}"#.into()));
    }

    #[test]
    fn a_query_during_a_wait_is_answered_and_the_same_wait_goes_on() {
        let (ctx, count) = counter();
        let timer = TimerHandle::pending(7, Rc::clone(&ctx.cancel));
        let mut host = Script::new([
            Script::query(1, "count", "null"),
            Script::query(2, "nope", "null"),
            Script::query(3, "count", "1"),
            Script::timer(7),
        ]);
        timer.wait_on(&mut host).unwrap();
        assert_eq!(count.get(), 0);
        assert_eq!(host.responses[0], (1, Ok(r#"{"count":0}"#.into())));
        assert_eq!(
            host.responses[1],
            (
                2,
                Err(r#"no query handler named "nope"; registered: "count""#.into())
            )
        );
        let (id, err) = &host.responses[2];
        assert_eq!(*id, 3);
        assert!(err
            .as_ref()
            .unwrap_err()
            .contains("input did not deserialize"));
        // Four calls, each asking for exactly what the first asked for.
        assert_eq!(host.calls, vec![(vec![7], listening(&[])); 4]);
    }

    #[test]
    fn a_query_never_settles_a_handle_in_any() {
        let (ctx, _) = counter();
        let activity = ActivityHandle::pending("slow".to_owned(), 4, Rc::clone(&ctx.cancel));
        let stop = ctx.next_signal("stop");
        let mut host = Script::new([
            Script::query(1, "count", "null"),
            Script::signal("stop", "true"),
        ]);
        let ready = any(&ctx.cancel, &[&activity, &stop], &mut host).unwrap();
        assert_eq!(ready.index, 1);
        assert_eq!(ready.outcome, Outcome::Signal(Ok(serde_json::json!(true))));
        assert_eq!(host.responses.len(), 1);
        assert_eq!(host.calls, vec![(vec![4], listening(&["stop"])); 2]);
    }

    #[test]
    fn a_query_before_the_cancel_request_is_answered_and_the_cancel_still_interrupts() {
        let (ctx, _) = counter();
        let timer = TimerHandle::pending(2, Rc::clone(&ctx.cancel));
        let mut host = Script::new([Script::query(5, "count", "null"), Script::cancel("stop")]);
        let err = timer.wait_on(&mut host).unwrap_err();
        assert_eq!(err, WorkflowError::cancelled("stop"));
        assert_eq!(host.responses, [(5, Ok(r#"{"count":0}"#.into()))]);
        // After the cancel, a query is still answered and waits stop listening for it.
        let mut host = Script::new([Script::query(6, "count", "null"), Script::timer(2)]);
        timer.wait_on(&mut host).unwrap();
        assert_eq!(host.responses, [(6, Ok(r#"{"count":0}"#.into()))]);
        assert_eq!(host.calls, vec![(vec![2], vec![]); 2]);
    }

    #[test]
    fn a_handler_may_read_a_refcell_the_workflow_is_not_borrowing() {
        let ctx = Context::new();
        let log = Rc::new(RefCell::new(vec!["started"]));
        let l = Rc::clone(&log);
        ctx.query_handler("log", move |()| l.borrow().clone());
        log.borrow_mut().push("waiting");
        let timer = TimerHandle::pending(1, Rc::clone(&ctx.cancel));
        let mut host = Script::new([Script::query(1, "log", "null"), Script::timer(1)]);
        timer.wait_on(&mut host).unwrap();
        assert_eq!(host.responses, [(1, Ok(r#"["started","waiting"]"#.into()))]);
    }
}
