//! The integrated governance stack: one proposal in, one [`Decision`] out.
//!
//! This is where the lattice (Tier 1), the rules and the repair (Tier 2) become the
//! I2OS-style decision of `DESIGN.md`: classification → evaluation → audit → repair status →
//! report, ending in one of six outcomes, with the action to execute now. The stages are
//! small pure functions of what the earlier ones found, so that each row of the final-outcome
//! table can be tested on its own ([`final_outcome`]) and the whole is deterministic: the
//! same policy, governor state and proposal give byte-identical decisions (the measured
//! `latency_us` and the `timing` verdict drawn from it aside), which is what `audit replay`
//! relies on.
//!
//! G5 (timing) is measured and reported: a decision that overruns `deadline_us` still
//! executes what the stack decided, and says `"timing":{"deadline_us":…,"met":false}`.
//! Cutting the search off at a measured time would make the decision depend on the
//! machine's load, and then no replay could re-derive it. What bounds the time instead is
//! deterministic: the repair's work budget (`WORK_FACTOR` × `max_iterations` SQP steps)
//! and, with `[governor] enforce_deadline = true`, a modeled cost of nine tenths of
//! `deadline_us` ([`crate::repair::ModeledCost`]), past which the search stops (solver
//! status `DEADLINE`, failure mode `deadline_budget` when nothing certified was found).
//! The verdict is written after `latency_us`, the last of the deterministic fields, so the
//! part of a decision line that replay compares as bytes stays exactly what it was.
//!
//! Nothing here can fail on the hot path: bad input is refused before the decision starts
//! ([`Proposal::from_json`] names the field), and everything after that produces a decision.
//! When the optimiser cannot find a certified action the answer is the fallback, and when
//! even the fallback is not certified at the current state the decision says so (evaluation
//! FAILED, outcome FAILED_GOVERNANCE): it never claims a guarantee it does not have.
//!
//! Governor state (what replay rebuilds): the budget windows, each agent's last executed
//! action (`prev.`), the logical clock and the sequence number. The warm starts of the
//! repairers are also kept per agent. They change speed, and the last bits of a repaired
//! action, its distance and a relaxed row's slack (a QP warm-started from another active
//! set rounds differently); on 20,000 warehouse repairs, warm against cold, no outcome
//! differed (a near tie, certified against relaxed by a slack of ~1e-9, could). Replay
//! reproduces them, because it re-decides the log from its first record in order.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use std::borrow::Cow;

use serde_json::Value;

use crate::interval::{Interval, Truth};
use crate::policy::{
    ConstraintKind, Criticality, Mode, OnViolation, Policy, PolicyTest, VarType, Verdict,
};
use crate::repair::{Repair, RepairOutcome, Repairer, SolverStatus};
use crate::tier1::budget::Window;
use crate::tier1::{Certified, Checker, Status};

/// Agents whose repairer warm start and last action are kept; past this, new agents share
/// one repairer and their `prev.` defaults to the fallback (bounded memory).
pub const MAX_AGENTS: usize = 4096;

/// The last second of 9999-12-31 (UTC), in seconds since the Unix epoch: the latest time a
/// proposal may carry.
pub const MAX_TIMESTAMP: f64 = 253_402_300_799.0;

/// Where a decision's time comes from. Budgets, windows and expiries follow it, so where
/// the governor faces agents it must not be the agent's word (DESIGN.md: "what the agent
/// may not decide").
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clock {
    /// The proposal's `timestamp`, else the logical clock (the latest time seen): `aioss
    /// decide --clock logical` and policy tests, whose input is the operator's own.
    Logical,
    /// The governor's own reading of the wall clock, in seconds since the Unix epoch
    /// (`aioss serve`, `aioss decide --clock wall`). A proposal's `timestamp` within
    /// `[governor] max_clock_skew_secs` of it is used instead; any other is ignored.
    Trusted(f64),
    /// Exactly this time: `aioss audit replay` re-deciding a record at its recorded time.
    Recorded(f64),
}

/// Where `prev.<action>` comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrevSource {
    /// A proposal's `prev` is used where given; the agent's last executed action (or the
    /// fallback) elsewhere. For input the operator trusts (`aioss decide`, policy tests).
    #[default]
    Body,
    /// Always the agent's last executed action, the fallback before its first one. A
    /// proposal that claims another `prev` is refused (`prev_mismatch`): an agent that
    /// could choose `prev.` could choose the ramp a critical row allows it.
    Governor,
}

// ---------------------------------------------------------------------------------------
// The I2OS enums and the final-outcome table
// ---------------------------------------------------------------------------------------

/// Was the decision effective?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Evaluation {
    /// The executed action is certified and the decision did what it should.
    Effective,
    /// Safe, but intent or soft constraints were given up.
    Partial,
    /// The decision changed nothing (dry-run).
    Neutral,
    /// The executed action could not be certified.
    Failed,
}

/// Can the decision be trusted from its trace?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Audit {
    /// Complete evidence, every guarantee's assumptions certified.
    Valid,
    /// A BLOCK fell on a low-criticality cause (or a guarantee was suspended).
    Questionable,
    /// Required evidence was missing.
    Insufficient,
    /// A contradiction (GO with a FAILED evaluation).
    Invalid,
}

/// The repair stage's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RepairStatus {
    /// GO: nothing to repair.
    NotRequired,
    /// A certified repair within `repair_limit`.
    Repaired,
    /// A human must confirm (HOLD, a confirmable BLOCK, or a repair beyond the limit).
    ConfirmationRequired,
    /// No certified repair: the fallback.
    NoRepairAvailable,
}

/// The six final outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Execute the proposal.
    Allow,
    /// Execute the fallback; the proposal (or its repair) waits for a human.
    HoldForConfirmation,
    /// Execute the repaired action.
    AllowAfterRepair,
    /// Execute the fallback; the proposal is refused.
    BlockNoRepair,
    /// Execute the fallback; the trace needs review.
    ReviewAudit,
    /// Execute the fallback; governance itself failed.
    FailedGovernance,
}

macro_rules! names {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The name used in decisions.
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
        }
    };
}
names!(Evaluation { Effective => "EFFECTIVE", Partial => "PARTIAL", Neutral => "NEUTRAL", Failed => "FAILED" });
names!(Audit { Valid => "VALID", Questionable => "QUESTIONABLE", Insufficient => "INSUFFICIENT", Invalid => "INVALID" });
names!(RepairStatus {
    NotRequired => "NOT_REQUIRED",
    Repaired => "REPAIRED",
    ConfirmationRequired => "CONFIRMATION_REQUIRED",
    NoRepairAvailable => "NO_REPAIR_AVAILABLE",
});
names!(Outcome {
    Allow => "ALLOW",
    HoldForConfirmation => "HOLD_FOR_CONFIRMATION",
    AllowAfterRepair => "ALLOW_AFTER_REPAIR",
    BlockNoRepair => "BLOCK_NO_REPAIR",
    ReviewAudit => "REVIEW_AUDIT",
    FailedGovernance => "FAILED_GOVERNANCE",
});

impl Outcome {
    /// The report type of `DESIGN.md`'s table.
    pub fn report_type(self) -> &'static str {
        match self {
            Outcome::FailedGovernance => "FAILED_GOVERNANCE_REPORT",
            Outcome::ReviewAudit => "AUDIT_REVIEW_REPORT",
            Outcome::BlockNoRepair => "BLOCKED_TRANSITION_REPORT",
            Outcome::AllowAfterRepair => "REPAIR_APPLIED_REPORT",
            Outcome::HoldForConfirmation => "CONFIRMATION_REQUIRED_REPORT",
            Outcome::Allow => "SAFE_TO_PROCEED_REPORT",
        }
    }

    /// Does a human have to act?
    pub fn human_action_required(self) -> bool {
        !matches!(self, Outcome::Allow | Outcome::AllowAfterRepair)
    }

    /// All six, in table order.
    pub const ALL: [Outcome; 6] = [
        Outcome::FailedGovernance,
        Outcome::ReviewAudit,
        Outcome::BlockNoRepair,
        Outcome::AllowAfterRepair,
        Outcome::HoldForConfirmation,
        Outcome::Allow,
    ];
}

/// The final-outcome table of `DESIGN.md`; the first matching row wins.
pub fn final_outcome(
    classification: Verdict,
    evaluation: Evaluation,
    audit: Audit,
    repair: RepairStatus,
) -> Outcome {
    if evaluation == Evaluation::Failed || audit == Audit::Invalid {
        Outcome::FailedGovernance
    } else if matches!(audit, Audit::Questionable | Audit::Insufficient) {
        Outcome::ReviewAudit
    } else if classification == Verdict::Block && repair == RepairStatus::NoRepairAvailable {
        Outcome::BlockNoRepair
    } else if classification == Verdict::Repair && repair == RepairStatus::Repaired {
        Outcome::AllowAfterRepair
    } else if classification == Verdict::Hold || repair == RepairStatus::ConfirmationRequired {
        Outcome::HoldForConfirmation
    } else if classification == Verdict::Go && audit == Audit::Valid {
        Outcome::Allow
    } else {
        Outcome::ReviewAudit
    }
}

// ---------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------

/// Bad input: refused before the decision starts, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// A stable machine-readable code (`malformed_json`, `unknown_field`, `missing_field`,
    /// `wrong_type`, `not_finite`, `unknown_enum_value`, `invalid_value`).
    pub code: &'static str,
    /// What is wrong, lowercase, user input in backticks.
    pub message: String,
    /// The JSON path of the offending field (`action.vx`, `state.py.noise`), if any.
    pub field: Option<String>,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} (field `{field}`)", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for InputError {}

impl InputError {
    fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        InputError {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// The error object of `spec/interfaces.md`: `{"error": {"code", "message", "field"}}`.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"error\":{\"code\":");
        json_str(&mut s, self.code);
        s.push_str(",\"message\":");
        json_str(&mut s, &self.message);
        if let Some(f) = &self.field {
            s.push_str(",\"field\":");
            json_str(&mut s, f);
        }
        s.push_str("}}");
        s
    }
}

/// One state variable's value in a proposal.
#[derive(Clone, Debug, PartialEq)]
pub enum StateValue {
    /// A number, enum or bool state, as its uncertainty interval.
    Num(Interval),
    /// A text state.
    Text(String),
}

/// An agent attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// A number.
    Num(f64),
    /// A string (compared as a symbol).
    Sym(String),
}

/// A validated proposal, encoded for one policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    /// The caller's id, echoed in the decision.
    pub id: Option<String>,
    /// The proposing agent (`"anonymous"` if not given).
    pub agent: String,
    /// Seconds since the Unix epoch, from `timestamp` (a number or an RFC 3339 string).
    pub timestamp: Option<f64>,
    /// One encoded value per action variable.
    pub action: Vec<f64>,
    /// One entry per state variable; `None` when missing.
    pub state: Vec<Option<StateValue>>,
    /// `prev.<action>` given by the proposal, per action variable.
    pub prev: Vec<Option<f64>>,
    /// `agent_attributes`.
    pub attributes: Vec<(String, AttrValue)>,
    /// Top-level `transition` text when the policy has no such state variable.
    pub transition: Option<String>,
}

// ---------------------------------------------------------------------------------------
// A light JSON value for proposals
// ---------------------------------------------------------------------------------------

/// A proposal's JSON, parsed without building a `serde_json::Value`: strings borrow from
/// the input line and objects are small vectors in input order. Hand-written because
/// parsing is a third of the cost of a feasible decision (`aioss bench decide`), and a
/// duplicate key, which `Value` would silently resolve, is refused here.
#[derive(Debug, Clone, PartialEq)]
enum J<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    Arr,
    Obj(Obj<'a>),
}

