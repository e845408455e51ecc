//! The [`Loader`]: the policy's source, the errors found so far, and typed readers of TOML
//! values. A reader reports what is wrong with a value where it is written and returns
//! `None` (or a default the section gives), so a section validates a key in one line:
//! `l.number_in(t, "repair_limit", SECTION, 0.0.., "zero or more")`.

use std::ops::{RangeBounds, RangeInclusive};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{ErrorKind, PolicyError, Span};
use crate::expr::ast::Expr;
use crate::expr::parse::parse;
use crate::policy::{ActionVar, Criticality, Policy, VarType, Verdict};

/// The verdicts, as policies write them.
pub(super) const VERDICTS: [(&str, Verdict); 4] = [
    ("GO", Verdict::Go),
    ("REPAIR", Verdict::Repair),
    ("HOLD", Verdict::Hold),
    ("BLOCK", Verdict::Block),
];

/// The criticalities, as policies write them.
pub(super) const CRITICALITIES: [(&str, Criticality); 4] = [
    ("critical", Criticality::Critical),
    ("high", Criticality::High),
    ("medium", Criticality::Medium),
    ("low", Criticality::Low),
];

/// A TOML value with its span in the policy text.
pub(super) type Val<'i> = Spanned<DeValue<'i>>;

/// The span of a TOML key or value.
pub(super) fn span_of<T>(s: &Spanned<T>) -> Span {
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

/// The candidate closest to `name`, if it is close enough to be what was meant.
pub(super) fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d > 0)
        .min()
        .map(|(_, c)| c.to_string())
}

/// One load: the policy text and the errors found so far.
pub(super) struct Loader<'s> {
    pub(super) src: &'s str,
    pub(super) errors: Vec<PolicyError>,
}

/// Entries of a table in source order (the TOML map itself is sorted by key).
pub(super) fn entries<'a, 'i>(t: &'a DeTable<'i>) -> Vec<(&'a str, Span, &'a Val<'i>)> {
    let mut v: Vec<_> = t
        .iter()
        .map(|(k, v)| (k.get_ref().as_ref(), span_of(k), v))
        .collect();
    v.sort_by_key(|(_, s, _)| s.start);
    v
}

impl<'s> Loader<'s> {
    /// Report an error (loading goes on, to find the others).
    pub(super) fn err(&mut self, e: PolicyError) {
        self.errors.push(e);
    }

