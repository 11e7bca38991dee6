//! Fork evidence: every signature-valid entry seen at an `(actor, seq)`, the lowest id first.
//!
//! Almost every position holds one entry, so one is kept inline (a set per position cost about
//! 400 bytes an entry, a tenth of a large record's memory); a fork keeps its set.

use std::collections::BTreeSet;

use super::Record;
use crate::id::{DeviceId, EntryId};

/// An `(actor, seq)`.
pub(crate) type Position = (DeviceId, u64);

/// The entries seen at one position.
#[derive(Debug, Clone)]
pub(crate) enum AtPosition {
    One(EntryId),
    /// Two or more: a fork.
    Many(BTreeSet<EntryId>),
}

impl AtPosition {
    pub(crate) fn len(&self) -> usize {
        match self {
            AtPosition::One(_) => 1,
            AtPosition::Many(s) => s.len(),
        }
    }

    /// The lowest id: the fork's winner.
    pub(crate) fn first(&self) -> Option<&EntryId> {
        match self {
            AtPosition::One(h) => Some(h),
            AtPosition::Many(s) => s.first(),
        }
    }

    /// Every id, lowest first.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = &EntryId> + '_> {
        match self {
            AtPosition::One(h) => Box::new(std::iter::once(h)),
            AtPosition::Many(s) => Box::new(s.iter()),
        }
    }
}

/// Every position seen, with its entries.
#[derive(Debug, Clone, Default)]
pub(crate) struct Positions(super::FastMap<Position, AtPosition>);

impl Positions {
    pub(crate) fn get(&self, pos: &Position) -> Option<&AtPosition> {
        self.0.get(pos)
    }

    pub(crate) fn insert(&mut self, pos: Position, h: EntryId) {
        use std::collections::hash_map::Entry;
        match self.0.entry(pos) {
            Entry::Vacant(v) => {
                v.insert(AtPosition::One(h));
            }
            Entry::Occupied(mut o) => match o.get_mut() {
                AtPosition::One(old) if *old == h => {}
                AtPosition::One(old) => {
                    let set = BTreeSet::from([*old, h]);
                    o.insert(AtPosition::Many(set));
                }
                AtPosition::Many(s) => {
                    s.insert(h);
                }
            },
        }
    }

    pub(crate) fn remove(&mut self, pos: &Position, h: &EntryId) {
        let Some(at) = self.0.get_mut(pos) else {
            return;
        };
        match at {
            AtPosition::One(old) if old == h => {
                self.0.remove(pos);
            }
            AtPosition::One(_) => {}
            AtPosition::Many(s) => {
                s.remove(h);
                if let (1, Some(last)) = (s.len(), s.first().copied()) {
                    *at = AtPosition::One(last);
                }
            }
        }
    }
}

/// The forks a record has seen: the positions holding two or more signature-valid entries, with
/// every entry at each. An auditor reading a bundle in parts gives them to a fresh record
/// ([`Record::expecting_forks`]) to judge the bundle again with every fork known from the start.
#[derive(Debug, Clone, Default)]
pub struct Forks(Vec<(Position, BTreeSet<EntryId>)>);

impl Forks {
    /// How many positions are forked.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no position is forked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Record {
    /// Every fork seen so far (see [`Forks`]).
    pub fn forks(&self) -> Forks {
        Forks(
            self.positions
                .0
                .iter()
                .filter_map(|(p, at)| match at {
                    AtPosition::Many(s) => Some((*p, s.clone())),
                    AtPosition::One(_) => None,
                })
                .collect(),
        )
    }

    /// This (fresh) record, told of forks another record found in the same entries: an entry that
    /// loses a fork is then refused when it arrives, even when the entry it loses to comes later,
    /// so a record given the entries in parts never applies a loser (and never asks to be rebuilt).
    /// Only for forks found in the very entries this record is then given: a fork named here whose
    /// winner never arrives still refuses its other entries.
    pub fn expecting_forks(mut self, forks: Forks) -> Self {
        for (pos, set) in forks.0 {
            for h in set {
                self.positions.insert(pos, h);
            }
        }
        self
    }
}