/// A JSON object, keys in input order, no duplicates.
#[derive(Debug, Clone, PartialEq, Default)]
struct Obj<'a>(Vec<(Cow<'a, str>, J<'a>)>);

impl<'o, 'a> IntoIterator for &'o Obj<'a> {
    type Item = (&'o str, &'o J<'a>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'o, (Cow<'a, str>, J<'a>)>,
        fn(&'o (Cow<'a, str>, J<'a>)) -> (&'o str, &'o J<'a>),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<'a> Obj<'a> {
    fn get(&self, k: &str) -> Option<&J<'a>> {
        self.0.iter().find(|(x, _)| x == k).map(|(_, v)| v)
    }
    fn contains_key(&self, k: &str) -> bool {
        self.get(k).is_some()
    }
    fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }
}

impl<'a> J<'a> {
    fn as_f64(&self) -> Option<f64> {
        match self {
            #[expect(
                clippy::cast_precision_loss,
                reason = "a JSON number means its nearest double"
            )]
            J::Int(i) => Some(*i as f64),
            J::Float(x) => Some(*x),
            _ => None,
        }
    }
    fn as_object(&self) -> Option<&Obj<'a>> {
        match self {
            J::Obj(o) => Some(o),
            _ => None,
        }
    }
}

impl<'de> serde::Deserialize<'de> for J<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = J<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<J<'de>, E> {
                Ok(J::Null)
            }
            fn visit_none<E>(self) -> Result<J<'de>, E> {
                Ok(J::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<J<'de>, E> {
                Ok(J::Bool(b))
            }
            fn visit_i64<E>(self, x: i64) -> Result<J<'de>, E> {
                Ok(J::Int(i128::from(x)))
            }
            fn visit_u64<E>(self, x: u64) -> Result<J<'de>, E> {
                Ok(J::Int(i128::from(x)))
            }
            fn visit_f64<E>(self, x: f64) -> Result<J<'de>, E> {
                Ok(J::Float(x))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<J<'de>, E> {
                Ok(J::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<J<'de>, E> {
                Ok(J::Str(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<J<'de>, E> {
                Ok(J::Str(Cow::Owned(s)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<J<'de>, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(J::Arr)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<J<'de>, A::Error> {
                let mut o: Vec<(Cow<'de, str>, J<'de>)> = Vec::new();
                while let Some(k) = a.next_key::<CowStr<'de>>()? {
                    if o.iter().any(|(x, _)| *x == k.0) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate key `{}`",
                            k.0
                        )));
                    }
                    let v = a.next_value::<J<'de>>()?;
                    o.push((k.0, v));
                }
                Ok(J::Obj(Obj(o)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A map key, borrowed when the input has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

const RESERVED: &[&str] = &[
    "id",
    "agent",
    "timestamp",
    "action",
    "state",
    "prev",
    "agent_attributes",
    "transition",
];

/// A field name for error messages, formatted only when an error is made: `prefix.name`.
/// (Formatting every field of every proposal up front, `format!("action.{}", …)` and the
/// like, was ~50 allocations per line on the decision path.)
struct Dot<'a>(&'a dyn std::fmt::Display, &'a str);

impl std::fmt::Display for Dot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// A field name as [`InputError`] and its messages take it.
type Field<'a> = &'a dyn std::fmt::Display;

fn type_name(v: &J<'_>) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Int(_) | J::Float(_) => "a number",
        J::Str(_) => "a string",
        J::Arr => "an array",
        J::Obj(_) => "an object",
    }
}

fn number(v: &J<'_>, field: Field<'_>) -> Result<f64, InputError> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        Some(_) => Err(InputError::new(
            "not_finite",
            field.to_string(),
            format!("`{field}` must be a finite number"),
        )),
        None => Err(InputError::new(
            "wrong_type",
            field.to_string(),
            format!("`{field}` must be a number, found {}", type_name(v)),
        )),
    }
}

fn enum_value(values: &[String], v: &J<'_>, field: Field<'_>) -> Result<f64, InputError> {
    let J::Str(s) = v else {
        return Err(InputError::new(
            "wrong_type",
            field.to_string(),
            format!(
                "`{field}` must be one of {}, found {}",
                list(values),
                type_name(v)
            ),
        ));
    };
    Policy::enum_index(values, s).ok_or_else(|| {
        InputError::new(
            "unknown_enum_value",
            field.to_string(),
            format!(
                "`{field}` has no value `{s}`; its values are {}",
                list(values)
            ),
        )
    })
}

fn list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An action value (also `prev.`), encoded.
fn action_value(ty: &VarType, v: &J<'_>, field: Field<'_>) -> Result<f64, InputError> {
    match ty {
        VarType::Real => number(v, field),
        VarType::Int => {
            let x = number(v, field)?;
            if x.fract() == 0.0 {
                Ok(x)
            } else {
                Err(InputError::new(
                    "wrong_type",
                    field.to_string(),
                    format!("`{field}` is an int, and {x} is not whole"),
                ))
            }
        }
        VarType::Bool => match v {
            J::Bool(b) => Ok(f64::from(u8::from(*b))),
            _ => Err(InputError::new(
                "wrong_type",
                field.to_string(),
                format!("`{field}` must be true or false, found {}", type_name(v)),
            )),
        },
        VarType::Enum(values) => enum_value(values, v, field),
        VarType::Text => Err(InputError::new(
            "wrong_type",
            field.to_string(),
            format!("`{field}` cannot be text"),
        )),
    }
}

fn object<'a, 'b>(v: &'a J<'b>, field: Field<'_>) -> Result<&'a Obj<'b>, InputError> {
    v.as_object().ok_or_else(|| {
        InputError::new(
            "wrong_type",
            field.to_string(),
            format!("`{field}` must be an object, found {}", type_name(v)),
        )
    })
}

fn unknown(field: String, what: &str, known: &[&str]) -> InputError {
    let hint = if known.is_empty() {
        format!("this policy has no {what}")
    } else {
        format!("the {what} are {}", known.join(", "))
    };
    InputError {
        code: "unknown_field",
        message: format!("`{field}` is not known: {hint}"),
        field: Some(field),
    }
}

fn state_value(
    s: &crate::policy::StateVar,
    v: &J<'_>,
    field: Field<'_>,
) -> Result<StateValue, InputError> {
    let num = |x: Interval| Ok(StateValue::Num(x));
    match &s.ty {
        VarType::Text => match v {
            J::Str(t) => Ok(StateValue::Text(t.to_string())),
            _ => Err(InputError::new(
                "wrong_type",
                field.to_string(),
                format!("`{field}` must be a string, found {}", type_name(v)),
            )),
        },
        VarType::Bool => num(Interval::point(action_value(&s.ty, v, field)?)),
        VarType::Enum(values) => num(Interval::point(enum_value(values, v, field)?)),
        VarType::Real | VarType::Int => match v {
            J::Obj(o) => {
                if o.contains_key("lo") || o.contains_key("hi") {
                    for k in o.keys() {
                        if k != "lo" && k != "hi" {
                            return Err(unknown(format!("{field}.{k}"), "keys", &["lo", "hi"]));
                        }
                    }
                    let get = |k: &str| {
                        let f = Dot(field, k);
                        o.get(k).map_or_else(
                            || {
                                Err(InputError::new(
                                    "missing_field",
                                    f.to_string(),
                                    format!("`{f}` is missing: give both `lo` and `hi`"),
                                ))
                            },
                            |x| number(x, &f),
                        )
                    };
                    let (lo, hi) = (get("lo")?, get("hi")?);
                    if lo > hi {
                        return Err(InputError::new(
                            "invalid_value",
                            field.to_string(),
                            format!("`{field}` has `lo` {lo} above `hi` {hi}"),
                        ));
                    }
                    num(Interval::new(lo, hi))
                } else {
                    for k in o.keys() {
                        if k != "value" && k != "noise" {
                            return Err(unknown(
                                format!("{field}.{k}"),
                                "keys",
                                &["value", "noise", "lo", "hi"],
                            ));
                        }
                    }
                    let f = Dot(field, "value");
                    let value = o.get("value").map_or_else(
                        || {
                            Err(InputError::new(
                                "missing_field",
                                f.to_string(),
                                format!("`{f}` is missing"),
                            ))
                        },
                        |x| number(x, &f),
                    )?;
                    let f = Dot(field, "noise");
                    let noise = match o.get("noise") {
                        Some(x) => number(x, &f)?,
                        None => s.noise,
                    };
                    if noise < 0.0 {
                        return Err(InputError::new(
                            "invalid_value",
                            f.to_string(),
                            format!("`{f}` is negative; noise is a half-width"),
                        ));
                    }
                    num(Interval::around(value, noise))
                }
            }
            _ => num(Interval::around(number(v, field)?, s.noise)),
        },
    }
}

