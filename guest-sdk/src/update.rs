//! Updates: requests from outside that change the workflow's state and get an answer.
//!
//! `spool workflow update --id ID --name NAME --input JSON` reaches the workflow in
//! two steps. First the host asks the update's validator, in an instance of its own
//! (like a query): a validator that refuses keeps the update out of the journal, and
//! the caller gets the refusal. An accepted update is journaled and handed to the live
//! workflow at whatever wait it is in; [`Cancellation::await_next`] runs the validator
//! again (the state may have changed since) and the handler, and answers with
//! `respond-update`, which the host journals. The waiting code never sees the update;
//! [`Context::wait_condition`] looks at its condition again after each one.
//!
//! The handlers live in a thread-local registry, like the query handlers, because the
//! validation instance asks them from inside a wait, where only the SDK's internals
//! are at hand. A new [`Context`] (one per run) starts with an empty registry.
//!
//! [`Cancellation::await_next`]: crate::cancel::Cancellation::await_next

use std::cell::RefCell;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cancel::RESERVED_PREFIX;
use crate::Context;

/// Decodes the raw input and says whether the update may go ahead.
type Validator = Rc<dyn Fn(&str) -> Result<(), String>>;
/// Decodes the raw input, applies the update and encodes the answer.
type Handler = Rc<RefCell<dyn FnMut(&str) -> Result<String, String>>>;

struct Registered {
    name: String,
    validator: Option<Validator>,
    handler: Handler,
}

thread_local! {
    static HANDLERS: RefCell<Vec<Registered>> = const { RefCell::new(Vec::new()) };
}

/// Forgets every handler: a new run starts with none.
pub(crate) fn clear() {
    let old = HANDLERS.with_borrow_mut(std::mem::take);
    drop(old);
}

/// Whether any update handler is registered.
pub(crate) fn any_registered() -> bool {
    HANDLERS.with_borrow(|handlers| !handlers.is_empty())
}

/// Validates the update `name` with `input` (JSON) and, unless `validate_only`,
/// applies it: the handler's answer as JSON, or why the update was refused or failed.
///
/// # Panics
///
/// If the validator or the handler panics.
pub(crate) fn answer(name: &str, input: &str, validate_only: bool) -> Result<String, String> {
    // The closures run outside the borrow of the registry: they may register handlers.
    let found = HANDLERS.with_borrow(|handlers| {
        handlers
            .iter()
            .find(|h| h.name == name)
            .map(|h| (h.validator.clone(), Rc::clone(&h.handler)))
    });
    let Some((validator, handler)) = found else {
        let names: Vec<String> = HANDLERS
            .with_borrow(|handlers| handlers.iter().map(|h| format!("{:?}", h.name)).collect());
        let registered = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        return Err(format!(
            "no update handler named {name:?}; registered: {registered}"
        ));
    };
    if let Some(validator) = validator {
        validator(input)?;
    }
    if validate_only {
        return Ok("null".to_owned());
    }
    let mut handler = handler.borrow_mut();
    (*handler)(input)
}

impl Context {
    /// Registers `handler` for updates named `name`, replacing the handler `name` had.
    ///
    /// An update is a request from outside (`spool workflow update --id ID --name NAME
    /// --input JSON`) that may change the workflow's state and answers the caller:
    /// `Ok(O)` is serialized as the answer, `Err(message)` fails the update (the run
    /// goes on). Unlike a query it is journaled, so the handler may change state
    /// (shared with the workflow through `Rc<Cell<..>>` or `Rc<RefCell<..>>`), and on
    /// replay it runs again at the same point with the same input.
    ///
    /// Handlers run at whatever wait the workflow is in — an activity, a timer, a
    /// signal, anything — without interrupting it; [`Context::wait_condition`] checks
    /// its condition again after each update. A handler cannot reach the [`Context`]
    /// (it is `'static`), so it starts no activities: have it change state that the
    /// workflow acts on.
    ///
    /// # Panics
    ///
    /// If `name` starts with `spool.`: those names are reserved for the host.
    ///
    /// ```no_run
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use spool_sdk::Context;
    ///
    /// # fn f(ctx: &Context) {
    /// // `spool workflow update --id ID --name add_seats --input 3` → the new total.
    /// let seats = Rc::new(Cell::new(1_u32));
    /// let s = Rc::clone(&seats);
    /// ctx.update_handler("add_seats", move |more: u32| {
    ///     s.set(s.get() + more);
    ///     Ok(s.get())
    /// });
    /// # }
    /// ```
    pub fn update_handler<I, O, F>(&self, name: impl Into<String>, handler: F)
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: FnMut(I) -> Result<O, String> + 'static,
    {
        self.register_update(name.into(), None, handler);
    }

