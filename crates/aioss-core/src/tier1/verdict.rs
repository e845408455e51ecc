//! Row verdicts: what a row's margin interval says (SAT / VIOLATED / UNCERTAIN), and the
//! counts a check reports. Part of the trusted checker (see [`crate::tier1`]).

use crate::lattice::Row;
use crate::policy::{Criticality, Sense};
use crate::tier1::interval::{Interval, Truth};

/// A row's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Holds for every state in the box.
    Sat,
    /// Fails for every state in the box.
    Violated,
    /// Could not be decided (straddles the bound, or undefined somewhere in the box).
    Uncertain,
}

impl Status {
    /// The name used in decisions.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sat => "SAT",
            Status::Violated => "VIOLATED",
            Status::Uncertain => "UNCERTAIN",
        }
    }
}

/// Tier 1's result for one row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowCheck {
    /// Does the row apply (its guard is not surely false)?
    pub active: bool,
    /// SAT / VIOLATED / UNCERTAIN (meaningful when active).
    pub status: Status,
    /// The margin interval (non-negative means satisfied; ±1 for boolean rows).
    pub margin: Interval,
    /// A numerical fault: the margin is undefined somewhere in the box.
    pub fault: bool,
}

impl Default for RowCheck {
    fn default() -> Self {
        RowCheck {
            active: false,
            status: Status::Uncertain,
            margin: Interval::INVALID,
            fault: false,
        }
    }
}

/// Counts over the active rows of one check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Active rows that are SAT.
    pub sat: u32,
    /// Active rows that are VIOLATED.
    pub violated: u32,
    /// Active rows that are UNCERTAIN.
    pub uncertain: u32,
    /// Rows whose guard is surely false.
    pub inactive: u32,
    /// Active critical rows that are not SAT.
    pub critical_unsat: u32,
}

/// The status a margin gives a row of the given sense.
#[inline]
pub fn status_of(sense: Sense, m: Interval) -> (Status, Interval, bool) {
    if m.is_invalid() {
        return (Status::Uncertain, m, true);
    }
    match sense {
        Sense::Bool => match m.truth() {
            Truth::True => (Status::Sat, Interval::point(1.0), false),
            Truth::False => (Status::Violated, Interval::point(-1.0), false),
            Truth::Unknown => (Status::Uncertain, Interval::new(-1.0, 1.0), false),
        },
        Sense::Le | Sense::Eq => {
            let s = if m.lo >= 0.0 {
                Status::Sat
            } else if m.hi < 0.0 {
                Status::Violated
            } else {
                Status::Uncertain
            };
            (s, m, false)
        }
        Sense::Lt | Sense::Ne => {
            let s = if m.lo > 0.0 {
                Status::Sat
            } else if m.hi <= 0.0 {
                Status::Violated
            } else {
                Status::Uncertain
            };
            (s, m, false)
        }
    }
}

/// Read the verdict of each of `rows` from an evaluated slot array into `out` (one per row;
/// extra entries of `out` are left alone). A row is inactive only when its guard is surely
/// false; a missing slot reads as INVALID, which only makes a row UNCERTAIN.
pub(crate) fn read_rows(rows: &[Row], slots: &[Interval], out: &mut [RowCheck]) -> Summary {
    let mut s = Summary::default();
    for (row, o) in rows.iter().zip(out.iter_mut()) {
        let get = |k: u32| slots.get(k as usize).copied().unwrap_or(Interval::INVALID);
        let active = row.guard.is_none_or(|g| get(g).truth() != Truth::False);
        if !active {
            *o = RowCheck::default();
            s.inactive += 1;
            continue;
        }
        let (status, margin, fault) = status_of(row.sense, get(row.margin));
        *o = RowCheck {
            active,
            status,
            margin,
            fault,
        };
        match status {
            Status::Sat => s.sat += 1,
            Status::Violated => s.violated += 1,
            Status::Uncertain => s.uncertain += 1,
        }
        if status != Status::Sat && row.criticality == Criticality::Critical {
            s.critical_unsat += 1;
        }
    }
    s
}