impl Proposal {
    /// Parse one JSON line.
    pub fn parse(p: &Policy, line: &str) -> Result<Proposal, InputError> {
        let v: J<'_> = serde_json::from_str(line).map_err(|e| InputError {
            code: "malformed_json",
            message: format!("malformed JSON: {e}"),
            field: None,
        })?;
        Proposal::from_light(p, &v)
    }

    /// Validate and encode a proposal given as a JSON value (policy tests, the server).
    pub fn from_json(p: &Policy, v: &Value) -> Result<Proposal, InputError> {
        Proposal::parse(p, &v.to_string())
    }

    /// Validate and encode a proposal for `p`. Every problem is an [`InputError`] naming
    /// the field; nothing here panics.
    fn from_light(p: &Policy, v: &J<'_>) -> Result<Proposal, InputError> {
        let o = v.as_object().ok_or_else(|| InputError {
            code: "wrong_type",
            message: format!("a proposal must be a JSON object, found {}", type_name(v)),
            field: None,
        })?;
        let text = |k: &str| -> Result<Option<String>, InputError> {
            match o.get(k) {
                None => Ok(None),
                Some(J::Str(s)) => Ok(Some(s.to_string())),
                Some(J::Int(n)) if k == "id" => Ok(Some(n.to_string())),
                Some(J::Float(n)) if k == "id" => Ok(Some(
                    serde_json::Number::from_f64(*n).map_or_else(String::new, |x| x.to_string()),
                )),
                Some(x) => Err(InputError::new(
                    "wrong_type",
                    k,
                    format!("`{k}` must be a string, found {}", type_name(x)),
                )),
            }
        };
        let id = text("id")?;
        let agent = text("agent")?.unwrap_or_else(|| "anonymous".to_string());
        let timestamp = match o.get("timestamp") {
            None => None,
            Some(J::Str(s)) => Some(
                humantime::parse_rfc3339_weak(s)
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs_f64())
                    .ok_or_else(|| {
                        InputError::new(
                            "invalid_value",
                            "timestamp",
                            format!(
                                "`timestamp` `{s}` is not an RFC 3339 UTC time (like `2026-11-26T12:00:00Z`)"
                            ),
                        )
                    })?,
            ),
            Some(x) => Some(number(x, &"timestamp")?),
        };
        if let Some(t) = timestamp {
            // INVARIANT (time-range): every time a decision can carry is a date from
            // 1970 to 9999, which every formatter of it (the audit record's RFC 3339,
            // replay) can write; `1e12` once panicked the audit record's formatting.
            if !(0.0..=MAX_TIMESTAMP).contains(&t) {
                return Err(InputError::new(
                    "invalid_value",
                    "timestamp",
                    format!(
                        "`timestamp` {t} is not a time from 1970-01-01 to 9999-12-31 (seconds since the Unix epoch)"
                    ),
                ));
            }
        }
        let state_names: Vec<&str> = p.states.iter().map(|s| s.name.as_str()).collect();
        let action_names: Vec<&str> = p.actions.iter().map(|a| a.name.as_str()).collect();

        // The action: every variable, nothing else.
        let mut action = p.fallback.clone();
        let given = match o.get("action") {
            Some(a) => Some(object(a, &"action")?),
            None if p.actions.is_empty() => None,
            None => {
                return Err(InputError::new(
                    "missing_field",
                    "action",
                    format!(
                        "the proposal has no `action`; this policy's action variables are {}",
                        action_names.join(", ")
                    ),
                ))
            }
        };
        if let Some(a) = given {
            for k in a.keys() {
                if !action_names.contains(&k) {
                    return Err(unknown(
                        format!("action.{k}"),
                        "action variables",
                        &action_names,
                    ));
                }
            }
            for (var, slot) in p.actions.iter().zip(action.iter_mut()) {
                let field = Dot(&"action", &var.name);
                let x = a.get(&var.name).ok_or_else(|| {
                    InputError::new(
                        "missing_field",
                        field.to_string(),
                        format!("`{field}` is missing: every action variable must be given"),
                    )
                })?;
                *slot = action_value(&var.ty, x, &field)?;
            }
        }

        // The state: under `state`, or flat at the top level (I2OS transitions).
        let mut state: Vec<Option<StateValue>> = vec![None; p.states.len()];
        if let Some(sv) = o.get("state") {
            let so = object(sv, &"state")?;
            for (k, x) in so {
                let i = state_names.iter().position(|n| *n == k).ok_or_else(|| {
                    unknown(format!("state.{k}"), "state variables", &state_names)
                })?;
                if let (Some(s), Some(slot)) = (p.states.get(i), state.get_mut(i)) {
                    *slot = Some(state_value(s, x, &Dot(&"state", k))?);
                }
            }
        }
        let mut transition = None;
        for (k, x) in o {
            let i = state_names.iter().position(|n| *n == k);
            match i {
                Some(i) => {
                    if o.contains_key("state") && !RESERVED.contains(&k) {
                        return Err(InputError::new(
                            "invalid_value",
                            k,
                            format!("`{k}` is given both at the top level and under `state`; give it once"),
                        ));
                    }
                    if let (Some(s), Some(slot)) = (p.states.get(i), state.get_mut(i)) {
                        if slot.is_none() {
                            *slot = Some(state_value(s, x, &k)?);
                        }
                    }
                }
                None if k == "transition" => {
                    transition = text("transition")?;
                }
                None if RESERVED.contains(&k) => {}
                None => {
                    let mut known: Vec<&str> = RESERVED.to_vec();
                    known.extend(state_names.iter());
                    return Err(unknown(k.to_string(), "top-level fields", &known));
                }
            }
        }

        let mut prev = vec![None; p.actions.len()];
        if let Some(pv) = o.get("prev") {
            let po = object(pv, &"prev")?;
            for (k, x) in po {
                let i = action_names.iter().position(|n| *n == k).ok_or_else(|| {
                    unknown(format!("prev.{k}"), "action variables", &action_names)
                })?;
                if let (Some(var), Some(slot)) = (p.actions.get(i), prev.get_mut(i)) {
                    *slot = Some(action_value(&var.ty, x, &Dot(&"prev", k))?);
                }
            }
        }

        let mut attributes = Vec::new();
        if let Some(av) = o.get("agent_attributes") {
            for (k, x) in object(av, &"agent_attributes")? {
                let field = Dot(&"agent_attributes", k);
                let val = match x {
                    J::Str(s) => AttrValue::Sym(s.to_string()),
                    J::Int(_) | J::Float(_) => AttrValue::Num(number(x, &field)?),
                    J::Bool(b) => AttrValue::Sym(b.to_string()),
                    _ => {
                        return Err(InputError::new(
                            "wrong_type",
                            field.to_string(),
                            format!(
                                "`{field}` must be a string or a number, found {}",
                                type_name(x)
                            ),
                        ))
                    }
                };
                attributes.push((k.to_string(), val));
            }
        }

        Ok(Proposal {
            id,
            agent,
            timestamp,
            action,
            state,
            prev,
            attributes,
            transition,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The decision
// ---------------------------------------------------------------------------------------

/// A row's Tier 1 verdict at the proposal, as reported.
#[derive(Clone, Debug, PartialEq)]
pub struct RowReport {
    /// Row name (`id`, or `id#k` for a conjunct); `bounds.<var>` for an action bound.
    pub id: String,
    /// VIOLATED or UNCERTAIN.
    pub status: Status,
    /// The margin interval (negative is violated).
    pub margin: Interval,
    /// The constraint's criticality.
    pub criticality: Criticality,
}

/// Which guarantees held for this decision (`None`: the policy does not offer it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guarantees {
    /// G1: the executed action satisfies every active critical row over the state box.
    pub pointwise_safety: bool,
    /// G2: every barrier row is SAT at the executed action.
    pub forward_invariance: Option<bool>,
    /// G3: the repair is the certified projection, no relaxation (for repairs).
    pub projection_stability: Option<bool>,
    /// G4: every Lyapunov row is SAT at the executed action.
    pub input_to_state_stability: Option<bool>,
}

/// The solver's report, for decisions that ran Tier 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SolverReport {
    /// The last solver status.
    pub status: SolverStatus,
    /// SQP plus QP iterations.
    pub iterations: u32,
    /// SQP iterations (linearisations) alone: at most
    /// [`WORK_FACTOR`](crate::repair::WORK_FACTOR) × `max_iterations`.
    pub steps: u32,
    /// Discrete candidates examined.
    pub nodes: u32,
    /// The search's modeled cost, which `enforce_deadline` bounds. Not in the decision's
    /// JSON: the decision already says when it stopped the search (solver status
    /// `DEADLINE`, failure mode `deadline_budget`).
    pub cost: crate::repair::ModeledCost,
}

/// One decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The proposal's `id`, echoed.
    pub id: Option<String>,
    /// Unique per governor: the policy hash prefix and the sequence number.
    pub decision_id: String,
    /// Sequence number (0-based, per governor).
    pub seq: u64,
    /// The proposing agent.
    pub agent: String,
    /// The time the decision used (seconds since the Unix epoch; the logical clock).
    pub time: f64,
    /// One of six.
    pub final_outcome: Outcome,
    /// GO / REPAIR / HOLD / BLOCK.
    pub classification: Verdict,
    /// EFFECTIVE / PARTIAL / NEUTRAL / FAILED.
    pub evaluation: Evaluation,
    /// VALID / QUESTIONABLE / INSUFFICIENT / INVALID.
    pub audit: Audit,
    /// NOT_REQUIRED / REPAIRED / CONFIRMATION_REQUIRED / NO_REPAIR_AVAILABLE.
    pub repair_status: RepairStatus,
    /// The action to execute now (encoded).
    pub action: Vec<f64>,
    /// The proposal's action (encoded).
    pub proposed: Vec<f64>,
    /// A certified repair offered to the approver of a hold.
    pub candidate: Option<Vec<f64>>,
    /// The repair's distance in the policy's metric (with discrete-change costs).
    pub distance: Option<f64>,
    /// Rows not SAT at the proposal (violated first, then uncertain, in row order).
    pub constraints: Vec<RowReport>,
    /// Rows the CRE relaxed, with their slack.
    pub relaxed: Vec<(String, f64)>,
    /// The rule that gave the classification (index into `Policy::rules`).
    pub rule: Option<usize>,
    /// Human-readable reasons, naming the rule and the rows.
    pub reasons: Vec<String>,
    /// The rule's repaired transition text, for REPAIR.
    pub repaired_transition: Option<String>,
    /// Failure modes detected (`numerical_fault`, `solver_non_convergence`,
    /// `infeasible_constraint_set`, `deadline_budget`, `fallback_not_certified`,
    /// `insufficient_evidence`).
    pub failure_modes: Vec<&'static str>,
    /// The guarantees that held.
    pub guarantees: Guarantees,
    /// Tier 2's report, when it ran.
    pub solver: Option<SolverReport>,
    /// Wall time of the decision in microseconds (with [`Decision::deadline_met`], drawn
    /// from it, the only non-deterministic field).
    pub latency_us: u64,
}

impl Decision {
    /// G5 (timing): was the decision made within the policy's `deadline_us`? Measured, so
    /// reported after `latency_us` and left out of replay's comparison (see the module
    /// documentation).
    pub fn deadline_met(&self, p: &Policy) -> bool {
        self.latency_us <= p.governor.deadline_us
    }
}

// ---------------------------------------------------------------------------------------
// The governor
// ---------------------------------------------------------------------------------------

/// The governor: a validated policy and the state its decisions carry forward.
#[derive(Debug)]
pub struct Governor {
    policy: Policy,
    repairers: BTreeMap<String, Repairer>,
    shared: Repairer,
    last_action: BTreeMap<String, Vec<f64>>,
    windows: Vec<Window>,
    clock: f64,
    seq: u64,
    inputs: Vec<Interval>,
    /// The rules' and budgets' evaluations (classification and accounting, not checks).
    slots: Vec<Interval>,
    /// Tier 1: the only way anything here is certified (see [`crate::tier1`]).
    t1: Checker,
    /// Working memory of `fill_inputs`: the proposal's `prev.` and the budgets' values.
    prev: Vec<f64>,
    budget_values: Vec<Interval>,
    dry_run: bool,
    prev_source: PrevSource,
    /// A test's stand-in for a repairer bug: applied to every repair's result.
    #[cfg(test)]
    sabotage_repair: Option<fn(&mut Repair)>,
    /// What charging the budgets evaluates: their increments and what those read.
    budget_ops: crate::tape::OpList,
}