    /// Every key of `t` (in `section`) must be one of `allowed`.
    pub(super) fn check_keys(&mut self, t: &DeTable<'_>, allowed: &[&str], section: &str) {
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

    /// `v` (the value of `what`) as a table.
    pub(super) fn table<'a, 'i>(&mut self, v: &'a Val<'i>, what: &str) -> Option<&'a DeTable<'i>> {
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

    /// `key` in `section` as a string, with its span (`None` when absent).
    pub(super) fn string(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        section: &str,
    ) -> Option<(String, Span)> {
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

    /// `v` (the value of `what`) as a finite number; an integer is the double it rounds
    /// to.
    pub(super) fn number_of(&mut self, v: &Val<'_>, what: &str) -> Option<f64> {
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

    /// `key` in `section` as a finite number, with its span (`None` when absent).
    pub(super) fn number(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        section: &str,
    ) -> Option<(f64, Span)> {
        let v = t.get(key)?;
        let x = self.number_of(v, &format!("`{key}` in {section}"))?;
        Some((x, span_of(v)))
    }

    /// `key` in `section` as `true` or `false` (`None` when absent).
    pub(super) fn boolean(&mut self, t: &DeTable<'_>, key: &str, section: &str) -> Option<bool> {
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

    /// `key` in `section` as one of the names of `options` (`None` when absent).
    pub(super) fn one_of<T: Copy>(
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

    /// `key` in `section` as a number in `range`: anything else is an error saying that
    /// `key` must be `must`, and `None`.
    pub(super) fn number_in(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        section: &str,
        range: impl RangeBounds<f64>,
        must: &str,
    ) -> Option<f64> {
        let (x, sp) = self.number(t, key, section)?;
        if range.contains(&x) {
            return Some(x);
        }
        self.must_be(sp, key, must);
        None
    }

    /// `key` in `section` as a whole number in `range`: anything else is an error saying
    /// that `key` must be `must`, and `None`.
    pub(super) fn whole_number(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        section: &str,
        range: RangeInclusive<u64>,
        must: &str,
    ) -> Option<u64> {
        let (x, sp) = self.number(t, key, section)?;
        #[expect(
            clippy::cast_precision_loss,
            reason = "the bounds are written in the loader and exact as doubles"
        )]
        let (lo, hi) = (*range.start() as f64, *range.end() as f64);
        if x >= lo && x <= hi && x.fract() == 0.0 {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "checked integral and in range"
            )]
            let n = x as u64;
            return Some(n);
        }
        self.must_be(sp, key, must);
        None
    }

    /// The error that `key`, at `at`, must be `must`.
    pub(super) fn must_be(&mut self, at: Span, key: &str, must: &str) {
        self.err(PolicyError::new(
            ErrorKind::InvalidValue,
            at,
            format!("`{key}` must be {must}"),
        ));
    }

    /// `key` in `section` as a length of time (`"24h"`: a positive number and a unit, s, m
    /// or min, h or d), in seconds.
    pub(super) fn duration(&mut self, t: &DeTable<'_>, key: &str, section: &str) -> Option<f64> {
        let (w, ws) = self.string(t, key, section)?;
        let secs = parse_duration(&w);
        if secs.is_none() {
            self.err(
                PolicyError::new(
                    ErrorKind::InvalidValue,
                    ws,
                    format!("`{w}` is not a window length"),
                )
                .help("write a positive number and a unit: s, m, h or d, for example \"24h\""),
            );
        }
        secs
    }

    /// `key` in `section` as one of `options`, or `default` when absent (`None` after an
    /// error).
    pub(super) fn one_of_or<T: Copy>(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        section: &str,
        options: &[(&str, T)],
        default: T,
    ) -> Option<T> {
        if t.contains_key(key) {
            self.one_of(t, key, section, options)
        } else {
            Some(default)
        }
    }

    /// Is `key` in `t`? When not, an error at `at` (the section) says to add it.
    pub(super) fn required(&mut self, t: &DeTable<'_>, key: &str, section: &str, at: Span) -> bool {
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

    /// The type of a variable in `section` (`type`, and `values` for an enum); `text` only
    /// where `allow_text` (state).
    pub(super) fn var_type(
        &mut self,
        t: &DeTable<'_>,
        section: &str,
        allow_text: bool,
    ) -> Option<VarType> {
        let mut types = vec![("real", 0u8), ("int", 1), ("bool", 2), ("enum", 3)];
        if allow_text {
            types.push(("text", 4));
        }
        let k = if t.contains_key("type") {
            self.one_of(t, "type", section, &types)?
        } else {
            0
        };
        Some(match k {
            0 => VarType::Real,
            1 => VarType::Int,
            2 => VarType::Bool,
            3 => {
                let Some(v) = t.get("values") else {
                    self.err(
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
                    self.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        span_of(v),
                        format!("`values` in {section} must be an array of strings"),
                    ));
                    return None;
                };
                let mut vals: Vec<String> = Vec::with_capacity(arr.len());
                // Duplicates are found by hash: a linear search per value made a long
                // list load in quadratic time (BENCHMARKS.md, "Figures moved out of
                // comments").
                let mut seen: std::collections::HashSet<&str> =
                    std::collections::HashSet::with_capacity(arr.len());
                for item in arr.iter() {
                    match item.get_ref() {
                        DeValue::String(s) if seen.insert(s.as_ref()) => vals.push(s.to_string()),
                        DeValue::String(s) => self.err(PolicyError::new(
                            ErrorKind::DuplicateId,
                            span_of(item),
                            format!("`{s}` is listed twice in `values`"),
                        )),
                        _ => self.err(PolicyError::new(
                            ErrorKind::InvalidValue,
                            span_of(item),
                            format!("`values` in {section} must hold strings"),
                        )),
                    }
                }
                if vals.is_empty() {
                    self.err(
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
    }

    /// Parse the expression in string value `v`, with spans into the file.
    pub(super) fn expr(&mut self, v: &Val<'_>, what: &str) -> Option<Expr> {
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

/// `v` (the value of `what`) as an array of tables, each with its index.
pub(super) fn array_of_tables<'a, 'i>(
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
pub(super) fn action_value(
    l: &mut Loader<'_>,
    a: &ActionVar,
    v: &Val<'_>,
    what: &str,
) -> Option<f64> {
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

/// A length of time such as `"24h"`, in seconds: a positive number and a unit (s, m or
/// min, h, d).
fn parse_duration(s: &str) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// Caught: duplicate enum values were found by a linear search per value, so a policy
    /// with 200,000 values loaded in quadratic time (figures in BENCHMARKS.md). Linear now;
    /// the bound below leaves room for a debug build on a loaded machine.
    #[test]
    fn an_enum_of_200000_values_loads_in_linear_time() {
        let values: Vec<String> = (0..200_000).map(|i| format!("\"v{i}\"")).collect();
        let text = format!(
            "[policy]\nname = \"big-enum\"\nversion = \"1\"\n\n[action.tag]\ntype = \"enum\"\nvalues = [{}]\n\n[fallback]\ntag = \"v0\"\n",
            values.join(", ")
        );
        let t = std::time::Instant::now();
        let p = crate::load("big-enum.toml", &text).unwrap();
        let took = t.elapsed();
        assert_eq!(p.actions.len(), 1);
        assert!(took.as_secs_f64() < 15.0, "{took:?}");
        // Duplicates are still refused, naming the value.
        let dup = text.replace("\"v199999\"", "\"v7\"");
        let e = crate::load("big-enum.toml", &dup).unwrap_err().to_string();
        assert!(e.contains("`v7` is listed twice"), "{e}");
    }
}
