//! A proposal: its JSON read into the policy's encoding, with every problem an
//! [`InputError`] naming the field. Nothing here panics, whatever the bytes.

use std::borrow::Cow;

use serde_json::Value;

use crate::interval::Interval;
use crate::policy::{Policy, VarType};

use super::decision::json_str;
use super::MAX_TIMESTAMP;

/// What is wrong with a refused input: its code on the wire is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputCode {
    /// Not JSON.
    MalformedJson,
    /// A value of the wrong JSON type.
    WrongType,
    /// A field the policy does not know.
    UnknownField,
    /// A field the proposal must give.
    MissingField,
    /// A value out of what the field admits.
    InvalidValue,
    /// A number that is not finite.
    NotFinite,
    /// An enum value the variable does not declare.
    UnknownEnumValue,
    /// A `prev` other than what the governor executed ([`super::PrevSource::Governor`]).
    PrevMismatch,
}

impl InputCode {
    /// Every code.
    pub const ALL: [InputCode; 8] = [
        InputCode::MalformedJson,
        InputCode::WrongType,
        InputCode::UnknownField,
        InputCode::MissingField,
        InputCode::InvalidValue,
        InputCode::NotFinite,
        InputCode::UnknownEnumValue,
        InputCode::PrevMismatch,
    ];

    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            InputCode::MalformedJson => "malformed_json",
            InputCode::WrongType => "wrong_type",
            InputCode::UnknownField => "unknown_field",
            InputCode::MissingField => "missing_field",
            InputCode::InvalidValue => "invalid_value",
            InputCode::NotFinite => "not_finite",
            InputCode::UnknownEnumValue => "unknown_enum_value",
            InputCode::PrevMismatch => "prev_mismatch",
        }
    }
}

impl std::fmt::Display for InputCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for InputCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Bad input: refused before the decision starts, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// What is wrong.
    pub code: InputCode,
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
    pub(crate) fn new(
        code: InputCode,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        InputError {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// The error object of `spec/interfaces.md`: `{"error": {"code", "message", "field"}}`.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"error\":{\"code\":");
        json_str(&mut s, self.code.as_str());
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
            InputCode::NotFinite,
            field.to_string(),
            format!("`{field}` must be a finite number"),
        )),
        None => Err(InputError::new(
            InputCode::WrongType,
            field.to_string(),
            format!("`{field}` must be a number, found {}", type_name(v)),
        )),
    }
}

fn enum_value(values: &[String], v: &J<'_>, field: Field<'_>) -> Result<f64, InputError> {
    let J::Str(s) = v else {
        return Err(InputError::new(
            InputCode::WrongType,
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
            InputCode::UnknownEnumValue,
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
                    InputCode::WrongType,
                    field.to_string(),
                    format!("`{field}` is an int, and {x} is not whole"),
                ))
            }
        }
        VarType::Bool => match v {
            J::Bool(b) => Ok(f64::from(u8::from(*b))),
            _ => Err(InputError::new(
                InputCode::WrongType,
                field.to_string(),
                format!("`{field}` must be true or false, found {}", type_name(v)),
            )),
        },
        VarType::Enum(values) => enum_value(values, v, field),
        VarType::Text => Err(InputError::new(
            InputCode::WrongType,
            field.to_string(),
            format!("`{field}` cannot be text"),
        )),
    }
}

fn object<'a, 'b>(v: &'a J<'b>, field: Field<'_>) -> Result<&'a Obj<'b>, InputError> {
    v.as_object().ok_or_else(|| {
        InputError::new(
            InputCode::WrongType,
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
        code: InputCode::UnknownField,
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
                InputCode::WrongType,
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
                                    InputCode::MissingField,
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
                            InputCode::InvalidValue,
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
                                InputCode::MissingField,
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
                            InputCode::InvalidValue,
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

/// A proposal's `state` object, one entry per state variable (`None` where not given),
/// every value validated as under `state` in a proposal (errors name `state.<var>`).
fn state_object(p: &Policy, sv: &J<'_>) -> Result<Vec<Option<StateValue>>, InputError> {
    let mut state: Vec<Option<StateValue>> = vec![None; p.states.len()];
    for (k, x) in object(sv, &"state")? {
        let i = p.states.iter().position(|s| s.name == k).ok_or_else(|| {
            let names: Vec<&str> = p.states.iter().map(|s| s.name.as_str()).collect();
            unknown(format!("state.{k}"), "state variables", &names)
        })?;
        if let (Some(s), Some(slot)) = (p.states.get(i), state.get_mut(i)) {
            *slot = Some(state_value(s, x, &Dot(&"state", k))?);
        }
    }
    Ok(state)
}

impl Proposal {
    /// Parse the JSON text of a `state` object alone (an observed next state, as the
    /// server's outcome reports carry it): exactly the validation of a proposal's `state`,
    /// with the same errors (`state.<var>`). One entry per state variable.
    pub fn parse_state(p: &Policy, text: &str) -> Result<Vec<Option<StateValue>>, InputError> {
        let v: J<'_> = serde_json::from_str(text).map_err(|e| InputError {
            code: InputCode::MalformedJson,
            message: format!("malformed JSON: {e}"),
            field: None,
        })?;
        state_object(p, &v)
    }

    /// Parse one JSON line.
    pub fn parse(p: &Policy, line: &str) -> Result<Proposal, InputError> {
        let v: J<'_> = serde_json::from_str(line).map_err(|e| InputError {
            code: InputCode::MalformedJson,
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
            code: InputCode::WrongType,
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
                    InputCode::WrongType,
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
                            InputCode::InvalidValue,
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
                    InputCode::InvalidValue,
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
                    InputCode::MissingField,
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
                        InputCode::MissingField,
                        field.to_string(),
                        format!("`{field}` is missing: every action variable must be given"),
                    )
                })?;
                *slot = action_value(&var.ty, x, &field)?;
            }
        }

        // The state: under `state`, or flat at the top level (I2OS transitions).
        let mut state = match o.get("state") {
            Some(sv) => state_object(p, sv)?,
            None => vec![None; p.states.len()],
        };
        let mut transition = None;
        for (k, x) in o {
            let i = state_names.iter().position(|n| *n == k);
            match i {
                Some(i) => {
                    if o.contains_key("state") && !RESERVED.contains(&k) {
                        return Err(InputError::new(
                            InputCode::InvalidValue,
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
                            InputCode::WrongType,
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
