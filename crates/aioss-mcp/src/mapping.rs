//! The mapping file: from MCP tools and their JSON arguments to a policy's action
//! variables, plus the session (agent identity, attributes) and the state source. Its
//! format is documented in `docs/mcp.md`.
//!
//! A mapping is checked twice before the gateway serves anything, and every problem is an
//! error with the file, line and column of the text it is about (rendered like a policy
//! error):
//!
//! 1. [`Mapping::load`], against the policy: the tool variable is an enum action, every
//!    tool is one of its values, every mapped name is an action or state variable of the
//!    policy, constants and state values fit their variable's type and range;
//! 2. [`Mapping::bind`], against the upstream servers' tool list: every mapped tool
//!    exists upstream, every argument path exists in its input schema, and the argument's
//!    JSON type fits the variable (an `integer` for an `int`, a `number` or `integer` for
//!    a `real`, a `boolean` for a `bool`, a `string` for an `enum`, an `array` or `string`
//!    for a length); an argument the schema does not require needs a default.
//!
//! At a call, [`Mapping::proposal`] builds the proposal line the governor decides, and
//! [`Mapping::write_back`] turns a repaired action into the repaired arguments.

use std::fmt;
use std::path::{Path, PathBuf};

use aioss_core::error::line_col;
use aioss_core::policy::VarType;
use aioss_core::{Policy, Span};
use serde_json::{Map, Value};

use crate::toml_tree::{self, Node, Val};

/// What kind of mapping error this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingErrorKind {
    /// The file is not valid TOML.
    Toml,
    /// A key no section defines.
    UnknownKey,
    /// A required key is absent.
    MissingField,
    /// A value of the wrong TOML type or out of its range.
    InvalidValue,
    /// A name the policy does not declare.
    UnknownName,
    /// A tool the upstream servers do not offer.
    UnknownTool,
    /// An argument path the tool's input schema does not have.
    UnknownArgument,
    /// An argument whose JSON type does not fit the variable.
    TypeMismatch,
    /// The state file could not be read or does not fit the policy.
    StateFile,
}

/// One error in a mapping file.
#[derive(Clone, Debug, PartialEq)]
pub struct MappingError {
    /// What kind.
    pub kind: MappingErrorKind,
    /// Lowercase message, user text in backticks.
    pub message: String,
    /// Where in the mapping file.
    pub span: Span,
    /// What to do about it.
    pub help: Option<String>,
}

impl MappingError {
    fn new(kind: MappingErrorKind, span: Span, message: impl Into<String>) -> Self {
        MappingError {
            kind,
            message: message.into(),
            span,
            help: None,
        }
    }
    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Every error found in one mapping file; a mapping with any is refused whole.
#[derive(Clone, Debug, thiserror::Error)]
pub struct MappingErrors {
    /// The file name as given.
    pub file: String,
    /// Its text, which the spans refer to.
    pub text: String,
    /// The errors, in source order.
    pub errors: Vec<MappingError>,
}

impl MappingErrors {
    /// The 1-based (line, column) of an error.
    pub fn position(&self, e: &MappingError) -> (usize, usize) {
        line_col(&self.text, e.span.start)
    }
}

impl fmt::Display for MappingErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let (line, col) = self.position(e);
            writeln!(f, "error: {}", e.message)?;
            writeln!(f, "  --> {}:{}:{}", self.file, line, col)?;
            let text = self.text.lines().nth(line.saturating_sub(1)).unwrap_or("");
            let gutter = line.to_string().len();
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{line} | {text}")?;
            let (el, ec) = line_col(&self.text, e.span.end);
            let end_col = if el == line {
                ec
            } else {
                text.chars().count() + 1
            };
            let width = end_col.saturating_sub(col).max(1);
            writeln!(
                f,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(col.saturating_sub(1)),
                "^".repeat(width)
            )?;
            if let Some(h) = &e.help {
                writeln!(f, "{:gutter$} = help: {h}", "")?;
            }
        }
        write!(
            f,
            "{}: {} error{}; the mapping was not loaded",
            self.file,
            self.errors.len(),
            if self.errors.len() == 1 { "" } else { "s" }
        )
    }
}

/// What a refused call's tool error says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Disclosure {
    /// Only the outcome and the decision id.
    Outcome,
    /// The outcome, the decision id and the decision's reasons (default).
    #[default]
    Reasons,
    /// Also the rows not satisfied and the rule that decided.
    Full,
}

/// Where an action variable's value comes from at a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A constant (its JSON as the proposal's `action` writes it).
    Const(Value),
    /// An argument of the call.
    Arg {
        /// The path into the arguments object (`to`, `options.preview`).
        path: Vec<String>,
        /// The variable is the argument's length (an array's items, a string's
        /// characters), not its value.
        len: bool,
        /// The value when the argument is absent (the mapping's, else the schema's).
        default: Option<Value>,
        /// Where the path is written.
        span: Span,
    },
}

