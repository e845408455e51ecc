//! The compiled constraint lattice: every rule, guard, row and budget of a policy on one
//! tape, with the lists of instructions Tier 1 evaluates.
//!
//! This is the compiler's output (with [`crate::tape`] and [`crate::load()`], the second
//! thing a reviewer reads after [`crate::tier1`]): the checker trusts that a row's margin
//! slot computes `rhs − lhs` of the policy's comparison, and that the lists here hold
//! every instruction their roots depend on. Checking is [`crate::tier1::Checker`]'s.

use crate::expr::typeck::{Func, Op2};
use crate::interval::Interval;
use crate::policy::{ConstraintKind, Criticality, Policy, Sense};
use crate::tape::{Inst, Tape, TapeBuilder};
pub use crate::tier1::verdict::{status_of, RowCheck, Status, Summary};

/// One compiled row.
#[derive(Clone, Debug)]
pub struct Row {
    /// Index of its constraint in `Policy::constraints`.
    pub constraint: usize,
    /// `id` or `id#k`.
    pub name: String,
    /// The comparison.
    pub sense: Sense,
    /// Slot of the left side (the condition, for [`Sense::Bool`]).
    pub lhs: u32,
    /// Slot of the right side.
    pub rhs: u32,
    /// Slot of the margin (the condition itself for [`Sense::Bool`]).
    pub margin: u32,
    /// Slot of the constraint's guard.
    pub guard: Option<u32>,
    /// The constraint's criticality.
    pub criticality: Criticality,
    /// The constraint's kind.
    pub kind: ConstraintKind,
    /// Does the row read anything but the action (state, prev, budgets, attributes)?
    pub reads_state: bool,
    /// The tape instructions the margin depends on, ascending (for reverse-mode gradients).
    pub cone: Vec<u32>,
    /// For a barrier row, the slot of `h(x)` at the current state (the safe set is
    /// `h >= 0`); evaluated with the row's guard by every full check.
    pub safe_set: Option<u32>,
}

/// The compiled lattice: one tape for every rule, guard, row and budget.
#[derive(Clone, Debug, Default)]
pub struct Lattice {
    /// This compilation's identity (unique in the process; a clone shares it), so working
    /// memory built for one lattice is never read as another's.
    pub id: u64,
    /// Per action variable, its declared range (what a certified action must lie in).
    pub action_ranges: Vec<crate::tier1::ActionRange>,
    /// The focus instructions that depend on a real action variable: all a check must
    /// re-evaluate when only real action values changed.
    pub moving_real: crate::tape::OpList,
    /// The focus instructions that depend on a discrete action variable.
    pub moving_disc: crate::tape::OpList,
    /// The focus instructions that depend on any action variable.
    pub moving_any: crate::tape::OpList,
    /// The rules' conditions and everything they read (the governor's classification;
    /// not part of a check).
    pub rule_ops: crate::tape::OpList,
    /// The shared tape.
    pub tape: Tape,
    /// Rows, grouped by constraint in policy order.
    pub rows: Vec<Row>,
    /// Slot of each rule's `when`.
    pub rule_slots: Vec<u32>,
    /// Slot of each budget's `add`.
    pub budget_slots: Vec<u32>,
    /// Number of action slots (the first slots of the input vector).
    pub n_actions: u32,
    /// The tape instruction reading each action variable's slot (`None` if no row reads it).
    pub action_inst: Vec<Option<u32>>,
    /// The tape's focus (what a check evaluates) split by the guards that read
    /// no action variable: what every check evaluates, and per such guard slot the
    /// instructions only the rows under that guard need, skipped when the guard is surely
    /// false. (Most guards read only the state; a row under a false one is inactive, and
    /// its margin is never read.)
    pub focus_base: crate::tape::OpList,
    /// See [`Lattice::focus_base`].
    pub focus_gated: Vec<(u32, crate::tape::OpList)>,
    /// The rows whose margin is linear in the inputs, evaluated by the fast path of
    /// [`crate::linear`] instead of the tape.
    pub linear: Vec<crate::linear::LinearRow>,
    /// The rows of [`Lattice::linear`] that share their inputs with others, evaluated
    /// together ([`crate::linear::LinearBlock`]).
    pub linear_blocks: Vec<crate::linear::LinearBlock>,
    /// The indices of the other rows of [`Lattice::linear`], evaluated one by one.
    pub linear_single: Vec<u32>,
}