impl Governor {
    /// A governor for a loaded policy (loading validated it; nothing is re-checked here).
    pub fn new(policy: Policy) -> Governor {
        let shared = Repairer::new(&policy);
        let windows = vec![Window::default(); policy.budgets.len()];
        let inputs = policy.range_inputs();
        let slots = policy.lattice.tape.slots();
        let t1 = Checker::new(&policy.lattice);
        let prev = Vec::with_capacity(policy.actions.len());
        let budget_values = Vec::with_capacity(policy.budgets.len());
        let dry_run = policy.mode == Mode::DryRun;
        let budget_ops = policy.lattice.tape.subset(&policy.lattice.budget_slots);
        Governor {
            policy,
            repairers: BTreeMap::new(),
            shared,
            last_action: BTreeMap::new(),
            windows,
            clock: 0.0,
            seq: 0,
            inputs,
            slots,
            t1,
            prev,
            budget_values,
            dry_run,
            prev_source: PrevSource::Body,
            #[cfg(test)]
            sabotage_repair: None,
            budget_ops,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Decisions made so far (the next decision's sequence number).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Continue numbering from `seq` (an audit store that already holds `seq` records).
    pub fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// Force dry-run (decide and report, but pass the proposal through) whatever the
    /// policy's `mode` says.
    pub fn set_dry_run(&mut self, on: bool) {
        self.dry_run = on;
    }

    /// The current value of each budget, as of the logical clock.
    pub fn budgets(&self) -> Vec<(String, f64)> {
        self.policy
            .budgets
            .iter()
            .zip(&self.windows)
            .map(|(b, w)| (b.name.clone(), w.value().mid()))
            .collect()
    }

    /// Where `prev.` comes from from now on (default [`PrevSource::Body`]).
    pub fn set_prev_source(&mut self, s: PrevSource) {
        self.prev_source = s;
    }

    /// Parse a JSON line and decide it.
    pub fn decide_line(&mut self, line: &str) -> Result<Decision, InputError> {
        self.decide_line_with(line, Clock::Logical)
    }

    /// Parse a JSON line and decide it; a proposal without a `timestamp` is decided at
    /// `now` (seconds since the Unix epoch: the caller's wall clock). The time used is
    /// [`Decision::time`].
    pub fn decide_line_at(&mut self, line: &str, now: f64) -> Result<Decision, InputError> {
        let mut p = Proposal::parse(&self.policy, line)?;
        if p.timestamp.is_none() && now.is_finite() {
            p.timestamp = Some(now);
        }
        self.decide_with(&p, Clock::Logical)
    }

    /// Parse a JSON line and decide it at the time `clock` gives.
    pub fn decide_line_with(&mut self, line: &str, clock: Clock) -> Result<Decision, InputError> {
        let p = Proposal::parse(&self.policy, line)?;
        self.decide_with(&p, clock)
    }

    /// Decide `prop` at the time `clock` gives, refusing what the agent may not claim:
    /// with [`PrevSource::Governor`], a `prev` other than the agent's last executed action
    /// (`prev_mismatch`, naming the first variable that differs). A refusal changes no
    /// governor state.
    pub fn decide_with(&mut self, prop: &Proposal, clock: Clock) -> Result<Decision, InputError> {
        self.admit_prev(prop)?;
        let started = std::time::Instant::now();
        let now = self.decision_time(prop, clock);
        let mut d = self.decide_inner(prop, now);
        d.latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Ok(d)
    }

    /// The time a decision of `prop` uses under `clock`: never before the logical clock,
    /// so windows only move forward.
    fn decision_time(&self, prop: &Proposal, clock: Clock) -> f64 {
        let t = match clock {
            Clock::Logical => prop.timestamp.unwrap_or(self.clock),
            Clock::Trusted(now) => match prop.timestamp {
                Some(ts) if (ts - now).abs() <= self.policy.governor.max_clock_skew_secs => ts,
                _ => now,
            },
            Clock::Recorded(t) => t,
        };
        // A NaN reading (no clock) keeps the logical clock; `max` returns the other
        // operand for a NaN one.
        t.max(self.clock)
    }

    /// The agent's `prev.` as the governor holds it: its last executed action, else the
    /// fallback.
    pub fn recorded_prev(&self, agent: &str) -> &[f64] {
        self.last_action
            .get(agent)
            .map_or(self.policy.fallback.as_slice(), Vec::as_slice)
    }

    /// With [`PrevSource::Governor`], refuse a `prev` the governor did not execute.
    fn admit_prev(&self, prop: &Proposal) -> Result<(), InputError> {
        if self.prev_source == PrevSource::Body {
            return Ok(());
        }
        let recorded = self.recorded_prev(&prop.agent);
        for ((a, claimed), held) in self.policy.actions.iter().zip(&prop.prev).zip(recorded) {
            if let Some(c) = claimed {
                if c != held {
                    let field = format!("prev.{}", a.name);
                    let mut shown = String::new();
                    value_json(&mut shown, &a.ty, *held);
                    return Err(InputError::new(
                        "prev_mismatch",
                        field.clone(),
                        format!(
                            "`{field}` is not what this governor last executed for agent `{}` ({shown}): `prev` is the governor's record, not the agent's to set",
                            prop.agent
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// SHA-256 (hex) of the governor state that later decisions depend on: the sequence
    /// number, the logical clock, every budget window and every agent's last executed
    /// action. Two governors with the same digest decide the same stream identically.
    pub fn state_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"aioss-governor-state-v1");
        h.update(self.seq.to_le_bytes());
        h.update(self.clock.to_bits().to_le_bytes());
        for w in &self.windows {
            h.update((w.len() as u64).to_le_bytes());
            for (t, a) in w.entries() {
                h.update(t.to_bits().to_le_bytes());
                h.update(a.hi.to_bits().to_le_bytes());
                // An increment known only as an interval (it read a state box) adds its
                // lower bound; a point hashes as it did when only points were charged.
                if a.lo.to_bits() != a.hi.to_bits() {
                    h.update(b"lo");
                    h.update(a.lo.to_bits().to_le_bytes());
                }
            }
        }
        for (agent, last) in &self.last_action {
            h.update((agent.len() as u64).to_le_bytes());
            h.update(agent.as_bytes());
            for x in last {
                h.update(x.to_bits().to_le_bytes());
            }
        }
        let d = h.finalize();
        let mut s = String::with_capacity(64);
        for b in d {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Decide one proposal at its own time ([`Clock::Logical`]) with its own `prev` where
    /// given ([`PrevSource::Body`], whatever [`Governor::set_prev_source`] says). Never
    /// panics, never fails: see the module documentation.
    pub fn decide(&mut self, prop: &Proposal) -> Decision {
        let started = std::time::Instant::now();
        let now = self.decision_time(prop, Clock::Logical);
        let mut d = self.decide_inner(prop, now);
        d.latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        d
    }

    /// Take over the state of `old`, a governor of an earlier version of the policy (a hot
    /// reload), where it still means the same: the sequence number and the logical clock
    /// always; each budget window whose budget has the same name and window length; each
    /// agent's last executed action when the action variables are the same (names, types,
    /// order). Anything else starts empty, as in a new governor.
    pub fn carry_state_from(&mut self, old: &Governor) {
        self.seq = old.seq;
        self.clock = old.clock;
        for (b, w) in self.policy.budgets.iter().zip(self.windows.iter_mut()) {
            if let Some((_, ow)) = old
                .policy
                .budgets
                .iter()
                .zip(&old.windows)
                .find(|(ob, _)| ob.name == b.name && ob.window_secs == b.window_secs)
            {
                *w = ow.clone();
            }
        }
        let same_actions = self.policy.actions.len() == old.policy.actions.len()
            && self
                .policy
                .actions
                .iter()
                .zip(&old.policy.actions)
                .all(|(a, o)| a.name == o.name && a.ty == o.ty);
        if same_actions {
            self.last_action = old.last_action.clone();
        }
    }

    /// Record that `prop`'s action was executed outside a decision — an operator approved
    /// a held proposal — at the governor's logical clock: its budget increments (evaluated
    /// in `prop`'s state) are added to the windows and it becomes the agent's last
    /// action, exactly as if a decision had executed it. Budgets are updated only by
    /// executed actions; without this, a hold approved by an operator would not count
    /// against them. A replay of the audit log calls this for every approved hold, so the
    /// state it rebuilds is the same. Returns the failure modes it noted
    /// (`numerical_fault` when an increment is undefined).
    pub fn record_execution(&mut self, prop: &Proposal) -> Vec<&'static str> {
        let now = self.clock;
        let _ = self.fill_inputs(prop, now);
        let mut failure_modes = Vec::new();
        let mut reasons = Vec::new();
        let exec = prop.action.clone();
        self.charge(&prop.agent, &exec, now, &mut failure_modes, &mut reasons);
        failure_modes
    }

    /// Add the executed action `exec` of `agent` to the budget windows at `now` (with the
    /// state already in `self.inputs`) and make it the agent's last action.
    fn charge(
        &mut self,
        agent: &str,
        exec: &[f64],
        now: f64,
        failure_modes: &mut Vec<&'static str>,
        reasons: &mut Vec<String>,
    ) {
        let p = &self.policy;
        if !p.budgets.is_empty() {
            for (k, a) in p.actions.iter().zip(exec) {
                if let Some(s) = self.inputs.get_mut(k.slot as usize) {
                    *s = Interval::point(*a);
                }
            }
            // Only the increments and what they read (a full evaluation cost the agent-tools
            // policy a second pass over its whole tape per decision).
            p.lattice
                .tape
                .eval_subset(&self.budget_ops, &self.inputs, &mut self.slots);
            for ((b, w), &s) in p
                .budgets
                .iter()
                .zip(&mut self.windows)
                .zip(&p.lattice.budget_slots)
            {
                let add = self
                    .slots
                    .get(s as usize)
                    .copied()
                    .unwrap_or(Interval::INVALID);
                if !w.charge(now, add) {
                    if !failure_modes.contains(&"numerical_fault") {
                        failure_modes.push("numerical_fault");
                    }
                    reasons.push(format!(
                        "budget `{}`: the amount is undefined here, so the budget counts as unbounded until this action leaves its window",
                        b.name
                    ));
                }
            }
        }
        if self.last_action.contains_key(agent) || self.last_action.len() < MAX_AGENTS {
            self.last_action.insert(agent.to_string(), exec.to_vec());
        }
    }

    /// Tier 1 alone, with no effect on the governor state: the active critical rows that
    /// are not SAT for `prop`'s action over its state box (with the budgets as of the
    /// logical clock), and the action bounds it breaks. Empty means the action is certified
    /// safe in that state. The server re-checks an approved hold with this against the
    /// latest state its agent reported, and an observed outcome against the safe set.
    pub fn critical_unsat(&mut self, prop: &Proposal) -> Vec<RowReport> {
        let saved = self.windows.clone();
        let _ = self.fill_inputs(prop, self.clock);
        // INVARIANT (check-is-pure): the budget windows are restored; only scratch changes.
        self.windows = saved;
        let p = &self.policy;
        self.t1.check(&p.lattice, &self.inputs, &prop.action);
        let Err(not) = self.t1.certify(&p.lattice) else {
            return Vec::new();
        };
        let rows = self.t1.rows();
        let mut out: Vec<RowReport> = not
            .rows
            .iter()
            .filter_map(|&i| {
                let (row, c) = (p.lattice.rows.get(i)?, rows.get(i)?);
                Some(RowReport {
                    id: row.name.clone(),
                    status: c.status,
                    margin: c.margin,
                    criticality: row.criticality,
                })
            })
            .collect();
        for &k in &not.out_of_range {
            if let (Some(a), Some(&u)) = (p.actions.get(k), prop.action.get(k)) {
                out.push(RowReport {
                    id: format!("bounds.{}", a.name),
                    status: Status::Violated,
                    margin: Interval::point((u - a.min).min(a.max - u)),
                    criticality: Criticality::Critical,
                });
            }
        }
        out
    }

    /// The `[dynamics]` model's prediction of the next state for `prop` (its action from
    /// its state box), each widened by the equation's error bound: `(state name, interval)`
    /// per equation. Empty without `[dynamics]`. No effect on the governor state.
    pub fn predict_next(&mut self, prop: &Proposal) -> Vec<(String, Interval)> {
        let saved = self.windows.clone();
        let _ = self.fill_inputs(prop, self.clock);
        self.windows = saved;
        let p = &self.policy;
        let Some(dy) = &p.dynamics else {
            return Vec::new();
        };
        dy.equations
            .iter()
            .enumerate()
            .filter_map(|(k, (si, term))| {
                let name = p.states.get(*si)?.name.clone();
                let e = dy.error_bound.get(k).copied().unwrap_or(0.0);
                let x = crate::tape::interpret(term, &self.inputs);
                Some((name, x.add(Interval::new(-e, e))))
            })
            .collect()
    }

    /// Fill `self.inputs` from the proposal and the governor state (`prev.` and the
    /// budgets as of `now`, evicting what left their windows); returns the required
    /// evidence that is missing.
    fn fill_inputs(&mut self, prop: &Proposal, now: f64) -> Vec<String> {
        let p = &self.policy;
        let last = self.last_action.get(&prop.agent);
        self.prev.clear();
        self.prev.extend(p.actions.iter().enumerate().map(|(i, _)| {
            prop.prev
                .get(i)
                .copied()
                .flatten()
                .or_else(|| last.and_then(|l| l.get(i).copied()))
                .or_else(|| p.fallback.get(i).copied())
                .unwrap_or(0.0)
        }));
        self.budget_values.clear();
        for (b, w) in p.budgets.iter().zip(&mut self.windows) {
            w.evict(now, b.window_secs);
            self.budget_values.push(w.value());
        }
        crate::tier1::inputs::assemble(p, prop, &self.prev, &self.budget_values, &mut self.inputs)
    }

    #[expect(
        clippy::too_many_lines,
        reason = "the flow of DESIGN.md, stage by stage, reads best in one place"
    )]
    fn decide_inner(&mut self, prop: &Proposal, now: f64) -> Decision {
        let seq = self.seq;
        self.seq += 1;
        self.clock = now;
        let missing = self.fill_inputs(prop, now);
        let p = &self.policy;

        // Tier 1 at the proposal, and the rules' conditions (classification, not a check).
        self.t1.check(&p.lattice, &self.inputs, &prop.action);
        let proposal_cert = self.t1.certify(&p.lattice).ok();
        // A state outside the range the policy declares for it was never certified against
        // (the fallback's certificate, the policy author's intent): the decision is made,
        // Tier 1 checks the box as given, and a human reviews it (issue 18, item 11).
        let out_of_range: Vec<(usize, Interval)> = p
            .states
            .iter()
            .zip(&prop.state)
            .enumerate()
            .filter_map(|(k, (s, v))| match v {
                Some(StateValue::Num(x)) => {
                    let outside = x.is_invalid()
                        || x.mid() < s.min
                        || x.mid() > s.max
                        || x.width() > s.max - s.min;
                    outside.then_some((k, *x))
                }
                _ => None,
            })
            .collect();
        // G2 holds only from inside the safe set: a barrier's `h(x)` must be certainly
        // non-negative over the whole state box.
        let outside: Vec<(usize, Interval)> = (0..p.lattice.rows.len())
            .filter_map(|i| self.t1.safe_set(&p.lattice, i).map(|h| (i, h)))
            .filter(|(_, h)| h.is_invalid() || h.lo < 0.0)
            .collect();
        p.lattice
            .tape
            .eval_subset(&p.lattice.rule_ops, &self.inputs, &mut self.slots);
        let slot = |k: u32| {
            self.slots
                .get(k as usize)
                .copied()
                .unwrap_or(Interval::INVALID)
        };

        let mut reasons = Vec::new();
        let mut failure_modes: Vec<&'static str> = Vec::new();

        // Rules: first match. A rule whose condition is unknown over the state box may be the
        // first match, so the verdict is the most severe of the possible first matches.
        let mut rule_verdict = p.default_verdict;
        let mut rule: Option<usize> = None;
        let mut matched = false;
        let mut possible: Vec<usize> = Vec::new();
        for (i, &s) in p.lattice.rule_slots.iter().enumerate() {
            match slot(s).truth() {
                Truth::True => {
                    possible.push(i);
                    matched = true;
                    break;
                }
                Truth::Unknown => possible.push(i),
                Truth::False => {}
            }
        }
        let mut best: Option<(Verdict, Option<usize>)> =
            (!matched).then_some((p.default_verdict, None));
        for &i in &possible {
            if let Some(r) = p.rules.get(i) {
                if best.is_none_or(|(v, _)| r.verdict > v) {
                    best = Some((r.verdict, Some(i)));
                }
            }
        }
        if let Some((v, r)) = best {
            rule_verdict = v;
            rule = r;
        }
        if let Some(r) = rule.and_then(|i| p.rules.get(i)) {
            let maybe = if possible.last() == Some(&rule.unwrap_or(usize::MAX)) && matched {
                ""
            } else {
                " (its condition may hold for this state box)"
            };
            reasons.push(format!(
                "rule `{}`{maybe}: {} → {}",
                r.id,
                r.reason.as_deref().unwrap_or("matched"),
                r.verdict.as_str()
            ));
        } else if rule_verdict != Verdict::Go || !p.rules.is_empty() {
            reasons.push(format!(
                "no rule matched: the policy default is {}",
                rule_verdict.as_str()
            ));
        }

        // The lattice's verdict: what each violated row calls for.
        let mut lattice_verdict = Verdict::Go;
        let mut constraints = Vec::new();
        let mut block_cause: Option<Criticality> = None;
        let mut violated_crit: Option<Criticality> = None;
        for pass in [Status::Violated, Status::Uncertain] {
            for (row, c) in p.lattice.rows.iter().zip(self.t1.rows()) {
                if !c.active || c.status != pass {
                    continue;
                }
                let Some(con) = p.constraints.get(row.constraint) else {
                    continue;
                };
                if c.fault && !failure_modes.contains(&"numerical_fault") {
                    failure_modes.push("numerical_fault");
                }
                let v = match con.on_violation {
                    OnViolation::Repair => Verdict::Repair,
                    OnViolation::Hold => Verdict::Hold,
                    OnViolation::Block => {
                        block_cause = block_cause.max(Some(row.criticality));
                        Verdict::Block
                    }
                };
                violated_crit = violated_crit.max(Some(row.criticality));
                lattice_verdict = lattice_verdict.max(v);
                reasons.push(format!(
                    "constraint `{}` ({}, {}) is {}: margin {}{}",
                    row.name,
                    row.kind.as_str(),
                    row.criticality.as_str(),
                    c.status.as_str(),
                    fmt_margin(c.margin),
                    match con.on_violation {
                        OnViolation::Repair => "",
                        OnViolation::Hold => "; it calls for a human (on_violation = hold)",
                        OnViolation::Block => "; it blocks (on_violation = block)",
                    }
                ));
                constraints.push(RowReport {
                    id: row.name.clone(),
                    status: c.status,
                    margin: c.margin,
                    criticality: row.criticality,
                });
            }
        }
        // Action bounds are physical limits: outside them is a violation to repair.
        for (a, &u) in p.actions.iter().zip(&prop.action) {
            if u < a.min || u > a.max {
                let margin = (u - a.min).min(a.max - u);
                lattice_verdict = lattice_verdict.max(Verdict::Repair);
                violated_crit = violated_crit.max(Some(Criticality::Critical));
                reasons.push(format!(
                    "action `{}` = {} is outside its range [{}, {}]",
                    a.name,
                    fmt_num(u),
                    fmt_num(a.min),
                    fmt_num(a.max)
                ));
                constraints.push(RowReport {
                    id: format!("bounds.{}", a.name),
                    status: Status::Violated,
                    margin: Interval::point(margin),
                    criticality: Criticality::Critical,
                });
            }
        }

        let mut classification = rule_verdict.max(lattice_verdict);
        let the_rule = rule.and_then(|i| p.rules.get(i));
        // The rule that decided (when the rule's verdict is the classification).
        let rule_decides = rule_verdict == classification && rule_verdict != Verdict::Go;

        // Repair stage.
        let repair_status;
        let mut candidate: Option<Repair> = None;
        let mut repaired_cert: Option<Certified> = None;
        let mut distance = None;
        let mut solver = None;
        let mut relaxed_rows: Vec<(String, f64)> = Vec::new();
        let mut repaired_transition = None;
        let needs_projection = lattice_verdict != Verdict::Go
            || (rule_decides && the_rule.is_some_and(|r| !r.set.is_empty()));
        let inputs = &self.inputs;
        let proposal = &prop.action;
        match classification {
            Verdict::Go => repair_status = RepairStatus::NotRequired,
            Verdict::Repair => {
                // A rule's `set` is a discrete repair applied first.
                let mut start = proposal.clone();
                let mut preferred: Vec<(usize, f64)> = Vec::new();
                if rule_decides {
                    if let Some(r) = the_rule {
                        for &(ai, v) in &r.set {
                            if let Some(x) = start.get_mut(ai) {
                                *x = v;
                            }
                        }
                        preferred.clone_from(&r.set);
                        repaired_transition.clone_from(&r.repaired_transition);
                    }
                }
                #[cfg_attr(not(test), expect(unused_mut, reason = "a test sabotages it"))]
                let mut rep = repairer_of(
                    &mut self.repairers,
                    &mut self.shared,
                    &self.policy,
                    &prop.agent,
                )
                .repair(&self.policy, inputs, &start, &preferred);
                #[cfg(test)]
                if let Some(sabotage) = self.sabotage_repair {
                    sabotage(&mut rep);
                }
                // The repairer's answer is a proposal like any other: Tier 1 decides.
                if rep.outcome != RepairOutcome::Fallback {
                    self.t1.check(&self.policy.lattice, inputs, &rep.action);
                    repaired_cert = self.t1.certify(&self.policy.lattice).ok();
                }
                let p = &self.policy;
                solver = Some(SolverReport {
                    status: rep.status,
                    iterations: rep.iterations,
                    steps: rep.steps,
                    nodes: rep.nodes,
                    cost: rep.cost,
                });
                match rep.outcome {
                    RepairOutcome::Certified | RepairOutcome::Relaxed
                        if repaired_cert.is_none() =>
                    {
                        classification = Verdict::Block;
                        repair_status = RepairStatus::NoRepairAvailable;
                        failure_modes.push("solver_non_convergence");
                        reasons.push(format!(
                            "the repair search offered {}, which Tier 1 does not certify: escalated to BLOCK",
                            describe_change(p, proposal, &rep.action)
                        ));
                        block_cause = block_cause.max(violated_crit);
                    }
                    RepairOutcome::Certified | RepairOutcome::Relaxed => {
                        let dist = crate::repair::distance(p, proposal, &rep.action);
                        distance = Some(dist);
                        relaxed_rows = rep
                            .relaxed
                            .iter()
                            .filter_map(|&(i, s)| {
                                p.lattice.rows.get(i).map(|r| (r.name.clone(), s))
                            })
                            .collect();
                        for (name, s) in &relaxed_rows {
                            reasons.push(format!(
                                "the conflict resolution engine relaxed `{name}` by {}",
                                fmt_num(*s)
                            ));
                        }
                        if dist <= p.governor.repair_limit {
                            repair_status = RepairStatus::Repaired;
                            if needs_projection {
                                reasons.push(format!(
                                    "repaired: {} (distance {} within repair_limit {})",
                                    describe_change(p, proposal, &rep.action),
                                    fmt_num(dist),
                                    fmt_num(p.governor.repair_limit)
                                ));
                            }
                        } else {
                            repair_status = RepairStatus::ConfirmationRequired;
                            reasons.push(format!(
                                "the nearest certified repair is at distance {}, beyond repair_limit {}: a human must confirm it",
                                fmt_num(dist),
                                fmt_num(p.governor.repair_limit)
                            ));
                        }
                        candidate = Some(rep);
                    }
                    RepairOutcome::Fallback => {
                        classification = Verdict::Block;
                        repair_status = RepairStatus::NoRepairAvailable;
                        failure_modes.push(match rep.status {
                            SolverStatus::Infeasible => "infeasible_constraint_set",
                            SolverStatus::MaxIterations => "solver_non_convergence",
                            SolverStatus::Deadline => "deadline_budget",
                            _ => "numerical_fault",
                        });
                        if let (SolverStatus::Deadline, Some(budget)) =
                            (rep.status, crate::repair::search_budget(&p.governor))
                        {
                            reasons.push(format!(
                                "the repair search reached its modeled budget of {} µs (enforce_deadline = true, deadline_us = {}) after {} µs of modeled work, without a certified repair: escalated to BLOCK",
                                budget.micros(),
                                p.governor.deadline_us,
                                rep.cost.micros()
                            ));
                        } else {
                            reasons.push(format!(
                                "no certified repair exists within the budgets (solver {}): escalated to BLOCK",
                                rep.status.as_str()
                            ));
                        }
                        // Escalation: the cause is the rows that could not be repaired.
                        block_cause = block_cause.max(violated_crit);
                    }
                }
            }
            Verdict::Hold => repair_status = RepairStatus::ConfirmationRequired,
            Verdict::Block => {
                let confirmable = rule_decides
                    && lattice_verdict != Verdict::Block
                    && the_rule.is_some_and(|r| r.confirmable);
                repair_status = if confirmable {
                    RepairStatus::ConfirmationRequired
                } else {
                    RepairStatus::NoRepairAvailable
                };
                if rule_decides {
                    block_cause = block_cause.max(Some(
                        the_rule
                            .and_then(|r| r.criticality)
                            .unwrap_or(Criticality::High),
                    ));
                }
            }
        }
        // A hold offers the approver a certified repair of the lattice's violations.
        if classification == Verdict::Hold && lattice_verdict != Verdict::Go {
            let rep = repairer_of(
                &mut self.repairers,
                &mut self.shared,
                &self.policy,
                &prop.agent,
            )
            .repair(&self.policy, inputs, proposal, &[]);
            if rep.outcome != RepairOutcome::Fallback {
                distance = Some(crate::repair::distance(&self.policy, proposal, &rep.action));
                candidate = Some(rep);
            }
        }

        // Which action the classification calls for; it executes only once Tier 1 has
        // certified it here (the repairer's own checks only guided its search).
        let proposal_certified = proposal_cert.is_some();
        let dry_run = self.dry_run;
        for (i, h) in &outside {
            let name = self
                .policy
                .lattice
                .rows
                .get(*i)
                .map_or("?", |r| r.name.as_str());
            reasons.push(format!(
                "the state may be outside the safe set of barrier `{name}` (h(x) in {}): forward invariance (G2) is suspended",
                fmt_margin(*h)
            ));
        }
        if !outside.is_empty() {
            failure_modes.push("left_safe_set");
        }
        for (k, x) in &out_of_range {
            if let Some(s) = self.policy.states.get(*k) {
                reasons.push(format!(
                    "state `{}` = {} is outside its declared range [{}, {}]: the decision is sent for review and G2, G3 and G4 are suspended",
                    s.name,
                    fmt_margin(*x),
                    fmt_num(s.min),
                    fmt_num(s.max)
                ));
            }
        }
        if !out_of_range.is_empty() {
            failure_modes.push("excessive_uncertainty");
        }
        let audit = if !missing.is_empty() {
            for m in &missing {
                reasons.push(m.clone());
            }
            failure_modes.push("insufficient_evidence");
            Audit::Insufficient
        } else if !outside.is_empty() || !out_of_range.is_empty() {
            Audit::Questionable
        } else if classification == Verdict::Block && block_cause == Some(Criticality::Low) {
            reasons.push("a BLOCK on a low-criticality cause: review it".to_string());
            Audit::Questionable
        } else {
            Audit::Valid
        };
        let base_eval = |exec_certified: bool| {
            if dry_run {
                Evaluation::Neutral
            } else if !exec_certified {
                Evaluation::Failed
            } else if classification == Verdict::Block {
                if block_cause == Some(Criticality::Critical) {
                    Evaluation::Effective
                } else {
                    Evaluation::Partial
                }
            } else if repair_status == RepairStatus::Repaired && !relaxed_rows.is_empty() {
                Evaluation::Partial
            } else {
                Evaluation::Effective
            }
        };
        let decide_outcome = |exec_certified: bool| {
            let evaluation = base_eval(exec_certified);
            let audit = if classification == Verdict::Go && evaluation == Evaluation::Failed {
                Audit::Invalid
            } else {
                audit
            };
            (
                evaluation,
                audit,
                final_outcome(classification, evaluation, audit, repair_status),
            )
        };
        let mut exec = match (classification, repair_status, &candidate) {
            (Verdict::Go, _, _) => Exec::Proposal,
            (Verdict::Repair, RepairStatus::Repaired, Some(_)) => Exec::Repaired,
            _ => Exec::Fallback,
        };
        let lat = &self.policy.lattice;
        let mut certify = |exec: Exec| -> Option<Certified> {
            let action = match exec {
                Exec::Proposal => return proposal_cert.clone(),
                Exec::Repaired => return repaired_cert.clone(),
                Exec::Fallback => self.policy.fallback.as_slice(),
            };
            self.t1.check(lat, &self.inputs, action);
            self.t1.certify(lat).ok()
        };
        let mut cert = certify(exec);
        let (mut evaluation, mut audit, mut outcome) = decide_outcome(cert.is_some());
        // ...and the one the outcome executes: only ALLOW and ALLOW_AFTER_REPAIR run anything
        // but the fallback.
        if !matches!(outcome, Outcome::Allow | Outcome::AllowAfterRepair) && exec != Exec::Fallback
        {
            exec = Exec::Fallback;
            cert = certify(exec);
            (evaluation, audit, outcome) = decide_outcome(cert.is_some());
        }
        let p2 = &self.policy;
        let exec_certified = cert.is_some();
        if !exec_certified && !dry_run {
            failure_modes.push("fallback_not_certified");
            let bad: Vec<String> = p2
                .lattice
                .rows
                .iter()
                .zip(self.t1.rows())
                .filter(|(r, c)| {
                    c.active && r.criticality == Criticality::Critical && c.status != Status::Sat
                })
                .map(|(r, _)| format!("`{}`", r.name))
                .collect();
            reasons.push(format!(
                "the executed action is not certified at this state: critical rows {} are not SAT",
                bad.join(", ")
            ));
        }
        // INVARIANT (certified-execution): what executes is a `Certified` action; the
        // fallback uncertified only under FAILED_GOVERNANCE (evaluation FAILED); the
        // proposal uncertified only in dry-run, which passes it through by design.
        let executed = if dry_run {
            reasons.push("dry-run: the proposal passes through unchanged".to_string());
            Executed::DryRun(proposal.clone())
        } else {
            match cert {
                Some(c) => Executed::Certified(c),
                None => Executed::Uncertified(p2.fallback.clone()),
            }
        };
        let exec_certified = match &executed {
            Executed::DryRun(_) => proposal_certified,
            _ => exec_certified,
        };
        let exec = executed.into_action();
        // The verdicts of what executes, for the guarantees (no work when it is the action
        // the checker saw last, as it is but in dry-run).
        self.t1.check(&p2.lattice, &self.inputs, &exec);
        let exec_checks = self.t1.rows();

        let kind_ok = |k: ConstraintKind| -> Option<bool> {
            let mut any = false;
            let mut ok = true;
            for (r, c) in p2.lattice.rows.iter().zip(exec_checks) {
                if r.kind == k {
                    any = true;
                    ok &= !c.active || c.status == Status::Sat;
                }
            }
            any.then_some(ok && exec_certified)
        };
        let guarantees = Guarantees {
            pointwise_safety: exec_certified,
            forward_invariance: kind_ok(ConstraintKind::Barrier)
                .map(|g2| g2 && outside.is_empty() && out_of_range.is_empty()),
            input_to_state_stability: kind_ok(ConstraintKind::Lyapunov)
                .map(|g4| g4 && out_of_range.is_empty()),
            projection_stability: (outcome == Outcome::AllowAfterRepair && needs_projection)
                .then_some(relaxed_rows.is_empty() && exec_certified && out_of_range.is_empty()),
        };

        // Governor state: budgets and the agent's last action follow what was executed.
        self.charge(&prop.agent, &exec, now, &mut failure_modes, &mut reasons);
        let p = &self.policy;

        let candidate_action = candidate
            .as_ref()
            .filter(|_| outcome != Outcome::AllowAfterRepair)
            .map(|r| r.action.clone());
        if outcome != Outcome::AllowAfterRepair && classification != Verdict::Hold {
            // Distance reported only for repairs and offered candidates.
            if candidate_action.is_none() {
                distance = None;
            }
        }
        if outcome == Outcome::HoldForConfirmation || outcome == Outcome::BlockNoRepair {
            reasons.push(format!(
                "{}: the fallback is executed now{}",
                outcome.as_str(),
                if outcome.human_action_required() && outcome != Outcome::BlockNoRepair {
                    " and the proposal waits for a human"
                } else {
                    ""
                }
            ));
        }

        Decision {
            id: prop.id.clone(),
            decision_id: format!("{}-{seq}", p.hash.get(7..19).unwrap_or("0")),
            seq,
            agent: prop.agent.clone(),
            time: now,
            final_outcome: outcome,
            classification,
            evaluation,
            audit,
            repair_status,
            action: exec,
            proposed: proposal.clone(),
            candidate: candidate_action,
            distance,
            constraints,
            relaxed: relaxed_rows,
            rule,
            reasons,
            repaired_transition: if classification == Verdict::Repair
                || classification == Verdict::Hold
            {
                repaired_transition
            } else {
                None
            },
            failure_modes,
            guarantees,
            solver,
            latency_us: 0,
        }
    }
}

/// The action a decision's classification calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exec {
    Proposal,
    Repaired,
    Fallback,
}

/// What a decision executes.
#[derive(Debug)]
enum Executed {
    /// An action Tier 1 certified: the proposal, its repair or the fallback.
    Certified(Certified),
    /// The fallback, which Tier 1 could not certify at this state: FAILED_GOVERNANCE.
    Uncertified(Vec<f64>),
    /// Dry-run: the proposal, passed through whatever Tier 1 said.
    DryRun(Vec<f64>),
}

impl Executed {
    fn into_action(self) -> Vec<f64> {
        match self {
            Executed::Certified(c) => c.into_action(),
            Executed::Uncertified(a) | Executed::DryRun(a) => a,
        }
    }
}

/// The agent's repairer (its warm start), or the shared one past [`MAX_AGENTS`].
fn repairer_of<'a>(
    repairers: &'a mut BTreeMap<String, Repairer>,
    shared: &'a mut Repairer,
    policy: &Policy,
    agent: &str,
) -> &'a mut Repairer {
    if !repairers.contains_key(agent) && repairers.len() < MAX_AGENTS {
        repairers.insert(agent.to_string(), Repairer::new(policy));
    }
    match repairers.get_mut(agent) {
        Some(r) => r,
        None => shared,
    }
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

/// A JSON string literal. Hand-written because decisions are written on the hot path and
/// must be byte-identical across runs (no map reordering, no float formatting surprises).
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    // Runs that need no escape are copied whole. Every byte that needs one is ASCII, never
    // part of a multi-byte character, so the run boundaries are character boundaries.
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            b if b < 0x20 => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// A JSON number: the shortest text that reads back as the same double; `null` for a
/// non-finite value (JSON has none).
fn json_num(out: &mut String, x: f64) {
    if x.is_finite() {
        if x == x.trunc() && x.abs() < 1e15 {
            #[expect(clippy::cast_possible_truncation, reason = "whole and below 2^53")]
            let i = x as i64;
            let _ = write!(out, "{i}");
        } else {
            // The shortest digits that read back as `x`, by the formatter serde_json uses.
            out.push_str(zmij::Buffer::new().format_finite(x));
        }
    } else {
        out.push_str("null");
    }
}

fn fmt_num(x: f64) -> String {
    let mut s = String::new();
    json_num(&mut s, x);
    s
}

fn fmt_margin(m: Interval) -> String {
    if m.is_invalid() {
        "undefined".to_string()
    } else if m.is_point() {
        fmt_num(m.lo)
    } else {
        format!("[{}, {}]", fmt_num(m.lo), fmt_num(m.hi))
    }
}

/// One action value, decoded.
fn value_json(out: &mut String, ty: &VarType, x: f64) {
    match ty {
        VarType::Bool => out.push_str(if x != 0.0 { "true" } else { "false" }),
        VarType::Enum(values) => {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "enum indices are small whole numbers"
            )]
            let i = x as usize;
            match values.get(i) {
                Some(v) => json_str(out, v),
                None => out.push_str("null"),
            }
        }
        _ => json_num(out, x),
    }
}

/// An encoded action as the JSON object decisions show (`{"vx":0.5,"gripper":"hold"}`).
pub fn action_to_json(p: &Policy, a: &[f64]) -> String {
    let mut s = String::new();
    action_json(&mut s, p, a);
    s
}

fn action_json(out: &mut String, p: &Policy, a: &[f64]) {
    out.push('{');
    for (i, (var, x)) in p.actions.iter().zip(a).enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, &var.name);
        out.push(':');
        value_json(out, &var.ty, *x);
    }
    out.push('}');
}

fn describe_change(p: &Policy, from: &[f64], to: &[f64]) -> String {
    let mut parts = Vec::new();
    for (var, (a, b)) in p.actions.iter().zip(from.iter().zip(to)) {
        if a != b {
            let mut x = String::new();
            let mut y = String::new();
            value_json(&mut x, &var.ty, *a);
            value_json(&mut y, &var.ty, *b);
            parts.push(format!("`{}` {x} → {y}", var.name));
        }
    }
    if parts.is_empty() {
        "the action is unchanged".to_string()
    } else {
        parts.join(", ")
    }
}

impl Decision {
    /// The decision as one line of JSON, in the field order of `spec/interfaces.md`.
    /// Deterministic: the same decision gives the same bytes.
    pub fn to_json(&self, p: &Policy) -> String {
        let mut s = String::with_capacity(512);
        s.push('{');
        if let Some(id) = &self.id {
            s.push_str("\"id\":");
            json_str(&mut s, id);
            s.push(',');
        }
        s.push_str("\"decision_id\":");
        json_str(&mut s, &self.decision_id);
        let _ = write!(s, ",\"seq\":{}", self.seq);
        s.push_str(",\"time\":");
        json_num(&mut s, self.time);
        s.push_str(",\"agent\":");
        json_str(&mut s, &self.agent);
        let _ = write!(
            s,
            ",\"final_outcome\":\"{}\",\"classification\":\"{}\",\"evaluation\":\"{}\",\"audit\":\"{}\",\"repair_status\":\"{}\",\"report_type\":\"{}\",\"human_action_required\":{}",
            self.final_outcome.as_str(),
            self.classification.as_str(),
            self.evaluation.as_str(),
            self.audit.as_str(),
            self.repair_status.as_str(),
            self.final_outcome.report_type(),
            self.final_outcome.human_action_required()
        );
        s.push_str(",\"action\":");
        action_json(&mut s, p, &self.action);
        if let Some(c) = &self.candidate {
            s.push_str(",\"candidate\":");
            action_json(&mut s, p, c);
        }
        if let Some(d) = self.distance {
            s.push_str(",\"distance\":");
            json_num(&mut s, d);
        }
        s.push_str(",\"constraints\":[");
        for (i, c) in self.constraints.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"id\":");
            json_str(&mut s, &c.id);
            let _ = write!(s, ",\"status\":\"{}\",\"margin\":", c.status.as_str());
            json_num(
                &mut s,
                if c.margin.is_invalid() {
                    f64::NAN
                } else {
                    c.margin.lo
                },
            );
            let _ = write!(s, ",\"criticality\":\"{}\"}}", c.criticality.as_str());
        }
        s.push_str("],\"relaxed\":[");
        for (i, (id, slack)) in self.relaxed.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"id\":");
            json_str(&mut s, id);
            s.push_str(",\"slack\":");
            json_num(&mut s, *slack);
            s.push('}');
        }
        s.push(']');
        if let Some(r) = self.rule.and_then(|i| p.rules.get(i)) {
            s.push_str(",\"rule\":");
            json_str(&mut s, &r.id);
        }
        s.push_str(",\"reasons\":[");
        for (i, r) in self.reasons.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json_str(&mut s, r);
        }
        s.push(']');
        if let Some(t) = &self.repaired_transition {
            s.push_str(",\"repaired_transition\":");
            json_str(&mut s, t);
        }
        s.push_str(",\"failure_modes\":[");
        for (i, f) in self.failure_modes.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json_str(&mut s, f);
        }
        let g = &self.guarantees;
        let _ = write!(
            s,
            "],\"guarantees\":{{\"pointwise_safety\":{}",
            g.pointwise_safety
        );
        for (name, v) in [
            ("forward_invariance", g.forward_invariance),
            ("projection_stability", g.projection_stability),
            ("input_to_state_stability", g.input_to_state_stability),
        ] {
            if let Some(v) = v {
                let _ = write!(s, ",\"{name}\":{v}");
            }
        }
        s.push('}');
        if let Some(sv) = &self.solver {
            let _ = write!(
                s,
                ",\"solver\":{{\"status\":\"{}\",\"iterations\":{},\"steps\":{},\"nodes\":{}}}",
                sv.status.as_str(),
                sv.iterations,
                sv.steps,
                sv.nodes
            );
        }
        s.push_str(",\"policy\":{\"name\":");
        json_str(&mut s, &p.name);
        s.push_str(",\"version\":");
        json_str(&mut s, &p.version);
        s.push_str(",\"hash\":");
        json_str(&mut s, &p.hash);
        // INVARIANT (replayable-prefix): everything measured comes after `latency_us`.
        let _ = write!(
            s,
            "}},\"latency_us\":{},\"timing\":{{\"deadline_us\":{},\"met\":{}}}}}",
            self.latency_us,
            p.governor.deadline_us,
            self.deadline_met(p)
        );
        s
    }

    /// A human-readable account: which rule, which rows were violated and by how much,
    /// what the repair changed, and why the outcome is what it is.
    pub fn explain(&self, p: &Policy) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "decision {}{} (agent `{}`): {}",
            self.decision_id,
            self.id
                .as_ref()
                .map(|i| format!(" for proposal `{i}`"))
                .unwrap_or_default(),
            self.agent,
            self.final_outcome.as_str()
        );
        let mut a = String::new();
        action_json(&mut a, p, &self.proposed);
        let _ = writeln!(s, "  proposed:       {a}");
        let _ = writeln!(
            s,
            "  classification: {}   evaluation: {}   audit: {}   repair: {}",
            self.classification.as_str(),
            self.evaluation.as_str(),
            self.audit.as_str(),
            self.repair_status.as_str()
        );
        for r in &self.reasons {
            let _ = writeln!(s, "  - {r}");
        }
        let mut e = String::new();
        action_json(&mut e, p, &self.action);
        let what = match self.final_outcome {
            Outcome::Allow => "the proposal",
            Outcome::AllowAfterRepair => "the repaired action",
            _ if self.evaluation == Evaluation::Neutral => "the proposal (dry-run)",
            _ => "the certified fallback",
        };
        let _ = writeln!(s, "  executes:       {e}  ({what})");
        if let Some(c) = &self.candidate {
            let mut t = String::new();
            action_json(&mut t, p, c);
            let _ = writeln!(s, "  offered repair: {t}");
        }
        let why = match self.final_outcome {
            Outcome::FailedGovernance => {
                "the evaluation FAILED or the audit is INVALID (table row 1)"
            }
            Outcome::ReviewAudit if self.audit != Audit::Valid => {
                "the audit is QUESTIONABLE or INSUFFICIENT (table row 2)"
            }
            Outcome::BlockNoRepair => "BLOCK with no repair available (table row 3)",
            Outcome::AllowAfterRepair => "REPAIR and REPAIRED (table row 4)",
            Outcome::HoldForConfirmation => "HOLD, or a confirmation is required (table row 5)",
            Outcome::Allow => "GO and the audit is VALID (table row 6)",
            Outcome::ReviewAudit => "no other row of the table applies (table row 7)",
        };
        let _ = writeln!(s, "  why:            {why}");
        let (within, g5) = if self.deadline_met(p) {
            ("within", "held")
        } else {
            ("over", "did not hold")
        };
        let _ = writeln!(
            s,
            "  timing:         {} µs, {within} the {} µs deadline (G5 {g5})",
            self.latency_us, p.governor.deadline_us
        );
        s
    }
}

