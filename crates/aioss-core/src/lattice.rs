//! The compiled constraint lattice and Tier 1, the sound checker.
//!
//! Tier 1 is the trusted part of AIOSS: nothing executes until it has certified every
//! active critical row. It evaluates the whole lattice on one tape over intervals (the
//! action is a point, each state an interval), then reads each row's margin:
//!
//! * SAT: the margin is non-negative (positive for strict rows) for every point of the box;
//! * VIOLATED: it is negative for every point of the box;
//! * UNCERTAIN: anything else, including INVALID margins (division by an interval holding
//!   zero, `sqrt` of a negative, NaN). UNCERTAIN is treated as violated by the governor.
//!
//! The check is allocation-free: callers keep a [`Scratch`] and an output slice.

use crate::error::{ErrorKind, PolicyError};
use crate::expr::typeck::{Func, Op2};
use crate::interval::{Interval, Truth};
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
}

/// The compiled lattice: one tape for every rule, guard, row and budget.
#[derive(Clone, Debug, Default)]
pub struct Lattice {
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
    /// What a decision evaluates: rows, guards and rules (not the budgets' increments).
    /// The margins of [`Lattice::linear`] rows are not in it (nor in the tape's focus):
    /// [`Lattice::eval_linear`] writes them.
    pub decide_ops: crate::tape::OpList,
    /// The tape's focus (what [`Lattice::check`] evaluates) split by the guards that read
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

/// Working memory for checks, sized for one lattice.
#[derive(Clone, Debug)]
pub struct Scratch {
    /// One interval per tape slot.
    pub slots: Vec<Interval>,
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
                m.into_iter().chain(r.guard)
            })
            .collect();
        tape.focus(&roots);
        let decide_roots: Vec<u32> = roots
            .iter()
            .copied()
            .chain(rule_slots.iter().copied())
            .collect();
        let decide_ops = tape.subset(&decide_roots);
        for r in &mut rows {
            r.cone = tape.cone(r.margin);
        }
        let (focus_base, focus_gated) = gate(&tape, &rows, &roots, n_actions);
        let action_inst = p.actions.iter().map(|a| tape.input_inst(a.slot)).collect();
        let (linear_blocks, in_block) = crate::linear::blocks(&linear);
        let linear_single = in_block
            .iter()
            .enumerate()
            .filter(|(_, &b)| !b)
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        Lattice {
            tape,
            rows,
            rule_slots,
            budget_slots,
            n_actions,
            action_inst,
            decide_ops,
            focus_base,
            focus_gated,
            linear,
            linear_blocks,
            linear_single,
        }
    }

    /// Write the margin of every linear row (see [`crate::linear`]) into `slots`. Every
    /// evaluation of the rows calls this after the tape.
    #[inline]
    pub fn eval_linear(&self, inputs: &[Interval], slots: &mut [Interval]) {
        if !self.linear_blocks.is_empty() {
            self.eval_blocks(inputs, slots);
        }
        for &i in &self.linear_single {
            if let Some(l) = self.linear.get(i as usize) {
                if let Some(s) = slots.get_mut(l.margin as usize) {
                    *s = crate::linear::eval(l, inputs);
                }
            }
        }
    }

    /// The blocks' part of [`Lattice::eval_linear`] (out of line: most policies have none,
    /// and their checks should not carry its code).
    #[inline(never)]
    fn eval_blocks(&self, inputs: &[Interval], slots: &mut [Interval]) {
        for b in &self.linear_blocks {
            crate::linear::eval_block(b, &self.linear, inputs, |l, v| {
                if let Some(s) = slots.get_mut(l.margin as usize) {
                    *s = v;
                }
            });
        }
    }

    pub(crate) fn shrink(&mut self) {
        self.rows.shrink_to_fit();
    }

    /// Fresh working memory for [`Lattice::check`].
    pub fn scratch(&self) -> Scratch {
        Scratch {
            slots: self.tape.slots(),
        }
    }

    /// Tier 1: evaluate every row (only the instructions rows and guards depend on; use
    /// [`Tape::eval`] on [`Lattice::tape`] for the rules and budgets too). `out` receives one [`RowCheck`] per row (extra rows of
    /// `out` are left alone; missing ones are skipped). No allocation.
    pub fn check(
        &self,
        inputs: &[Interval],
        scratch: &mut Scratch,
        out: &mut [RowCheck],
    ) -> Summary {
        if scratch.slots.len() < self.tape.len() {
            *scratch = self.scratch();
        }
        let slots = &mut scratch.slots;
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
                .is_some_and(|x| x.truth() == Truth::False);
            if !off {
                self.tape.eval_subset(ops, inputs, slots);
            }
        }
        self.eval_linear(inputs, slots);
        self.read_rows(slots, out)
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

