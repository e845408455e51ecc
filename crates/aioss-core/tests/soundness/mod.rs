//! The differential soundness harness: Tier 1 against the exact oracle (`aioss-oracle`).
//!
//! Shared by `tests/soundness_differential.rs`, `examples/soundness.rs` and the fuzz target
//! `fuzz/fuzz_targets/tier1_differential.rs` (each includes this file), so that all three
//! call Tier 1 through [`tier1`], the one adapter, and read its verdicts the same way.
//!
//! Two kinds of check:
//!
//! * **Direct**: a (policy, proposal) pair becomes Tier 1's input vector ([`case_inputs`]);
//!   every row Tier 1 calls SAT, or inactive (guard surely false), is handed to the oracle,
//!   which searches the proposal's exact box for a point where the row (under a guard
//!   that holds there) fails or is undefined ([`check_verdicts`]).
//! * **Whole decisions** ([`run_decisions`]): proposals go through [`aioss_core::Governor`];
//!   the action each decision executes (unless its evaluation is FAILED: the governor then
//!   says itself that it is not certified) is checked against every critical row over the
//!   proposal's box, with `prev.` and the budgets tracked here, independently of the
//!   governor (budgets as exact sums of the executed `add` amounts in their windows).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "test-support code shared by a test, an example and a fuzz target: a failure is a panic or a report"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use aioss_core::governor::{AttrValue, Evaluation, StateValue};
use aioss_core::policy::VarType;
use aioss_core::{Governor, Interval, Outcome as GovOutcome, Policy, Proposal, RowCheck, Status};
use aioss_oracle::exact::qf;
use aioss_oracle::{
    eval_num, refute, AIn, BoxIn, Case, Claim, Crit, Dim, Lit, Model, Outcome, Point, Pt, Rng, SIn,
    Spec, VTy, Q,
};

pub use aioss_oracle::Ctx;

// ---------------------------------------------------------------------------------------
// The adapter: the only place that calls Tier 1.
// ---------------------------------------------------------------------------------------

/// Tier 1 on one input vector: one verdict per row of the policy's lattice, in
/// [`tier1_rows`] order.
pub fn tier1(policy: &Policy, inputs: &[Interval]) -> Vec<RowCheck> {
    // The trusted checker's one entry point: the action is the points in the action slots.
    let action: Vec<f64> = policy
        .actions
        .iter()
        .map(|a| inputs.get(a.slot as usize).map_or(f64::NAN, |x| x.lo))
        .collect();
    let mut t1 = aioss_core::Checker::new(&policy.lattice);
    t1.check(&policy.lattice, inputs, &action);
    t1.rows().to_vec()
}

/// The names of the rows [`tier1`] answers for (`id` or `id#k`), in its order.
pub fn tier1_rows(policy: &Policy) -> Vec<String> {
    policy.lattice.rows.iter().map(|r| r.name.clone()).collect()
}

// ---------------------------------------------------------------------------------------
// Policies under test
// ---------------------------------------------------------------------------------------

/// A policy as the core loaded it and as the oracle read it.
pub struct Subject {
    /// A name for reports.
    pub name: String,
    /// The TOML text.
    pub text: String,
    /// The core's policy.
    pub policy: Policy,
    /// The oracle's reading.
    pub model: Model,
    /// The generator's description (generated policies only).
    pub spec: Option<Spec>,
}

