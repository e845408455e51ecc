//! The policy model: what a loaded, validated policy is.
//!
//! Everything here has been checked by [`crate::load()`]: names resolve, types agree, the
//! metric is positive definite, and the fallback is certified. Later stages rely on that
//! and never re-validate on the hot path.

use crate::error::Span;
use crate::expr::Term;

/// `enforce` or `dry-run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Decide and execute what the decision says.
    Enforce,
    /// Decide and record, but pass the proposal through.
    DryRun,
}

/// A classification verdict, ordered by severity (`GO < REPAIR < HOLD < BLOCK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Proceed.
    Go,
    /// Repair, then proceed.
    Repair,
    /// A human must confirm.
    Hold,
    /// Never execute.
    Block,
}

impl Verdict {
    /// The name used in policies and decisions.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Go => "GO",
            Verdict::Repair => "REPAIR",
            Verdict::Hold => "HOLD",
            Verdict::Block => "BLOCK",
        }
    }
}

/// How critical a constraint or a rule's cause is. Critical rows are never relaxed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Criticality {
    /// Relaxed first.
    Low,
    /// Relaxed after low.
    Medium,
    /// Relaxed last.
    High,
    /// Never relaxed; the fallback must satisfy it.
    Critical,
}

impl Criticality {
    /// The name used in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
}

/// The kind of a constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConstraintKind {
    /// Physical limits.
    Physical,
    /// Resource bounds.
    Resource,
    /// Authority restrictions.
    Authority,
    /// Invariants.
    Invariant,
    /// Control-barrier conditions `h(next) >= (1 - gamma) h(x)`.
    Barrier,
    /// Lyapunov decrease `V(next) <= (1 - alpha) V(x) + sigma`.
    Lyapunov,
    /// Preferences.
    Preference,
}

impl ConstraintKind {
    /// All kinds, in display order.
    pub const ALL: [ConstraintKind; 7] = [
        ConstraintKind::Physical,
        ConstraintKind::Resource,
        ConstraintKind::Authority,
        ConstraintKind::Invariant,
        ConstraintKind::Barrier,
        ConstraintKind::Lyapunov,
        ConstraintKind::Preference,
    ];
    /// The name used in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            ConstraintKind::Physical => "physical",
            ConstraintKind::Resource => "resource",
            ConstraintKind::Authority => "authority",
            ConstraintKind::Invariant => "invariant",
            ConstraintKind::Barrier => "barrier",
            ConstraintKind::Lyapunov => "lyapunov",
            ConstraintKind::Preference => "preference",
        }
    }
    /// Barrier and Lyapunov rows are certified for the fallback at decision time, from the
    /// current state, not when loading (forward invariance only holds inside the safe set).
    pub fn certified_at_decision_time(self) -> bool {
        matches!(self, ConstraintKind::Barrier | ConstraintKind::Lyapunov)
    }
}

/// What a violated constraint calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnViolation {
    /// Project onto the feasible set.
    Repair,
    /// A human must confirm.
    Hold,
    /// Never execute.
    Block,
}

/// The type of a variable.
#[derive(Clone, Debug, PartialEq)]
pub enum VarType {
    /// A real number.
    Real,
    /// An integer (a discrete action variable).
    Int,
    /// A boolean.
    Bool,
    /// One of the listed values; encoded as its index.
    Enum(Vec<String>),
    /// Free text (state only): recorded, never read by an expression.
    Text,
}

impl VarType {
    /// The type's name as written in policies.
    pub fn name(&self) -> &'static str {
        match self {
            VarType::Real => "real",
            VarType::Int => "int",
            VarType::Bool => "bool",
            VarType::Enum(_) => "enum",
            VarType::Text => "text",
        }
    }
    /// Is it a discrete type (repaired by search, not by projection)?
    pub fn is_discrete(&self) -> bool {
        !matches!(self, VarType::Real)
    }
}