/// Certify the fallback: every critical row (except barrier and Lyapunov rows, certified at
/// decision time) must be SAT over [`Policy::range_inputs`]. One error per failing row.
pub fn certify_fallback(p: &Policy) -> Vec<PolicyError> {
    let inputs = p.range_inputs();
    let mut scratch = p.lattice.scratch();
    let mut out = vec![RowCheck::default(); p.lattice.rows.len()];
    p.lattice.check(&inputs, &mut scratch, &mut out);
    let mut errors = Vec::new();
    for (row, chk) in p.lattice.rows.iter().zip(&out) {
        if row.criticality != Criticality::Critical
            || row.kind.certified_at_decision_time()
            || !chk.active
        {
            continue;
        }
        if chk.status == Status::Sat {
            continue;
        }
        let Some(c) = p.constraints.get(row.constraint) else {
            continue;
        };
        let span = c
            .rows
            .iter()
            .find(|r| r.name == row.name)
            .map_or(c.span, |r| r.span);
        let how = match chk.status {
            Status::Violated => "violates",
            _ => "may violate",
        };
        let reads: Vec<String> = {
            let mut names = Vec::new();
            let mut note = |slot: u32| {
                for s in &p.states {
                    if s.slot == Some(slot) && !names.contains(&s.name) {
                        names.push(s.name.clone());
                    }
                }
                for b in &p.budgets {
                    if b.slot == slot && !names.contains(&format!("budget.{}", b.name)) {
                        names.push(format!("budget.{}", b.name));
                    }
                }
                for a in &p.actions {
                    if a.prev_slot == slot && !names.contains(&format!("prev.{}", a.name)) {
                        names.push(format!("prev.{}", a.name));
                    }
                }
            };
            if let Some(r) = c.rows.iter().find(|r| r.name == row.name) {
                r.lhs.inputs(&mut note);
                r.rhs.inputs(&mut note);
            }
            names
        };
        let margin = if chk.margin.is_invalid() {
            "undefined".to_string()
        } else {
            format!("[{}, {}]", chk.margin.lo, chk.margin.hi)
        };
        let mut help =
            "change [fallback] so that it satisfies this constraint for every state".to_string();
        if !reads.is_empty() {
            help.push_str(&format!(
                ", or declare tighter `min`/`max` for {}",
                reads
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        errors.push(
            PolicyError::new(
                ErrorKind::FallbackNotCertified,
                span,
                format!(
                    "the fallback {how} critical constraint `{}` for some state in the declared ranges (margin {margin})",
                    row.name
                ),
            )
            .help(help),
        );
    }
    errors
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
            let mut scratch = p.lattice.scratch();
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
                let (mut gated, mut whole) = (vec![RowCheck::default(); n], vec![RowCheck::default(); n]);
                let sg = p.lattice.check(&inputs, &mut scratch, &mut gated);
                let sw = ungated(p, &inputs, &mut whole);
                prop_assert_eq!(format!("{sg:?}"), format!("{sw:?}"));
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
