//! The replay state machine: one run's journal plus the cursor of the guest instance
//! that is currently running against it.
//!
//! It decides, for every command the guest issues, whether it repeats a journaled one
//! (replay: hand back the same handle, do nothing) or is new (journal it, then carry it
//! out), and for every `await-next`, which journaled result the guest gets. It performs
//! no I/O, so it is tested on its own, including by property tests that crash a run at
//! every event and replay it.
//!
//! Delivery rule: `await-next(handles)` returns the earliest completion in journal order
//! among the named handles that the guest has not consumed yet. Completions are journaled
//! in the order they happened, so this picks the same event live and on every replay.

use crate::clock::EpochMs;
use crate::ids::{Handle, ModuleHash, Seq, TypeName, WorkflowId};
use crate::journal::{ActivityOptions, Event, EventKind, ParentClosePolicy};
use std::fmt;

/// A command as the guest issues it.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    ScheduleActivity {
        name: String,
        input: String,
        options: ActivityOptions,
    },
    StartTimer {
        duration_ms: u64,
    },
    StartChild {
        workflow_type: TypeName,
        workflow_id: WorkflowId,
        input: String,
        parent_close_policy: ParentClosePolicy,
    },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::ScheduleActivity { name, input, .. } => {
                write!(
                    f,
                    "start-activity {name:?} with input {}",
                    abbreviate(input)
                )
            }
            Command::StartTimer { duration_ms } => write!(f, "start-timer {duration_ms} ms"),
            Command::StartChild {
                workflow_type,
                workflow_id,
                input,
                ..
            } => write!(
                f,
                "start-child {workflow_type} {workflow_id:?} with input {}",
                abbreviate(input)
            ),
        }
    }
}

fn describe_journaled(kind: &EventKind) -> String {
    match kind {
        EventKind::ActivityScheduled { name, input, .. } => {
            format!("start-activity {name:?} with input {}", abbreviate(input))
        }
        EventKind::TimerStarted { duration_ms, .. } => format!("start-timer {duration_ms} ms"),
        EventKind::ChildScheduled {
            workflow_type,
            workflow_id,
            input,
            ..
        } => format!(
            "start-child {workflow_type} {workflow_id:?} with input {}",
            abbreviate(input)
        ),
        other => other.type_name().to_owned(),
    }
}

fn abbreviate(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        s.to_owned()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    }
}

/// A replay that diverged from the journal. The run is kept (blocked), not failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("non-determinism at event seq {seq}: the journal has {journaled} but the workflow issued {issued}")]
pub struct NonDeterminism {
    pub seq: Seq,
    pub journaled: String,
    pub issued: String,
}

/// A guest that misuses the contract (e.g. waits on a handle it never created). Fails
/// the run: replaying the same code would do the same.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ContractViolation {
    #[error("await-next was called with no handles and no signals")]
    EmptyAwait,
    #[error("await-next was called with handle {0}, which the workflow never created")]
    UnknownHandle(Handle),
    #[error("await-next was called with handle {0}, whose result was already delivered")]
    AlreadyDelivered(Handle),
    #[error(
        "cancel-activity was called with handle {0}, which is not an activity the workflow started"
    )]
    NotAnActivity(Handle),
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("the journal is malformed: {0}")]
pub struct MalformedHistory(pub String);