/// An action variable.
#[derive(Clone, Debug)]
pub struct ActionVar {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: VarType,
    /// Lower bound (encoded: enum indices and booleans have their natural ranges).
    pub min: f64,
    /// Upper bound.
    pub max: f64,
    /// Input slot.
    pub slot: u32,
    /// Input slot of `prev.<name>`.
    pub prev_slot: u32,
    /// May the repair search choose another value than the proposal's (`repairable`;
    /// default: no for an enum, whose value is the user's choice, yes otherwise)? A rule's
    /// `set` changes it regardless.
    pub repairable: bool,
}

/// A state variable.
#[derive(Clone, Debug)]
pub struct StateVar {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: VarType,
    /// Declared lower bound (`-inf` when unbounded).
    pub min: f64,
    /// Declared upper bound (`+inf` when unbounded).
    pub max: f64,
    /// Default half-width of a reported value.
    pub noise: f64,
    /// The widest half-width a reported box may have (`max_noise`); a wider one is
    /// `excessive_uncertainty`. Default none (no bound: a proposal's own `noise` above
    /// `noise` is normal).
    pub max_noise: Option<f64>,
    /// Is the variable required evidence? A required variable missing from a proposal (or a
    /// blank required text) makes the audit INSUFFICIENT. Default true.
    pub required: bool,
    /// Input slot (`None` for text).
    pub slot: Option<u32>,
}

/// A budget accumulator.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Its name.
    pub name: String,
    /// Rolling window, seconds.
    pub window_secs: f64,
    /// What an executed action adds.
    pub add: Term,
    /// Declared range the governor keeps it in (used for the fallback's certificate).
    pub min: f64,
    /// Upper end of that range.
    pub max: f64,
    /// Input slot of `budget.<name>`.
    pub slot: u32,
}

/// An agent attribute read by the policy.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrSlot {
    /// Attribute name.
    pub name: String,
    /// Read as a number (`true`) or as a symbol.
    pub numeric: bool,
    /// Input slot.
    pub slot: u32,
}

/// An ordered rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Its id.
    pub id: String,
    /// When it matches.
    pub when: Term,
    /// What it says.
    pub verdict: Verdict,
    /// Criticality of its cause.
    pub criticality: Option<Criticality>,
    /// Why.
    pub reason: Option<String>,
    /// A BLOCK a human may still approve.
    pub confirmable: bool,
    /// Discrete repair `(action index, encoded value)`.
    pub set: Vec<(usize, f64)>,
    /// Text shown as the repaired transition.
    pub repaired_transition: Option<String>,
    /// Span of the rule's `id` value.
    pub span: Span,
}

/// The comparison a row enforces, as `lhs OP rhs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sense {
    /// `lhs <= rhs`; margin `rhs - lhs`, SAT when `>= 0`.
    Le,
    /// `lhs < rhs`; margin `rhs - lhs`, SAT when `> 0`.
    Lt,
    /// `lhs == rhs`; margin `-|lhs - rhs|`, SAT when `>= 0`.
    Eq,
    /// `lhs != rhs`; margin `|lhs - rhs|`, SAT when `> 0`.
    Ne,
    /// A boolean condition (`lhs`); margin 1 when true, -1 when false.
    Bool,
}

/// One row of a constraint.
#[derive(Clone, Debug)]
pub struct RowDef {
    /// `id`, or `id#k` for the k-th comparison of a conjunction.
    pub name: String,
    /// The comparison.
    pub sense: Sense,
    /// Left side (the condition for [`Sense::Bool`]).
    pub lhs: Term,
    /// Right side (unused for [`Sense::Bool`]).
    pub rhs: Term,
    /// Span of the row's text.
    pub span: Span,
    /// For a barrier row, `h` over the current state: the safe set is `h(x) >= 0`.
    pub safe_set: Option<Term>,
}

/// A constraint of the lattice.
#[derive(Clone, Debug)]
pub struct Constraint {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: ConstraintKind,
    /// Its criticality.
    pub criticality: Criticality,
    /// Description.
    pub description: Option<String>,
    /// How far the CRE may relax it (0 for critical).
    pub tolerance: f64,
    /// Relaxation penalty weight.
    pub weight: f64,
    /// What a violation calls for.
    pub on_violation: OnViolation,
    /// Declared Lipschitz constant.
    pub lipschitz: Option<f64>,
    /// Guard: the constraint applies only when this holds.
    pub guard: Option<Term>,
    /// Its rows.
    pub rows: Vec<RowDef>,
    /// Span of the constraint's `id` value.
    pub span: Span,
}