/// One action variable of one tool.
#[derive(Clone, Debug, PartialEq)]
pub struct VarMap {
    /// Index into the policy's action variables.
    pub var: usize,
    /// Its name.
    pub name: String,
    /// Where its value comes from.
    pub source: Source,
}

/// One mapped tool.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolMap {
    /// The tool's name upstream (and downstream).
    pub name: String,
    /// The value of the tool variable it is.
    pub value: String,
    /// The mapped variables; every other action variable takes the fallback's value.
    pub vars: Vec<VarMap>,
    /// Where the tool's table starts.
    pub span: Span,
}

/// An agent attribute of the session.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
}

/// Who calls: the `agent` and `agent_attributes` of every proposal a call becomes. On
/// standard input and output it is the mapping's `[session]` ([`Mapping::session`]); over
/// streamable HTTP it is the agent the request's bearer token names
/// ([`crate::listen::Agents`]). Never the call's.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The agent id.
    pub agent: String,
    /// Its attributes, as the proposal carries them.
    pub attributes: Map<String, Value>,
}

/// A loaded, checked mapping.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// The file as named.
    pub file: String,
    text: String,
    /// Index of the enum action variable that names the tool.
    pub tool_var: usize,
    /// What a refused call's error says.
    pub disclosure: Disclosure,
    /// The agent of every call.
    pub agent: String,
    /// Its attributes.
    pub attributes: Vec<(String, Attr)>,
    /// Static state.
    pub state: Map<String, Value>,
    /// A JSON state file read at every call (its values over the static ones).
    pub state_file: Option<PathBuf>,
    /// The tools.
    pub tools: Vec<ToolMap>,
}

/// A call that cannot be made into a proposal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The tool is not in the mapping.
    #[error("the tool `{0}` is not governed by this gateway's mapping; it is not offered")]
    UnknownTool(String),
    /// An argument is missing or of the wrong type.
    #[error("argument `{path}` of `{tool}`: {message}")]
    Argument {
        /// The tool.
        tool: String,
        /// The argument path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The state file could not be read.
    #[error("the state file `{file}` could not be read: {message}")]
    State {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// A change a repair made to the call's arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The action variable.
    pub variable: String,
    /// The argument path written.
    pub argument: String,
    /// The argument's value before (`null` if absent).
    pub from: Value,
    /// Its value now.
    pub to: Value,
}

/// A repair that cannot be expressed as arguments of the same tool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the repair changed `{variable}`, which {why}; the repaired call cannot be made")]
pub struct NotWritable {
    /// The variable.
    pub variable: String,
    /// Why it cannot be written.
    pub why: String,
}

const TOP: &[&str] = &["gateway", "session", "state", "tools"];

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d > 0)
        .min()
        .map(|(_, c)| c.to_string())
}

fn with_suggestion<'a>(
    e: MappingError,
    name: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
    what: &str,
) -> MappingError {
    match suggest(name, candidates.clone()) {
        Some(s) => e.help(format!("did you mean `{s}`?")),
        None => {
            let all: Vec<&str> = candidates.into_iter().collect();
            e.help(format!("{what}: {}", all.join(", ")))
        }
    }
}

/// A TOML value as JSON (numbers written as integers stay integers).
fn to_json(n: &Node) -> Value {
    match &n.v {
        Val::Str(s) => Value::from(s.as_str()),
        #[expect(
            clippy::cast_possible_truncation,
            reason = "an integer written in TOML is an i64; its double converts back exactly"
        )]
        Val::Num(x, true) => Value::from(*x as i64),
        Val::Num(x, false) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        Val::Bool(b) => Value::Bool(*b),
        Val::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Val::Table(t) => Value::Object(t.iter().map(|(k, _, v)| (k.clone(), to_json(v))).collect()),
        Val::Datetime => Value::Null,
    }
}

/// Does `v` (JSON) fit a variable of type `ty` with range `[min, max]`? `Err` says why not.
pub(crate) fn fits(ty: &VarType, min: f64, max: f64, v: &Value) -> Result<(), String> {
    match (ty, v) {
        (VarType::Bool, Value::Bool(_)) => Ok(()),
        (VarType::Enum(values), Value::String(s)) => {
            if values.iter().any(|x| x == s) {
                Ok(())
            } else {
                Err(format!(
                    "`{s}` is not one of its values ({})",
                    values.join(", ")
                ))
            }
        }
        (VarType::Text, Value::String(_)) => Ok(()),
        (VarType::Real | VarType::Int, Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if matches!(ty, VarType::Int) && x.fract() != 0.0 {
                return Err(format!("`{x}` is not an integer"));
            }
            if x.is_finite() && x >= min && x <= max {
                Ok(())
            } else {
                Err(format!("`{n}` is outside its range [{min}, {max}]"))
            }
        }
        (ty, v) => Err(format!(
            "{} does not fit a variable of type `{}`",
            json_type_name(v),
            ty.name()
        )),
    }
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Loader<'a> {
    policy: &'a Policy,
    errors: Vec<MappingError>,
}