impl Lattice {
    /// Compile a validated policy's rules, guards, rows and budgets onto one tape.
    pub fn compile(p: &Policy) -> Lattice {
        let mut b = TapeBuilder::new();
        let rule_slots: Vec<u32> = p.rules.iter().map(|r| b.add(&r.when)).collect();
        let n_actions = u32::try_from(p.actions.len()).unwrap_or(u32::MAX);
        let mut rows = Vec::new();
        let mut linear = Vec::new();
        for (ci, c) in p.constraints.iter().enumerate() {
            let guard = c.guard.as_ref().map(|g| b.add(g));
            for r in &c.rows {
                let lhs = b.add(&r.lhs);
                let rhs = b.add(&r.rhs);
                let margin = match r.sense {
                    Sense::Le | Sense::Lt => b.inst(Inst::Bin(Op2::Sub, rhs, lhs)),
                    Sense::Eq => {
                        let d = b.inst(Inst::Bin(Op2::Sub, lhs, rhs));
                        let a = b.inst(Inst::Un(Func::Abs, d));
                        b.inst(Inst::Un(Func::Neg, a))
                    }
                    Sense::Ne => {
                        let d = b.inst(Inst::Bin(Op2::Sub, lhs, rhs));
                        b.inst(Inst::Un(Func::Abs, d))
                    }
                    Sense::Bool => lhs,
                };
                if let Some(l) = crate::linear::linear_row(r.sense, &r.lhs, &r.rhs, margin) {
                    linear.push(l);
                }
                let safe_set = r.safe_set.as_ref().map(|h| b.add(h));
                let mut reads_state = false;
                let mut note = |s: u32| reads_state |= s >= n_actions;
                r.lhs.inputs(&mut note);
                r.rhs.inputs(&mut note);
                if let Some(g) = &c.guard {
                    g.inputs(&mut note);
                }
                rows.push(Row {
                    constraint: ci,
                    name: r.name.clone(),
                    sense: r.sense,
                    lhs,
                    rhs,
                    margin,
                    guard,
                    criticality: c.criticality,
                    kind: c.kind,
                    reads_state,
                    cone: Vec::new(),
                    safe_set,
                });
            }
        }
        let budget_slots = p.budgets.iter().map(|bu| b.add(&bu.add)).collect();
        let mut tape = b.finish();
        // INVARIANT (linear-margins): a linear row's margin is written by `eval_linear`
        // after the tape, never computed on the focus or decision lists.
        let is_linear = |m: u32| {
            linear
                .iter()
                .any(|l: &crate::linear::LinearRow| l.margin == m)
        };
        let roots: Vec<u32> = rows
            .iter()
            .flat_map(|r: &Row| {
                let m = (!is_linear(r.margin)).then_some(r.margin);
                m.into_iter().chain(r.guard).chain(r.safe_set)
            })
            .collect();
        tape.focus(&roots);
        let rule_ops = tape.subset(&rule_slots);
        for r in &mut rows {
            r.cone = tape.cone(r.margin);
        }
        let (focus_base, focus_gated) = gate(&tape, &rows, &roots, n_actions);
        let action_inst: Vec<Option<u32>> =
            p.actions.iter().map(|a| tape.input_inst(a.slot)).collect();
        // What a change of each kind of action variable can change (see `tier1::check`).
        let moving = |discrete: bool| {
            let seeds: Vec<u32> = p
                .actions
                .iter()
                .zip(&action_inst)
                .filter(|(a, _)| a.ty.is_discrete() == discrete)
                .filter_map(|(_, i)| *i)
                .collect();
            tape.dependents(&seeds)
        };
        let (dep_real, dep_disc) = (moving(false), moving(true));
        let dep_any: Vec<bool> = dep_real
            .iter()
            .zip(&dep_disc)
            .map(|(a, b)| *a || *b)
            .collect();
        let action_ranges = p
            .actions
            .iter()
            .map(|a| crate::tier1::ActionRange {
                min: a.min,
                max: a.max,
                whole: a.ty.is_discrete(),
            })
            .collect();
        let (linear_blocks, in_block) = crate::linear::blocks(&linear);
        let linear_single = in_block
            .iter()
            .enumerate()
            .filter(|(_, &b)| !b)
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Lattice {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            action_ranges,
            moving_real: tape.focus_subset(&dep_real),
            moving_disc: tape.focus_subset(&dep_disc),
            moving_any: tape.focus_subset(&dep_any),
            rule_ops,
            tape,
            rows,
            rule_slots,
            budget_slots,
            n_actions,
            action_inst,
            focus_base,
            focus_gated,
            linear,
            linear_blocks,
            linear_single,
        }
    }

