//! The policy loader: TOML text → validated [`Policy`].
//!
//! The loader collects every error it can (a policy author fixes them in one pass) and
//! refuses the policy whole if there is any. Validation happens here, once: the decision
//! path relies on everything checked below and never re-checks it.

use std::collections::{HashMap, HashSet};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{ErrorKind, PolicyError, PolicyErrors, Span};
use crate::expr::ast::{BinOp, Expr, ExprKind};
use crate::expr::parse::parse;
use crate::expr::typeck::{self, Resolved, Resolver, Term, Ty};
use crate::interval::Interval;
use crate::lattice::Lattice;
use crate::policy::*;

type Val<'i> = Spanned<DeValue<'i>>;

fn span_of<T>(s: &Spanned<T>) -> Span {
    let r = s.span();
    Span::new(r.start, r.end)
}

/// Levenshtein distance, for "did you mean" suggestions.
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

struct Loader<'s> {
    src: &'s str,
    errors: Vec<PolicyError>,
}

/// Entries of a table in source order (the TOML map itself is sorted by key).
fn entries<'a, 'i>(t: &'a DeTable<'i>) -> Vec<(&'a str, Span, &'a Val<'i>)> {
    let mut v: Vec<_> = t
        .iter()
        .map(|(k, v)| (k.get_ref().as_ref(), span_of(k), v))
        .collect();
    v.sort_by_key(|(_, s, _)| s.start);
    v
}

impl<'s> Loader<'s> {
    fn err(&mut self, e: PolicyError) {
        self.errors.push(e);
    }

    fn check_keys(&mut self, t: &DeTable<'_>, allowed: &[&str], section: &str) {
        for (k, span, _) in entries(t) {
            if !allowed.contains(&k) {
                let mut e = PolicyError::new(
                    ErrorKind::UnknownKey,
                    span,
                    format!("unknown key `{k}` in {section}"),
                );
                e = match suggest(k, allowed.iter().copied()) {
                    Some(s) => e.help(format!("did you mean `{s}`?")),
                    None => e.help(format!("the keys of {section} are: {}", allowed.join(", "))),
                };
                self.err(e);
            }
        }
    }

    fn table<'a, 'i>(&mut self, v: &'a Val<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.err(
                    PolicyError::new(
                        ErrorKind::InvalidValue,
                        span_of(v),
                        format!("{what} must be a table, found {}", other.type_str()),
                    )
                    .help(format!(
                        "write it as a `[{what}]` section or an inline table"
                    )),
                );
                None
            }
        }
    }

    fn string(&mut self, t: &DeTable<'_>, key: &str, section: &str) -> Option<(String, Span)> {
        let v = t.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), span_of(v))),
            other => {
                self.err(PolicyError::new(
                    ErrorKind::InvalidValue,
                    span_of(v),
                    format!(
                        "`{key}` in {section} must be a string, found {}",
                        other.type_str()
                    ),
                ));
                None
            }
        }
    }

    fn number_of(&mut self, v: &Val<'_>, what: &str) -> Option<f64> {
        let x = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok().map(|n| {
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "the double the integer rounds to is what the spec says a number means"
                )]
                let f = n as f64;
                f
            }),
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            other => {
                self.err(PolicyError::new(
                    ErrorKind::InvalidValue,
                    span_of(v),
                    format!("{what} must be a number, found {}", other.type_str()),
                ));
                return None;
            }
        };
        match x {
            Some(x) if x.is_finite() => Some(x),
            _ => {
                self.err(
                    PolicyError::new(
                        ErrorKind::InvalidValue,
                        span_of(v),
                        format!("{what} must be a finite number"),
                    )
                    .help(
                        "`nan` and `inf` are not allowed; leave a bound out to make it unbounded",
                    ),
                );
                None
            }
        }
    }

    fn number(&mut self, t: &DeTable<'_>, key: &str, section: &str) -> Option<(f64, Span)> {
        let v = t.get(key)?;
        let x = self.number_of(v, &format!("`{key}` in {section}"))?;
        Some((x, span_of(v)))
    }

    fn boolean(&mut self, t: &DeTable<'_>, key: &str, section: &str) -> Option<bool> {
        let v = t.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.err(PolicyError::new(
                    ErrorKind::InvalidValue,
                    span_of(v),
                    format!(
                        "`{key}` in {section} must be true or false, found {}",
                        other.type_str()
                    ),
                ));
                None
            }
        }
    }

    fn one_of<T: Copy>(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        section: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let (s, span) = self.string(t, key, section)?;
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == s) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.err(
            PolicyError::new(
                ErrorKind::InvalidValue,
                span,
                format!("`{key}` in {section} cannot be `{s}`"),
            )
            .help(format!("use one of: {}", names.join(", "))),
        );
        None
    }

    fn required(&mut self, t: &DeTable<'_>, key: &str, section: &str, at: Span) -> bool {
        if t.contains_key(key) {
            return true;
        }
        self.err(
            PolicyError::new(
                ErrorKind::MissingField,
                at,
                format!("{section} has no `{key}`"),
            )
            .help(format!("add `{key} = ...` to {section}")),
        );
        false
    }

    /// Parse the expression in string value `v`, with spans into the file.
    fn expr(&mut self, v: &Val<'_>, what: &str) -> Option<Expr> {
        let s = match v.get_ref() {
            DeValue::String(s) => s.as_ref(),
            other => {
                self.err(
                    PolicyError::new(
                        ErrorKind::InvalidValue,
                        span_of(v),
                        format!(
                            "{what} must be an expression in a string, found {}",
                            other.type_str()
                        ),
                    )
                    .help("write the expression in quotes, for example `\"vx <= 1.5\"`"),
                );
                return None;
            }
        };
        let sp = span_of(v);
        let raw = self.src.get(sp.start..sp.end).unwrap_or("");
        let base = sp.start + raw.find(s).unwrap_or(0);
        match parse(s, base) {
            Ok(e) => Some(e),
            Err(e) => {
                self.err(e);
                None
            }
        }
    }
}

/// Name resolution for one expression context.
struct Scope<'a> {
    actions: &'a [ActionVar],
    states: &'a [StateVar],
    params: &'a [(String, f64)],
    enum_of_action: &'a [Option<u32>],
    enum_of_state: &'a [Option<u32>],
    enums: &'a [(String, Vec<String>)],
    budgets: &'a [(String, u32)],
    /// `next.<state>` terms by state index, or `None` when there is no `[dynamics]`.
    next: Option<&'a HashMap<usize, Term>>,
    allow_next: bool,
    attrs: &'a mut Vec<AttrSlot>,
    next_slot: &'a mut u32,
    symbols: &'a mut Vec<String>,
}

fn var_ty(ty: &VarType, enum_id: Option<u32>) -> Ty {
    match ty {
        VarType::Bool => Ty::Bool,
        VarType::Enum(_) => Ty::Enum(enum_id.unwrap_or(0)),
        _ => Ty::Num,
    }
}

impl Scope<'_> {
    fn unknown(&self, name: &str, span: Span) -> PolicyError {
        let mut cands: Vec<&str> = self.actions.iter().map(|a| a.name.as_str()).collect();
        cands.extend(self.states.iter().map(|s| s.name.as_str()));
        cands.extend(self.params.iter().map(|p| p.0.as_str()));
        let e = PolicyError::new(
            ErrorKind::UnknownName,
            span,
            format!("unknown name `{name}`"),
        );
        match suggest(name, cands) {
            Some(s) => e.help(format!("did you mean `{s}`?")),
            None => e.help("declare it under [action], [state] or [param], or use prev., next., agent. or budget."),
        }
    }
}