/// Governor settings from `[governor]`.
#[derive(Clone, Debug)]
pub struct GovernorSettings {
    /// Budget for one decision, microseconds. Default 1000.
    pub deadline_us: u64,
    /// Whether `deadline_us` also bounds the repair search (`[governor] enforce_deadline`).
    /// Default `false`: the deadline is only reported. When `true`, a repair stops once its
    /// modeled cost (a deterministic count of its work, see [`crate::repair::ModeledCost`])
    /// reaches nine tenths of `deadline_us`, and the decision takes the best certified
    /// candidate found so far or, without one, the fallback.
    pub enforce_deadline: bool,
    /// How far, in seconds, a proposal's own `timestamp` may be from the governor's clock
    /// and still be the decision's time, where the governor keeps the time (`aioss serve`,
    /// `aioss decide --clock wall`; `[governor] max_clock_skew_secs`). Default 0: the
    /// governor's clock alone decides budgets, windows and expiries there. A timestamp
    /// further off is ignored (the decision's `time` says which was used).
    pub max_clock_skew_secs: f64,
    /// Tier 2 iteration cap. Default 50.
    pub max_iterations: u32,
    /// Mahalanobis distance above which a repair needs a human. Default: unlimited.
    pub repair_limit: f64,
    /// `W` over the real action variables, in declaration order (row-major, symmetric
    /// positive definite). Default identity.
    pub metric: Vec<Vec<f64>>,
    /// Cost of changing each action variable (indexed like `Policy::actions`; 0 for reals).
    /// Default 1.0 for discrete variables.
    pub discrete_cost: Vec<f64>,
}

/// What an agent in the `fallback` mode of operation executes (`[monitor] fallback_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FallbackMode {
    /// The policy's certified fallback (the default).
    #[default]
    Fallback,
    /// The agent's last certified action, when Tier 1 certifies it again at the current
    /// state; else the fallback.
    Freeze,
}

/// `[monitor]`: thresholds and windows of the runtime monitors (issue 20). Every default is
/// documented in docs/monitors.md; `aioss policy check` prints them.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorSettings {
    /// Clean decisions in a row (no failure mode named) after which an agent returns to the
    /// normal mode of operation. Default 20.
    pub recover_after: u32,
    /// What an agent in the fallback mode executes. Default [`FallbackMode::Fallback`].
    pub fallback_mode: FallbackMode,
    /// The step of `[dynamics]`, in seconds: a proposal this long after the agent's last
    /// decision is compared with that decision's prediction (`model_mismatch`). Default the
    /// parameter `dt` when the policy has one; none compared without it.
    pub dt: Option<f64>,
    /// How far from `dt` the interval between two decisions may be and still be compared.
    /// Default a tenth of `dt`.
    pub dt_tolerance: f64,
    /// `excessive_uncertainty` when more than this share of the active rows are UNCERTAIN,
    /// with at least `min_active_rows` active. Default 0.5.
    pub uncertain_share: f64,
    /// See `uncertain_share`. Default 4.
    pub min_active_rows: u32,
    /// How many of an agent's last repairs the running non-convergence rate is over.
    /// Default 20.
    pub rate_window: u32,
    /// `solver_non_convergence` when more than this share of the agent's last repairs
    /// (at least half a window of them) did not converge. Default 0.5.
    pub non_convergence_rate: f64,
    /// `degenerate_geometry` when two binding rows of a repair have opposite normals (their
    /// unit gradients' dot product below `-1 + degenerate_cos`): the feasible set is a slab
    /// with no room across it. Default 1e-9.
    pub degenerate_cos: f64,
    /// `metric_not_convex` at decision time when the metric's condition number is above
    /// this. Default 1e12.
    pub max_metric_condition: f64,
    /// At most this many decisions per agent within `rate_window_secs`; past it the
    /// proposal is blocked. Default none (no limit).
    pub rate_limit: Option<u32>,
    /// The window of `rate_limit`, in seconds. Default 1.
    pub rate_window_secs: f64,
    /// Failure modes the policy makes stricter: each also sends the decision for review
    /// (audit QUESTIONABLE, the fallback executes) and moves the agent to the fallback
    /// mode of operation. Default none.
    pub review: Vec<crate::failure::FailureMode>,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            recover_after: 20,
            fallback_mode: FallbackMode::Fallback,
            dt: None,
            dt_tolerance: 0.0,
            uncertain_share: 0.5,
            min_active_rows: 4,
            rate_window: 20,
            non_convergence_rate: 0.5,
            degenerate_cos: 1e-9,
            max_metric_condition: 1e12,
            rate_limit: None,
            rate_window_secs: 1.0,
            review: Vec::new(),
        }
    }
}

