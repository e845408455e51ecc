//! [`Checker`]: the one way to run Tier 1, and [`Certified`], the only proof that an action
//! may execute.
//!
//! A check evaluates every row of the lattice at one action (a point) over one input box
//! (the state, `prev.`, budgets and attributes as intervals) and reads each row's verdict.
//! Within a decision, and within a repair's search, many checks share the same state and
//! differ only in the action; evaluating the whole tape each time would repeat the
//! state-only part. The checker therefore remembers the inputs its slots were evaluated
//! at, bit for bit, and re-evaluates only the instructions that depend on the inputs that
//! changed.
//!
//! INVARIANT (fresh-slots): after [`Checker::check`], every slot a row verdict reads holds
//! the evaluation of its instruction at exactly the inputs of that check. It holds because
//! the choice of what to re-evaluate is made here, from a bitwise comparison of the new
//! inputs with the ones the slots were computed at ([`Change`]), and each re-evaluated list
//! holds every focus instruction that depends on an input of the kinds that changed
//! ([`Lattice::moving_real`] and its siblings, built with [`Tape::dependents`]). Callers
//! cannot choose a list, so they cannot read stale slots (the defect of
//! `Governor::critical_unsat`, which evaluated the tape by hand and forgot the linear
//! rows).
//!
//! [`Tape::dependents`]: crate::tier1::tape::Tape::dependents

use crate::lattice::Lattice;
use crate::policy::Criticality;
use crate::tier1::interval::Interval;
use crate::tier1::verdict::{read_rows, RowCheck, Status, Summary};

/// An action variable's declared range, as certification checks it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActionRange {
    /// Lower bound (encoded: enum indices and booleans have their natural ranges).
    pub min: f64,
    /// Upper bound.
    pub max: f64,
    /// Does it take whole values only (int, enum, bool)?
    pub whole: bool,
}

impl ActionRange {
    /// Is `u` a value of this variable: finite, in `[min, max]`, whole where it must be?
    #[inline]
    pub fn admits(&self, u: f64) -> bool {
        u >= self.min && u <= self.max && (!self.whole || u.fract() == 0.0)
    }
}

/// Which kinds of input differ between two checks: a real action variable, a discrete one,
/// anything else (state, `prev.`, budgets, attributes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Change {
    real: bool,
    discrete: bool,
    other: bool,
}

impl Change {
    /// How much an evaluation from this change costs, for choosing where to start: the
    /// lists nest (`moving_disc` and `moving_real` ⊆ `moving_any` ⊆ the focus).
    fn rank(self) -> u8 {
        match (self.other, self.real, self.discrete) {
            (true, _, _) => 4,
            (false, true, true) => 3,
            (false, true, false) => 2,
            (false, false, true) => 1,
            (false, false, false) => 0,
        }
    }
}

/// The inputs `slots` hold an evaluation at, and those slots.
#[derive(Clone, Debug, Default)]
struct Evaluated {
    slots: Vec<Interval>,
    /// Empty: nothing evaluated yet.
    at: Vec<Interval>,
}

/// Tier 1's working memory for one lattice (allocation-free after the first check), and
/// the verdicts of its last check.
#[derive(Clone, Debug)]
pub struct Checker {
    /// The [`Lattice::id`] the memory belongs to: a check of another lattice starts afresh.
    lattice: u64,
    now: Evaluated,
    /// An evaluation kept by [`Checker::mark`] to start later checks from.
    mark: Evaluated,
    /// The inputs of the check being made.
    work: Vec<Interval>,
    rows: Vec<RowCheck>,
    summary: Summary,
    /// The action of the last check (empty before the first).
    action: Vec<f64>,
    /// Does the last check's action lie within every action variable's range?
    in_range: bool,
}

/// An action Tier 1 has certified: every active critical row SAT over the whole input box
/// of the check, and every value within its variable's declared range.
///
/// Only [`Checker::certify`] constructs one (its field is private to this module), so
/// holding one is proof of a passed check. The governor executes nothing else (DESIGN.md:
/// "the checker has one entry point and returns a value that only it can construct").
#[derive(Clone, Debug, PartialEq)]
pub struct Certified {
    action: Vec<f64>,
}

impl Certified {
    /// The certified action (encoded, one value per action variable).
    pub fn action(&self) -> &[f64] {
        &self.action
    }
    /// The certified action, by value.
    pub fn into_action(self) -> Vec<f64> {
        self.action
    }
}

/// Why the last check did not certify its action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotCertified {
    /// Active critical rows that are not SAT (indices into [`Lattice::rows`]).
    pub rows: Vec<usize>,
    /// Action variables outside their declared range (indices into the action).
    pub out_of_range: Vec<usize>,
}