    /// Like [`Context::update_handler`], with a validator that can refuse an update
    /// before it is journaled.
    ///
    /// The host asks the validator first, in an instance of its own: a refusal
    /// (`Err(message)`) goes back to the caller as `update_rejected` and leaves no trace
    /// in the run. An accepted update is validated once more when it reaches the
    /// workflow, since the state may have changed in between (another update came
    /// first); a refusal then fails the update, journaled. A validator must only read.
    ///
    /// ```no_run
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use spool_sdk::Context;
    ///
    /// # fn f(ctx: &Context) {
    /// let limit = Rc::new(Cell::new(100_u64));
    /// let (check, apply) = (Rc::clone(&limit), Rc::clone(&limit));
    /// ctx.update_handler_with_validator(
    ///     "raise_limit",
    ///     move |to: &u64| {
    ///         if *to > check.get() { Ok(()) } else { Err(format!("{to} is not above {}", check.get())) }
    ///     },
    ///     move |to: u64| {
    ///         apply.set(to);
    ///         Ok(to)
    ///     },
    /// );
    /// # }
    /// ```
    pub fn update_handler_with_validator<I, O, V, F>(
        &self,
        name: impl Into<String>,
        validator: V,
        handler: F,
    ) where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        V: Fn(&I) -> Result<(), String> + 'static,
        F: FnMut(I) -> Result<O, String> + 'static,
    {
        let name = name.into();
        let update = name.clone();
        let validator: Validator = Rc::new(move |input: &str| validator(&decode(&update, input)?));
        self.register_update(name, Some(validator), handler);
    }

    fn register_update<I, O, F>(&self, name: String, validator: Option<Validator>, mut handler: F)
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: FnMut(I) -> Result<O, String> + 'static,
    {
        assert!(
            !name.starts_with(RESERVED_PREFIX),
            "cannot register a handler for update `{name}`: update names starting with \
             `{RESERVED_PREFIX}` are reserved for the host"
        );
        let update = name.clone();
        let handler: Handler = Rc::new(RefCell::new(move |input: &str| {
            let answer = handler(decode(&update, input)?)?;
            serde_json::to_string(&answer)
                .map_err(|e| format!("update {update:?}: answer did not serialize: {e}"))
        }));
        let registered = Registered {
            name,
            validator,
            handler,
        };
        HANDLERS.with_borrow_mut(|handlers| {
            match handlers.iter_mut().find(|h| h.name == registered.name) {
                Some(old) => *old = registered,
                None => handlers.push(registered),
            }
        });
    }
}

fn decode<I: DeserializeOwned>(update: &str, input: &str) -> Result<I, String> {
    serde_json::from_str(input)
        .map_err(|e| format!("update {update:?}: input did not deserialize: {e}"))
}

#[cfg(test)]
mod tests {
    //! Each test runs on its own thread, so each starts with an empty registry.

    use std::cell::Cell;

    use super::*;
    use crate::cancel::Cancellation;
    use crate::wait::testing::Script;
    use crate::wait::Delivered;

    fn counter(ctx: &Context) -> Rc<Cell<u32>> {
        let count = Rc::new(Cell::new(0_u32));
        let (check, apply) = (Rc::clone(&count), Rc::clone(&count));
        ctx.update_handler_with_validator(
            "add",
            move |n: &u32| {
                if check.get() + n <= 10 {
                    Ok(())
                } else {
                    Err("over ten".to_owned())
                }
            },
            move |n: u32| {
                apply.set(apply.get() + n);
                Ok(apply.get())
            },
        );
        count
    }

    #[test]
    fn validation_alone_changes_nothing_and_a_refusal_names_the_reason() {
        let ctx = Context::new();
        let count = counter(&ctx);
        assert_eq!(answer("add", "3", true), Ok("null".to_owned()));
        assert_eq!(count.get(), 0);
        assert_eq!(answer("add", "11", true), Err("over ten".to_owned()));
        let unknown = answer("remove", "1", true).unwrap_err();
        assert!(unknown.contains("\"add\""), "{unknown}");
        let undecodable = answer("add", "\"three\"", true).unwrap_err();
        assert!(undecodable.contains("did not deserialize"), "{undecodable}");
    }

    #[test]
    fn updates_are_applied_during_any_wait_and_the_wait_goes_on() {
        let ctx = Context::new();
        let count = counter(&ctx);
        let cancel = Cancellation::default();
        let mut host = Script::new([
            Script::update("u1", "add", "4", false),
            Script::update("u2", "add", "7", false),
            Script::completed(1, "\"done\""),
        ]);
        let delivered = cancel.await_next(&mut host, &[1], &[]).unwrap();
        assert!(matches!(delivered, Delivered::Handle(1, _)));
        assert_eq!(count.get(), 4, "the second update was refused on delivery");
        assert_eq!(
            host.update_responses,
            vec![
                ("u1".to_owned(), Ok("4".to_owned())),
                ("u2".to_owned(), Err("over ten".to_owned())),
            ]
        );
        assert_eq!(
            host.calls.len(),
            3,
            "one wait, asked again after each update"
        );
    }
}