impl Resolver for Scope<'_> {
    fn name(&mut self, parts: &[String], span: Span) -> Result<Resolved, PolicyError> {
        let first = parts.first().map_or("", String::as_str);
        match parts {
            [n] => {
                if let Some((i, a)) = self.actions.iter().enumerate().find(|(_, a)| a.name == *n) {
                    return Ok(Resolved::Value(
                        Term::Input(a.slot),
                        var_ty(&a.ty, self.enum_of_action.get(i).copied().flatten()),
                    ));
                }
                if let Some((i, s)) = self.states.iter().enumerate().find(|(_, s)| s.name == *n) {
                    return match s.slot {
                        Some(slot) => Ok(Resolved::Value(
                            Term::Input(slot),
                            var_ty(&s.ty, self.enum_of_state.get(i).copied().flatten()),
                        )),
                        None => Err(PolicyError::new(
                            ErrorKind::TypeMismatch,
                            span,
                            format!("the text variable `{n}` cannot be used in an expression"),
                        )
                        .help("text state is recorded with the decision but never computed with; declare it as an enum to test its value")),
                    };
                }
                if let Some((_, v)) = self.params.iter().find(|(p, _)| p == n) {
                    return Ok(Resolved::Value(Term::Const(Interval::point(*v)), Ty::Num));
                }
                Err(self.unknown(n, span))
            }
            [ns, n] if ns == "prev" => {
                match self.actions.iter().enumerate().find(|(_, a)| a.name == *n) {
                    Some((i, a)) => Ok(Resolved::Value(
                        Term::Input(a.prev_slot),
                        var_ty(&a.ty, self.enum_of_action.get(i).copied().flatten()),
                    )),
                    None => {
                        let e = PolicyError::new(
                            ErrorKind::UnknownName,
                            span,
                            format!("unknown action variable `{n}` in `prev.{n}`"),
                        );
                        Err(match suggest(n, self.actions.iter().map(|a| a.name.as_str())) {
                            Some(s) => e.help(format!("did you mean `prev.{s}`?")),
                            None => e.help("`prev.` reads the agent's last executed action; name an [action] variable"),
                        })
                    }
                }
            }
            [ns, n] if ns == "next" => {
                let Some(next) = self.next else {
                    return Err(PolicyError::new(
                        ErrorKind::NeedsDynamics,
                        span,
                        format!("`next.{n}` needs a [dynamics] section"),
                    )
                    .help(format!("add [dynamics] with an equation for `{n}`")));
                };
                if !self.allow_next {
                    return Err(PolicyError::new(
                        ErrorKind::TypeMismatch,
                        span,
                        "`next.` cannot be used inside [dynamics] or a budget",
                    )
                    .help("write the dynamics in terms of the current state and the action"));
                }
                let Some((i, _)) = self.states.iter().enumerate().find(|(_, s)| s.name == *n)
                else {
                    let e = PolicyError::new(
                        ErrorKind::UnknownName,
                        span,
                        format!("unknown state variable `{n}` in `next.{n}`"),
                    );
                    return Err(
                        match suggest(n, self.states.iter().map(|s| s.name.as_str())) {
                            Some(s) => e.help(format!("did you mean `next.{s}`?")),
                            None => e.help("name a [state] variable"),
                        },
                    );
                };
                match next.get(&i) {
                    Some(t) => Ok(Resolved::Value(t.clone(), Ty::Num)),
                    None => Err(PolicyError::new(
                        ErrorKind::NeedsDynamics,
                        span,
                        format!("[dynamics] has no equation for `{n}`"),
                    )
                    .help(format!("add `{n} = \"...\"` to [dynamics]"))),
                }
            }
            [ns, n] if ns == "agent" => Ok(Resolved::Attr(n.clone())),
            [ns, n] if ns == "budget" => match self.budgets.iter().find(|(b, _)| b == n) {
                Some((_, slot)) => Ok(Resolved::Value(Term::Input(*slot), Ty::Num)),
                None => {
                    let e = PolicyError::new(
                        ErrorKind::UnknownName,
                        span,
                        format!("unknown budget `{n}`"),
                    );
                    Err(
                        match suggest(n, self.budgets.iter().map(|b| b.0.as_str())) {
                            Some(s) => e.help(format!("did you mean `budget.{s}`?")),
                            None => e.help(format!("declare it as [budget.{n}]")),
                        },
                    )
                }
            },
            _ => Err(PolicyError::new(
                ErrorKind::UnknownName,
                span,
                format!("unknown name `{}`", parts.join(".")),
            )
            .help(if ["prev", "next", "agent", "budget"].contains(&first) {
                "write `prefix.name` with one name after the prefix"
            } else {
                "dotted names start with prev., next., agent. or budget."
            })),
        }
    }

    fn attr_slot(&mut self, attr: &str, numeric: bool) -> u32 {
        if let Some(a) = self
            .attrs
            .iter()
            .find(|a| a.name == attr && a.numeric == numeric)
        {
            return a.slot;
        }
        let slot = *self.next_slot;
        *self.next_slot += 1;
        self.attrs.push(AttrSlot {
            name: attr.to_string(),
            numeric,
            slot,
        });
        slot
    }

    fn symbol(&mut self, text: &str) -> f64 {
        let i = match self.symbols.iter().position(|s| s == text) {
            Some(i) => i,
            None => {
                self.symbols.push(text.to_string());
                self.symbols.len() - 1
            }
        };
        #[expect(
            clippy::cast_precision_loss,
            reason = "symbol counts are far below 2^52"
        )]
        let f = i as f64;
        f
    }

    fn enum_values(&self, id: u32) -> (&str, &[String]) {
        self.enums
            .get(id as usize)
            .map_or(("?", &[][..]), |(n, v)| (n.as_str(), v.as_slice()))
    }
}

/// Split a top-level conjunction into its conjuncts.
fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    if let ExprKind::Binary(BinOp::And, a, b) = &e.kind {
        conjuncts(a, out);
        conjuncts(b, out);
    } else {
        out.push(e.clone());
    }
}

/// Does an expression mention an agent attribute or a string (which makes it a condition,
/// not a numeric comparison)?
fn symbolic(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Str(_) => true,
        ExprKind::Name(p) => p.first().is_some_and(|f| f == "agent"),
        _ => false,
    }
}

/// The stack the loader runs on (see [`load`]).
pub const LOAD_STACK_BYTES: usize = 32 << 20;

/// Load a policy. `file` is used only in error messages; the core does no I/O.
///
/// Loading runs on a thread of its own with a [`LOAD_STACK_BYTES`] stack: type checking,
/// compiling and certifying recurse once per level of an expression's tree (at most
/// [`crate::expr::parse::MAX_HEIGHT`] levels), and the caller's thread may have as little
/// as 2 MiB (a server's reload, a test); a debug build's frames need several times that
/// at the limit. The stack is reserved, not touched, so its size costs nothing until used.
/// If no thread can be started, loading runs on the caller's thread.
pub fn load(file: &str, source: &str) -> Result<Policy, PolicyErrors> {
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("aioss-load".to_string())
            .stack_size(LOAD_STACK_BYTES)
            .spawn_scoped(s, || load_here(file, source));
        match worker.map(std::thread::ScopedJoinHandle::join) {
            Ok(Ok(r)) => r,
            // A panic in the loader is a bug; re-raising it keeps it one.
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => load_here(file, source),
        }
    })
}

/// [`load`] on the caller's thread.
fn load_here(file: &str, source: &str) -> Result<Policy, PolicyErrors> {
    let mut l = Loader {
        src: source,
        errors: Vec::new(),
    };
    let policy = load_inner(&mut l);
    let mut errors = l.errors;
    match policy {
        Some(p) if errors.is_empty() => Ok(p),
        _ => {
            errors.sort_by_key(|e| e.span.start);
            if errors.is_empty() {
                errors.push(PolicyError::new(
                    ErrorKind::InvalidValue,
                    Span::default(),
                    "the policy could not be loaded",
                ));
            }
            Err(PolicyErrors {
                file: file.to_string(),
                text: source.to_string(),
                errors,
            })
        }
    }
}

const TOP: &[&str] = &[
    "policy",
    "governor",
    "action",
    "state",
    "param",
    "dynamics",
    "fallback",
    "rule",
    "constraint",
    "budget",
    "test",
];