impl Checker {
    /// Working memory for `lat`.
    pub fn new(lat: &Lattice) -> Checker {
        Checker {
            lattice: lat.id,
            now: Evaluated {
                slots: lat.tape.slots(),
                at: Vec::new(),
            },
            mark: Evaluated::default(),
            work: Vec::new(),
            rows: vec![RowCheck::default(); lat.rows.len()],
            summary: Summary::default(),
            action: Vec::new(),
            in_range: false,
        }
    }

    /// Tier 1: every row of `lat` at the point `action` over the box `inputs` (the input
    /// vector of the policy's layout; its action slots are replaced by the points of
    /// `action`, one per action variable). Returns the counts; [`Checker::rows`] has each
    /// row's verdict and [`Checker::certify`] the verdict on the action.
    pub fn check(&mut self, lat: &Lattice, inputs: &[Interval], action: &[f64]) -> Summary {
        if self.lattice != lat.id || self.now.slots.len() != lat.tape.len() {
            *self = Checker::new(lat);
        }
        let n = lat.n_actions as usize;
        self.work.clear();
        self.work.extend_from_slice(inputs);
        self.work.resize(inputs.len().max(n), Interval::INVALID);
        for (k, w) in self.work.iter_mut().take(n).enumerate() {
            // A missing action value reads as INVALID: its rows are UNCERTAIN.
            *w = action
                .get(k)
                .map_or(Interval::INVALID, |&u| Interval::point(u));
        }
        self.action.clear();
        self.action.extend_from_slice(action);
        self.in_range = action.len() == n
            && lat
                .action_ranges
                .iter()
                .zip(action)
                .all(|(r, &u)| r.admits(u));

        let from_now = change(lat, &self.now.at, &self.work);
        let from_mark = change(lat, &self.mark.at, &self.work);
        let change = match (from_now, from_mark) {
            // The rows already hold the verdicts of exactly these inputs.
            (Some(a), _) if a.rank() == 0 => return self.summary,
            (Some(a), Some(b)) if b.rank() < a.rank() => {
                // INVARIANT (fresh-slots): the mark's slots are an evaluation at `mark.at`.
                self.now.slots.copy_from_slice(&self.mark.slots);
                self.now.at.clone_from(&self.mark.at);
                Some(b)
            }
            (a, _) => a,
        };
        let slots = &mut self.now.slots;
        match change {
            // Back at the mark's inputs: nothing to evaluate, the rows to read again.
            Some(c) if c.rank() == 0 => {}
            Some(Change {
                other: false,
                real,
                discrete,
            }) => {
                let ops = match (real, discrete) {
                    (true, true) => &lat.moving_any,
                    (true, false) => &lat.moving_real,
                    _ => &lat.moving_disc,
                };
                lat.tape.eval_subset(ops, &self.work, slots);
            }
            _ => lat.eval_focus(&self.work, slots),
        }
        lat.eval_linear(&self.work, slots);
        self.now.at.clone_from(&self.work);
        self.summary = read_rows(&lat.rows, slots, &mut self.rows);
        self.summary
    }

    /// Keep the current evaluation: a later check whose inputs differ from it in fewer
    /// kinds than from the latest starts from it (a repair's discrete nodes all start from
    /// the same real values, and differ from each other's last iterates in both kinds).
    pub fn mark(&mut self) {
        self.mark.slots.clone_from(&self.now.slots);
        self.mark.at.clone_from(&self.now.at);
    }

    /// The verdict on the last check's action: [`Certified`] when every active critical
    /// row is SAT and every value is in its declared range.
    pub fn certify(&self, lat: &Lattice) -> Result<Certified, NotCertified> {
        let rows: Vec<usize> = lat
            .rows
            .iter()
            .zip(&self.rows)
            .enumerate()
            .filter(|(_, (r, c))| {
                c.active && r.criticality == Criticality::Critical && c.status != Status::Sat
            })
            .map(|(i, _)| i)
            .collect();
        let out_of_range: Vec<usize> = lat
            .action_ranges
            .iter()
            .enumerate()
            .filter(|(k, r)| !self.action.get(*k).is_some_and(|&u| r.admits(u)))
            .map(|(k, _)| k)
            .collect();
        let checked = self.lattice == lat.id && !self.now.at.is_empty();
        if checked && self.in_range && rows.is_empty() && out_of_range.is_empty() {
            Ok(Certified {
                action: self.action.clone(),
            })
        } else {
            Err(NotCertified { rows, out_of_range })
        }
    }

    /// Each row's verdict at the last check (inactive rows have `active == false`).
    pub fn rows(&self) -> &[RowCheck] {
        &self.rows
    }