    pub(crate) fn shrink(&mut self) {
        self.rows.shrink_to_fit();
    }

    /// Read the row verdicts from an evaluated slot array.
    pub fn read_rows(&self, slots: &[Interval], out: &mut [RowCheck]) -> Summary {
        crate::tier1::verdict::read_rows(&self.rows, slots, out)
    }
}

impl Policy {
    /// The input vector with every slot at its declared range: actions at the fallback,
    /// state at `[min, max]` (enums and booleans at all their values), `prev.` anywhere in
    /// the action ranges, budgets in their declared ranges, agent attributes unknown.
    /// This is the box the fallback is certified over when the policy loads.
    pub fn range_inputs(&self) -> Vec<Interval> {
        let mut v = vec![Interval::ENTIRE; self.layout.len as usize];
        let mut set = |slot: u32, x: Interval| {
            if let Some(s) = v.get_mut(slot as usize) {
                *s = x;
            }
        };
        for (a, f) in self.actions.iter().zip(&self.fallback) {
            set(a.slot, Interval::point(*f));
            set(a.prev_slot, Interval::new(a.min, a.max));
        }
        for s in &self.states {
            if let Some(slot) = s.slot {
                set(slot, Interval::new(s.min, s.max));
            }
        }
        for b in &self.budgets {
            set(b.slot, Interval::new(b.min, b.max));
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "symbol counts are far below 2^52"
        )]
        let nsym = self.symbols.len() as f64;
        for a in &self.layout.attrs {
            set(
                a.slot,
                if a.numeric {
                    Interval::ENTIRE
                } else {
                    Interval::new(-1.0, nsym)
                },
            );
        }
        v
    }

    /// Rows certified for the fallback when loading, and rows left to decision time.
    pub fn certification_split(&self) -> (usize, usize) {
        let crit = self
            .lattice
            .rows
            .iter()
            .filter(|r| r.criticality == Criticality::Critical);
        let at_decision = crit
            .clone()
            .filter(|r| r.kind.certified_at_decision_time())
            .count();
        (crit.count() - at_decision, at_decision)
    }
}

/// Split the tape's focus (the instructions of `roots`: row margins and guards) into the
/// instructions every check needs and, per guard that reads no action variable, those only
/// rows under that guard need (see [`Lattice::focus_base`]).
fn gate(
    tape: &Tape,
    rows: &[Row],
    roots: &[u32],
    n_actions: u32,
) -> (crate::tape::OpList, Vec<(u32, crate::tape::OpList)>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Owner {
        None,
        Every,
        Guard(u32),
    }
    let seeds: Vec<u32> = tape
        .insts()
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i, Inst::Input(k) if *k < n_actions))
        .filter_map(|(i, _)| u32::try_from(i).ok())
        .collect();
    let reads_action = tape.dependents(&seeds);
    let mut owner = vec![Owner::None; tape.len()];
    let mut own = |root: u32, o: Owner| {
        for i in tape.cone(root) {
            if let Some(x) = owner.get_mut(i as usize) {
                *x = match *x {
                    Owner::None => o,
                    y if y == o => y,
                    _ => Owner::Every,
                };
            }
        }
    };
    // A row's margin belongs to its guard when that guard reads no action; every other
    // root (guards, unguarded rows, rows under action-dependent guards) to every check.
    // An instruction two owners share belongs to every check.
    let gated: Vec<(u32, u32)> = rows
        .iter()
        .filter(|r| roots.contains(&r.margin))
        .filter_map(|r| {
            r.guard
                .filter(|g| !reads_action.get(*g as usize).copied().unwrap_or(true))
                .map(|g| (r.margin, g))
        })
        .collect();
    for &root in roots {
        // A margin that is also some other row's margin or guard (hash-consing) belongs to
        // every check.
        let under: Vec<u32> = gated
            .iter()
            .filter(|&&(m, _)| m == root)
            .map(|&(_, g)| g)
            .collect();
        let is_guard = rows.iter().any(|r| r.guard == Some(root));
        match under.as_slice() {
            [g] if !is_guard && rows.iter().filter(|r| r.margin == root).count() == 1 => {
                own(root, Owner::Guard(*g));
            }
            _ => own(root, Owner::Every),
        }
    }
    let keep = |o: Owner| -> Vec<bool> { owner.iter().map(|x| *x == o).collect() };
    let mut guards: Vec<u32> = gated.iter().map(|&(_, g)| g).collect();
    guards.sort_unstable();
    guards.dedup();
    let lists = guards
        .into_iter()
        .map(|g| (g, tape.focus_subset(&keep(Owner::Guard(g)))))
        .filter(|(_, ops)| !ops.is_empty())
        .collect();
    (tape.focus_subset(&keep(Owner::Every)), lists)
}

