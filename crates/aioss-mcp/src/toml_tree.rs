//! The mapping file's TOML as a small tree of values with byte spans, so that every error
//! can name the file, line and column of the text it is about.

use aioss_core::Span;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A TOML value with the span of its text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) v: Val,
    pub(crate) span: Span,
}

/// A TOML value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Str(String),
    /// A number, and whether it was written as an integer.
    Num(f64, bool),
    Bool(bool),
    Array(Vec<Node>),
    /// Entries in source order, each with the span of its key.
    Table(Vec<(String, Span, Node)>),
    /// A TOML datetime: never valid in a mapping.
    Datetime,
}

impl Val {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::Num(_, true) => "an integer",
            Val::Num(_, false) => "a float",
            Val::Bool(_) => "a boolean",
            Val::Array(_) => "an array",
            Val::Table(_) => "a table",
            Val::Datetime => "a datetime",
        }
    }
}

impl Node {
    /// The entries, if a table.
    pub(crate) fn table(&self) -> Option<&[(String, Span, Node)]> {
        match &self.v {
            Val::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The entry `key` of a table.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.table()?
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| v)
    }
}

fn span_of<T>(s: &Spanned<T>) -> Span {
    let r = s.span();
    Span::new(r.start, r.end)
}

fn convert(v: &Spanned<DeValue<'_>>) -> Node {
    let span = span_of(v);
    let v = match v.get_ref() {
        DeValue::String(s) => Val::Str(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            #[expect(
                clippy::cast_precision_loss,
                reason = "the double an integer rounds to is what a number in a mapping means"
            )]
            Ok(n) => Val::Num(n as f64, true),
            Err(_) => Val::Num(f64::NAN, true),
        },
        DeValue::Float(f) => Val::Num(
            f.as_str()
                .replace('_', "")
                .parse::<f64>()
                .unwrap_or(f64::NAN),
            false,
        ),
        DeValue::Boolean(b) => Val::Bool(*b),
        DeValue::Array(a) => Val::Array(a.iter().map(convert).collect()),
        DeValue::Table(t) => Val::Table(table(t)),
        _ => Val::Datetime,
    };
    Node { v, span }
}

fn table(t: &DeTable<'_>) -> Vec<(String, Span, Node)> {
    let mut v: Vec<(String, Span, Node)> = t
        .iter()
        .map(|(k, v)| (k.get_ref().to_string(), span_of(k), convert(v)))
        .collect();
    v.sort_by_key(|(_, s, _)| s.start);
    v
}

/// Parse `src` as a TOML document: the root table, or the error's message and span.
pub(crate) fn parse(src: &str) -> Result<Node, (String, Span)> {
    match DeTable::parse(src) {
        Ok(d) => Ok(Node {
            v: Val::Table(table(d.get_ref())),
            span: Span::new(0, 0),
        }),
        Err(e) => {
            let sp = e
                .span()
                .map_or(Span::default(), |r| Span::new(r.start, r.end));
            let msg = e.message().trim().to_string();
            let msg =
                msg.get(..1).map_or(String::new(), str::to_lowercase) + msg.get(1..).unwrap_or("");
            Err((msg, sp))
        }
    }
}