/// What the first event of a run says.
#[derive(Clone, Debug, PartialEq)]
pub struct RunStart {
    pub workflow_type: TypeName,
    pub workflow_id: WorkflowId,
    pub input: String,
    pub seed: u64,
    pub module_hash: ModuleHash,
    pub start_ms: EpochMs,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Issued {
    /// The command repeats a journaled one: nothing to do.
    Replayed(Handle),
    /// The command is new: the event must be journaled and the command carried out.
    New(Box<Event>),
}

/// A command that has no result in the journal yet: what must be (re)started when a run
/// is resumed.
#[derive(Clone, Debug, PartialEq)]
pub enum Outstanding {
    Activity {
        handle: Handle,
        name: String,
        input: String,
        options: ActivityOptions,
        /// When it was scheduled: its schedule-to-close timeout counts from here.
        scheduled_at_ms: EpochMs,
    },
    Timer {
        handle: Handle,
        fire_at_ms: EpochMs,
    },
    /// An activity the workflow cancelled before its result came: its result is the
    /// cancellation.
    CancelledActivity {
        handle: Handle,
    },
}

impl Outstanding {
    /// The effect a command event asks for; None for events that are not commands
    /// (and for child workflows, which run on their own).
    pub fn of(event: &Event) -> Option<Self> {
        match &event.kind {
            EventKind::ActivityScheduled {
                handle,
                name,
                input,
                options,
            } => Some(Outstanding::Activity {
                handle: *handle,
                name: name.clone(),
                input: input.clone(),
                options: options.clone(),
                scheduled_at_ms: event.recorded_at_ms,
            }),
            EventKind::TimerStarted {
                handle, fire_at_ms, ..
            } => Some(Outstanding::Timer {
                handle: *handle,
                fire_at_ms: *fire_at_ms,
            }),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct RunState {
    start: RunStart,
    events: Vec<Event>,
    /// Indices into `events` of command events, in issue order (handle n is at n-1).
    commands: Vec<usize>,
    /// Indices into `events` of completion events, in journal order.
    completions: Vec<usize>,
    /// For each command (handle n at n-1), the position of its result in `completions`.
    results: Vec<Option<usize>>,
    /// Set once a run_completed or run_failed is journaled.
    closed: bool,
    cursor: Cursor,
}

/// Where the current guest instance is. Reset whenever a new instance replays the run.
#[derive(Debug, Default)]
struct Cursor {
    commands_issued: usize,
    /// Commands journaled when this instance started: below this the guest replays.
    replay_commands: usize,
    /// One flag per entry of `completions`.
    consumed: Vec<bool>,
    first_unconsumed: usize,
    virtual_now_ms: EpochMs,
}

impl RunState {
    pub fn new(events: Vec<Event>) -> Result<Self, MalformedHistory> {
        let start = match events.first() {
            Some(Event {
                seq: Seq(0),
                recorded_at_ms,
                kind:
                    EventKind::RunStarted {
                        workflow_type,
                        workflow_id,
                        input,
                        seed,
                        module_hash,
                    },
            }) => RunStart {
                workflow_type: workflow_type.clone(),
                workflow_id: workflow_id.clone(),
                input: input.clone(),
                seed: *seed,
                module_hash: module_hash.clone(),
                start_ms: *recorded_at_ms,
            },
            _ => {
                return Err(MalformedHistory(
                    "it does not begin with run_started".into(),
                ))
            }
        };
        let mut state = Self {
            start,
            events: Vec::with_capacity(events.len()),
            commands: Vec::new(),
            completions: Vec::new(),
            results: Vec::new(),
            closed: false,
            cursor: Cursor::default(),
        };
        for event in events {
            if event.seq.0 != state.events.len() as u64 {
                return Err(MalformedHistory(format!(
                    "event seq {} found where {} was expected",
                    event.seq,
                    state.events.len()
                )));
            }
            state.push(event)?;
        }
        state.begin_instance();
        Ok(state)
    }

    fn push(&mut self, event: Event) -> Result<(), MalformedHistory> {
        let index = self.events.len();
        if let Some(handle) = event.kind.command_handle() {
            if handle.0 as usize != self.commands.len() + 1 {
                return Err(MalformedHistory(format!(
                    "command at seq {} has handle {handle}, expected {}",
                    event.seq,
                    self.commands.len() + 1
                )));
            }
            self.commands.push(index);
            self.results.push(None);
        } else if let Some(handle) = event.kind.completes() {
            if handle.0 == 0 || handle.0 as usize > self.commands.len() {
                return Err(MalformedHistory(format!(
                    "seq {} completes handle {handle}, which no earlier command created",
                    event.seq
                )));
            }
            let slot = &mut self.results[handle.0 as usize - 1];
            if slot.is_some() {
                return Err(MalformedHistory(format!(
                    "seq {} is a second result for handle {handle}",
                    event.seq
                )));
            }
            *slot = Some(self.completions.len());
            self.completions.push(index);
            self.cursor.consumed.push(false);
        } else if event.kind.signal_name().is_some() || event.kind.received_update().is_some() {
            // Signals are delivered like results, in journal order, matched by name;
            // updates to whatever wait comes first.
            self.completions.push(index);
            self.cursor.consumed.push(false);
        } else if matches!(
            event.kind,
            EventKind::RunCompleted { .. }
                | EventKind::RunFailed { .. }
                | EventKind::RunTerminated { .. }
                | EventKind::RunContinuedAsNew { .. }
        ) {
            self.closed = true;
        }
        self.events.push(event);
        Ok(())
    }

    pub fn start(&self) -> &RunStart {
        &self.start
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn next_seq(&self) -> Seq {
        Seq(self.events.len() as u64)
    }

    /// Prepares for a fresh guest instance, which will replay from the first event.
    pub fn begin_instance(&mut self) {
        self.cursor = Cursor {
            commands_issued: 0,
            replay_commands: self.commands.len(),
            consumed: vec![false; self.completions.len()],
            first_unconsumed: 0,
            virtual_now_ms: self.start.start_ms,
        };
    }

    /// True while the guest re-issues commands that are already journaled.
    pub fn is_replaying(&self) -> bool {
        self.cursor.commands_issued < self.cursor.replay_commands
    }

    pub fn virtual_now_ms(&self) -> EpochMs {
        self.cursor.virtual_now_ms
    }

    /// The handle the guest's next command will get.
    pub fn next_handle(&self) -> Handle {
        Handle(self.cursor.commands_issued as u32 + 1)
    }

    /// Accepts a command from the guest. `now_ms` stamps the event if it is new.
    pub fn issue(&mut self, command: Command, now_ms: EpochMs) -> Result<Issued, NonDeterminism> {
        let number = self.cursor.commands_issued;
        let handle = Handle(number as u32 + 1);
        if let Some(&index) = self.commands.get(number) {
            let journaled = &self.events[index];
            let same = match (&journaled.kind, &command) {
                (
                    EventKind::ActivityScheduled {
                        name,
                        input,
                        options,
                        ..
                    },
                    Command::ScheduleActivity {
                        name: n,
                        input: i,
                        options: o,
                    },
                ) => name == n && input == i && options == o,
                (
                    EventKind::TimerStarted { duration_ms, .. },
                    Command::StartTimer { duration_ms: d },
                ) => duration_ms == d,
                (
                    EventKind::ChildScheduled {
                        workflow_type,
                        workflow_id,
                        input,
                        parent_close_policy,
                        ..
                    },
                    Command::StartChild {
                        workflow_type: t,
                        workflow_id: w,
                        input: i,
                        parent_close_policy: p,
                    },
                ) => {
                    workflow_type == t && workflow_id == w && input == i && parent_close_policy == p
                }
                _ => false,
            };
            if !same {
                return Err(NonDeterminism {
                    seq: journaled.seq,
                    journaled: describe_journaled(&journaled.kind),
                    issued: command.to_string(),
                });
            }
            self.cursor.commands_issued += 1;
            return Ok(Issued::Replayed(handle));
        }
        let kind = match command {
            Command::ScheduleActivity {
                name,
                input,
                options,
            } => EventKind::ActivityScheduled {
                handle,
                name,
                input,
                options,
            },
            Command::StartTimer { duration_ms } => EventKind::TimerStarted {
                handle,
                duration_ms,
                fire_at_ms: self.cursor.virtual_now_ms.saturating_add(duration_ms),
            },
            Command::StartChild {
                workflow_type,
                workflow_id,
                input,
                parent_close_policy,
            } => EventKind::ChildScheduled {
                handle,
                workflow_type,
                workflow_id,
                input,
                parent_close_policy,
            },
        };
        let event = self.append(kind, now_ms);
        self.cursor.commands_issued += 1;
        Ok(Issued::New(Box::new(event)))
    }

    /// Appends a result or run-end event (not a command) and returns it for journaling.
    pub fn record(&mut self, kind: EventKind, now_ms: EpochMs) -> Event {
        debug_assert!(
            kind.command_handle().is_none(),
            "commands go through issue()"
        );
        self.append(kind, now_ms)
    }

    fn append(&mut self, kind: EventKind, now_ms: EpochMs) -> Event {
        let event = Event {
            seq: self.next_seq(),
            recorded_at_ms: now_ms,
            kind,
        };
        self.push(event.clone())
            .expect("events built by RunState are well-formed");
        event
    }

    /// Checks the handles of an `await-next` call.
    pub fn check_await(
        &self,
        handles: &[Handle],
        signals: &[String],
    ) -> Result<(), ContractViolation> {
        if handles.is_empty() && signals.is_empty() {
            return Err(ContractViolation::EmptyAwait);
        }
        for &handle in handles {
            if handle.0 == 0 || handle.0 as usize > self.cursor.commands_issued {
                return Err(ContractViolation::UnknownHandle(handle));
            }
            let delivered =
                self.results[handle.0 as usize - 1].is_some_and(|p| self.cursor.consumed[p]);
            if delivered {
                return Err(ContractViolation::AlreadyDelivered(handle));
            }
        }
        Ok(())
    }

    /// The earliest journaled, undelivered result for one of `handles` or signal named
    /// in `signals`, marked as delivered; the virtual clock moves to its time. None:
    /// nothing that matches is journaled yet.
    pub fn next_completion(&mut self, handles: &[Handle], signals: &[String]) -> Option<Event> {
        let cursor = &mut self.cursor;
        let position = (cursor.first_unconsumed..self.completions.len()).find(|&p| {
            let kind = &self.events[self.completions[p]].kind;
            !cursor.consumed[p]
                && (kind.completes().is_some_and(|h| handles.contains(&h))
                    || kind
                        .signal_name()
                        .is_some_and(|n| signals.iter().any(|s| s == n))
                    || kind.received_update().is_some())
        })?;
        cursor.consumed[position] = true;
        while cursor.first_unconsumed < cursor.consumed.len()
            && cursor.consumed[cursor.first_unconsumed]
        {
            cursor.first_unconsumed += 1;
        }
        let event = self.events[self.completions[position]].clone();
        cursor.virtual_now_ms = cursor.virtual_now_ms.max(event.recorded_at_ms);
        Some(event)
    }

    /// Signals and updates journaled but not delivered to the current instance, in
    /// journal order: what a run that continues as new hands to its successor.
    pub fn undelivered_signals(&self) -> Vec<&Event> {
        self.completions
            .iter()
            .zip(&self.cursor.consumed)
            .filter(|(_, &used)| !used)
            .map(|(&i, _)| &self.events[i])
            .filter(|e| e.kind.signal_name().is_some() || e.kind.received_update().is_some())
            .collect()
    }

    /// Whether the update `update_id` is in the journal, and whether it has an answer.
    pub fn update_state(&self, update_id: &str) -> (bool, bool) {
        let received = self
            .events
            .iter()
            .any(|e| e.kind.received_update() == Some(update_id));
        let answered = self
            .events
            .iter()
            .any(|e| e.kind.answered_update() == Some(update_id));
        (received, answered)
    }

    /// Fails when the guest finished while journaled commands remain unissued: the
    /// module no longer does what the journal says it did.
    pub fn check_finished(&self) -> Result<(), NonDeterminism> {
        match self.commands.get(self.cursor.commands_issued) {
            None => Ok(()),
            Some(&index) => {
                let journaled = &self.events[index];
                Err(NonDeterminism {
                    seq: journaled.seq,
                    journaled: describe_journaled(&journaled.kind),
                    issued: "no further command (the workflow returned)".into(),
                })
            }
        }
    }

    /// Commands whose result is not journaled, in handle order.
    pub fn outstanding(&self) -> Vec<Outstanding> {
        self.commands
            .iter()
            .zip(&self.results)
            .filter(|(_, result)| result.is_none())
            .filter_map(|(&i, _)| {
                let outstanding = Outstanding::of(&self.events[i])?;
                Some(match outstanding {
                    Outstanding::Activity { handle, .. } if self.cancel_requested(handle) => {
                        Outstanding::CancelledActivity { handle }
                    }
                    other => other,
                })
            })
            .collect()
    }

    /// Whether the journal holds a cancel request for the activity of `handle`.
    pub fn cancel_requested(&self, handle: Handle) -> bool {
        self.events.iter().any(
            |e| matches!(e.kind, EventKind::ActivityCancelRequested { handle: h } if h == handle),
        )
    }

    /// Whether `handle` names an activity the current instance has issued.
    pub fn is_issued_activity(&self, handle: Handle) -> bool {
        let number = handle.0 as usize;
        number >= 1
            && number <= self.cursor.commands_issued
            && matches!(
                self.events[self.commands[number - 1]].kind,
                EventKind::ActivityScheduled { .. }
            )
    }

    /// True when `handle` names a journaled command that has no result yet.
    pub fn awaits_result(&self, handle: Handle) -> bool {
        let index = (handle.0 as usize).wrapping_sub(1);
        matches!(self.results.get(index), Some(None))
    }

    /// For a handle the guest waits on: the fire time if it is a pending timer.
    pub fn pending_timer_fire_at(&self, handle: Handle) -> Option<EpochMs> {
        let index = *self.commands.get((handle.0 as usize).checked_sub(1)?)?;
        match self.events[index].kind {
            EventKind::TimerStarted { fire_at_ms, .. } => Some(fire_at_ms),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn started() -> Event {
        Event {
            seq: Seq(0),
            recorded_at_ms: 1_000,
            kind: EventKind::RunStarted {
                workflow_type: TypeName("t".into()),
                workflow_id: WorkflowId("w".into()),
                input: "{}".into(),
                seed: 1,
                module_hash: ModuleHash("h".into()),
            },
        }
    }

    fn activity(name: &str, input: &str) -> Command {
        Command::ScheduleActivity {
            name: name.into(),
            input: input.into(),
            options: ActivityOptions::default(),
        }
    }

    #[test]
    fn replayed_commands_get_their_old_handles_and_new_ones_are_journaled() {
        let mut live = RunState::new(vec![started()]).unwrap();
        let Issued::New(first) = live.issue(activity("a", "1"), 1_001).unwrap() else {
            panic!("a fresh run replays nothing")
        };
        assert_eq!(first.seq, Seq(1));
        let done = live.record(
            EventKind::ActivityCompleted {
                handle: Handle(1),
                output: "\"x\"".into(),
                attempts: 1,
            },
            1_005,
        );

        let mut replay = RunState::new(vec![started(), *first, done]).unwrap();
        assert!(replay.is_replaying());
        assert_eq!(
            replay.issue(activity("a", "1"), 9_999).unwrap(),
            Issued::Replayed(Handle(1))
        );
        assert!(!replay.is_replaying());
        let delivered = replay.next_completion(&[Handle(1)], &[]).unwrap();
        assert_eq!(delivered.seq, Seq(2));
        assert_eq!(replay.virtual_now_ms(), 1_005);
        let Issued::New(timer) = replay
            .issue(Command::StartTimer { duration_ms: 50 }, 9_999)
            .unwrap()
        else {
            panic!("the timer is beyond the journal")
        };
        assert_eq!(
            timer.kind,
            EventKind::TimerStarted {
                handle: Handle(2),
                duration_ms: 50,
                fire_at_ms: 1_055
            }
        );
    }

    #[test]
    fn a_different_command_on_replay_names_seq_journaled_and_issued() {
        let mut live = RunState::new(vec![started()]).unwrap();
        let Issued::New(first) = live.issue(activity("charge", "{\"amount\":5}"), 1).unwrap()
        else {
            unreachable!()
        };
        let mut replay = RunState::new(vec![started(), *first]).unwrap();
        let err = replay.issue(activity("refund", "{}"), 2).unwrap_err();
        assert_eq!(err.seq, Seq(1));
        assert_eq!(
            err.journaled,
            "start-activity \"charge\" with input {\"amount\":5}"
        );
        assert_eq!(err.issued, "start-activity \"refund\" with input {}");
        assert!(err.to_string().contains("seq 1"));
    }

    #[test]
    fn returning_early_on_replay_is_non_determinism() {
        let mut live = RunState::new(vec![started()]).unwrap();
        let Issued::New(first) = live
            .issue(Command::StartTimer { duration_ms: 5 }, 1)
            .unwrap()
        else {
            unreachable!()
        };
        let replay = RunState::new(vec![started(), *first]).unwrap();
        assert_eq!(replay.check_finished().unwrap_err().seq, Seq(1));
    }

    #[test]
    fn awaiting_a_subset_leaves_other_results_for_later_in_journal_order() {
        let mut s = RunState::new(vec![started()]).unwrap();
        s.issue(activity("a", "1"), 1).unwrap();
        s.issue(activity("b", "2"), 1).unwrap();
        for handle in [2, 1] {
            s.record(
                EventKind::ActivityCompleted {
                    handle: Handle(handle),
                    output: handle.to_string(),
                    attempts: 1,
                },
                10 + handle as u64,
            );
        }
        assert_eq!(
            s.next_completion(&[Handle(1)], &[])
                .unwrap()
                .kind
                .completes(),
            Some(Handle(1))
        );
        assert_eq!(
            s.check_await(&[Handle(1)], &[]),
            Err(ContractViolation::AlreadyDelivered(Handle(1)))
        );
        assert_eq!(
            s.next_completion(&[Handle(1), Handle(2)], &[])
                .unwrap()
                .kind
                .completes(),
            Some(Handle(2))
        );
        assert_eq!(
            s.check_await(&[Handle(3)], &[]),
            Err(ContractViolation::UnknownHandle(Handle(3)))
        );
        assert_eq!(s.check_await(&[], &[]), Err(ContractViolation::EmptyAwait));
        assert_eq!(s.check_await(&[], &["approve".into()]), Ok(()));
    }

    #[test]
    fn signals_are_delivered_by_name_in_journal_order_and_wait_when_not_asked_for() {
        let mut s = RunState::new(vec![started()]).unwrap();
        s.issue(activity("a", "1"), 1).unwrap();
        let signal = |name: &str, input: &str| EventKind::SignalReceived {
            name: name.into(),
            input: input.into(),
        };
        s.record(signal("approve", "1"), 2_010);
        s.record(
            EventKind::ActivityCompleted {
                handle: Handle(1),
                output: "x".into(),
                attempts: 1,
            },
            2_011,
        );
        s.record(signal("approve", "2"), 2_012);
        s.record(signal("reject", "3"), 2_013);
        // Waiting on the activity alone leaves the earlier signal queued.
        let first = s.next_completion(&[Handle(1)], &[]).unwrap();
        assert_eq!(first.kind.completes(), Some(Handle(1)));
        let approve = |s: &mut RunState| match s.next_completion(&[], &["approve".into()]) {
            Some(Event {
                kind: EventKind::SignalReceived { input, .. },
                ..
            }) => Some(input),
            _ => None,
        };
        assert_eq!(approve(&mut s).as_deref(), Some("1"));
        assert_eq!(approve(&mut s).as_deref(), Some("2"));
        assert_eq!(approve(&mut s), None, "reject is not approve");
        let reject = s
            .next_completion(&[], &["approve".into(), "reject".into()])
            .unwrap();
        assert_eq!(reject.kind.signal_name(), Some("reject"));
        assert_eq!(s.virtual_now_ms(), 2_013);
    }

    #[test]
    fn outstanding_lists_commands_without_results() {
        let mut s = RunState::new(vec![started()]).unwrap();
        s.issue(activity("a", "1"), 1).unwrap();
        s.issue(Command::StartTimer { duration_ms: 10 }, 1).unwrap();
        s.record(EventKind::TimerFired { handle: Handle(2) }, 20);
        assert_eq!(
            s.outstanding(),
            vec![Outstanding::Activity {
                handle: Handle(1),
                name: "a".into(),
                input: "1".into(),
                options: ActivityOptions::default(),
                scheduled_at_ms: 1,
            }]
        );
    }

    #[test]
    fn malformed_histories_are_refused() {
        assert!(RunState::new(vec![]).is_err());
        let stray = Event {
            seq: Seq(1),
            recorded_at_ms: 1,
            kind: EventKind::TimerFired { handle: Handle(1) },
        };
        assert!(RunState::new(vec![started(), stray]).is_err());
        let event = |seq, kind| Event {
            seq: Seq(seq),
            recorded_at_ms: 1,
            kind,
        };
        let twice = vec![
            started(),
            event(
                1,
                EventKind::TimerStarted {
                    handle: Handle(1),
                    duration_ms: 1,
                    fire_at_ms: 2,
                },
            ),
            event(2, EventKind::TimerFired { handle: Handle(1) }),
            event(3, EventKind::TimerFired { handle: Handle(1) }),
        ];
        let err = RunState::new(twice).unwrap_err();
        assert!(err.0.contains("second result"), "{err}");
    }

    // ---- Property test: a scripted guest, crashed at every event, replays exactly. ----

    /// One step of a scripted guest. Inputs of later activities depend on the results
    /// the guest received, so a wrong delivery order shows up as a different command.
    #[derive(Clone, Debug)]
    enum Step {
        Activity,
        Timer(u64),
        /// Wait for any of the open handles picked by these indices.
        AwaitAny(Vec<usize>),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Activity),
            1 => (1u64..100).prop_map(Step::Timer),
            3 => proptest::collection::vec(0usize..8, 1..4).prop_map(Step::AwaitAny),
        ]
    }

    /// What the guest observed: the commands it issued and the events it received.
    #[derive(Debug, PartialEq, Default)]
    struct Trace {
        commands: Vec<Command>,
        received: Vec<Seq>,
    }

    /// Runs the script against `state`; when a result is missing, `world` completes
    /// one outstanding command (in an order drawn from `order`) and journals it.
    fn run_script(
        state: &mut RunState,
        script: &[Step],
        order: &mut impl Iterator<Item = usize>,
    ) -> Trace {
        state.begin_instance();
        let mut trace = Trace::default();
        let mut open: Vec<Handle> = Vec::new();
        let mut last_output = String::from("start");
        let mut clock = 1_000u64;
        for step in script {
            clock += 1;
            let command = match step {
                Step::Activity => activity("act", &format!("after {last_output}")),
                Step::Timer(ms) => Command::StartTimer { duration_ms: *ms },
                Step::AwaitAny(picks) => {
                    if open.is_empty() {
                        continue;
                    }
                    let mut handles: Vec<Handle> =
                        picks.iter().map(|p| open[p % open.len()]).collect();
                    handles.dedup();
                    let event = loop {
                        if let Some(event) = state.next_completion(&handles, &[]) {
                            break event;
                        }
                        let outstanding = state.outstanding();
                        let pick = &outstanding[order.next().unwrap_or(0) % outstanding.len()];
                        let kind = match pick {
                            Outstanding::Activity { handle, input, .. } => {
                                EventKind::ActivityCompleted {
                                    handle: *handle,
                                    output: format!("{}:{}", handle, input.len()),
                                    attempts: 1,
                                }
                            }
                            Outstanding::Timer { handle, .. } => {
                                EventKind::TimerFired { handle: *handle }
                            }
                            Outstanding::CancelledActivity { .. } => {
                                unreachable!("the scripted guest cancels nothing")
                            }
                        };
                        state.record(kind, clock);
                    };
                    let handle = event.kind.completes().unwrap();
                    open.retain(|h| *h != handle);
                    last_output = format!("{handle}@{}", event.seq);
                    trace.received.push(event.seq);
                    continue;
                }
            };
            trace.commands.push(command.clone());
            match state
                .issue(command, clock)
                .expect("a deterministic script never diverges")
            {
                Issued::Replayed(h) => open.push(h),
                Issued::New(e) => open.push(e.kind.command_handle().unwrap()),
            }
        }
        assert!(state.check_finished().is_ok());
        trace
    }

    proptest! {
        #[test]
        fn replay_from_any_crash_point_repeats_the_same_commands(
            script in proptest::collection::vec(step(), 1..40),
            order in proptest::collection::vec(0usize..16, 64),
        ) {
            let mut live = RunState::new(vec![started()]).unwrap();
            let original = run_script(&mut live, &script, &mut order.clone().into_iter().cycle());
            let journal = live.events().to_vec();

            // A full replay sees exactly what the live run saw and journals nothing new.
            let mut full = RunState::new(journal.clone()).unwrap();
            let replayed = run_script(&mut full, &script, &mut std::iter::empty());
            prop_assert_eq!(&replayed, &original);
            prop_assert_eq!(full.events().len(), journal.len());

            // A crash after any event: replay agrees with the original up to the crash
            // point; what follows may differ only in events that were never journaled.
            for cut in 1..=journal.len() {
                let prefix = journal[..cut].to_vec();
                let mut resumed = RunState::new(prefix.clone()).unwrap();
                let trace = run_script(&mut resumed, &script, &mut order.clone().into_iter().cycle());
                prop_assert_eq!(&resumed.events()[..cut], &prefix[..]);
                let journaled_commands = prefix.iter().filter(|e| e.kind.command_handle().is_some()).count();
                prop_assert_eq!(&trace.commands[..journaled_commands], &original.commands[..journaled_commands]);
            }
        }
    }
}