impl Loader<'_> {
    fn err(&mut self, e: MappingError) {
        self.errors.push(e);
    }

    fn check_keys(&mut self, n: &Node, allowed: &[&str], section: &str) {
        for (k, span, _) in n.table().unwrap_or(&[]) {
            if !allowed.contains(&k.as_str()) {
                let e = MappingError::new(
                    MappingErrorKind::UnknownKey,
                    *span,
                    format!("unknown key `{k}` in {section}"),
                );
                let e = with_suggestion(
                    e,
                    k,
                    allowed.iter().copied(),
                    &format!("the keys of {section} are"),
                );
                self.err(e);
            }
        }
    }

    fn table<'n>(&mut self, n: &'n Node, what: &str) -> Option<&'n [(String, Span, Node)]> {
        match &n.v {
            Val::Table(t) => Some(t),
            other => {
                self.err(MappingError::new(
                    MappingErrorKind::InvalidValue,
                    n.span,
                    format!("{what} must be a table, found {}", other.type_name()),
                ));
                None
            }
        }
    }

    fn string<'n>(&mut self, n: &'n Node, what: &str) -> Option<&'n str> {
        match &n.v {
            Val::Str(s) => Some(s),
            other => {
                self.err(MappingError::new(
                    MappingErrorKind::InvalidValue,
                    n.span,
                    format!("{what} must be a string, found {}", other.type_name()),
                ));
                None
            }
        }
    }

    fn action_index(&mut self, name: &str, span: Span) -> Option<usize> {
        let p = self.policy;
        if let Some(i) = p.actions.iter().position(|a| a.name == name) {
            return Some(i);
        }
        let e = MappingError::new(
            MappingErrorKind::UnknownName,
            span,
            format!("the policy `{}` has no action variable `{name}`", p.name),
        );
        let e = with_suggestion(
            e,
            name,
            p.actions.iter().map(|a| a.name.as_str()),
            "its action variables are",
        );
        self.err(e);
        None
    }
}