#[cfg(test)]
#[expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a failure is a panic"
)]
mod tests {
    use super::*;
    use crate::policy::VarType;
    use proptest::prelude::*;

    fn policies() -> Vec<Policy> {
        vec![
            crate::load(
                "warehouse-robot.toml",
                include_str!("../../../policies/warehouse-robot.toml"),
            )
            .unwrap(),
            crate::load(
                "agent-tools.toml",
                include_str!("../../../policies/agent-tools.toml"),
            )
            .unwrap(),
        ]
    }

    /// Every instruction of the focus, in one list: the check before guards gated it.
    fn ungated(p: &Policy, inputs: &[Interval], out: &mut [RowCheck]) -> Summary {
        let mut slots = p.lattice.tape.slots();
        p.lattice.tape.eval_focus(inputs, &mut slots);
        p.lattice.eval_linear(inputs, &mut slots);
        p.lattice.read_rows(&slots, out)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Skipping the rows under a surely false guard changes no row check, bit for bit,
        /// from one state to the next on the same scratch (whose skipped slots keep the
        /// last state's values).
        #[test]
        fn a_gated_check_is_bit_identical_to_the_whole_focus(
            states in proptest::collection::vec(proptest::collection::vec(0.0f64..1.0, 48), 1..5),
            which in 0usize..2,
        ) {
            let p = &policies()[which];
            let mut checker = crate::tier1::Checker::new(&p.lattice);
            let n = p.lattice.rows.len();
            for r in &states {
                let mut k = 0;
                let mut next = || { k += 1; r[k % r.len()] };
                let mut inputs = p.range_inputs();
                for s in &p.states {
                    if let Some(slot) = s.slot {
                        if !(s.min.is_finite() && s.max.is_finite()) {
                            continue;
                        }
                        inputs[slot as usize] = match s.ty {
                            VarType::Real => Interval::around(s.min + next() * (s.max - s.min), s.noise),
                            _ => Interval::point((s.min + (next() * (s.max - s.min + 1.0)).floor()).min(s.max)),
                        };
                    }
                }
                for a in &p.actions {
                    let x = a.min + next() * (a.max - a.min);
                    inputs[a.slot as usize] = Interval::point(if a.ty == VarType::Real { x } else { x.round() });
                }
                let action: Vec<f64> = p.actions.iter().map(|a| inputs[a.slot as usize].lo).collect();
                let mut whole = vec![RowCheck::default(); n];
                let sg = checker.check(&p.lattice, &inputs, &action);
                let sw = ungated(p, &inputs, &mut whole);
                prop_assert_eq!(format!("{sg:?}"), format!("{sw:?}"));
                let gated = checker.rows();
                for (i, (x, y)) in gated.iter().zip(&whole).enumerate() {
                    prop_assert_eq!(x.active, y.active, "row {}", i);
                    prop_assert_eq!(x.status, y.status, "row {}", i);
                    prop_assert_eq!(x.margin.lo.to_bits(), y.margin.lo.to_bits(), "row {}", i);
                    prop_assert_eq!(x.margin.hi.to_bits(), y.margin.hi.to_bits(), "row {}", i);
                }
            }
        }
    }

    /// The warehouse's state-only guards do gate instructions (the split is not empty).
    #[test]
    fn the_warehouse_has_gated_rows() {
        let p = &policies()[0];
        let gated: usize = p.lattice.focus_gated.iter().map(|(_, l)| l.len()).sum();
        assert!(
            p.lattice.focus_gated.len() >= 10,
            "{}",
            p.lattice.focus_gated.len()
        );
        assert!(gated >= 20, "{gated}");
        assert!(p.lattice.focus_base.len() + gated <= p.lattice.tape.len());
    }
}