fn parse_window(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.trim().parse().ok()?;
    let mult = match unit {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    (n.is_finite() && n > 0.0).then_some(n * mult)
}

#[expect(
    clippy::too_many_lines,
    reason = "one pass over the sections, in the order the spec lists them"
)]
fn load_inner(l: &mut Loader<'_>) -> Option<Policy> {
    let doc = match DeTable::parse(l.src) {
        Ok(d) => d,
        Err(e) => {
            let sp = e
                .span()
                .map_or(Span::default(), |r| Span::new(r.start, r.end));
            let msg = e.message().trim().to_string();
            let msg =
                msg.get(..1).map_or(String::new(), str::to_lowercase) + msg.get(1..).unwrap_or("");
            l.err(
                PolicyError::new(ErrorKind::Toml, sp, format!("invalid TOML: {msg}"))
                    .help("fix the TOML syntax at this position"),
            );
            return None;
        }
    };
    let root = doc.get_ref();
    l.check_keys(root, TOP, "the policy file");
    let file_span = Span::new(0, 0);

    // [policy]
    let (mut name, mut version, mut mode, mut default_verdict) =
        (String::new(), String::from("0"), Mode::Enforce, Verdict::Go);
    let verdicts = [
        ("GO", Verdict::Go),
        ("REPAIR", Verdict::Repair),
        ("HOLD", Verdict::Hold),
        ("BLOCK", Verdict::Block),
    ];
    match root.get("policy") {
        None => l.err(
            PolicyError::new(
                ErrorKind::MissingField,
                file_span,
                "the policy has no [policy] section",
            )
            .help("add [policy] with `name = \"...\"`"),
        ),
        Some(v) => {
            if let Some(t) = l.table(v, "policy") {
                l.check_keys(
                    t,
                    &["name", "version", "mode", "default", "description"],
                    "[policy]",
                );
                if l.required(t, "name", "[policy]", span_of(v)) {
                    name = l
                        .string(t, "name", "[policy]")
                        .map(|x| x.0)
                        .unwrap_or_default();
                }
                if let Some((s, _)) = l.string(t, "version", "[policy]") {
                    version = s;
                }
                if t.contains_key("mode") {
                    mode = l
                        .one_of(
                            t,
                            "mode",
                            "[policy]",
                            &[("enforce", Mode::Enforce), ("dry-run", Mode::DryRun)],
                        )
                        .unwrap_or(Mode::Enforce);
                }
                if t.contains_key("default") {
                    default_verdict = l
                        .one_of(t, "default", "[policy]", &verdicts)
                        .unwrap_or(Verdict::Go);
                }
                let _ = l.string(t, "description", "[policy]");
            }
        }
    }

    // Enum value lists, deduplicated: two variables with the same values compare.
    let mut enums: Vec<(String, Vec<String>)> = Vec::new();
    let mut enum_id = |var: &str, values: &[String]| -> u32 {
        let i = enums
            .iter()
            .position(|(_, v)| v == values)
            .unwrap_or_else(|| {
                enums.push((var.to_string(), values.to_vec()));
                enums.len() - 1
            });
        u32::try_from(i).unwrap_or(u32::MAX)
    };

    let read_type =
        |l: &mut Loader<'_>, t: &DeTable<'_>, section: &str, allow_text: bool| -> Option<VarType> {
            let mut types = vec![("real", 0u8), ("int", 1), ("bool", 2), ("enum", 3)];
            if allow_text {
                types.push(("text", 4));
            }
            let k = if t.contains_key("type") {
                l.one_of(t, "type", section, &types)?
            } else {
                0
            };
            Some(match k {
                0 => VarType::Real,
                1 => VarType::Int,
                2 => VarType::Bool,
                3 => {
                    let Some(v) = t.get("values") else {
                        l.err(
                            PolicyError::new(
                                ErrorKind::MissingField,
                                t.get("type").map_or(Span::default(), span_of),
                                format!("{section} is an enum without `values`"),
                            )
                            .help("add `values = [\"a\", \"b\"]`"),
                        );
                        return None;
                    };
                    let DeValue::Array(arr) = v.get_ref() else {
                        l.err(PolicyError::new(
                            ErrorKind::InvalidValue,
                            span_of(v),
                            format!("`values` in {section} must be an array of strings"),
                        ));
                        return None;
                    };
                    let mut vals: Vec<String> = Vec::with_capacity(arr.len());
                    // Duplicates are found by hash: a linear search per value made a list
                    // of 200,000 values take 34 s to load.
                    let mut seen: std::collections::HashSet<&str> =
                        std::collections::HashSet::with_capacity(arr.len());
                    for item in arr.iter() {
                        match item.get_ref() {
                            DeValue::String(s) if seen.insert(s.as_ref()) => {
                                vals.push(s.to_string())
                            }
                            DeValue::String(s) => l.err(PolicyError::new(
                                ErrorKind::DuplicateId,
                                span_of(item),
                                format!("`{s}` is listed twice in `values`"),
                            )),
                            _ => l.err(PolicyError::new(
                                ErrorKind::InvalidValue,
                                span_of(item),
                                format!("`values` in {section} must hold strings"),
                            )),
                        }
                    }
                    if vals.is_empty() {
                        l.err(
                            PolicyError::new(
                                ErrorKind::InvalidValue,
                                span_of(v),
                                format!("`values` in {section} is empty"),
                            )
                            .help("list at least one value"),
                        );
                        return None;
                    }
                    VarType::Enum(vals)
                }
                _ => VarType::Text,
            })
        };

    // [action.*]
    let mut actions: Vec<ActionVar> = Vec::new();
    let mut action_specs: Vec<(String, Span)> = Vec::new();
    let mut enum_of_action = Vec::new();
    if let Some(v) = root.get("action") {
        if let Some(t) = l.table(v, "action") {
            for (n, nspan, av) in entries(t) {
                let section = format!("[action.{n}]");
                let Some(at) = l.table(av, &format!("action.{n}")) else {
                    continue;
                };
                l.check_keys(
                    at,
                    &["type", "min", "max", "values", "description", "unit"],
                    &section,
                );
                let _ = l.string(at, "description", &section);
                let _ = l.string(at, "unit", &section);
                let Some(ty) = read_type(l, at, &section, false) else {
                    continue;
                };
                let (mut min, mut max) = (0.0, 0.0);
                match &ty {
                    VarType::Real | VarType::Int => {
                        let has = l.required(at, "min", &section, nspan)
                            & l.required(at, "max", &section, nspan);
                        if has {
                            if let (Some((a, _)), Some((b, bs))) =
                                (l.number(at, "min", &section), l.number(at, "max", &section))
                            {
                                if a > b {
                                    l.err(PolicyError::new(
                                        ErrorKind::InvalidValue,
                                        bs,
                                        format!("`max` of `{n}` is below its `min`"),
                                    ));
                                }
                                (min, max) = (a, b);
                                if ty == VarType::Int {
                                    min = min.ceil();
                                    max = max.floor();
                                }
                            }
                        }
                    }
                    VarType::Bool => max = 1.0,
                    VarType::Enum(vals) => {
                        #[expect(
                            clippy::cast_precision_loss,
                            reason = "enum sizes are far below 2^52"
                        )]
                        let m = (vals.len() - 1) as f64;
                        max = m;
                    }
                    VarType::Text => {}
                }
                let eid = if let VarType::Enum(vals) = &ty {
                    Some(enum_id(n, vals))
                } else {
                    None
                };
                enum_of_action.push(eid);
                action_specs.push((n.to_string(), nspan));
                actions.push(ActionVar {
                    name: n.to_string(),
                    ty,
                    min,
                    max,
                    slot: 0,
                    prev_slot: 0,
                });
            }
        }
    }

    // [state.*]
    let mut states: Vec<StateVar> = Vec::new();
    let mut enum_of_state = Vec::new();
    if let Some(v) = root.get("state") {
        if let Some(t) = l.table(v, "state") {
            for (n, nspan, sv) in entries(t) {
                let section = format!("[state.{n}]");
                if actions.iter().any(|a| a.name == n) {
                    l.err(
                        PolicyError::new(
                            ErrorKind::DuplicateId,
                            nspan,
                            format!("`{n}` is both an action and a state variable"),
                        )
                        .help("rename one of them"),
                    );
                }
                let Some(st) = l.table(sv, &format!("state.{n}")) else {
                    continue;
                };
                l.check_keys(
                    st,
                    &[
                        "type",
                        "min",
                        "max",
                        "values",
                        "noise",
                        "description",
                        "unit",
                        "required",
                    ],
                    &section,
                );
                let _ = l.string(st, "description", &section);
                let required = l.boolean(st, "required", &section).unwrap_or(true);
                let _ = l.string(st, "unit", &section);
                let Some(ty) = read_type(l, st, &section, true) else {
                    continue;
                };
                let mut min = f64::NEG_INFINITY;
                let mut max = f64::INFINITY;
                let mut noise = 0.0;
                match &ty {
                    VarType::Real | VarType::Int => {
                        if let Some((a, _)) = l.number(st, "min", &section) {
                            min = a;
                        }
                        if let Some((b, bs)) = l.number(st, "max", &section) {
                            max = b;
                            if min > max {
                                l.err(PolicyError::new(
                                    ErrorKind::InvalidValue,
                                    bs,
                                    format!("`max` of `{n}` is below its `min`"),
                                ));
                            }
                        }
                        if let Some((e, es)) = l.number(st, "noise", &section) {
                            if e < 0.0 {
                                l.err(
                                    PolicyError::new(
                                        ErrorKind::InvalidValue,
                                        es,
                                        format!("`noise` of `{n}` is negative"),
                                    )
                                    .help("noise is a half-width: zero or more"),
                                );
                            }
                            noise = e.abs();
                        }
                    }
                    VarType::Bool => (min, max) = (0.0, 1.0),
                    VarType::Enum(vals) => {
                        #[expect(
                            clippy::cast_precision_loss,
                            reason = "enum sizes are far below 2^52"
                        )]
                        let m = (vals.len() - 1) as f64;
                        (min, max) = (0.0, m);
                    }
                    VarType::Text => (min, max) = (0.0, 0.0),
                }
                if !matches!(ty, VarType::Real | VarType::Int) {
                    for k in ["min", "max", "noise"] {
                        if let Some(kv) = st.get(k) {
                            l.err(PolicyError::new(
                                ErrorKind::InvalidValue,
                                span_of(kv),
                                format!(
                                    "`{k}` is only for real and int state, and `{n}` is {}",
                                    ty.name()
                                ),
                            ));
                        }
                    }
                }
                let eid = if let VarType::Enum(vals) = &ty {
                    Some(enum_id(n, vals))
                } else {
                    None
                };
                enum_of_state.push(eid);
                states.push(StateVar {
                    name: n.to_string(),
                    ty,
                    min,
                    max,
                    noise,
                    required,
                    slot: None,
                });
            }
        }
    }

    // [param]
    let mut params: Vec<(String, f64)> = Vec::new();
    if let Some(v) = root.get("param") {
        if let Some(t) = l.table(v, "param") {
            for (n, nspan, pv) in entries(t) {
                if actions.iter().any(|a| a.name == n) || states.iter().any(|s| s.name == n) {
                    l.err(
                        PolicyError::new(
                            ErrorKind::DuplicateId,
                            nspan,
                            format!("parameter `{n}` has the name of a variable"),
                        )
                        .help("rename the parameter"),
                    );
                }
                if let Some(x) = l.number_of(pv, &format!("parameter `{n}`")) {
                    params.push((n.to_string(), x));
                }
            }
        }
    }

    // Slots: actions, states, prev.<action>, budgets, then agent attributes as read.
    let mut next_slot: u32 = 0;
    for a in &mut actions {
        a.slot = next_slot;
        next_slot += 1;
    }
    for s in &mut states {
        if s.ty != VarType::Text {
            s.slot = Some(next_slot);
            next_slot += 1;
        }
    }
    for a in &mut actions {
        a.prev_slot = next_slot;
        next_slot += 1;
    }

    // [budget.*] declarations (their `add` is checked with the other expressions).
    let mut budget_decl: Vec<(String, f64, f64, f64, Option<&Val<'_>>)> = Vec::new();
    let mut budget_slots: Vec<(String, u32)> = Vec::new();
    if let Some(v) = root.get("budget") {
        if let Some(t) = l.table(v, "budget") {
            for (n, nspan, bv) in entries(t) {
                let section = format!("[budget.{n}]");
                let Some(bt) = l.table(bv, &format!("budget.{n}")) else {
                    continue;
                };
                l.check_keys(
                    bt,
                    &["window", "add", "min", "max", "description"],
                    &section,
                );
                let _ = l.string(bt, "description", &section);
                let mut window = f64::INFINITY;
                if l.required(bt, "window", &section, nspan) {
                    if let Some((w, ws)) = l.string(bt, "window", &section) {
                        match parse_window(&w) {
                            Some(x) => window = x,
                            None => l.err(PolicyError::new(ErrorKind::InvalidValue, ws, format!("`{w}` is not a window length")).help("write a positive number and a unit: s, m, h or d, for example \"24h\"")),
                        }
                    }
                }
                l.required(bt, "add", &section, nspan);
                let min = l.number(bt, "min", &section).map_or(0.0, |x| x.0);
                let max = l.number(bt, "max", &section).map_or(f64::INFINITY, |x| x.0);
                budget_decl.push((n.to_string(), window, min, max, bt.get("add")));
                budget_slots.push((n.to_string(), next_slot));
                next_slot += 1;
            }
        }
    }

    let mut attrs: Vec<AttrSlot> = Vec::new();
    let mut symbols: Vec<String> = Vec::new();

    macro_rules! scope {
        ($next:expr, $allow_next:expr) => {
            Scope {
                actions: &actions,
                states: &states,
                params: &params,
                enum_of_action: &enum_of_action,
                enum_of_state: &enum_of_state,
                enums: &enums,
                budgets: &budget_slots,
                next: $next,
                allow_next: $allow_next,
                attrs: &mut attrs,
                next_slot: &mut next_slot,
                symbols: &mut symbols,
            }
        };
    }

    // [dynamics]
    let mut dynamics: Option<Dynamics> = None;
    let mut next_terms: HashMap<usize, Term> = HashMap::new();
    let has_dynamics = root.contains_key("dynamics");
    if let Some(v) = root.get("dynamics") {
        if let Some(t) = l.table(v, "dynamics") {
            let mut equations = Vec::new();
            let mut error_bound = Vec::new();
            let mut bounds: HashMap<String, (f64, Span)> = HashMap::new();
            if let Some(eb) = t.get("error_bound") {
                if let Some(ebt) = l.table(eb, "dynamics.error_bound") {
                    for (n, nspan, x) in entries(ebt) {
                        if let Some(x) = l.number_of(x, &format!("the error bound of `{n}`")) {
                            if x < 0.0 {
                                l.err(PolicyError::new(
                                    ErrorKind::InvalidValue,
                                    nspan,
                                    format!("the error bound of `{n}` is negative"),
                                ));
                            }
                            bounds.insert(n.to_string(), (x.abs(), nspan));
                        }
                    }
                }
            }
            for (n, nspan, ev) in entries(t) {
                if n == "error_bound" {
                    continue;
                }
                let Some((si, sv)) = states.iter().enumerate().find(|(_, s)| s.name == n) else {
                    let e = PolicyError::new(
                        ErrorKind::UnknownName,
                        nspan,
                        format!("[dynamics] names `{n}`, which is not a state variable"),
                    );
                    l.err(match suggest(n, states.iter().map(|s| s.name.as_str())) {
                        Some(s) => e.help(format!("did you mean `{s}`?")),
                        None => e.help("each [dynamics] key is a [state] variable"),
                    });
                    continue;
                };
                if sv.ty != VarType::Real {
                    l.err(PolicyError::new(
                        ErrorKind::TypeMismatch,
                        nspan,
                        format!(
                            "[dynamics] is for real state, and `{n}` is {}",
                            sv.ty.name()
                        ),
                    ));
                    continue;
                }
                let Some(e) = l.expr(ev, &format!("the dynamics of `{n}`")) else {
                    continue;
                };
                let mut sc = scope!(None, false);
                match typeck::check(&e, Ty::Num, &mut sc) {
                    Ok(term) => {
                        let eb = bounds.get(n).map_or(0.0, |b| b.0);
                        let next = if eb > 0.0 {
                            Term::bin(
                                crate::expr::typeck::Op2::Add,
                                term.clone(),
                                Term::Const(Interval::new(-eb, eb)),
                            )
                        } else {
                            term.clone()
                        };
                        next_terms.insert(si, next);
                        equations.push((si, term));
                        error_bound.push(eb);
                    }
                    Err(err) => l.err(err),
                }
            }
            for (n, (_, sp)) in &bounds {
                if !equations
                    .iter()
                    .any(|(si, _)| states.get(*si).is_some_and(|s| s.name == *n))
                {
                    l.err(PolicyError::new(
                        ErrorKind::UnknownName,
                        *sp,
                        format!("`error_bound` names `{n}`, which has no [dynamics] equation"),
                    ));
                }
            }
            dynamics = Some(Dynamics {
                equations,
                error_bound,
            });
        }
    }
    let next_ref = if has_dynamics {
        Some(&next_terms)
    } else {
        None
    };

    // budgets' `add`
    let mut budgets = Vec::new();
    for (n, window, min, max, addv) in &budget_decl {
        let mut add = Term::Const(Interval::point(0.0));
        if let Some(av) = addv {
            if let Some(e) = l.expr(av, &format!("`add` of budget `{n}`")) {
                let mut sc = scope!(None, false);
                match typeck::check(&e, Ty::Num, &mut sc) {
                    Ok(t) => add = t,
                    Err(err) => l.err(err),
                }
            }
        }
        let slot = budget_slots.iter().find(|b| b.0 == *n).map_or(0, |b| b.1);
        budgets.push(Budget {
            name: n.clone(),
            window_secs: *window,
            add,
            min: *min,
            max: *max,
            slot,
        });
    }

    // [governor]
    let real_actions: Vec<usize> = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.ty == VarType::Real)
        .map(|(i, _)| i)
        .collect();
    let nr = real_actions.len();
    let mut gov = GovernorSettings {
        deadline_us: 1000,
        enforce_deadline: false,
        max_clock_skew_secs: 0.0,
        max_iterations: 50,
        repair_limit: f64::INFINITY,
        metric: (0..nr)
            .map(|i| (0..nr).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
            .collect(),
        discrete_cost: actions
            .iter()
            .map(|a| if a.ty.is_discrete() { 1.0 } else { 0.0 })
            .collect(),
    };
    if let Some(v) = root.get("governor") {
        if let Some(t) = l.table(v, "governor") {
            let sec = "[governor]";
            l.check_keys(
                t,
                &[
                    "deadline_us",
                    "enforce_deadline",
                    "max_clock_skew_secs",
                    "max_iterations",
                    "repair_limit",
                    "metric",
                    "metric_matrix",
                    "discrete_cost",
                ],
                sec,
            );
            if let Some((x, sp)) = l.number(t, "deadline_us", sec) {
                if x >= 1.0 && x.fract() == 0.0 && x <= 1e12 {
                    #[expect(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "checked integral and in range"
                    )]
                    let d = x as u64;
                    gov.deadline_us = d;
                } else {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        sp,
                        "`deadline_us` must be a positive whole number of microseconds",
                    ));
                }
            }
            if let Some(b) = l.boolean(t, "enforce_deadline", sec) {
                gov.enforce_deadline = b;
            }
            if let Some((x, sp)) = l.number(t, "max_clock_skew_secs", sec) {
                // A day is already more than any clock that is working should drift.
                if (0.0..=86_400.0).contains(&x) {
                    gov.max_clock_skew_secs = x;
                } else {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        sp,
                        "`max_clock_skew_secs` must be from 0 to 86400 seconds",
                    ));
                }
            }
            if let Some((x, sp)) = l.number(t, "max_iterations", sec) {
                if (1.0..=1e6).contains(&x) && x.fract() == 0.0 {
                    #[expect(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "checked integral and in range"
                    )]
                    let m = x as u32;
                    gov.max_iterations = m;
                } else {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        sp,
                        "`max_iterations` must be a whole number from 1 to 1000000",
                    ));
                }
            }
            if let Some((x, sp)) = l.number(t, "repair_limit", sec) {
                if x >= 0.0 {
                    gov.repair_limit = x;
                } else {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        sp,
                        "`repair_limit` must be zero or more",
                    ));
                }
            }
            if t.contains_key("metric") && t.contains_key("metric_matrix") {
                if let Some(mv) = t.get("metric_matrix") {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        span_of(mv),
                        "give `metric` or `metric_matrix`, not both",
                    ));
                }
            }
            if let Some(mv) = t.get("metric") {
                if let Some(mt) = l.table(mv, "governor.metric") {
                    for (n, nspan, w) in entries(mt) {
                        let Some(pos) = real_actions
                            .iter()
                            .position(|&i| actions.get(i).is_some_and(|a| a.name == n))
                        else {
                            let e = PolicyError::new(
                                ErrorKind::UnknownName,
                                nspan,
                                format!(
                                    "`metric` names `{n}`, which is not a real action variable"
                                ),
                            );
                            l.err(match suggest(n, real_actions.iter().filter_map(|&i| actions.get(i)).map(|a| a.name.as_str())) {
                                Some(s) => e.help(format!("did you mean `{s}`?")),
                                None => e.help("the metric weighs the real action variables; discrete ones take `discrete_cost`"),
                            });
                            continue;
                        };
                        if let Some(x) = l.number_of(w, &format!("the metric weight of `{n}`")) {
                            if x <= 0.0 {
                                l.err(PolicyError::new(ErrorKind::MetricNotPositiveDefinite, span_of(w), format!("the metric weight of `{n}` is {x}; the metric must be positive definite"))
                                    .help("give every real action variable a weight above zero"));
                            }
                            if let Some(row) = gov.metric.get_mut(pos) {
                                if let Some(c) = row.get_mut(pos) {
                                    *c = x;
                                }
                            }
                        }
                    }
                }
            }
            if let Some(mv) = t.get("metric_matrix") {
                let sp = span_of(mv);
                let mut m: Vec<Vec<f64>> = Vec::new();
                let mut ok = true;
                if let DeValue::Array(rows) = mv.get_ref() {
                    for r in rows.iter() {
                        let mut row = Vec::new();
                        if let DeValue::Array(cells) = r.get_ref() {
                            for c in cells.iter() {
                                match l.number_of(c, "a `metric_matrix` entry") {
                                    Some(x) => row.push(x),
                                    None => ok = false,
                                }
                            }
                        } else {
                            ok = false;
                        }
                        m.push(row);
                    }
                } else {
                    ok = false;
                }
                if !ok || m.len() != nr || m.iter().any(|r| r.len() != nr) {
                    l.err(PolicyError::new(ErrorKind::InvalidValue, sp, format!("`metric_matrix` must be a {nr}×{nr} array of numbers (one row per real action variable, in [action] order)")));
                } else if let Err(why) = positive_definite(&m) {
                    l.err(PolicyError::new(ErrorKind::MetricNotPositiveDefinite, sp, format!("`metric_matrix` is not positive definite: {why}"))
                        .help("use a symmetric matrix with positive eigenvalues; a diagonal `metric` with positive weights always is"));
                } else {
                    gov.metric = m;
                }
            }
            if let Some(dv) = t.get("discrete_cost") {
                if let Some(dt) = l.table(dv, "governor.discrete_cost") {
                    for (n, nspan, w) in entries(dt) {
                        match actions.iter().position(|a| a.name == n && a.ty.is_discrete()) {
                            Some(i) => {
                                if let Some(x) = l.number_of(w, &format!("the discrete cost of `{n}`")) {
                                    if x < 0.0 {
                                        l.err(PolicyError::new(ErrorKind::InvalidValue, span_of(w), format!("the discrete cost of `{n}` is negative")));
                                    }
                                    if let Some(c) = gov.discrete_cost.get_mut(i) {
                                        *c = x;
                                    }
                                }
                            }
                            None => l.err(PolicyError::new(ErrorKind::UnknownName, nspan, format!("`discrete_cost` names `{n}`, which is not a discrete action variable")).help("discrete costs are for enum, bool and int action variables")),
                        }
                    }
                }
            }
        }
    }

    // [fallback]
    let mut fallback: Vec<f64> = actions.iter().map(|_| f64::NAN).collect();
    match root.get("fallback") {
        None => {
            if !actions.is_empty() {
                l.err(
                    PolicyError::new(
                        ErrorKind::MissingField,
                        file_span,
                        "the policy has no [fallback] section",
                    )
                    .help("add [fallback] with a safe value for every action variable"),
                );
            }
        }
        Some(v) => {
            let fallback_span = span_of(v);
            if let Some(t) = l.table(v, "fallback") {
                for (n, nspan, fv) in entries(t) {
                    let Some(i) = actions.iter().position(|a| a.name == n) else {
                        let e = PolicyError::new(
                            ErrorKind::UnknownName,
                            nspan,
                            format!("[fallback] names `{n}`, which is not an action variable"),
                        );
                        l.err(match suggest(n, actions.iter().map(|a| a.name.as_str())) {
                            Some(s) => e.help(format!("did you mean `{s}`?")),
                            None => e.help("the fallback gives a value for each [action] variable"),
                        });
                        continue;
                    };
                    if let (Some(a), Some(slot)) = (actions.get(i), fallback.get_mut(i)) {
                        if let Some(x) = action_value(l, a, fv, "[fallback]") {
                            *slot = x;
                        }
                    }
                }
                for ((a, x), (_, aspan)) in actions.iter().zip(&fallback).zip(&action_specs) {
                    if x.is_nan() && !t.contains_key(a.name.as_str()) {
                        let _ = aspan;
                        l.err(
                            PolicyError::new(
                                ErrorKind::MissingField,
                                fallback_span,
                                format!("[fallback] has no value for `{}`", a.name),
                            )
                            .help(format!(
                                "add `{} = ...`: the fallback must be a complete action",
                                a.name
                            )),
                        );
                    }
                }
            }
        }
    }

    // [[rule]]
    let mut rules: Vec<Rule> = Vec::new();
    let mut ids: HashMap<String, Span> = HashMap::new();
    if let Some(v) = root.get("rule") {
        for (k, rv) in array_of_tables(l, v, "rule") {
            let sec = format!("rule {}", k + 1);
            let Some(t) = l.table(rv, "rule") else {
                continue;
            };
            l.check_keys(
                t,
                &[
                    "id",
                    "when",
                    "verdict",
                    "criticality",
                    "reason",
                    "confirmable",
                    "set",
                    "repaired_transition",
                    "description",
                ],
                &format!("[[rule]] ({sec})"),
            );
            let rspan = span_of(rv);
            let id = if l.required(t, "id", &format!("[[rule]] ({sec})"), rspan) {
                l.string(t, "id", "[[rule]]")
            } else {
                None
            };
            let (id, idspan) = id.unwrap_or((format!("rule-{}", k + 1), rspan));
            if let Some(first) = ids.get(&id) {
                let (line, _) = crate::error::line_col(l.src, first.start);
                l.err(
                    PolicyError::new(
                        ErrorKind::DuplicateId,
                        idspan,
                        format!("rule id `{id}` is used twice"),
                    )
                    .help(format!(
                        "the first use is on line {line}; rule ids must be unique"
                    )),
                );
            } else {
                ids.insert(id.clone(), idspan);
            }
            let sec = format!("rule `{id}`");
            let when = if l.required(t, "when", &sec, idspan) {
                t.get("when")
                    .and_then(|w| l.expr(w, "`when`"))
                    .and_then(|e| {
                        let mut sc = scope!(next_ref, true);
                        typeck::check(&e, Ty::Bool, &mut sc)
                            .map_err(|err| l.err(err))
                            .ok()
                    })
            } else {
                None
            };
            let verdict = if l.required(t, "verdict", &sec, idspan) {
                l.one_of(t, "verdict", &sec, &verdicts)
            } else {
                None
            };
            let criticality = if t.contains_key("criticality") {
                l.one_of(t, "criticality", &sec, &CRITICALITIES)
            } else {
                None
            };
            let reason = l.string(t, "reason", &sec).map(|x| x.0);
            let _ = l.string(t, "description", &sec);
            let confirmable = l.boolean(t, "confirmable", &sec).unwrap_or(false);
            let repaired_transition = l.string(t, "repaired_transition", &sec).map(|x| x.0);
            let mut set = Vec::new();
            if let Some(sv) = t.get("set") {
                if let Some(st) = l.table(sv, "set") {
                    for (n, nspan, x) in entries(st) {
                        match actions.iter().position(|a| a.name == n) {
                            Some(i) => {
                                if let Some(a) = actions.get(i) {
                                    if !a.ty.is_discrete() {
                                        l.err(PolicyError::new(ErrorKind::TypeMismatch, nspan, format!("`set` names `{n}`, which is real; `set` is a discrete repair")).help("real variables are repaired by projection; set enum, bool or int variables"));
                                    } else if let Some(x) =
                                        action_value(l, a, x, &format!("`set` of rule `{id}`"))
                                    {
                                        set.push((i, x));
                                    }
                                }
                            }
                            None => l.err(PolicyError::new(
                                ErrorKind::UnknownName,
                                nspan,
                                format!("`set` names `{n}`, which is not an action variable"),
                            )),
                        }
                    }
                }
            }
            if let (Some(when), Some(verdict)) = (when, verdict) {
                rules.push(Rule {
                    id,
                    when,
                    verdict,
                    criticality,
                    reason,
                    confirmable,
                    set,
                    repaired_transition,
                    span: idspan,
                });
            }
        }
    }

    // [[constraint]]
    let mut constraints: Vec<Constraint> = Vec::new();
    let mut cids: HashMap<String, Span> = HashMap::new();
    let kinds = ConstraintKind::ALL.map(|k| (k.as_str(), k));
    if let Some(v) = root.get("constraint") {
        for (k, cv) in array_of_tables(l, v, "constraint") {
            let Some(t) = l.table(cv, "constraint") else {
                continue;
            };
            let cspan = span_of(cv);
            let sec0 = format!("[[constraint]] {}", k + 1);
            l.check_keys(
                t,
                &[
                    "id",
                    "kind",
                    "criticality",
                    "expr",
                    "barrier",
                    "gamma",
                    "lyapunov",
                    "alpha",
                    "sigma",
                    "description",
                    "tolerance",
                    "weight",
                    "when",
                    "on_violation",
                    "lipschitz",
                ],
                &sec0,
            );
            let id = if l.required(t, "id", &sec0, cspan) {
                l.string(t, "id", &sec0)
            } else {
                None
            };
            let (id, idspan) = id.unwrap_or((format!("constraint-{}", k + 1), cspan));
            if let Some(first) = ids.get(&id) {
                let (line, _) = crate::error::line_col(l.src, first.start);
                l.err(PolicyError::new(ErrorKind::DuplicateId, idspan, format!("constraint id `{id}` is also a rule id")).help(format!("the rule is on line {line}; decisions name rules and constraints by id, so they must differ")));
            } else if let Some(first) = cids.get(&id) {
                let (line, _) = crate::error::line_col(l.src, first.start);
                l.err(
                    PolicyError::new(
                        ErrorKind::DuplicateId,
                        idspan,
                        format!("constraint id `{id}` is used twice"),
                    )
                    .help(format!(
                        "the first use is on line {line}; constraint ids must be unique"
                    )),
                );
            } else {
                cids.insert(id.clone(), idspan);
            }
            let sec = format!("constraint `{id}`");
            let kind = if t.contains_key("kind") {
                l.one_of(t, "kind", &sec, &kinds)
            } else {
                Some(ConstraintKind::Physical)
            };
            let criticality = if t.contains_key("criticality") {
                l.one_of(t, "criticality", &sec, &CRITICALITIES)
            } else {
                Some(Criticality::Critical)
            };
            // INVARIANT (barriers-critical): G2 (forward invariance) rests on every barrier
            // row holding at every executed action, so the CRE may never relax one.
            if kind == Some(ConstraintKind::Barrier)
                && criticality.is_some_and(|c| c != Criticality::Critical)
            {
                let sp = t.get("criticality").map_or(idspan, span_of);
                l.err(
                    PolicyError::new(
                        ErrorKind::BarrierNotCritical,
                        sp,
                        format!("barrier constraint `{id}` must be critical"),
                    )
                    .help("forward invariance (G2) rests on every barrier row, so none may be relaxed: remove `criticality` (critical is the default) and any `tolerance`; a soft wish to keep clear is a `preference` constraint"),
                );
            }
            let description = l.string(t, "description", &sec).map(|x| x.0);
            let mut tolerance = 0.0;
            if let Some((x, sp)) = l.number(t, "tolerance", &sec) {
                if criticality == Some(Criticality::Critical) {
                    l.err(PolicyError::new(ErrorKind::CriticalTolerance, sp, format!("critical constraint `{id}` has a tolerance"))
                        .help("critical constraints are never relaxed: remove `tolerance`, or lower `criticality` to high, medium or low"));
                } else if x < 0.0 {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        sp,
                        "`tolerance` must be zero or more",
                    ));
                }
                tolerance = x.abs();
            }
            let weight = match l.number(t, "weight", &sec) {
                Some((x, sp)) if x < 0.0 => {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        sp,
                        "`weight` must be zero or more",
                    ));
                    1.0
                }
                Some((x, _)) => x,
                None => 1.0,
            };
            let on_violation = if t.contains_key("on_violation") {
                l.one_of(
                    t,
                    "on_violation",
                    &sec,
                    &[
                        ("repair", OnViolation::Repair),
                        ("hold", OnViolation::Hold),
                        ("block", OnViolation::Block),
                    ],
                )
                .unwrap_or(OnViolation::Repair)
            } else {
                OnViolation::Repair
            };
            let lipschitz = match l.number(t, "lipschitz", &sec) {
                Some((x, sp)) if x <= 0.0 => {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        sp,
                        "`lipschitz` must be above zero",
                    ));
                    None
                }
                other => other.map(|x| x.0),
            };
            let guard = t
                .get("when")
                .and_then(|w| l.expr(w, "`when`"))
                .and_then(|e| {
                    let mut sc = scope!(next_ref, true);
                    typeck::check(&e, Ty::Bool, &mut sc)
                        .map_err(|err| l.err(err))
                        .ok()
                });
            let Some(kind) = kind else { continue };
            let mut rows = Vec::new();
            // Which fields each kind takes.
            let (main, extra): (&str, &[&str]) = match kind {
                ConstraintKind::Barrier => ("barrier", &["gamma"]),
                ConstraintKind::Lyapunov => ("lyapunov", &["alpha", "sigma"]),
                _ => ("expr", &[]),
            };
            for other in ["expr", "barrier", "lyapunov", "gamma", "alpha", "sigma"] {
                if other != main && !extra.contains(&other) {
                    if let Some(ov) = t.get(other) {
                        l.err(
                            PolicyError::new(
                                ErrorKind::InvalidValue,
                                span_of(ov),
                                format!("a {} constraint takes no `{other}`", kind.as_str()),
                            )
                            .help(format!(
                                "a {} constraint is given by `{main}`{}",
                                kind.as_str(),
                                if extra.is_empty() {
                                    String::new()
                                } else {
                                    format!(
                                        " and {}",
                                        extra
                                            .iter()
                                            .map(|e| format!("`{e}`"))
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    )
                                }
                            )),
                        );
                    }
                }
            }
            if !l.required(t, main, &sec, idspan) {
                continue;
            }
            let Some(mv) = t.get(main) else { continue };
            let Some(e) = l.expr(mv, &format!("`{main}`")) else {
                continue;
            };
            match kind {
                ConstraintKind::Barrier | ConstraintKind::Lyapunov => {
                    if !has_dynamics {
                        l.err(
                            PolicyError::new(
                                ErrorKind::NeedsDynamics,
                                idspan,
                                format!(
                                    "{} constraint `{id}` needs a [dynamics] section",
                                    kind.as_str()
                                ),
                            )
                            .help(
                                "add [dynamics] with an equation for each state variable it reads",
                            ),
                        );
                        continue;
                    }
                    let mut sc = scope!(next_ref, false);
                    let h = match typeck::check(&e, Ty::Num, &mut sc) {
                        Ok(h) => h,
                        Err(err) => {
                            l.err(if err.kind == ErrorKind::TypeMismatch && err.message.starts_with("`next.`") {
                                PolicyError::new(ErrorKind::TypeMismatch, err.span, format!("write `{main}` over the current state; the constraint applies it to `next.` itself"))
                            } else {
                                err
                            });
                            continue;
                        }
                    };
                    // h(next): every state the function reads must have an equation.
                    let mut missing = Vec::new();
                    h.inputs(&mut |slot| {
                        if let Some((si, s)) = states
                            .iter()
                            .enumerate()
                            .find(|(_, s)| s.slot == Some(slot))
                        {
                            if !next_terms.contains_key(&si) && !missing.contains(&s.name) {
                                missing.push(s.name.clone());
                            }
                        }
                    });
                    if !missing.is_empty() {
                        l.err(
                            PolicyError::new(
                                ErrorKind::NeedsDynamics,
                                e.span,
                                format!(
                                    "{} `{id}` reads {} with no [dynamics] equation",
                                    kind.as_str(),
                                    missing
                                        .iter()
                                        .map(|m| format!("`{m}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            )
                            .help("add an equation for each state variable the function reads"),
                        );
                        continue;
                    }
                    let state_term = |slot: u32| -> Option<Term> {
                        states
                            .iter()
                            .enumerate()
                            .find(|(_, s)| s.slot == Some(slot))
                            .and_then(|(si, _)| next_terms.get(&si).cloned())
                    };
                    let h_next = h.substitute(&state_term);
                    use crate::expr::typeck::Op2;
                    let coef = |l: &mut Loader<'_>,
                                key: &str,
                                lo: f64,
                                hi: f64,
                                hi_open: bool,
                                default: Option<f64>|
                     -> f64 {
                        match l.number(t, key, &sec) {
                            Some((x, sp)) => {
                                let ok = x >= lo && if hi_open { x < hi } else { x <= hi };
                                if !ok {
                                    l.err(PolicyError::new(
                                        ErrorKind::InvalidValue,
                                        sp,
                                        format!(
                                            "`{key}` must be in [{lo}, {hi}{}",
                                            if hi_open { ")" } else { "]" }
                                        ),
                                    ));
                                }
                                x
                            }
                            None => match default {
                                Some(d) => d,
                                None => {
                                    l.required(t, key, &sec, idspan);
                                    0.0
                                }
                            },
                        }
                    };
                    let row = if kind == ConstraintKind::Barrier {
                        let gamma = coef(l, "gamma", 0.0, 1.0, false, None);
                        if gamma == 0.0 && t.contains_key("gamma") {
                            if let Some(gv) = t.get("gamma") {
                                l.err(
                                    PolicyError::new(
                                        ErrorKind::InvalidValue,
                                        span_of(gv),
                                        "`gamma` must be above zero",
                                    )
                                    .help("gamma is in (0, 1]"),
                                );
                            }
                        }
                        // (1 - gamma) h(x) <= h(next)
                        let k = Interval::point(1.0).sub(Interval::point(gamma));
                        RowDef {
                            name: id.clone(),
                            sense: Sense::Le,
                            lhs: Term::bin(Op2::Mul, Term::Const(k), h.clone()),
                            rhs: h_next,
                            span: e.span,
                            safe_set: Some(h),
                        }
                    } else {
                        let alpha = coef(l, "alpha", 0.0, 1.0, true, None);
                        let sigma = coef(l, "sigma", 0.0, f64::INFINITY, true, Some(0.0));
                        // V(next) <= (1 - alpha) V(x) + sigma
                        let k = Interval::point(1.0).sub(Interval::point(alpha));
                        let rhs = Term::bin(
                            Op2::Add,
                            Term::bin(Op2::Mul, Term::Const(k), h),
                            Term::Const(Interval::point(sigma)),
                        );
                        RowDef {
                            name: id.clone(),
                            sense: Sense::Le,
                            lhs: h_next,
                            rhs,
                            span: e.span,
                            safe_set: None,
                        }
                    };
                    rows.push(row);
                }
                _ => {
                    let mut parts = Vec::new();
                    conjuncts(&e, &mut parts);
                    let multi = parts.len() > 1;
                    for (j, part) in parts.iter().enumerate() {
                        let name = if multi {
                            format!("{id}#{}", j + 1)
                        } else {
                            id.clone()
                        };
                        let mut sc = scope!(next_ref, true);
                        let numeric = match &part.kind {
                            ExprKind::Cmp(op, a, b) if !symbolic(a) && !symbolic(b) => {
                                match (typeck::typed(a, &mut sc), typeck::typed(b, &mut sc)) {
                                    (Ok((ta, Ty::Num)), Ok((tb, Ty::Num))) => Some((*op, ta, tb)),
                                    _ => None,
                                }
                            }
                            _ => None,
                        };
                        let row = match numeric {
                            Some((op, ta, tb)) => {
                                use crate::expr::ast::CmpOp;
                                let (sense, lhs, rhs) = match op {
                                    CmpOp::Le => (Sense::Le, ta, tb),
                                    CmpOp::Lt => (Sense::Lt, ta, tb),
                                    CmpOp::Ge => (Sense::Le, tb, ta),
                                    CmpOp::Gt => (Sense::Lt, tb, ta),
                                    CmpOp::Eq => (Sense::Eq, ta, tb),
                                    CmpOp::Ne => (Sense::Ne, ta, tb),
                                };
                                RowDef {
                                    name,
                                    sense,
                                    lhs,
                                    rhs,
                                    span: part.span,
                                    safe_set: None,
                                }
                            }
                            None => match typeck::check(part, Ty::Bool, &mut sc) {
                                Ok(c) => RowDef {
                                    name,
                                    sense: Sense::Bool,
                                    lhs: c,
                                    rhs: Term::Const(Interval::TRUE),
                                    span: part.span,
                                    safe_set: None,
                                },
                                Err(err) => {
                                    l.err(if err.kind == ErrorKind::NotBoolean {
                                        PolicyError::new(ErrorKind::NotBoolean, err.span, format!("`{main}` of constraint `{id}` must be a comparison, found a number"))
                                            .help("write a comparison such as `vx^2 + vy^2 <= 2.25`")
                                    } else {
                                        err
                                    });
                                    continue;
                                }
                            },
                        };
                        rows.push(row);
                    }
                }
            }
            if let Some(criticality) = criticality {
                constraints.push(Constraint {
                    id,
                    kind,
                    criticality,
                    description,
                    tolerance,
                    weight,
                    on_violation,
                    lipschitz,
                    guard,
                    rows,
                    span: idspan,
                });
            }
        }
    }
    // Row names must be unique too (`a#1` could clash with a constraint called `a#1`).
    let mut row_names = HashSet::new();
    for c in &constraints {
        for r in &c.rows {
            if !row_names.insert(r.name.clone()) && c.rows.len() > 1 {
                l.err(
                    PolicyError::new(
                        ErrorKind::DuplicateId,
                        c.span,
                        format!(
                            "row `{}` of constraint `{}` has the id of another constraint",
                            r.name, c.id
                        ),
                    )
                    .help("rename the constraint"),
                );
            }
        }
    }

    if !l.errors.is_empty() {
        return None;
    }
    let policy = Policy {
        name,
        version,
        mode,
        default_verdict,
        governor: gov,
        actions,
        states,
        params,
        dynamics,
        fallback,
        rules,
        constraints,
        budgets,
        layout: Layout {
            len: next_slot,
            attrs,
        },
        symbols,
        lattice: Lattice::default(),
        hash: source_hash(l.src),
        tests: Vec::new(),
    };
    let lattice = Lattice::compile(&policy);
    let mut policy = Policy { lattice, ..policy };
    for e in crate::tier1::certify_fallback(&policy) {
        l.err(e);
    }
    policy.lattice.shrink();
    if let Some(v) = root.get("test") {
        policy.tests = load_tests(l, &policy, v);
    }
    Some(policy)
}

const CRITICALITIES: [(&str, Criticality); 4] = [
    ("critical", Criticality::Critical),
    ("high", Criticality::High),
    ("medium", Criticality::Medium),
    ("low", Criticality::Low),
];

fn array_of_tables<'a, 'i>(
    l: &mut Loader<'_>,
    v: &'a Val<'i>,
    what: &str,
) -> Vec<(usize, &'a Val<'i>)> {
    match v.get_ref() {
        DeValue::Array(a) => a.iter().enumerate().collect(),
        _ => {
            l.err(
                PolicyError::new(
                    ErrorKind::InvalidValue,
                    span_of(v),
                    format!("`{what}` must be an array of tables"),
                )
                .help(format!("write each one as `[[{what}]]`")),
            );
            Vec::new()
        }
    }
}

/// A TOML value for action variable `a`, encoded.
fn action_value(l: &mut Loader<'_>, a: &ActionVar, v: &Val<'_>, what: &str) -> Option<f64> {
    let sp = span_of(v);
    match (&a.ty, v.get_ref()) {
        (VarType::Bool, DeValue::Boolean(b)) => Some(if *b { 1.0 } else { 0.0 }),
        (VarType::Enum(vals), DeValue::String(s)) => match Policy::enum_index(vals, s) {
            Some(i) => Some(i),
            None => {
                let list = vals
                    .iter()
                    .map(|v| format!("'{v}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                l.err(
                    PolicyError::new(
                        ErrorKind::UnknownEnumValue,
                        sp,
                        format!("`{}` has no value `'{s}'`", a.name),
                    )
                    .help(format!("its values are {list}")),
                );
                None
            }
        },
        (VarType::Real | VarType::Int, DeValue::Integer(_) | DeValue::Float(_)) => {
            let x = l.number_of(v, &format!("`{}` in {what}", a.name))?;
            if a.ty == VarType::Int && x.fract() != 0.0 {
                l.err(PolicyError::new(
                    ErrorKind::InvalidValue,
                    sp,
                    format!("`{}` is an int, and {x} is not whole", a.name),
                ));
                return None;
            }
            if x < a.min || x > a.max {
                l.err(PolicyError::new(
                    ErrorKind::InvalidValue,
                    sp,
                    format!(
                        "{x} is outside the range of `{}` [{}, {}]",
                        a.name, a.min, a.max
                    ),
                ));
                return None;
            }
            Some(x)
        }
        (ty, other) => {
            l.err(PolicyError::new(
                ErrorKind::TypeMismatch,
                sp,
                format!(
                    "`{}` is {}, and {what} gives it {}",
                    a.name,
                    ty.name(),
                    other.type_str()
                ),
            ));
            None
        }
    }
}

/// Cholesky factorisation as the positive-definiteness test.
pub(crate) fn positive_definite(m: &[Vec<f64>]) -> Result<(), String> {
    let n = m.len();
    for (i, row) in m.iter().enumerate() {
        for (j, x) in row.iter().enumerate() {
            let y = m.get(j).and_then(|r| r.get(i)).copied().unwrap_or(f64::NAN);
            if *x != y {
                return Err(format!(
                    "it is not symmetric (entry [{i}][{j}] is {x}, [{j}][{i}] is {y})"
                ));
            }
        }
    }
    let mut lower = vec![vec![0.0f64; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = m.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0.0);
            for k in 0..j {
                let lik = lower.get(i).and_then(|r| r.get(k)).copied().unwrap_or(0.0);
                let ljk = lower.get(j).and_then(|r| r.get(k)).copied().unwrap_or(0.0);
                s -= lik * ljk;
            }
            if i == j {
                if s <= 1e-12 {
                    return Err(format!("the pivot of row {i} is {s:e}, not positive"));
                }
                if let Some(c) = lower.get_mut(i).and_then(|r| r.get_mut(j)) {
                    *c = s.sqrt();
                }
            } else {
                let ljj = lower.get(j).and_then(|r| r.get(j)).copied().unwrap_or(1.0);
                if let Some(c) = lower.get_mut(i).and_then(|r| r.get_mut(j)) {
                    *c = s / ljj;
                }
            }
        }
    }
    Ok(())
}

/// `sha256:` and the hex digest of the policy text: what decisions and records name.
fn source_hash(src: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(src.as_bytes());
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A TOML value as JSON (policy tests carry proposals written in TOML).
fn to_json(v: &DeValue<'_>) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match v {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(i) => J::from(i64::from_str_radix(i.as_str(), i.radix()).ok()?),
        DeValue::Float(f) => J::from(serde_json::Number::from_f64(
            f.as_str().replace('_', "").parse().ok()?,
        )?),
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(a) => J::Array(
            a.iter()
                .map(|x| to_json(x.get_ref()))
                .collect::<Option<Vec<_>>>()?,
        ),
        DeValue::Table(t) => J::Object(
            entries(t)
                .into_iter()
                .map(|(k, _, x)| Some((k.to_string(), to_json(x.get_ref())?)))
                .collect::<Option<serde_json::Map<_, _>>>()?,
        ),
    })
}