impl Mapping {
    /// Read and check a mapping file against `policy`.
    pub fn read(path: &Path, policy: &Policy) -> Result<Mapping, MappingErrors> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Mapping::load(&file, &text, path.parent(), policy),
            Err(e) => Err(MappingErrors {
                file: file.clone(),
                text: String::new(),
                errors: vec![MappingError::new(
                    MappingErrorKind::Toml,
                    Span::default(),
                    format!("cannot read `{file}`: {e}"),
                )],
            }),
        }
    }

    /// Check the mapping text against `policy`. `dir` is where a relative state file is
    /// looked up (the mapping file's directory).
    pub fn load(
        file: &str,
        text: &str,
        dir: Option<&Path>,
        policy: &Policy,
    ) -> Result<Mapping, MappingErrors> {
        let mut l = Loader {
            policy,
            errors: Vec::new(),
        };
        let m = load_inner(&mut l, file, text, dir);
        let mut errors = l.errors;
        match m {
            Some(m) if errors.is_empty() => Ok(m),
            _ => {
                errors.sort_by_key(|e| e.span.start);
                Err(MappingErrors {
                    file: file.to_string(),
                    text: text.to_string(),
                    errors,
                })
            }
        }
    }

    fn errors(&self, errors: Vec<MappingError>) -> MappingErrors {
        MappingErrors {
            file: self.file.clone(),
            text: self.text.clone(),
            errors,
        }
    }

    /// The mapping's `[session]`: who calls on standard input and output.
    pub fn session(&self) -> Session {
        let attributes = self
            .attributes
            .iter()
            .map(|(k, v)| {
                let x = match v {
                    Attr::Num(n) => {
                        serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
                    }
                    Attr::Str(s) => Value::from(s.as_str()),
                };
                (k.clone(), x)
            })
            .collect();
        Session {
            agent: self.agent.clone(),
            attributes,
        }
    }

    /// The mapped tool named `name`.
    pub fn tool(&self, name: &str) -> Option<&ToolMap> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Check the mapping against the upstream tools (name and input schema) and take
    /// each optional argument's default from its schema where the mapping gives none.
    pub fn bind(
        &mut self,
        policy: &Policy,
        upstream: &[(String, Value)],
    ) -> Result<(), MappingErrors> {
        let mut errors = Vec::new();
        for t in &mut self.tools {
            let Some((_, schema)) = upstream.iter().find(|(n, _)| *n == t.name) else {
                let e = MappingError::new(
                    MappingErrorKind::UnknownTool,
                    t.span,
                    format!("the upstream servers offer no tool `{}`", t.name),
                );
                errors.push(with_suggestion(
                    e,
                    &t.name,
                    upstream.iter().map(|(n, _)| n.as_str()),
                    "they offer",
                ));
                continue;
            };
            for v in &mut t.vars {
                let Source::Arg {
                    path,
                    len,
                    default,
                    span,
                } = &mut v.source
                else {
                    continue;
                };
                let Some(a) = policy.actions.get(v.var) else {
                    continue;
                };
                let shown = path.join(".");
                let Some((prop, required)) = schema_at(schema, path) else {
                    let props = schema_at(
                        schema,
                        path.get(..path.len().saturating_sub(1)).unwrap_or(&[]),
                    )
                    .and_then(|(s, _)| s.get("properties").and_then(Value::as_object).cloned())
                    .unwrap_or_default();
                    let e = MappingError::new(
                        MappingErrorKind::UnknownArgument,
                        *span,
                        format!("the tool `{}` has no argument `{shown}`", t.name),
                    );
                    errors.push(with_suggestion(
                        e,
                        path.last().map_or("", String::as_str),
                        props.keys().map(String::as_str),
                        "its arguments are",
                    ));
                    continue;
                };
                let types = schema_types(&prop);
                let ok = |want: &[&str]| types.iter().any(|t| want.contains(&t.as_str()));
                let (fit, wanted) = if *len {
                    (ok(&["array", "string"]), "an `array` or `string`")
                } else {
                    match &a.ty {
                        VarType::Bool => (ok(&["boolean"]), "a `boolean`"),
                        VarType::Int => (ok(&["integer"]), "an `integer`"),
                        VarType::Real => (ok(&["number", "integer"]), "a `number`"),
                        VarType::Enum(_) => (ok(&["string"]), "a `string`"),
                        VarType::Text => (false, "nothing (text is not an action type)"),
                    }
                };
                if !fit {
                    let found = if types.is_empty() {
                        "no declared type".to_string()
                    } else {
                        format!("type `{}`", types.join("|"))
                    };
                    let what = if *len {
                        format!("the length of `{shown}`")
                    } else {
                        format!("`{shown}`")
                    };
                    errors.push(
                        MappingError::new(
                            MappingErrorKind::TypeMismatch,
                            *span,
                            format!(
                                "argument {what} of `{}` has {found}, which does not fit the {} variable `{}`",
                                t.name,
                                a.ty.name(),
                                a.name
                            ),
                        )
                        .help(format!("`{}` needs {wanted} argument", a.name)),
                    );
                    continue;
                }
                if let (VarType::Enum(values), Some(Value::Array(allowed))) =
                    (&a.ty, prop.get("enum"))
                {
                    for x in allowed {
                        if !x.as_str().is_some_and(|s| values.iter().any(|v| v == s)) {
                            errors.push(MappingError::new(
                                MappingErrorKind::TypeMismatch,
                                *span,
                                format!(
                                    "argument `{shown}` of `{}` may be {x}, which is not a value of the enum `{}`",
                                    t.name, a.name
                                ),
                            ));
                        }
                    }
                }
                if default.is_none() {
                    match prop.get("default") {
                        Some(d) => *default = Some(d.clone()),
                        None if !required => errors.push(
                            MappingError::new(
                                MappingErrorKind::MissingField,
                                *span,
                                format!(
                                    "argument `{shown}` of `{}` is optional and neither the mapping nor its schema gives a default",
                                    t.name
                                ),
                            )
                            .help("add `default = ...` to this variable's table"),
                        ),
                        None => {}
                    }
                }
                if let Some(d) = default.as_ref() {
                    let checked = if *len {
                        length(d).map(Value::from)
                    } else {
                        Ok(d.clone())
                    };
                    if let Err(m) = checked.and_then(|x| fits(&a.ty, a.min, a.max, &x)) {
                        errors.push(MappingError::new(
                            MappingErrorKind::TypeMismatch,
                            *span,
                            format!(
                                "the default of argument `{shown}` of `{}` does not fit `{}`: {m}",
                                t.name, a.name
                            ),
                        ));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            errors.sort_by_key(|e| e.span.start);
            Err(self.errors(errors))
        }
    }

    /// The state now: the static values, with the state file's over them.
    pub fn state_now(&self) -> Result<Map<String, Value>, CallError> {
        let mut s = self.state.clone();
        if let Some(f) = &self.state_file {
            let err = |message: String| CallError::State {
                file: f.display().to_string(),
                message,
            };
            let text = std::fs::read_to_string(f).map_err(|e| err(e.to_string()))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(o)) => s.extend(o),
                Ok(other) => {
                    return Err(err(format!(
                        "it must hold a JSON object, found {}",
                        json_type_name(&other)
                    )))
                }
                Err(e) => return Err(err(e.to_string())),
            }
        }
        Ok(s)
    }

    /// The proposal line for a call of `tool` with `args`, decided for the `session`'s
    /// agent in the state now. `id` becomes the proposal's `id`.
    pub fn proposal(
        &self,
        policy: &Policy,
        session: &Session,
        id: &str,
        tool: &str,
        args: &Map<String, Value>,
    ) -> Result<String, CallError> {
        let t = self
            .tool(tool)
            .ok_or_else(|| CallError::UnknownTool(tool.to_string()))?;
        let mut action = fallback_json(policy);
        if let Some(a) = policy.actions.get(self.tool_var) {
            action.insert(a.name.clone(), Value::from(t.value.as_str()));
        }
        for v in &t.vars {
            let Some(a) = policy.actions.get(v.var) else {
                continue;
            };
            let x = match &v.source {
                Source::Const(c) => c.clone(),
                Source::Arg {
                    path, len, default, ..
                } => {
                    let shown = path.join(".");
                    let bad = |message: String| CallError::Argument {
                        tool: tool.to_string(),
                        path: shown.clone(),
                        message,
                    };
                    let raw = match value_at(args, path) {
                        Some(x) => x.clone(),
                        None => default.clone().ok_or_else(|| bad("missing".to_string()))?,
                    };
                    let x = if *len {
                        Value::from(length(&raw).map_err(&bad)?)
                    } else {
                        raw
                    };
                    fits(&a.ty, a.min, a.max, &x)
                        .map_err(|m| bad(format!("{m} (`{}`)", a.name)))?;
                    x
                }
            };
            action.insert(a.name.clone(), x);
        }
        let state = self.state_now()?;
        let mut p = Map::new();
        p.insert("id".into(), Value::from(id));
        p.insert("agent".into(), Value::from(session.agent.as_str()));
        p.insert(
            "agent_attributes".into(),
            Value::Object(session.attributes.clone()),
        );
        p.insert("action".into(), Value::Object(action));
        p.insert("state".into(), Value::Object(state));
        Ok(Value::Object(p).to_string())
    }

    /// The arguments of the call `tool(args)` repaired to `repaired` (the decision's
    /// encoded action; `proposed` is the proposal's), and what changed. A repair that
    /// changes the tool, a constant, a length or a variable the tool does not map cannot
    /// be written back.
    pub fn write_back(
        &self,
        policy: &Policy,
        tool: &str,
        args: &Map<String, Value>,
        proposed: &[f64],
        repaired: &[f64],
    ) -> Result<(Map<String, Value>, Vec<Change>), NotWritable> {
        let mut out = args.clone();
        let mut changes = Vec::new();
        let t = self.tool(tool);
        let decoded = decode_action(policy, repaired);
        for (k, a) in policy.actions.iter().enumerate() {
            let (Some(p), Some(r)) = (proposed.get(k), repaired.get(k)) else {
                continue;
            };
            if p.to_bits() == r.to_bits() {
                continue;
            }
            let not = |why: &str| NotWritable {
                variable: a.name.clone(),
                why: why.to_string(),
            };
            if k == self.tool_var {
                return Err(not("names the tool itself"));
            }
            let Some(v) = t.and_then(|t| t.vars.iter().find(|v| v.var == k)) else {
                return Err(not(
                    "this tool does not map (it stays at the fallback's value)",
                ));
            };
            match &v.source {
                Source::Const(_) => return Err(not("this mapping fixes to a constant")),
                Source::Arg { len: true, .. } => {
                    return Err(not("this mapping derives from an argument's length"))
                }
                Source::Arg { path, default, .. } => {
                    let to = decoded.get(&a.name).cloned().unwrap_or(Value::Null);
                    let from = value_at(args, path)
                        .or(default.as_ref())
                        .cloned()
                        .unwrap_or(Value::Null);
                    if !set_at(&mut out, path, to.clone()) {
                        return Err(not("sits under an argument that is not an object"));
                    }
                    changes.push(Change {
                        variable: a.name.clone(),
                        argument: path.join("."),
                        from,
                        to,
                    });
                }
            }
        }
        Ok((out, changes))
    }
}

