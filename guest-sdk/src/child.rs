//! Child workflows: a workflow starting another workflow and waiting for its result.
//!
//! A child is a run of its own, with its own id, journal and history; the host creates
//! it in the same transaction that journals the parent's `start-child` command, so a
//! crash never leaves a parent that started a child that does not exist (or the
//! reverse). The child's outcome comes back to the parent like an activity's, through
//! its handle. When the parent's run closes, children still running are handled by
//! their [`ParentClosePolicy`]; cancelling the parent passes the cancel request on to
//! its children (except abandoned ones).

use std::cell::RefCell;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::__bindings::spool::workflow::context as wit;
use crate::cancel::Cancellation;
use crate::wait::{await_one, Host, Outcome, Pending, Settled, Waitable, Wit};
use crate::{ActivityError, Awaitable, Context, WorkflowError};

/// What happens to a child that is still running when its parent's run closes
/// (completes, fails, is cancelled, terminated, or continues as new).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParentClosePolicy {
    /// The child is terminated: no work outlives its reason to exist. The default.
    #[default]
    Terminate,
    /// The child gets a cancel request, and may clean up before it ends.
    RequestCancel,
    /// The child runs on, on its own (fire and forget).
    Abandon,
}

impl ParentClosePolicy {
    fn to_wit(self) -> wit::ParentClosePolicy {
        match self {
            ParentClosePolicy::Terminate => wit::ParentClosePolicy::Terminate,
            ParentClosePolicy::RequestCancel => wit::ParentClosePolicy::RequestCancel,
            ParentClosePolicy::Abandon => wit::ParentClosePolicy::Abandon,
        }
    }
}

/// A child workflow being prepared; made by [`Context::child_workflow`].
///
/// Without [`id`](ChildWorkflowBuilder::id) the child's workflow id is
/// `"<parent workflow id>.child-<n>"`, where n counts the parent's commands (activities,
/// timers, children) so far: the same on every replay. Without
/// [`input`](ChildWorkflowBuilder::input) the child receives JSON `null`.
///
/// ```no_run
/// use spool_sdk::{Context, ParentClosePolicy, WorkflowError};
///
/// fn ship(ctx: &Context, order: &str) -> Result<String, WorkflowError> {
///     let tracking: String = ctx
///         .child_workflow("shipping")
///         .id(format!("ship-{order}"))
///         .input(&order)
///         .parent_close_policy(ParentClosePolicy::RequestCancel)
///         .call()?;
///     Ok(tracking)
/// }
/// ```
#[derive(Debug)]
#[must_use = "a child workflow does nothing until `start` or `call`"]
pub struct ChildWorkflowBuilder {
    workflow_type: String,
    workflow_id: Option<String>,
    input: Result<String, serde_json::Error>,
    policy: ParentClosePolicy,
    cancel: Rc<Cancellation>,
}

impl ChildWorkflowBuilder {
    /// Sets the child's workflow id. Starting a child whose id is taken by a running
    /// workflow fails its handle (error type `"already_running"`).
    pub fn id(mut self, workflow_id: impl Into<String>) -> Self {
        self.workflow_id = Some(workflow_id.into());
        self
    }

    /// Sets the child's input, serialized as JSON. If it does not serialize, the child
    /// never starts and waiting on it gives an error of kind
    /// [`InvalidInput`](crate::FailureKind::InvalidInput).
    pub fn input<T: Serialize + ?Sized>(mut self, input: &T) -> Self {
        self.input = serde_json::to_string(input);
        self
    }