    /// The counts of the last check.
    pub fn summary(&self) -> Summary {
        self.summary
    }

    /// For barrier row `row` (an index into [`Lattice::rows`]) active at the last check,
    /// `h(x)` over the input box: the state is certainly inside the row's safe set when
    /// its lower bound is `>= 0`. `None` for other rows and inactive ones.
    pub fn safe_set(&self, lat: &Lattice, row: usize) -> Option<Interval> {
        let r = lat.rows.get(row)?;
        let k = r.safe_set?;
        if self.lattice != lat.id || !self.rows.get(row)?.active {
            return None;
        }
        // INVARIANT (fresh-slots): `k` is a root of the focus, never gated.
        Some(
            self.now
                .slots
                .get(k as usize)
                .copied()
                .unwrap_or(Interval::INVALID),
        )
    }

    /// The last check's evaluated slots, read-only: what Tier 2 linearises at. A slot
    /// outside what the last check needed (a row under a surely false guard, a rule) may
    /// hold an older value.
    pub fn slots(&self) -> &[Interval] {
        &self.now.slots
    }
}

/// How `work` differs from `at`, the inputs of an earlier evaluation; `None` when there is
/// no such evaluation to start from.
fn change(lat: &Lattice, at: &[Interval], work: &[Interval]) -> Option<Change> {
    if at.len() != work.len() {
        return None;
    }
    let n = lat.n_actions as usize;
    let mut c = Change::default();
    for (k, (a, w)) in at.iter().zip(work).enumerate() {
        // Bitwise: a NaN bound, or -0.0 against 0.0, counts as a change.
        let same = a.lo.to_bits() == w.lo.to_bits() && a.hi.to_bits() == w.hi.to_bits();
        if same {
            continue;
        }
        if k < n {
            if lat.action_ranges.get(k).is_some_and(|r| r.whole) {
                c.discrete = true;
            } else {
                c.real = true;
            }
        } else {
            c.other = true;
            break;
        }
    }
    Some(c)
}

impl Lattice {
    /// Evaluate the focus (every row's margin and guard) at `inputs`, skipping what only
    /// rows under a surely false, action-free guard need. The linear rows' margins are not
    /// on the tape: [`Lattice::eval_linear`] writes them after.
    pub(crate) fn eval_focus(&self, inputs: &[Interval], slots: &mut [Interval]) {
        // INVARIANT (gated-rows): an instruction is skipped only when every row that needs
        // it is under a guard that reads no action and is surely false here; such a row is
        // inactive, `read_rows` does not read its margin, and no guard, rule or other row
        // reads the skipped slots. (They keep older values: incremental re-checks within
        // one state, which re-evaluate only action-dependent instructions, never make such
        // a row active, since its guard reads no action.)
        self.tape.eval_subset(&self.focus_base, inputs, slots);
        for (g, ops) in &self.focus_gated {
            let off = slots
                .get(*g as usize)
                .is_some_and(|x| x.truth() == crate::tier1::interval::Truth::False);
            if !off {
                self.tape.eval_subset(ops, inputs, slots);
            }
        }
    }

    /// Write the margin of every linear row (see [`crate::tier1::linear`]) into `slots`.
    /// Every evaluation of the rows calls this after the tape.
    #[inline]
    pub(crate) fn eval_linear(&self, inputs: &[Interval], slots: &mut [Interval]) {
        if !self.linear_blocks.is_empty() {
            self.eval_blocks(inputs, slots);
        }
        for &i in &self.linear_single {
            if let Some(l) = self.linear.get(i as usize) {
                if let Some(s) = slots.get_mut(l.margin as usize) {
                    *s = crate::tier1::linear::eval(l, inputs);
                }
            }
        }
    }