/// The fallback action as the JSON object a proposal's `action` holds.
fn fallback_json(p: &Policy) -> Map<String, Value> {
    decode_action(p, &p.fallback)
}

/// An encoded action as JSON (enums by name, booleans, integers).
pub fn decode_action(p: &Policy, a: &[f64]) -> Map<String, Value> {
    match serde_json::from_str(&aioss_core::governor::action_to_json(p, a)) {
        Ok(Value::Object(o)) => o,
        _ => Map::new(),
    }
}

fn value_at<'a>(args: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = args.get(first)?;
    for k in rest {
        v = v.as_object()?.get(k)?;
    }
    Some(v)
}

fn set_at(args: &mut Map<String, Value>, path: &[String], x: Value) -> bool {
    let Some((last, init)) = path.split_last() else {
        return false;
    };
    let mut o = args;
    for k in init {
        let next = o
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        match next.as_object_mut() {
            Some(m) => o = m,
            None => return false,
        }
    }
    o.insert(last.clone(), x);
    true
}

fn length(v: &Value) -> Result<u64, String> {
    match v {
        Value::Array(a) => Ok(a.len() as u64),
        Value::String(s) => Ok(s.chars().count() as u64),
        other => Err(format!(
            "its length is wanted, but it is {}",
            json_type_name(other)
        )),
    }
}