impl Subject {
    /// Load `text` with both readers; their rows must agree by name, one to one.
    pub fn new(name: &str, text: &str, spec: Option<Spec>) -> Result<Subject, String> {
        let policy = aioss_core::load(name, text).map_err(|e| format!("{e}\n{text}"))?;
        let model =
            Model::read(text).map_err(|e| format!("the oracle cannot read {name}: {e}\n{text}"))?;
        let ours: Vec<&str> = model.rows.iter().map(|r| r.name.as_str()).collect();
        let theirs = tier1_rows(&policy);
        if ours != theirs.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(format!(
                "UNSOUND or mismatched rows in {name}: the oracle reads rows {ours:?}, Tier 1 checks {theirs:?}\n{text}"
            ));
        }
        Ok(Subject {
            name: name.to_string(),
            text: text.to_string(),
            policy,
            model,
            spec,
        })
    }

    /// A bundled policy, by file name under `policies/`.
    pub fn bundled(file: &str) -> Subject {
        // From crates/aioss-core (the test, the example) or from fuzz/.
        let root = env!("CARGO_MANIFEST_DIR");
        let path = [
            format!("{root}/../../policies/{file}"),
            format!("{root}/../policies/{file}"),
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| format!("{root}/../../policies/{file}"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Subject::new(file, &text, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A random policy. Critical rows the fallback cannot be certified for (over the
    /// declared ranges) are demoted to `high` until it loads; any other load error is a
    /// generator bug, reported.
    pub fn generated(rng: &mut Rng) -> Result<Subject, String> {
        Subject::from_spec(Spec::random(rng))
    }

    /// [`Subject::generated`] for a given description.
    pub fn from_spec(mut spec: Spec) -> Result<Subject, String> {
        for _ in 0..16 {
            let text = spec.toml();
            match aioss_core::load("generated.toml", &text) {
                Ok(_) => return Subject::new("generated.toml", &text, Some(spec)),
                Err(e) => {
                    let mut demoted = false;
                    for err in &e.errors {
                        if err.kind != aioss_core::ErrorKind::FallbackNotCertified {
                            return Err(format!("a generated policy does not load: {e}\n{text}"));
                        }
                        let id = err
                            .message
                            .split('`')
                            .nth(1)
                            .unwrap_or("")
                            .split('#')
                            .next()
                            .unwrap_or("");
                        for c in &mut spec.constraints {
                            if c.id == id && c.critical {
                                c.critical = false;
                                demoted = true;
                            }
                        }
                    }
                    if !demoted {
                        return Err(format!("cannot demote: {e}\n{text}"));
                    }
                }
            }
        }
        Err("demotion did not converge".to_string())
    }
}

// ---------------------------------------------------------------------------------------
// Statistics and failures
// ---------------------------------------------------------------------------------------

/// Counts over a run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Policies tried.
    pub policies: u64,
    /// Direct (policy, proposal) checks.
    pub cases: u64,
    /// Row verdicts read from Tier 1 in direct checks.
    pub rows: u64,
    /// Verdicts handed to the oracle (SAT or inactive): "checks".
    pub checks: u64,
    /// ... of which SAT.
    pub sat: u64,
    /// ... of which inactive.
    pub inactive: u64,
    /// ... the oracle found no counterexample.
    pub held: u64,
    /// ... some point could not be decided, none refutes.
    pub undecided: u64,
    /// ... refuted: UNSOUND.
    pub refuted: u64,
    /// Checks of the row a proposal was placed within 4 ulps of.
    pub near: u64,
    /// ... of which Tier 1 said SAT.
    pub near_sat: u64,
    /// Whole decisions made.
    pub decisions: u64,
    /// Executed actions checked against every critical row.
    pub executed: u64,
    /// Decisions whose evaluation was FAILED (the governor says the action is not
    /// certified: not checked).
    pub failed_evaluations: u64,
    /// Checks per generator form.
    pub by_form: BTreeMap<String, u64>,
    /// Failure reports.
    pub failures: Vec<String>,
}

impl Stats {
    /// Add `o` to `self`.
    pub fn merge(&mut self, o: Stats) {
        self.policies += o.policies;
        self.cases += o.cases;
        self.rows += o.rows;
        self.checks += o.checks;
        self.sat += o.sat;
        self.inactive += o.inactive;
        self.held += o.held;
        self.undecided += o.undecided;
        self.refuted += o.refuted;
        self.near += o.near;
        self.near_sat += o.near_sat;
        self.decisions += o.decisions;
        self.executed += o.executed;
        self.failed_evaluations += o.failed_evaluations;
        for (k, v) in o.by_form {
            *self.by_form.entry(k).or_default() += v;
        }
        self.failures.extend(o.failures);
    }

    fn fail(&mut self, report: String) {
        // Keep the first few in full; the count says the rest.
        if self.failures.len() < 20 {
            self.failures.push(report);
        }
    }

    /// One line.
    pub fn summary(&self) -> String {
        format!(
            "{} policies, {} proposals ({} rows read), {} checks ({} SAT, {} inactive): {} refuted, {} held, {} undecided; {} within 4 ulps of a boundary ({} SAT); {} decisions, {} executed actions checked, {} FAILED evaluations",
            self.policies,
            self.cases,
            self.rows,
            self.checks,
            self.sat,
            self.inactive,
            self.refuted,
            self.held,
            self.undecided,
            self.near,
            self.near_sat,
            self.decisions,
            self.executed,
            self.failed_evaluations
        )
    }
}

// ---------------------------------------------------------------------------------------
// Encoding a case for the core
// ---------------------------------------------------------------------------------------

fn core_action(p: &Policy, name: &str) -> usize {
    p.actions
        .iter()
        .position(|a| a.name == name)
        .unwrap_or_else(|| panic!("the core has no action `{name}`"))
}

/// The core's encoding of the oracle's value of action `i`.
fn encode(s: &Subject, i: usize, l: &Lit) -> f64 {
    let a = &s.model.actions[i];
    let ca = &s.policy.actions[core_action(&s.policy, &a.name)];
    match (l, &a.ty, &ca.ty) {
        (Lit::Num(x), _, _) => *x,
        (Lit::Bool(b), _, _) => f64::from(u8::from(*b)),
        (Lit::Enum(k), VTy::Enum(ours), VarType::Enum(theirs)) => {
            theirs.iter().position(|v| *v == ours[*k]).unwrap() as f64
        }
        _ => panic!("action `{}`: types disagree", a.name),
    }
}

/// The oracle's value of the core's encoded action `i` (model order).
fn decode(s: &Subject, i: usize, x: f64) -> Lit {
    let a = &s.model.actions[i];
    let ca = &s.policy.actions[core_action(&s.policy, &a.name)];
    match (&a.ty, &ca.ty) {
        (VTy::Bool, _) => Lit::Bool(x != 0.0),
        (VTy::Enum(ours), VarType::Enum(theirs)) => {
            let name = theirs.get(x as usize).cloned().unwrap_or_default();
            Lit::Enum(ours.iter().position(|v| *v == name).unwrap_or(usize::MAX))
        }
        _ => Lit::Num(x),
    }
}

fn encoded_actions(s: &Subject, acts: &[Lit]) -> Vec<f64> {
    let mut v = vec![0.0; s.policy.actions.len()];
    for (i, l) in acts.iter().enumerate() {
        v[core_action(&s.policy, &s.model.actions[i].name)] = encode(s, i, l);
    }
    v
}

fn state_interval(s: &Subject, j: usize, v: &SIn) -> Option<Interval> {
    let st = &s.model.states[j];
    let cs = s.policy.states.iter().find(|c| c.name == st.name)?;
    Some(match v {
        SIn::Value(x) => Interval::around(*x, cs.noise),
        SIn::Noise(x, e) => Interval::around(*x, *e),
        SIn::LoHi(a, b) => Interval::new(*a, *b),
        SIn::Bool(b) => Interval::point(f64::from(u8::from(*b))),
        SIn::Enum(k) => match (&st.ty, &cs.ty) {
            (VTy::Enum(ours), VarType::Enum(theirs)) => {
                Interval::point(theirs.iter().position(|x| *x == ours[*k])? as f64)
            }
            _ => return None,
        },
        SIn::Missing => Interval::new(cs.min, cs.max),
    })
}

/// Tier 1's input vector for `case` (the layout of [`Policy`]: action slots, state slots,
/// `prev.` slots, budget slots, attribute slots), filled as the governor fills it.
pub fn case_inputs(s: &Subject, case: &Case) -> Vec<Interval> {
    let p = &s.policy;
    let mut v = p.range_inputs();
    let enc = encoded_actions(s, &case.actions);
    let prev = encoded_actions(s, &case.prev);
    for (a, (x, pv)) in p.actions.iter().zip(enc.iter().zip(&prev)) {
        v[a.slot as usize] = Interval::point(*x);
        v[a.prev_slot as usize] = Interval::point(*pv);
    }
    for (j, sv) in case.states.iter().enumerate() {
        let name = &s.model.states[j].name;
        if let Some(cs) = p.states.iter().find(|c| c.name == *name) {
            if let (Some(slot), Some(x)) = (cs.slot, state_interval(s, j, sv)) {
                v[slot as usize] = x;
            }
        }
    }
    for (k, (lo, hi)) in case.budgets.iter().enumerate() {
        let name = &s.model.budgets[k].name;
        if let Some(b) = p.budgets.iter().find(|b| b.name == *name) {
            v[b.slot as usize] = Interval::new(*lo, *hi);
        }
    }
    let nsym = p.symbols.len() as f64;
    for a in &p.layout.attrs {
        let given = case.attrs.iter().find(|(k, _)| *k == a.name).map(|x| &x.1);
        v[a.slot as usize] = match (given, a.numeric) {
            (Some(AIn::Num(x)), true) => Interval::point(*x),
            (Some(AIn::Sym(t)), false) => Interval::point(
                p.symbols
                    .iter()
                    .position(|y| y == t)
                    .map_or(-1.0, |i| i as f64),
            ),
            (Some(AIn::Sym(_)) | None, true) => Interval::ENTIRE,
            (Some(AIn::Num(_)), false) => Interval::point(-1.0),
            (None, false) => Interval::new(-1.0, nsym),
        };
    }
    v
}

// ---------------------------------------------------------------------------------------
// Direct checks
// ---------------------------------------------------------------------------------------

fn form_of(s: &Subject, row: &str) -> String {
    let id = row.split('#').next().unwrap_or(row);
    s.spec
        .as_ref()
        .and_then(|sp| sp.constraints.iter().find(|c| c.id == id))
        .map_or_else(|| "bundled".to_string(), |c| format!("{:?}", c.form))
}

/// Check Tier 1's verdicts `out` (from [`tier1`] on `inputs`) for `case` against the oracle.
pub fn check_verdicts(
    s: &Subject,
    case: &Case,
    inputs: &[Interval],
    out: &[RowCheck],
    rng: &mut Rng,
    cc: &mut Ctx,
    st: &mut Stats,
) {
    let bx = case.boxed(&s.model);
    st.rows += out.len() as u64;
    for (ri, chk) in out.iter().enumerate() {
        let claim = if !chk.active {
            Claim::Inactive
        } else if chk.status == Status::Sat {
            Claim::Sat
        } else {
            continue;
        };
        st.checks += 1;
        match claim {
            Claim::Sat => st.sat += 1,
            Claim::Inactive => st.inactive += 1,
        }
        let row = &s.model.rows[ri];
        *st.by_form.entry(form_of(s, &row.name)).or_default() += 1;
        let near = case.near.is_some_and(|(r, _)| r == ri);
        if near {
            st.near += 1;
            if claim == Claim::Sat {
                st.near_sat += 1;
            }
        }
        match refute(&s.model, ri, &bx, rng, cc) {
            Ok(Outcome::Held) => st.held += 1,
            Ok(Outcome::Undecided(_)) => st.undecided += 1,
            Ok(Outcome::Refuted(r)) => {
                st.refuted += 1;
                let mut rep = format!(
                    "UNSOUND: Tier 1 says {claim:?} for row `{}` of {} (Tier 1 margin [{:e}, {:e}]), but at {} the exact margin is {} ({}){}.\n",
                    row.name,
                    s.name,
                    chk.margin.lo,
                    chk.margin.hi,
                    r.at,
                    r.margin,
                    r.how,
                    if near { " [a near-boundary proposal]" } else { "" }
                );
                let _ = writeln!(
                    rep,
                    "--- case ---\n{case:?}\n--- Tier 1 inputs ---\n{inputs:?}"
                );
                if s.spec.is_some() {
                    let _ = writeln!(rep, "--- policy ---\n{}", s.text);
                }
                st.fail(rep);
            }
            Err(e) => st.fail(format!(
                "the oracle cannot evaluate row `{}` of {}: {e}",
                row.name, s.name
            )),
        }
    }
}

/// Tier 1 on `case`, checked.
pub fn check_case(s: &Subject, case: &Case, rng: &mut Rng, cc: &mut Ctx, st: &mut Stats) {
    let inputs = case_inputs(s, case);
    let out = tier1(&s.policy, &inputs);
    st.cases += 1;
    check_verdicts(s, case, &inputs, &out, rng, cc, st);
}

/// A random proposal, half of the time moved to within 4 ulps of a random row's boundary.
pub fn random_case(s: &Subject, rng: &mut Rng, cc: &mut Ctx) -> Case {
    let extreme = s.spec.as_ref().is_some_and(|sp| sp.extreme);
    let mut case = Case::random(&s.model, extreme, rng);
    if rng.chance(0.5) && !s.model.rows.is_empty() {
        let ri = rng.index(s.model.rows.len());
        let _ = aioss_oracle::gen::near_boundary(&s.model, &mut case, ri, rng, cc);
    }
    case
}

/// `policies` random policies, `cases` proposals each.
pub fn run_direct(rng: &mut Rng, policies: usize, cases: usize, cc: &mut Ctx, st: &mut Stats) {
    for _ in 0..policies {
        let s = match Subject::generated(rng) {
            Ok(s) => s,
            Err(e) => {
                st.fail(e);
                continue;
            }
        };
        st.policies += 1;
        for _ in 0..cases {
            let case = random_case(&s, rng, cc);
            check_case(&s, &case, rng, cc, st);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Whole decisions
// ---------------------------------------------------------------------------------------

fn lit_pt(l: &Lit) -> Pt {
    match l {
        Lit::Num(x) => Pt::Num(qf(*x)),
        Lit::Bool(b) => Pt::Bool(*b),
        Lit::Enum(i) => Pt::Enum(*i),
    }
}

/// A JSON number for `x`: Rust's shortest text that reads back as `x` when read correctly
/// rounded (what the spec says a number in JSON means).
fn jnum(x: f64) -> String {
    format!("{x:?}")
}

/// The proposal's JSON line, as an agent would send it.
fn proposal_json(
    s: &Subject,
    case: &Case,
    agent: &str,
    t: f64,
    give_prev: bool,
    id: usize,
) -> String {
    let m = &s.model;
    let lit = |i: usize, l: &Lit| match (l, &m.actions[i].ty) {
        (Lit::Num(x), _) => jnum(*x),
        (Lit::Bool(b), _) => b.to_string(),
        (Lit::Enum(k), VTy::Enum(v)) => format!("\"{}\"", v[*k]),
        _ => "null".into(),
    };
    let obj = |ls: &[Lit]| {
        let f: Vec<String> = ls
            .iter()
            .enumerate()
            .map(|(i, l)| format!("\"{}\": {}", m.actions[i].name, lit(i, l)))
            .collect();
        format!("{{{}}}", f.join(", "))
    };
    let mut state = Vec::new();
    for (j, v) in case.states.iter().enumerate() {
        let st = &m.states[j];
        let txt = match (v, &st.ty) {
            (_, VTy::Text) => Some("\"generated\"".to_string()),
            (SIn::Value(x), _) => Some(jnum(*x)),
            (SIn::Noise(x, e), _) => Some(format!(
                "{{\"value\": {}, \"noise\": {}}}",
                jnum(*x),
                jnum(*e)
            )),
            (SIn::LoHi(a, b), _) => Some(format!("{{\"lo\": {}, \"hi\": {}}}", jnum(*a), jnum(*b))),
            (SIn::Bool(b), _) => Some(b.to_string()),
            (SIn::Enum(k), VTy::Enum(vals)) => Some(format!("\"{}\"", vals[*k])),
            _ => None,
        };
        if let Some(x) = txt {
            state.push(format!("\"{}\": {x}", st.name));
        }
    }
    let attrs: Vec<String> = case
        .attrs
        .iter()
        .map(|(k, v)| match v {
            AIn::Num(x) => format!("\"{k}\": {}", jnum(*x)),
            AIn::Sym(y) => format!("\"{k}\": \"{y}\""),
        })
        .collect();
    let mut line = format!(
        "{{\"id\": \"p{id}\", \"agent\": \"{agent}\", \"timestamp\": {}, \"action\": {}, \"state\": {{{}}}, \"agent_attributes\": {{{}}}",
        jnum(t),
        obj(&case.actions),
        state.join(", "),
        attrs.join(", ")
    );
    if give_prev {
        let _ = write!(line, ", \"prev\": {}", obj(&case.prev));
    }
    line.push('}');
    line
}

/// `n` proposals through a governor for `s`; every executed action checked. A share
/// `json` of them goes in as a JSON line (`Governor::decide_line`), the rest as a
/// [`Proposal`] built here.
pub fn run_decisions(
    s: &Subject,
    n: usize,
    json: f64,
    rng: &mut Rng,
    cc: &mut Ctx,
    st: &mut Stats,
) {
    let p = &s.policy;
    let m = &s.model;
    let mut gov = Governor::new(p.clone());
    let mut windows: Vec<Vec<(f64, Q)>> = vec![Vec::new(); m.budgets.len()];
    let mut last: BTreeMap<String, Vec<Lit>> = BTreeMap::new();
    let mut t = 1.7e9;
    st.policies += 1;
    for step in 0..n {
        let case = random_case(s, rng, cc);
        let agent = ["a1", "a2"][rng.index(2)].to_string();
        t += (1 + rng.below(40)) as f64;
        let give_prev = rng.chance(0.3);
        let state: Vec<Option<StateValue>> = p
            .states
            .iter()
            .map(|cs| {
                let j = m.state(&cs.name).unwrap();
                if cs.ty == VarType::Text {
                    return Some(StateValue::Text("generated".into()));
                }
                match &case.states[j] {
                    SIn::Missing => None,
                    v => state_interval(s, j, v).map(StateValue::Num),
                }
            })
            .collect();
        let enc_prev = encoded_actions(s, &case.prev);
        let prop = Proposal {
            id: Some(format!("p{step}")),
            agent: agent.clone(),
            timestamp: Some(t),
            action: encoded_actions(s, &case.actions),
            state,
            prev: enc_prev.iter().map(|x| give_prev.then_some(*x)).collect(),
            attributes: case
                .attrs
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        match v {
                            AIn::Num(x) => AttrValue::Num(*x),
                            AIn::Sym(y) => AttrValue::Sym(y.clone()),
                        },
                    )
                })
                .collect(),
            transition: None,
        };
        let d = if rng.chance(json) {
            let line = proposal_json(s, &case, &agent, t, give_prev, step);
            match gov.decide_line(&line) {
                Ok(d) => d,
                Err(e) => {
                    st.fail(format!("{}: the governor refused {line}: {e:?}", s.name));
                    continue;
                }
            }
        } else {
            gov.decide(&prop)
        };
        st.decisions += 1;
        // The oracle's own account of the governor-held inputs.
        let fallback: Vec<Lit> = m.fallback.clone();
        let prev_used: Vec<Lit> = if give_prev {
            case.prev.clone()
        } else {
            last.get(&agent).cloned().unwrap_or(fallback)
        };
        let sums: Vec<Q> = m
            .budgets
            .iter()
            .zip(&mut windows)
            .map(|(b, w)| {
                w.retain(|(at, _)| *at > t - b.window_secs);
                w.iter().fold(Q::zero(), |acc, (_, x)| acc + x)
            })
            .collect();
        let executed: Vec<Lit> = (0..m.actions.len())
            .map(|i| {
                let ci = core_action(p, &m.actions[i].name);
                decode(s, i, d.action[ci])
            })
            .collect();
        // The action Tier 1 was asked about is the one sent: a reader that takes another
        // number than the text means (a JSON number read one ulp off) is a failure, and an
        // ALLOW executes what was sent, so that is what the oracle checks.
        let sent = encoded_actions(s, &case.actions);
        if d.proposed
            .iter()
            .zip(&sent)
            .any(|(a, b)| a.to_bits() != b.to_bits())
        {
            st.fail(format!(
                "{}: the governor read the action {:?} as {:?} (a number must mean the double its text rounds to)\n{}",
                s.name,
                sent,
                d.proposed,
                d.to_json(p)
            ));
        }
        let executed = if d.final_outcome == GovOutcome::Allow {
            case.actions.clone()
        } else {
            executed
        };
        let mut bx: BoxIn = case.boxed(m);
        bx.actions = executed.iter().map(lit_pt).collect();
        bx.prev = prev_used.iter().map(|l| Dim::Fixed(lit_pt(l))).collect();
        bx.budgets = sums
            .iter()
            .map(|q| Dim::Span(q.clone(), q.clone()))
            .collect();
        let allowed = matches!(
            d.final_outcome,
            GovOutcome::Allow | GovOutcome::AllowAfterRepair
        );
        if d.evaluation == Evaluation::Failed {
            st.failed_evaluations += 1;
            if allowed {
                st.fail(format!(
                    "{}: an {:?} whose evaluation is FAILED\n{}",
                    s.name,
                    d.final_outcome,
                    d.to_json(p)
                ));
            }
        } else if d.evaluation != Evaluation::Neutral {
            st.executed += 1;
            check_executed(s, &d, &executed, &bx, &case, rng, cc, st);
        }
        // Track what was executed: budgets (exact `add` at the executed action) and prev.
        let point = Point {
            actions: bx.actions.clone(),
            states: bx
                .states
                .iter()
                .map(|x| match x {
                    Some(Dim::Fixed(v)) => Some(v.clone()),
                    Some(Dim::Span(a, _)) => Some(Pt::Num(a.clone())),
                    Some(Dim::Choice(v)) => v.first().cloned(),
                    None => None,
                })
                .collect(),
            prev: prev_used.iter().map(lit_pt).collect(),
            budgets: sums.clone(),
            attrs: Vec::new(),
            errs: Vec::new(),
        };
        for (k, b) in m.budgets.iter().enumerate() {
            let amount = eval_num(m, &b.add, &point, cc)
                .unwrap_or_else(|e| panic!("budget `{}`: {e:?}", b.name));
            // An enclosure (never, for the adds the generator writes and the bundled
            // policies have) counts at its upper end, as the governor does.
            let x = amount.hi().clone();
            if !x.is_zero() {
                windows[k].push((t, x));
            }
        }
        last.insert(agent, executed);
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "the decision's context, passed through"
)]
fn check_executed(
    s: &Subject,
    d: &aioss_core::Decision,
    executed: &[Lit],
    bx: &BoxIn,
    case: &Case,
    rng: &mut Rng,
    cc: &mut Ctx,
    st: &mut Stats,
) {
    let m = &s.model;
    for (a, l) in m.actions.iter().zip(executed) {
        let ok = match (l, &a.ty) {
            (Lit::Num(x), VTy::Real | VTy::Int) => *x >= a.min && *x <= a.max,
            (Lit::Enum(k), VTy::Enum(v)) => *k < v.len(),
            (Lit::Bool(_), VTy::Bool) => true,
            _ => false,
        };
        if !ok {
            st.fail(format!(
                "{}: executed `{}` = {l:?} is outside its range\n{}",
                s.name,
                a.name,
                d.to_json(&s.policy)
            ));
        }
    }
    for (ri, row) in m.rows.iter().enumerate() {
        let critical = m
            .constraint_of(row)
            .is_some_and(|c| c.crit == Crit::Critical);
        if !critical {
            continue;
        }
        st.checks += 1;
        *st.by_form.entry("executed".into()).or_default() += 1;
        match refute(m, ri, bx, rng, cc) {
            Ok(Outcome::Held) => st.held += 1,
            Ok(Outcome::Undecided(_)) => st.undecided += 1,
            Ok(Outcome::Refuted(r)) => {
                st.refuted += 1;
                let tier1_says = s
                    .policy
                    .lattice
                    .rows
                    .iter()
                    .position(|x| x.name == row.name)
                    .and_then(|i| {
                        d.constraints
                            .iter()
                            .find(|c| c.id == s.policy.lattice.rows[i].name)
                    })
                    .map_or("not reported".to_string(), |c| {
                        format!("{:?} {:?}", c.status, c.margin)
                    });
                st.fail(format!(
                    "UNSOUND: {} executed an action that violates critical row `{}` ({:?}, decision reports {tier1_says}): at {} the exact margin is {} ({}).\n--- case ---\n{case:?}\n--- decision ---\n{}\n{}",
                    s.name,
                    row.name,
                    d.final_outcome,
                    r.at,
                    r.margin,
                    r.how,
                    d.to_json(&s.policy),
                    if s.spec.is_some() { s.text.as_str() } else { "" }
                ));
            }
            Err(e) => st.fail(format!(
                "the oracle cannot evaluate row `{}` of {}: {e}",
                row.name, s.name
            )),
        }
    }
}

/// A fresh constant cache for the oracle's high-precision functions.
pub fn consts() -> Ctx {
    aioss_oracle::exact::consts().expect("astro-float's constant cache")
}