    /// Sets what happens to the child if it is still running when this run closes.
    pub fn parent_close_policy(mut self, policy: ParentClosePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Starts the child and returns its handle at once, so that several children (and
    /// activities) can run at the same time.
    pub fn start(self) -> ChildWorkflowHandle {
        let input = match self.input {
            Ok(input) => input,
            Err(e) => {
                let error = ActivityError::invalid_input(&self.workflow_type, &e);
                let id = self.workflow_id.unwrap_or_default();
                return ChildWorkflowHandle::settled(id, Err(error.into()), self.cancel);
            }
        };
        let options = wit::ChildOptions {
            workflow_id: self.workflow_id.clone(),
            parent_close_policy: self.policy.to_wit(),
        };
        let handle = wit::start_child(&self.workflow_type, &input, &options);
        // The host's default id, spelled the same way.
        let workflow_id = self
            .workflow_id
            .unwrap_or_else(|| format!("{}.child-{handle}", wit::info().workflow_id));
        ChildWorkflowHandle {
            workflow_id,
            state: RefCell::new(ChildState::Pending(handle)),
            cancel: self.cancel,
        }
    }

    /// Starts the child, waits for it, and deserializes its output.
    ///
    /// # Errors
    ///
    /// As for [`ChildWorkflowHandle::result`].
    pub fn call<T: DeserializeOwned>(self) -> Result<T, WorkflowError> {
        self.start().result()
    }
}

#[derive(Debug)]
enum ChildState {
    Pending(u32),
    Done(Result<String, WorkflowError>),
}

/// A started child workflow. Wait for its result with
/// [`result`](ChildWorkflowHandle::result), or race it against other handles with
/// [`Context::any`].
///
/// Dropping the handle does not stop the child; its parent-close policy decides what
/// happens to it when the parent's run closes.
#[derive(Debug)]
pub struct ChildWorkflowHandle {
    workflow_id: String,
    state: RefCell<ChildState>,
    cancel: Rc<Cancellation>,
}

impl ChildWorkflowHandle {
    fn settled(
        workflow_id: String,
        result: Result<String, WorkflowError>,
        cancel: Rc<Cancellation>,
    ) -> Self {
        ChildWorkflowHandle {
            workflow_id,
            state: RefCell::new(ChildState::Done(result)),
            cancel,
        }
    }

    /// The child's workflow id: `spool workflow describe --id <it>` shows the child.
    pub fn workflow_id(&self) -> &str {
        &self.workflow_id
    }

    /// Waits for the child to end and deserializes its output. A child that continues
    /// as new is followed to the last run of its chain.
    ///
    /// # Errors
    ///
    /// The child's failure as it ended: its own error (kind and type kept), kind
    /// [`Cancelled`](crate::FailureKind::Cancelled) if it ended cancelled,
    /// [`Terminated`](crate::FailureKind::Terminated) if it was terminated; type
    /// `"already_running"` or `"unknown_workflow_type"` if it could not start. If the
    /// parent's own cancel request arrives during the wait: kind
    /// [`Cancelled`](crate::FailureKind::Cancelled), and the handle stays pending (the child
    /// has been asked to cancel too, and a later wait gets its outcome).
    pub fn result<T: DeserializeOwned>(&self) -> Result<T, WorkflowError> {
        self.result_from(&mut Wit)
    }

    pub(crate) fn result_from<T: DeserializeOwned>(
        &self,
        host: &mut impl Host,
    ) -> Result<T, WorkflowError> {
        if let Some(handle) = self.pending_handle() {
            self.settle_with(await_one(&self.cancel, host, handle)?);
        }
        match &*self.state.borrow() {
            ChildState::Done(Ok(raw)) => {
                serde_json::from_str(raw).map_err(|e| self.undecodable(&e, raw))
            }
            ChildState::Done(Err(e)) => Err(e.clone()),
            ChildState::Pending(_) => unreachable!("settled above"),
        }
    }

    fn undecodable(&self, error: &serde_json::Error, raw: &str) -> WorkflowError {
        ActivityError::invalid_output(&self.workflow_id, error, raw).into()
    }

    fn pending_handle(&self) -> Option<u32> {
        match *self.state.borrow() {
            ChildState::Pending(handle) => Some(handle),
            ChildState::Done(_) => None,
        }
    }

    fn settle_with(&self, settled: Settled) {
        let result = match settled {
            Settled::Child(result) => {
                result.map_err(|failure| ActivityError::from_wit(failure).into())
            }
            _ => panic!(
                "host reported an activity, timer or signal for child workflow `{}`",
                self.workflow_id
            ),
        };
        *self.state.borrow_mut() = ChildState::Done(result);
    }
}

impl Waitable for ChildWorkflowHandle {
    fn pending(&self) -> Option<Pending<'_>> {
        self.pending_handle().map(Pending::Handle)
    }

    fn settle(&self, settled: Settled) {
        self.settle_with(settled);
    }

    fn outcome(&self) -> Option<Outcome> {
        match &*self.state.borrow() {
            ChildState::Pending(_) => None,
            ChildState::Done(Ok(raw)) => Some(Outcome::Child(
                serde_json::from_str(raw).map_err(|e| self.undecodable(&e, raw)),
            )),
            ChildState::Done(Err(e)) => Some(Outcome::Child(Err(e.clone()))),
        }
    }
}

impl Awaitable for ChildWorkflowHandle {}

impl Context {
    /// Prepares a child workflow of type `workflow_type` (a workflow module uploaded in
    /// the same namespace). Finish with [`start`](ChildWorkflowBuilder::start) or
    /// [`call`](ChildWorkflowBuilder::call).
    ///
    /// ```no_run
    /// use spool_sdk::{Context, WorkflowError};
    ///
    /// fn onboard_all(ctx: &Context, users: &[String]) -> Result<usize, WorkflowError> {
    ///     // One child per user, all at once; each has its own history and retries.
    ///     let children: Vec<_> = users
    ///         .iter()
    ///         .map(|u| ctx.child_workflow("onboarding").id(format!("onboard-{u}")).input(u).start())
    ///         .collect();
    ///     let mut done = 0;
    ///     for child in &children {
    ///         match child.result::<serde_json::Value>() {
    ///             Ok(_) => done += 1,
    ///             Err(e) => ctx.log_warn(format!("{} failed: {e}", child.workflow_id())),
    ///         }
    ///     }
    ///     Ok(done)
    /// }
    /// ```
    pub fn child_workflow(&self, workflow_type: impl Into<String>) -> ChildWorkflowBuilder {
        ChildWorkflowBuilder {
            workflow_type: workflow_type.into(),
            workflow_id: None,
            input: Ok("null".to_owned()),
            policy: ParentClosePolicy::default(),
            cancel: Rc::clone(&self.cancel),
        }
    }
}