/// The schema of the property at `path` in an object schema, and whether it is required.
fn schema_at(schema: &Value, path: &[String]) -> Option<(Value, bool)> {
    let mut s = schema.clone();
    let mut required = true;
    for k in path {
        let props = object_alternative(&s)?;
        let req = props
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(k)));
        required &= req;
        s = props.get("properties")?.get(k)?.clone();
    }
    Some((s, required))
}

/// The schema itself if it describes an object, else its first `anyOf`/`oneOf`
/// alternative that does.
fn object_alternative(s: &Value) -> Option<&Map<String, Value>> {
    let o = s.as_object()?;
    if o.contains_key("properties") {
        return Some(o);
    }
    for k in ["anyOf", "oneOf", "allOf"] {
        if let Some(alts) = o.get(k).and_then(Value::as_array) {
            if let Some(x) = alts.iter().find_map(object_alternative) {
                return Some(x);
            }
        }
    }
    None
}

/// The JSON types a property schema admits (`type`, a list of types, or the types of its
/// `anyOf`/`oneOf` alternatives), `null` left out.
fn schema_types(s: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match s.get("type") {
        Some(Value::String(t)) => out.push(t.clone()),
        Some(Value::Array(ts)) => out.extend(ts.iter().filter_map(Value::as_str).map(String::from)),
        _ => {}
    }
    for k in ["anyOf", "oneOf"] {
        if let Some(alts) = s.get(k).and_then(Value::as_array) {
            for a in alts {
                out.extend(schema_types(a));
            }
        }
    }
    if out.is_empty() {
        if let Some(Value::Array(e)) = s.get("enum") {
            if e.iter().all(Value::is_string) && !e.is_empty() {
                out.push("string".into());
            }
        }
    }
    out.retain(|t| t != "null");
    out.sort();
    out.dedup();
    out
}

