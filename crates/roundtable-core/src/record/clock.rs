//! Causal positions. A [`Clock`] names a point of the record: for every device, the highest
//! sequence number in its past. Every rule, the governance fold and the recount read the record
//! only through such a point.
//!
//! **Invariant:** a valid entry's clock is the merge of its dependencies' clocks with its own
//! position set, so valid entry `x` is in the past of a point exactly when the point's sequence
//! number for `x`'s author reaches `x`'s ([`Record::in_past`]).

use serde::{Deserialize, Serialize};

use super::{Meta, Record};
use crate::id::EntryId;

/// Causal position of an entry: for every device, the highest sequence number in its past, itself included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock(Vec<u64>);

impl Clock {
    pub(crate) fn get(&self, actor: u32) -> u64 {
        self.0.get(actor as usize).copied().unwrap_or(0)
    }
    pub(super) fn merge(&mut self, other: &Clock) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a = (*a).max(*b);
        }
    }
    pub(super) fn set(&mut self, actor: u32, seq: u64) {
        let i = actor as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, 0);
        }
        self.0[i] = seq;
    }
}

impl Record {
    /// The combined clock of a set of valid entries.
    pub(crate) fn clock_of(&self, heads: &[EntryId]) -> Clock {
        let mut c = Clock::default();
        for h in heads {
            if let Some(m) = self.ix.entries.get(h) {
                c.merge(&m.clock);
            }
        }
        c
    }

    /// Is valid entry `x` in the past described by `clock`?
    pub(crate) fn in_past(&self, clock: &Clock, x: &EntryId) -> Option<&Meta> {
        self.ix
            .entries
            .get(x)
            .map(|m| &**m)
            .filter(|m| clock.get(m.actor) >= m.seq)
    }
}