// ---------------------------------------------------------------------------------------
// Policy tests
// ---------------------------------------------------------------------------------------

/// The result of one `[[test]]` case.
#[derive(Clone, Debug, PartialEq)]
pub struct TestResult {
    /// The test's name.
    pub name: String,
    /// Mismatches as `(field, expected, actual)`; empty when the test passed.
    pub failures: Vec<(String, String, String)>,
}

impl TestResult {
    /// Did every expected field match?
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Does `actual` match `expected`? Strings, booleans and null exactly; numbers to 1e-6
/// (relative above 1); objects by the expected keys only; arrays element by element with
/// the same length.
pub fn json_matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => match (e.as_f64(), a.as_f64()) {
            (Some(e), Some(a)) => (e - a).abs() <= 1e-6 * e.abs().max(1.0),
            _ => false,
        },
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|x| json_matches(v, x))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| json_matches(x, y))
        }
        (e, a) => e == a,
    }
}

/// Run one of the policy's own tests on a fresh governor.
pub fn run_test(p: &Policy, t: &PolicyTest) -> TestResult {
    let mut g = Governor::new(p.clone());
    let mut failures = Vec::new();
    for given in &t.given {
        if let Err(e) = Proposal::from_json(p, given).map(|x| g.decide(&x)) {
            failures.push((
                "given".to_string(),
                "a valid proposal".to_string(),
                e.to_string(),
            ));
        }
    }
    match Proposal::from_json(p, &t.proposal) {
        Err(e) => failures.push((
            "proposal".to_string(),
            "a valid proposal".to_string(),
            e.to_string(),
        )),
        Ok(x) => {
            let d = g.decide(&x);
            let json = d.to_json(p);
            let actual: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
            for (k, want) in &t.expect {
                let got = actual.get(k).cloned().unwrap_or(Value::Null);
                if !json_matches(want, &got) {
                    failures.push((k.clone(), want.to_string(), got.to_string()));
                }
            }
        }
    }
    TestResult {
        name: t.name.clone(),
        failures,
    }
}

