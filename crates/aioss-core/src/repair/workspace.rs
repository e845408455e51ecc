//! The per-solve state: every buffer and cache a repair writes, sized once for the policy
//! and reused by every repair of the stream (a repair allocates little beyond its answer).
//!
//! What lives here is either scratch (overwritten before it is read, within one step) or a
//! cache whose validity is part of its type: an `Option` ([`QuickQp`], the factored
//! Hessian's size) or a [`Memo`] (a cache that keeps its allocation while stale). No
//! flag beside the data says whether the data may be read.

use crate::policy::Policy;
use crate::qp::QpWorkspace;

use super::assemble::QpData;
use super::check::SearchCheck;
use super::info::SearchCounts;
use super::linearise::Linearise;
use super::quick::QuickQp;
use super::relax::Contraction;
use super::rows::Rows;
use super::screen::Screen;
use super::sqp::NodeState;

/// A cached value that is either current or stale; a stale value cannot be read, and
/// keeps its allocation for the next fill.
#[derive(Debug, Default)]
pub(super) struct Memo<T> {
    value: T,
    current: bool,
}

impl<T> Memo<T> {
    /// A stale cache holding `value` as its storage.
    pub(super) fn stale(value: T) -> Self {
        Memo {
            value,
            current: false,
        }
    }

    /// The value, when current.
    pub(super) fn get(&self) -> Option<&T> {
        self.current.then_some(&self.value)
    }

    /// Is the value current?
    pub(super) fn is_current(&self) -> bool {
        self.current
    }

    /// Mark the value stale.
    pub(super) fn invalidate(&mut self) {
        self.current = false;
    }

    /// The storage, to be brought up to date by the caller (stale contents included, for a
    /// filler that updates in place); the value is current from here on.
    pub(super) fn refill(&mut self) -> &mut T {
        self.current = true;
        &mut self.value
    }
}

/// Everything a repair writes. One per [`Repairer`](super::Repairer), so one per agent
/// stream: the warm-start active set and the kept QP carry from one repair to the next.
#[derive(Debug)]
pub(super) struct Workspace {
    /// The search's own Tier 1 (its verdicts guide the search; they certify nothing).
    pub(super) check: SearchCheck,
    /// The dense QP solver, with its factored Hessian and its copy of the last rows.
    pub(super) qp: QpWorkspace,
    /// The QP of the current SQP step, as assembled.
    pub(super) data: QpData,
    /// The linearisation's working memory (adjoints, one row's gradient).
    pub(super) lin: Linearise,
    /// The per-row state of the running node's SQP.
    pub(super) node: NodeState,
    /// Screening over the box of the real action ranges.
    pub(super) screen: Screen,
    /// Lattice rows active at the last solve (the warm start), sorted.
    pub(super) warm_rows: Vec<usize>,
    /// The first QP of the last repair's search, for the warm re-repair (`None` until a
    /// search of a policy that can take it has built one).
    pub(super) quick: Option<QuickQp>,
    /// The interval contraction that rules out the relaxation stages.
    pub(super) contraction: Contraction,
    /// The running counts of the current search.
    pub(super) counts: SearchCounts,
    /// This repair searches only the most relaxed stage ([`super::Repairer::repair_critical_only`]).
    pub(super) critical_only: bool,
}

impl Workspace {
    /// Working memory sized for `p`, whose rows are `rows`.
    pub(super) fn new(p: &Policy, rows: &Rows) -> Self {
        let lat = &p.lattice;
        let nr = rows.real.len();
        let nrows = lat.rows.len();
        let n_max = nr + nrows;
        let m_max = nrows + 2 * nr + 2 * nrows;
        Workspace {
            check: SearchCheck::new(p),
            qp: QpWorkspace::new(n_max.max(1), m_max.max(1)),
            data: QpData::new(n_max, m_max, nr),
            lin: Linearise::new(lat.tape.len(), nr),
            node: NodeState::new(nr, nrows),
            screen: Screen::new(p),
            warm_rows: Vec::new(),
            quick: None,
            contraction: Contraction::new(p),
            counts: SearchCounts::default(),
            critical_only: false,
        }
    }

    /// Forget what holds only for the last repair's inputs (the state may differ now).
    pub(super) fn begin_repair(&mut self) {
        self.check.begin_repair();
        self.screen.begin_repair();
    }
}