impl MonitorSettings {
    /// The defaults for a policy with these `[param]`s (`dt` from the parameter `dt`).
    pub fn defaults_for(params: &[(String, f64)]) -> MonitorSettings {
        let dt = params
            .iter()
            .find(|(n, _)| n == "dt")
            .map(|(_, v)| *v)
            .filter(|v| v.is_finite() && *v > 0.0);
        MonitorSettings {
            dt,
            dt_tolerance: dt.map_or(0.0, |d| d / 10.0),
            ..MonitorSettings::default()
        }
    }
}

/// `[dynamics]`: the one-step model.
#[derive(Clone, Debug)]
pub struct Dynamics {
    /// `(state index, next-state term)`.
    pub equations: Vec<(usize, Term)>,
    /// Model error half-width per equation.
    pub error_bound: Vec<f64>,
}

/// The decision's input vector layout: which slot holds what.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Number of slots.
    pub len: u32,
    /// Agent attributes read by the policy.
    pub attrs: Vec<AttrSlot>,
}

/// A loaded, validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// `[policy] name`.
    pub name: String,
    /// `[policy] version`.
    pub version: String,
    /// `[policy] mode`.
    pub mode: Mode,
    /// Verdict when no rule matches.
    pub default_verdict: Verdict,
    /// `[governor]`.
    pub governor: GovernorSettings,
    /// `[monitor]`: the runtime monitors' thresholds and windows.
    pub monitor: MonitorSettings,
    /// Action variables, in declaration order.
    pub actions: Vec<ActionVar>,
    /// State variables, in declaration order.
    pub states: Vec<StateVar>,
    /// Named constants.
    pub params: Vec<(String, f64)>,
    /// The dynamics model.
    pub dynamics: Option<Dynamics>,
    /// The certified fallback (encoded, one per action variable).
    pub fallback: Vec<f64>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// The constraint lattice.
    pub constraints: Vec<Constraint>,
    /// Budgets.
    pub budgets: Vec<Budget>,
    /// Input layout.
    pub layout: Layout,
    /// Symbol table for attribute strings (id = index).
    pub symbols: Vec<String>,
    /// The compiled lattice (Tier 1).
    pub lattice: crate::lattice::Lattice,
    /// `sha256:` and the hex SHA-256 of the policy text.
    pub hash: String,
    /// The policy text itself (what an audit store keeps by `hash`, for replay).
    pub source: std::sync::Arc<str>,
    /// The policy's own `[[test]]` cases.
    pub tests: Vec<PolicyTest>,
}

/// One `[[test]]` case: proposals given first (to set up budgets and `prev`), the proposal
/// under test, and the expected fields of its decision.
#[derive(Clone, Debug)]
pub struct PolicyTest {
    /// `name`.
    pub name: String,
    /// `given`: proposals decided first, in order.
    pub given: Vec<serde_json::Value>,
    /// `proposal`.
    pub proposal: serde_json::Value,
    /// `expect`: a subset of the decision's JSON fields.
    pub expect: serde_json::Map<String, serde_json::Value>,
    /// Where the test is.
    pub span: Span,
}

impl Policy {
    /// The encoded value of an action given as text (enum value), if it is one.
    pub fn enum_index(values: &[String], v: &str) -> Option<f64> {
        #[expect(clippy::cast_precision_loss, reason = "enum sizes are far below 2^52")]
        values.iter().position(|x| x == v).map(|i| i as f64)
    }
}
