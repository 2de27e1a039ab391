//! Fuel metering: what each activation of a run burnt, counted to its namespace
//! (`namespace_usage`) once, however often the run is replayed.
//!
//! An activation is measured where it ends: when the guest calls `await-next` (the fuel
//! left as it called the host), or when the instance ends (returned, trapped, continued
//! as new). Which activations count is decided by what they did to the journal, which
//! is the same live and on every replay:
//!
//! - one that journals a new event (a command, a cancel request, an update's answer, or
//!   the run's end) is counted, together with the activations before it that journaled
//!   nothing, in the write that journals its events (`Write::Append::usage`): once that
//!   commits, a replay finds the events and counts nothing;
//! - one whose events a replay finds journaled was counted when it ran live: it and the
//!   activations before it are dropped;
//! - one that journals nothing waits for the next one that does (or the run's end).
//!
//! So a run replayed after a restart or an eviction adds nothing, and a crash before a
//! commit loses nothing: the activations it would have counted run again, live.

use crate::journal::Usage;

/// What the current activation did to the journal; a new event outweighs a replayed one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Produced {
    #[default]
    Nothing,
    Replayed,
    New,
}

/// The fuel meter of one run's current guest instance.
#[derive(Debug, Default)]
pub(super) struct Meter {
    /// Fuel each activation starts with.
    budget: u64,
    /// Fuel left when the guest last called the host.
    fuel_left: u64,
    /// An activation is running: begun (at the instance's start or a delivery) and not
    /// yet measured.
    open: bool,
    produced: Produced,
    /// Activations that journaled nothing since the last one that did: not counted yet.
    carry: Usage,
    /// Counted, to be sent with the next write of the run's events.
    due: Usage,
}

impl Meter {
    /// A fresh instance replays from the start: its first activation begins now.
    /// What earlier instances left uncounted is counted again by this one's replay.
    pub(super) fn begin_instance(&mut self, budget: u64) {
        self.budget = budget;
        self.fuel_left = budget;
        self.open = true;
        self.produced = Produced::Nothing;
        self.carry = Usage::default();
    }

    /// The guest got an event: a new activation begins with a full budget.
    pub(super) fn begin_activation(&mut self) {
        self.fuel_left = self.budget;
        self.open = true;
        self.produced = Produced::Nothing;
    }

    pub(super) fn host_called(&mut self, fuel_left: u64) {
        self.fuel_left = fuel_left;
    }

    /// The current activation journaled a new event.
    pub(super) fn produced_new(&mut self) {
        self.produced = self.produced.max(Produced::New);
    }

    /// The current activation repeated an event the journal holds.
    pub(super) fn produced_replayed(&mut self) {
        self.produced = self.produced.max(Produced::Replayed);
    }

    /// The guest waits (it called `await-next`): the activation ends with the fuel it
    /// had as it called.
    pub(super) fn end_activation(&mut self) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        let this = Usage {
            fuel: self.budget.saturating_sub(self.fuel_left),
            activations: 1,
        };
        match std::mem::take(&mut self.produced) {
            Produced::New => {
                let carried = std::mem::take(&mut self.carry);
                self.due.add(carried);
                self.due.add(this);
            }
            Produced::Replayed => self.carry = Usage::default(),
            Produced::Nothing => self.carry.add(this),
        }
    }

    /// The instance ended the run (returned, trapped or continued as new) with
    /// `fuel_left`: the run's end is a new event, so everything not yet counted is.
    pub(super) fn end_run(&mut self, fuel_left: u64) {
        if self.open {
            self.fuel_left = fuel_left;
            self.produced_new();
            self.end_activation();
        }
        self.settle();
    }

    /// Counts what is carried: the run ends without the guest (terminated).
    pub(super) fn settle(&mut self) {
        let carried = std::mem::take(&mut self.carry);
        self.due.add(carried);
    }

    /// What goes with the write that journals the counted activations' events.
    pub(super) fn take_due(&mut self) -> Usage {
        std::mem::take(&mut self.due)
    }

    /// The events the count was for will not be journaled (a failed commit, a blocked
    /// run): the next instance counts again whatever it runs live.
    pub(super) fn discard(&mut self) {
        self.due = Usage::default();
        self.carry = Usage::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One activation: `fuel` burnt, then what it journaled.
    fn activation(meter: &mut Meter, fuel: u64, produced: Produced) {
        meter.begin_activation();
        meter.host_called(meter.budget - fuel);
        match produced {
            Produced::New => meter.produced_new(),
            Produced::Replayed => meter.produced_replayed(),
            Produced::Nothing => {}
        }
        meter.end_activation();
    }

    #[test]
    fn activations_that_journal_nothing_are_counted_with_the_next_that_does() {
        let mut meter = Meter::default();
        meter.begin_instance(1_000);
        activation(&mut meter, 10, Produced::Nothing);
        activation(&mut meter, 20, Produced::Nothing);
        assert_eq!(meter.take_due(), Usage::default());
        activation(&mut meter, 30, Produced::New);
        assert_eq!(
            meter.take_due(),
            Usage {
                fuel: 60,
                activations: 3
            }
        );
        activation(&mut meter, 5, Produced::Nothing);
        meter.begin_activation();
        meter.end_run(1_000 - 7);
        assert_eq!(
            meter.take_due(),
            Usage {
                fuel: 12,
                activations: 2
            }
        );
    }

    #[test]
    fn a_replay_counts_only_what_was_not_committed_so_the_total_is_the_same() {
        // Live: new (committed), nothing, nothing, then a crash before the next commit.
        let script = [
            (10, Produced::New),
            (20, Produced::Nothing),
            (30, Produced::New),
            (40, Produced::Nothing),
            (50, Produced::New),
        ];
        let mut live = Meter::default();
        live.begin_instance(1_000);
        let mut uninterrupted = Usage::default();
        for &(fuel, produced) in &script {
            activation(&mut live, fuel, produced);
            uninterrupted.add(live.take_due());
        }
        assert_eq!(uninterrupted.fuel, 150);
        assert_eq!(uninterrupted.activations, 5);

        // Crashed after committing the first three activations' events: the replay
        // finds activations 1 and 3 journaled, then runs 4 and 5 live.
        let mut committed = Usage::default();
        let mut before_crash = Meter::default();
        before_crash.begin_instance(1_000);
        for &(fuel, produced) in &script[..3] {
            activation(&mut before_crash, fuel, produced);
            committed.add(before_crash.take_due());
        }
        let mut replay = Meter::default();
        replay.begin_instance(1_000);
        for (i, &(fuel, produced)) in script.iter().enumerate() {
            let produced = if i < 3 && produced == Produced::New {
                Produced::Replayed
            } else {
                produced
            };
            activation(&mut replay, fuel, produced);
            committed.add(replay.take_due());
        }
        assert_eq!(committed, uninterrupted);
    }
}