/// Run all of the policy's `[[test]]` cases.
pub fn run_tests(p: &Policy) -> Vec<TestResult> {
    p.tests.iter().map(|t| run_test(p, t)).collect()
}

// Snapshots of the governor state (issue 18, item 5): one self-contained block, added by
// the hardening branch; the fields it reads are private to this module.
impl Governor {
    /// The tag of the snapshot format written by [`Governor::snapshot`].
    pub const SNAPSHOT_FORMAT: &'static str = "aioss-governor-snapshot-v1";

    /// The governor state that later decisions depend on, as one JSON object (text):
    /// `{"format", "seq", "clock", "actions", "budgets": [{"name", "window_secs", "sum":
    /// [lo, hi], "entries": [[t, amount], ...]}], "last_action": {agent: [x, ...]}}`, every
    /// double as the shortest decimal string that reads back as it exactly (`NaN`, `inf`
    /// included), `actions` the action variables as `name:type` so that a restore under
    /// another policy keeps the last actions only when they mean the same. What
    /// [`Governor::state_digest`] covers, plus each window's running sum (its outward
    /// rounding depends on the order of additions and evictions, so it is kept as it is).
    /// The repairers' warm starts are not in it: see [`Governor::reset_warm_starts`].
    pub fn snapshot(&self) -> String {
        let f = |x: f64| Value::from(format!("{x:?}"));
        let budgets: Vec<Value> = self
            .policy
            .budgets
            .iter()
            .zip(&self.windows)
            .map(|(b, w)| {
                serde_json::json!({
                    "name": b.name,
                    "window_secs": f(b.window_secs),
                    // `[lo, hi]` of the running sum, or `[[lo, hi], [lo, hi]]`, the sums of
                    // the amounts' lower and of their upper bounds, when those differ.
                    "sum": match w.sums() {
                        [a, b] if a == b => Value::from(vec![f(a.lo), f(a.hi)]),
                        [a, b] => Value::from(vec![
                            Value::from(vec![f(a.lo), f(a.hi)]),
                            Value::from(vec![f(b.lo), f(b.hi)]),
                        ]),
                    },
                    "entries": w.entries().map(|(t, a)| {
                        // `[t, amount]`, or `[t, lo, hi]` for an increment known as an interval.
                        if a.lo.to_bits() == a.hi.to_bits() {
                            Value::from(vec![f(*t), f(a.hi)])
                        } else {
                            Value::from(vec![f(*t), f(a.lo), f(a.hi)])
                        }
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        let last: serde_json::Map<String, Value> = self
            .last_action
            .iter()
            .map(|(agent, xs)| {
                (
                    agent.clone(),
                    Value::from(xs.iter().map(|x| f(*x)).collect::<Vec<_>>()),
                )
            })
            .collect();
        serde_json::json!({
            "format": Self::SNAPSHOT_FORMAT,
            "seq": self.seq,
            "clock": f(self.clock),
            "actions": self.snapshot_layout(),
            "budgets": budgets,
            "last_action": last,
        })
        .to_string()
    }

    /// The action variables as `name:type` (enums with their values), in order.
    fn snapshot_layout(&self) -> Vec<String> {
        self.policy
            .actions
            .iter()
            .map(|a| match &a.ty {
                VarType::Enum(v) => format!("{}:enum({})", a.name, v.join("|")),
                t => format!("{}:{}", a.name, t.name()),
            })
            .collect()
    }

    /// Put the state of a [`Governor::snapshot`] in force, as a reload would carry it
    /// ([`Governor::carry_state_from`]): the sequence number and the clock always; each
    /// budget window whose budget has the same name and window length (others start
    /// empty); the agents' last actions when the action variables are the same (else
    /// none). The warm starts are reset ([`Governor::reset_warm_starts`]). All or nothing:
    /// on error the state is unchanged.
    pub fn restore_snapshot(&mut self, text: &str) -> Result<(), InputError> {
        let bad = |m: &str| InputError::new("invalid_value", "snapshot", m.to_string());
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&format!("not JSON ({e})")))?;
        if v.get("format").and_then(Value::as_str) != Some(Self::SNAPSHOT_FORMAT) {
            return Err(bad(&format!("not a `{}` snapshot", Self::SNAPSHOT_FORMAT)));
        }
        let num = |x: Option<&Value>| -> Result<f64, InputError> {
            x.and_then(Value::as_str)
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| bad("a number is not a decimal string"))
        };
        let seq = v
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no `seq`"))?;
        let clock = num(v.get("clock"))?;
        let mut windows = vec![Window::default(); self.policy.budgets.len()];
        let given = v
            .get("budgets")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `budgets`"))?;
        for g in given {
            let name = g.get("name").and_then(Value::as_str).unwrap_or_default();
            let secs = num(g.get("window_secs"))?;
            let Some(w) = self
                .policy
                .budgets
                .iter()
                .zip(windows.iter_mut())
                .find(|(b, _)| b.name == name && b.window_secs.to_bits() == secs.to_bits())
                .map(|(_, w)| w)
            else {
                continue;
            };
            let sum = g
                .get("sum")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("a budget has no `sum`"))?;
            let pair = |v: Option<&Value>| -> Result<Interval, InputError> {
                let p = v
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("a sum is not a pair"))?;
                Ok(Interval::new(num(p.first())?, num(p.get(1))?))
            };
            let sums = if sum.first().is_some_and(Value::is_array) {
                [pair(sum.first())?, pair(sum.get(1))?]
            } else {
                let s = Interval::new(num(sum.first())?, num(sum.get(1))?);
                [s, s]
            };
            let mut entries = Vec::new();
            for e in g
                .get("entries")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("a budget has no `entries`"))?
            {
                let e = e.as_array().ok_or_else(|| bad("an entry is not a pair"))?;
                let amount = match e.as_slice() {
                    [_, a] => Interval::point(num(Some(a))?),
                    [_, lo, hi] => Interval::new(num(Some(lo))?, num(Some(hi))?),
                    _ => return Err(bad("an entry is neither `[t, amount]` nor `[t, lo, hi]`")),
                };
                entries.push((num(e.first())?, amount));
            }
            *w = Window::restore(entries, sums);
        }
        let layout: Vec<String> = v
            .get("actions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut last = BTreeMap::new();
        if layout == self.snapshot_layout() {
            let given = v
                .get("last_action")
                .and_then(Value::as_object)
                .ok_or_else(|| bad("no `last_action`"))?;
            for (agent, xs) in given.iter().take(MAX_AGENTS) {
                let xs = xs
                    .as_array()
                    .ok_or_else(|| bad("a last action is not an array"))?
                    .iter()
                    .map(|x| num(Some(x)))
                    .collect::<Result<Vec<f64>, _>>()?;
                if xs.len() != self.policy.actions.len() {
                    return Err(bad("a last action does not fit the action variables"));
                }
                last.insert(agent.clone(), xs);
            }
        }
        self.seq = seq;
        self.clock = clock;
        self.windows = windows;
        self.last_action = last;
        self.reset_warm_starts();
        Ok(())
    }

    /// Forget what only speeds decisions up but can move the last bits of a repair: the
    /// repairers' warm starts (and Tier 1's incremental state), as a new governor has them.
    /// The server does this where its log says the state was snapshotted or the policy
    /// reloaded, and replay does it at the same records, so both decide every later record
    /// from the same starting point (see the module documentation on warm starts).
    pub fn reset_warm_starts(&mut self) {
        self.repairers.clear();
        self.shared = Repairer::new(&self.policy);
        self.t1 = Checker::new(&self.policy.lattice);
    }

    /// Where `prev.` comes from ([`Governor::set_prev_source`]).
    pub fn prev_source(&self) -> PrevSource {
        self.prev_source
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    /// Caught (issue 17, defect 5): the governor marked a repaired action certified on the
    /// repairer's word. A repairer that claims a certified repair of an action Tier 1
    /// refutes must not get it executed: the governor checks it itself.
    #[test]
    fn a_repair_the_checker_refutes_is_never_executed() {
        let p = crate::load("outcomes.toml", include_str!("../tests/data/outcomes.toml")).unwrap();
        let line = r#"{"action":{"vx":1.2,"mode":"auto"},"state":{"px":5.0,"temp":20,"flag":"none","note":"n"}}"#;
        let mut honest = Governor::new(p.clone());
        let d = honest.decide_line(line).unwrap();
        assert_eq!(d.final_outcome, Outcome::AllowAfterRepair);
        assert!(d.action[0] <= 0.8, "{:?}", d.action);

        let mut g = Governor::new(p);
        // The repairer claims 1.2, which breaks `speed` (critical) and `eco`.
        g.sabotage_repair = Some(|r: &mut Repair| {
            if let Some(x) = r.action.first_mut() {
                *x = 1.2;
            }
        });
        let d = g.decide_line(line).unwrap();
        assert_ne!(d.action, vec![1.2, 0.0], "{:?}", d.final_outcome);
        assert!(d.action[0] <= 0.8, "{:?}", d.action);
        assert_eq!(
            d.action,
            g.policy().fallback,
            "the certified fallback executes"
        );
        assert!(d.guarantees.pointwise_safety);
        assert_eq!(
            d.final_outcome,
            Outcome::BlockNoRepair,
            "{}",
            d.to_json(g.policy())
        );
        assert!(
            d.reasons
                .iter()
                .any(|r| r.contains("which Tier 1 does not certify")),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn every_row_of_the_outcome_table() {
        use Audit as A;
        use Evaluation as E;
        use RepairStatus as R;
        use Verdict as V;
        let cases = [
            (
                V::Go,
                E::Failed,
                A::Valid,
                R::NotRequired,
                Outcome::FailedGovernance,
            ),
            (
                V::Repair,
                E::Effective,
                A::Invalid,
                R::Repaired,
                Outcome::FailedGovernance,
            ),
            (
                V::Go,
                E::Effective,
                A::Insufficient,
                R::NotRequired,
                Outcome::ReviewAudit,
            ),
            (
                V::Block,
                E::Effective,
                A::Questionable,
                R::NoRepairAvailable,
                Outcome::ReviewAudit,
            ),
            (
                V::Block,
                E::Effective,
                A::Valid,
                R::NoRepairAvailable,
                Outcome::BlockNoRepair,
            ),
            (
                V::Repair,
                E::Effective,
                A::Valid,
                R::Repaired,
                Outcome::AllowAfterRepair,
            ),
            (
                V::Hold,
                E::Effective,
                A::Valid,
                R::ConfirmationRequired,
                Outcome::HoldForConfirmation,
            ),
            (
                V::Block,
                E::Effective,
                A::Valid,
                R::ConfirmationRequired,
                Outcome::HoldForConfirmation,
            ),
            (
                V::Repair,
                E::Effective,
                A::Valid,
                R::ConfirmationRequired,
                Outcome::HoldForConfirmation,
            ),
            (
                V::Go,
                E::Effective,
                A::Valid,
                R::NotRequired,
                Outcome::Allow,
            ),
            (V::Go, E::Neutral, A::Valid, R::NotRequired, Outcome::Allow),
            (
                V::Repair,
                E::Partial,
                A::Valid,
                R::NoRepairAvailable,
                Outcome::ReviewAudit,
            ),
        ];
        for (c, e, a, r, want) in cases {
            assert_eq!(final_outcome(c, e, a, r), want, "{c:?} {e:?} {a:?} {r:?}");
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }

    proptest::proptest! {
        /// Any string, escaped, reads back as itself (multi-byte characters beside escapes
        /// included: the escaped runs are cut at ASCII bytes only).
        #[test]
        fn any_string_reads_back_after_escaping(t in proptest::prelude::any::<String>()) {
            let mut s = String::new();
            json_str(&mut s, &t);
            let back: String = serde_json::from_str(&s).unwrap();
            proptest::prop_assert_eq!(back, t);
        }
    }

    #[test]
    fn json_numbers_read_back_exactly() {
        for x in [
            0.0,
            -0.0,
            1.0,
            0.1,
            1e-20,
            1e300,
            -2.5e-7,
            123_456_789.0,
            1e15,
            1e16,
        ] {
            let mut s = String::new();
            json_num(&mut s, x);
            let back: f64 = serde_json::from_str(&s).unwrap();
            assert_eq!(back, x, "{s}");
        }
        let mut s = String::new();
        json_num(&mut s, f64::NAN);
        assert_eq!(s, "null");
    }
}