#[expect(
    clippy::too_many_lines,
    reason = "one pass over the sections, in the order the documentation lists them"
)]
fn load_inner(l: &mut Loader<'_>, file: &str, text: &str, dir: Option<&Path>) -> Option<Mapping> {
    let root = match toml_tree::parse(text) {
        Ok(r) => r,
        Err((msg, span)) => {
            l.err(
                MappingError::new(MappingErrorKind::Toml, span, format!("invalid TOML: {msg}"))
                    .help("fix the TOML syntax at this position"),
            );
            return None;
        }
    };
    let p = l.policy;
    l.check_keys(&root, TOP, "the mapping file");

    // [gateway]
    let mut tool_var = None;
    let mut disclosure = Disclosure::default();
    match root.get("gateway") {
        None => l.err(
            MappingError::new(
                MappingErrorKind::MissingField,
                Span::new(0, 0),
                "the mapping file has no [gateway] section",
            )
            .help("add `[gateway]` with `tool = \"NAME\"`, the enum action variable that names the tool"),
        ),
        Some(g) => {
            if l.table(g, "[gateway]").is_some() {
                l.check_keys(g, &["tool", "disclosure"], "[gateway]");
                match g.get("tool") {
                    None => l.err(
                        MappingError::new(
                            MappingErrorKind::MissingField,
                            g.span,
                            "[gateway] has no `tool`",
                        )
                        .help("add `tool = \"NAME\"`, the enum action variable that names the tool"),
                    ),
                    Some(n) => {
                        if let Some(name) = l.string(n, "`tool` in [gateway]") {
                            if let Some(i) = l.action_index(name, n.span) {
                                match p.actions.get(i).map(|a| &a.ty) {
                                    Some(VarType::Enum(_)) => tool_var = Some(i),
                                    Some(ty) => l.err(MappingError::new(
                                        MappingErrorKind::TypeMismatch,
                                        n.span,
                                        format!(
                                            "the action variable `{name}` is of type `{}`; the tool variable must be an enum",
                                            ty.name()
                                        ),
                                    )),
                                    None => {}
                                }
                            }
                        }
                    }
                }
                if let Some(d) = g.get("disclosure") {
                    if let Some(s) = l.string(d, "`disclosure` in [gateway]") {
                        match s {
                            "outcome" => disclosure = Disclosure::Outcome,
                            "reasons" => disclosure = Disclosure::Reasons,
                            "full" => disclosure = Disclosure::Full,
                            other => l.err(
                                MappingError::new(
                                    MappingErrorKind::InvalidValue,
                                    d.span,
                                    format!("`disclosure` in [gateway] cannot be `{other}`"),
                                )
                                .help("use one of: outcome, reasons, full"),
                            ),
                        }
                    }
                }
            }
        }
    }

    // [session]
    let mut agent = String::from("mcp-agent");
    let mut attributes = Vec::new();
    if let Some(s) = root.get("session") {
        if l.table(s, "[session]").is_some() {
            l.check_keys(s, &["agent", "attributes"], "[session]");
            if let Some(a) = s.get("agent") {
                if let Some(x) = l.string(a, "`agent` in [session]") {
                    agent = x.to_string();
                }
            }
            if let Some(at) = s.get("attributes") {
                if let Some(t) = l.table(at, "`attributes` in [session]") {
                    for (k, _, v) in t {
                        match &v.v {
                            Val::Str(x) => attributes.push((k.clone(), Attr::Str(x.clone()))),
                            Val::Num(x, _) if x.is_finite() => {
                                attributes.push((k.clone(), Attr::Num(*x)));
                            }
                            other => l.err(MappingError::new(
                                MappingErrorKind::InvalidValue,
                                v.span,
                                format!(
                                    "agent attribute `{k}` must be a string or a finite number, found {}",
                                    other.type_name()
                                ),
                            )),
                        }
                    }
                }
            }
        }
    }

    // [state]
    let mut state = Map::new();
    let mut state_file = None;
    if let Some(s) = root.get("state") {
        if l.table(s, "[state]").is_some() {
            l.check_keys(s, &["values", "file"], "[state]");
            if let Some(vals) = s.get("values") {
                if let Some(t) = l.table(vals, "`values` in [state]") {
                    for (k, kspan, v) in t {
                        let Some(sv) = p.states.iter().find(|x| x.name == *k) else {
                            let e = MappingError::new(
                                MappingErrorKind::UnknownName,
                                *kspan,
                                format!("the policy `{}` has no state variable `{k}`", p.name),
                            );
                            l.err(with_suggestion(
                                e,
                                k,
                                p.states.iter().map(|x| x.name.as_str()),
                                "its state variables are",
                            ));
                            continue;
                        };
                        let j = to_json(v);
                        if let Err(m) = fits(&sv.ty, sv.min, sv.max, &j) {
                            l.err(MappingError::new(
                                MappingErrorKind::TypeMismatch,
                                v.span,
                                format!("state `{k}`: {m}"),
                            ));
                            continue;
                        }
                        state.insert(k.clone(), j);
                    }
                }
            }
            if let Some(f) = s.get("file") {
                if let Some(name) = l.string(f, "`file` in [state]") {
                    let path = match dir {
                        Some(d) if Path::new(name).is_relative() => d.join(name),
                        _ => PathBuf::from(name),
                    };
                    // Read once now, so that a bad state file is an error at start.
                    let probe = Mapping {
                        file: file.to_string(),
                        text: String::new(),
                        tool_var: 0,
                        disclosure,
                        agent: String::new(),
                        attributes: Vec::new(),
                        state: Map::new(),
                        state_file: Some(path.clone()),
                        tools: Vec::new(),
                    };
                    match probe.state_now() {
                        Err(e) => l.err(MappingError::new(
                            MappingErrorKind::StateFile,
                            f.span,
                            e.to_string(),
                        )),
                        Ok(vals) => {
                            for (k, v) in &vals {
                                let msg = match p.states.iter().find(|x| x.name == *k) {
                                    None => Some(format!(
                                        "the state file `{}` names `{k}`, which is not a state variable of the policy",
                                        path.display()
                                    )),
                                    Some(sv) => fits(&sv.ty, sv.min, sv.max, v).err().map(|m| {
                                        format!("the state file `{}`: state `{k}`: {m}", path.display())
                                    }),
                                };
                                if let Some(m) = msg {
                                    l.err(MappingError::new(
                                        MappingErrorKind::StateFile,
                                        f.span,
                                        m,
                                    ));
                                }
                            }
                        }
                    }
                    state_file = Some(path);
                }
            }
        }
    }

    // [tools.NAME]
    let mut tools = Vec::new();
    let values: Vec<String> = match tool_var.and_then(|i| p.actions.get(i)).map(|a| &a.ty) {
        Some(VarType::Enum(v)) => v.clone(),
        _ => Vec::new(),
    };
    match root.get("tools") {
        None => l.err(
            MappingError::new(
                MappingErrorKind::MissingField,
                Span::new(0, 0),
                "the mapping file maps no tool",
            )
            .help("add a `[tools.NAME]` section for each tool the agent may call"),
        ),
        Some(ts) => {
            for (name, kspan, t) in l.table(ts, "[tools]").unwrap_or(&[]) {
                let Some(entries) = l.table(t, &format!("[tools.{name}]")) else {
                    continue;
                };
                // `as` names the enum value when the tool's name is not one.
                let value = match t.get("as") {
                    Some(v) => match l.string(v, "`as`") {
                        Some(s) => (s.to_string(), v.span),
                        None => continue,
                    },
                    None => (name.clone(), *kspan),
                };
                if tool_var.is_some() && !values.contains(&value.0) {
                    let e = MappingError::new(
                        MappingErrorKind::UnknownName,
                        value.1,
                        format!(
                            "`{}` is not a value of the tool variable `{}`",
                            value.0,
                            tool_var
                                .and_then(|i| p.actions.get(i))
                                .map_or("", |a| a.name.as_str())
                        ),
                    );
                    l.err(with_suggestion(
                        e,
                        &value.0,
                        values.iter().map(String::as_str),
                        "its values are (or write `as = \"VALUE\"`)",
                    ));
                }
                let mut vars: Vec<VarMap> = Vec::new();
                for (k, vspan, v) in entries {
                    if k == "as" {
                        continue;
                    }
                    let Some(i) = l.action_index(k, *vspan) else {
                        continue;
                    };
                    if Some(i) == tool_var {
                        l.err(
                            MappingError::new(
                                MappingErrorKind::InvalidValue,
                                *vspan,
                                format!("`{k}` is the tool variable; the tool's name sets it"),
                            )
                            .help("use `as = \"VALUE\"` to map this tool onto another value"),
                        );
                        continue;
                    }
                    let Some(a) = p.actions.get(i) else {
                        continue;
                    };
                    let source = match &v.v {
                        Val::Table(_) => {
                            l.check_keys(v, &["arg", "len", "default"], &format!("`{name}.{k}`"));
                            let Some(arg) = v.get("arg") else {
                                l.err(
                                    MappingError::new(
                                        MappingErrorKind::MissingField,
                                        v.span,
                                        format!("`{name}.{k}` has no `arg`"),
                                    )
                                    .help("write `{ arg = \"PATH\" }`, or a constant"),
                                );
                                continue;
                            };
                            let Some(path) = l.string(arg, "`arg`") else {
                                continue;
                            };
                            let parts: Vec<String> = path.split('.').map(String::from).collect();
                            if parts.iter().any(String::is_empty) {
                                l.err(
                                    MappingError::new(
                                        MappingErrorKind::InvalidValue,
                                        arg.span,
                                        format!("`{path}` is not an argument path"),
                                    )
                                    .help("name an argument, or a field of an object argument as `arg.field`"),
                                );
                                continue;
                            }
                            let len = match v.get("len").map(|n| &n.v) {
                                None => false,
                                Some(Val::Bool(b)) => *b,
                                Some(other) => {
                                    l.err(MappingError::new(
                                        MappingErrorKind::InvalidValue,
                                        v.get("len").map_or(v.span, |n| n.span),
                                        format!(
                                            "`len` must be true or false, found {}",
                                            other.type_name()
                                        ),
                                    ));
                                    continue;
                                }
                            };
                            if len && !matches!(a.ty, VarType::Int | VarType::Real) {
                                l.err(MappingError::new(
                                    MappingErrorKind::TypeMismatch,
                                    arg.span,
                                    format!(
                                        "a length does not fit the {} variable `{k}`",
                                        a.ty.name()
                                    ),
                                ));
                                continue;
                            }
                            let default = v.get("default").map(to_json);
                            if let (Some(d), Some(dn)) = (&default, v.get("default")) {
                                let checked = if len {
                                    length(d).map(Value::from)
                                } else {
                                    Ok(d.clone())
                                };
                                if let Err(m) = checked.and_then(|x| fits(&a.ty, a.min, a.max, &x))
                                {
                                    l.err(MappingError::new(
                                        MappingErrorKind::TypeMismatch,
                                        dn.span,
                                        format!("the default of `{name}.{k}`: {m}"),
                                    ));
                                    continue;
                                }
                            }
                            Source::Arg {
                                path: parts,
                                len,
                                default,
                                span: arg.span,
                            }
                        }
                        _ => {
                            let j = to_json(v);
                            if let Err(m) = fits(&a.ty, a.min, a.max, &j) {
                                l.err(
                                    MappingError::new(
                                        MappingErrorKind::TypeMismatch,
                                        v.span,
                                        format!("the constant for `{k}`: {m}"),
                                    )
                                    .help("write a constant of the variable's type, or `{ arg = \"PATH\" }`"),
                                );
                                continue;
                            }
                            Source::Const(j)
                        }
                    };
                    vars.push(VarMap {
                        var: i,
                        name: k.clone(),
                        source,
                    });
                }
                tools.push(ToolMap {
                    name: name.clone(),
                    value: value.0,
                    vars,
                    span: *kspan,
                });
            }
        }
    }
    Some(Mapping {
        file: file.to_string(),
        text: text.to_string(),
        tool_var: tool_var?,
        disclosure,
        agent,
        attributes,
        state,
        state_file,
        tools,
    })
}