/// Deep merge: objects key by key, anything else replaced.
fn merge_json(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The decision fields a `[[test]]` may expect.
pub(crate) const EXPECTABLE: &[&str] = &[
    "final_outcome",
    "classification",
    "evaluation",
    "audit",
    "repair_status",
    "report_type",
    "human_action_required",
    "action",
    "candidate",
    "distance",
    "constraints",
    "relaxed",
    "rule",
    "reasons",
    "repaired_transition",
    "failure_modes",
    "guarantees",
];

/// `[[test]]` cases: each proposal must be valid input for this policy, and `expect` may
/// only name decision fields.
fn load_tests(l: &mut Loader<'_>, p: &Policy, v: &Val<'_>) -> Vec<PolicyTest> {
    let mut tests = Vec::new();
    let mut names: HashMap<String, Span> = HashMap::new();
    for (k, tv) in array_of_tables(l, v, "test") {
        let Some(t) = l.table(tv, "test") else {
            continue;
        };
        let sec = format!("[[test]] ({})", k + 1);
        l.check_keys(t, &["name", "extends", "given", "proposal", "expect"], &sec);
        let at = span_of(tv);
        let name = l
            .string(t, "name", &sec)
            .unwrap_or_else(|| (format!("test-{}", k + 1), at));
        if let Some(first) = names.get(&name.0) {
            let (line, _) = crate::error::line_col(l.src, first.start);
            l.err(
                PolicyError::new(
                    ErrorKind::DuplicateId,
                    name.1,
                    format!("test name `{}` is used twice", name.0),
                )
                .help(format!(
                    "the first use is on line {line}; test names must be unique"
                )),
            );
        } else {
            names.insert(name.0.clone(), name.1);
        }
        let sec = format!("test `{}`", name.0);
        // `extends = "other test"`: start from that test's proposal and merge this one over it.
        let mut base: Option<serde_json::Value> = None;
        if let Some((other, ospan)) = l.string(t, "extends", &sec) {
            match tests.iter().find(|x: &&PolicyTest| x.name == other) {
                Some(x) => base = Some(x.proposal.clone()),
                None => l.err(
                    PolicyError::new(
                        ErrorKind::UnknownName,
                        ospan,
                        format!("{sec} extends `{other}`, which is not an earlier test"),
                    )
                    .help("name a [[test]] defined above this one"),
                ),
            }
        }
        let proposal_of =
            |l: &mut Loader<'_>, pv: &Val<'_>, what: &str, base: Option<&serde_json::Value>| {
                let Some(mut j) = to_json(pv.get_ref()) else {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        span_of(pv),
                        format!("{what} of {sec} is not representable as JSON"),
                    ));
                    return None;
                };
                if let Some(b) = base {
                    let mut merged = b.clone();
                    merge_json(&mut merged, j);
                    j = merged;
                }
                match crate::governor::Proposal::from_json(p, &j) {
                    Ok(_) => Some(j),
                    Err(e) => {
                        l.err(
                            PolicyError::new(
                                ErrorKind::InvalidValue,
                                span_of(pv),
                                format!("{what} of {sec} is not a valid proposal: {}", e.message),
                            )
                            .help("write the proposal as `aioss decide` would read it"),
                        );
                        None
                    }
                }
            };
        let mut given = Vec::new();
        if let Some(gv) = t.get("given") {
            match gv.get_ref() {
                DeValue::Array(a) => {
                    for x in a {
                        if let Some(j) = proposal_of(l, x, "a `given` proposal", base.as_ref()) {
                            given.push(j);
                        }
                    }
                }
                other => l.err(PolicyError::new(
                    ErrorKind::InvalidValue,
                    span_of(gv),
                    format!(
                        "`given` of {sec} must be an array of proposals, found {}",
                        other.type_str()
                    ),
                )),
            }
        }
        let proposal = if base.is_some() && !t.contains_key("proposal") {
            base.clone()
        } else if l.required(t, "proposal", &sec, name.1) {
            t.get("proposal")
                .and_then(|pv| proposal_of(l, pv, "`proposal`", base.as_ref()))
        } else {
            None
        };
        let mut expect = serde_json::Map::new();
        if l.required(t, "expect", &sec, name.1) {
            if let Some(et) = t.get("expect").and_then(|ev| l.table(ev, "expect")) {
                l.check_keys(et, EXPECTABLE, &format!("`expect` of {sec}"));
                for (key, _, x) in entries(et) {
                    if let Some(j) = to_json(x.get_ref()) {
                        expect.insert(key.to_string(), j);
                    }
                }
            }
        }
        if let Some(proposal) = proposal {
            tests.push(PolicyTest {
                name: name.0,
                given,
                proposal,
                expect,
                span: name.1,
            });
        }
    }
    tests
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// Caught: duplicate enum values were found by a linear search per value, so a policy
    /// with 200,000 values took 34 s to load (release). Linear now: well under a second in
    /// release; the bound below leaves room for a debug build on a loaded machine.
    #[test]
    fn an_enum_of_200000_values_loads_in_linear_time() {
        let values: Vec<String> = (0..200_000).map(|i| format!("\"v{i}\"")).collect();
        let text = format!(
            "[policy]\nname = \"big-enum\"\nversion = \"1\"\n\n[action.tag]\ntype = \"enum\"\nvalues = [{}]\n\n[fallback]\ntag = \"v0\"\n",
            values.join(", ")
        );
        let t = std::time::Instant::now();
        let p = super::load("big-enum.toml", &text).unwrap();
        let took = t.elapsed();
        assert_eq!(p.actions.len(), 1);
        assert!(took.as_secs_f64() < 15.0, "{took:?}");
        // Duplicates are still refused, naming the value.
        let dup = text.replace("\"v199999\"", "\"v7\"");
        let e = super::load("big-enum.toml", &dup).unwrap_err().to_string();
        assert!(e.contains("`v7` is listed twice"), "{e}");
    }
}