    /// The blocks' part of [`Lattice::eval_linear`] (out of line: most policies have none,
    /// and their checks should not carry its code).
    #[inline(never)]
    fn eval_blocks(&self, inputs: &[Interval], slots: &mut [Interval]) {
        for b in &self.linear_blocks {
            crate::tier1::linear::eval_block(b, &self.linear, inputs, |l, v| {
                if let Some(s) = slots.get_mut(l.margin as usize) {
                    *s = v;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::policy::{Policy, VarType};
    use proptest::prelude::*;

    fn bundled() -> Vec<Policy> {
        [
            (
                "w.toml",
                include_str!("../../../../policies/warehouse-robot.toml"),
            ),
            (
                "a.toml",
                include_str!("../../../../policies/agent-tools.toml"),
            ),
            ("i.toml", include_str!("../../../../policies/i2os-v2.toml")),
        ]
        .iter()
        .map(|(n, t)| crate::load(n, t).unwrap())
        .collect()
    }

    /// A value of `[lo, hi]` (clamped to ±50) from `r` in `[0, 1)`, whole when asked.
    fn pick(lo: f64, hi: f64, whole: bool, r: f64) -> f64 {
        let (lo, hi) = (lo.max(-50.0), hi.min(50.0));
        if whole {
            (lo + (r * (hi - lo + 1.0)).floor()).min(hi)
        } else {
            lo + r * (hi - lo)
        }
    }

    fn state(p: &Policy, r: &[f64]) -> Vec<Interval> {
        let mut v = p.range_inputs();
        let mut k = 0;
        let mut next = || {
            k += 1;
            r[k % r.len()]
        };
        for s in &p.states {
            if let Some(slot) = s.slot {
                let whole = s.ty != VarType::Real;
                let x = pick(s.min, s.max, whole, next());
                v[slot as usize] = if whole {
                    Interval::point(x)
                } else {
                    Interval::around(x, s.noise + next() * 0.1)
                };
            }
        }
        for a in &p.actions {
            let whole = a.ty != VarType::Real;
            v[a.prev_slot as usize] = Interval::point(pick(a.min, a.max, whole, next()));
        }
        v
    }

    fn same_rows(a: &[RowCheck], b: &[RowCheck]) -> bool {
        let bits = |x: Interval| (x.lo.to_bits(), x.hi.to_bits());
        a.iter().zip(b).all(|(x, y)| {
            x.active == y.active
                && x.status == y.status
                && x.fault == y.fault
                && (bits(x.margin) == bits(y.margin)
                    || (x.margin.is_invalid() && y.margin.is_invalid()))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

        /// INVARIANT (fresh-slots), over every bundled policy: whatever the order of new
        /// states, moves of real or discrete action variables, marks and returns to them,
        /// each check's verdicts are bit for bit those of a fresh checker, and so is its
        /// certificate.
        #[test]
        fn every_check_is_a_fresh_check(
            which in 0usize..3,
            steps in proptest::collection::vec(
                (0u8..6, proptest::collection::vec(0.0f64..1.0, 24)), 1..14),
        ) {
            let p = &bundled()[which];
            let lat = &p.lattice;
            let mut t1 = Checker::new(lat);
            let mut inputs = state(p, &steps[0].1);
            let mut action: Vec<f64> = p.fallback.clone();
            let mut marked: Option<(Vec<Interval>, Vec<f64>)> = None;
            for (kind, r) in &steps {
                match kind {
                    0 => inputs = state(p, r),
                    1..=3 => {
                        // Real (1), discrete (2) or both (3) action variables move.
                        for (k, a) in p.actions.iter().enumerate() {
                            let whole = a.ty != VarType::Real;
                            let moves = match kind { 1 => !whole, 2 => whole, _ => true };
                            if moves {
                                action[k] = pick(a.min, a.max, whole, r[k % r.len()]);
                            }
                        }
                    }
                    4 => {
                        t1.mark();
                        marked = Some((inputs.clone(), action.clone()));
                    }
                    _ => {
                        if let Some((i, a)) = &marked {
                            inputs.clone_from(i);
                            action.clone_from(a);
                        }
                    }
                }
                let s = t1.check(lat, &inputs, &action);
                let mut fresh = Checker::new(lat);
                let f = fresh.check(lat, &inputs, &action);
                prop_assert_eq!(s, f);
                prop_assert!(same_rows(t1.rows(), fresh.rows()));
                prop_assert_eq!(t1.certify(lat), fresh.certify(lat));
            }
        }
    }

    /// A certificate is of the last check, of the lattice it was made with: a checker that
    /// has checked nothing, or another lattice, certifies nothing.
    #[test]
    fn a_certificate_names_the_action_of_the_last_check() {
        let ps = bundled();
        // agent-tools' fallback is certified over every declared range (the warehouse's
        // barrier rows are certified at decision time, from a state).
        let (w, a) = (&ps[1], &ps[0]);
        let mut t1 = Checker::new(&w.lattice);
        assert!(t1.certify(&w.lattice).is_err(), "nothing checked yet");
        t1.check(&w.lattice, &w.range_inputs(), &w.fallback);
        let c = t1.certify(&w.lattice).unwrap();
        assert_eq!(c.action(), w.fallback.as_slice());
        assert!(t1.certify(&a.lattice).is_err(), "another lattice");
        // Out of range (and not whole) values are never certified.
        let mut bad = w.fallback.clone();
        bad[0] = w.actions[0].max * 2.0 + 1.0;
        t1.check(&w.lattice, &w.range_inputs(), &bad);
        let e = t1.certify(&w.lattice).unwrap_err();
        assert_eq!(e.out_of_range, vec![0]);
    }
}
