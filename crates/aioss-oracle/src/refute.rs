//! The refutation search: is there a point of the box where a row Tier 1 certified fails?
//!
//! For one row, only the inputs the row (and its guard, and through `next.` its dynamics)
//! reads are searched: every corner of their box when there are at most [`CORNER_CAP`]
//! combinations (enum, bool and attribute candidates count as corners), random corners
//! beyond that, the center, and random interior points. A point where the guard holds (or
//! is undefined) and the row's exact margin is on the wrong side (or undefined) refutes a
//! SAT or inactive verdict.
//!
//! What this proves: a refutation is a real counterexample (exact arithmetic; enclosures
//! only ever make a point undecided). What it does not: finding none is no proof of the
//! verdict — corners and samples miss interior extrema of non-monotone rows.

use crate::exact::Ctx;
use num_bigint::BigInt;

use crate::eval::{eval_row, AttrPt, Point, Pt, Why, B};
use crate::exact::{qf, Ex, Q};
use crate::expr::E;
use crate::gen::Rng;
use crate::model::{Body, Model, Row};

/// Full corner enumeration up to this many combinations; random corners beyond it.
pub const CORNER_CAP: usize = 512;
/// Random corners tried when the corners are too many.
pub const RANDOM_CORNERS: usize = 128;
/// Random interior points tried per row.
pub const INTERIOR: usize = 6;

/// One input's range in the box.
#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    /// A single value.
    Fixed(Pt),
    /// Every number in `[lo, hi]` (exact rationals).
    Span(Q, Q),
    /// Any of these values (a missing enum or bool state).
    Choice(Vec<Pt>),
}

/// The box a verdict is about: the action is a point; everything else ranges.
#[derive(Clone, Debug)]
pub struct BoxIn {
    /// Per action variable.
    pub actions: Vec<Pt>,
    /// Per state variable (`None` for text).
    pub states: Vec<Option<Dim>>,
    /// Per action variable: `prev.<name>`.
    pub prev: Vec<Dim>,
    /// Per budget.
    pub budgets: Vec<Dim>,
    /// Agent attributes: the candidate values of each (one for a known attribute).
    pub attrs: Vec<(String, Vec<AttrPt>)>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum DimId {
    State(usize),
    Prev(usize),
    Budget(usize),
    Attr(String),
    Err(usize),
}

fn reads(m: &Model, e: &E, out: &mut Vec<DimId>, depth: usize) {
    let mut add = |d: DimId| {
        if !out.contains(&d) {
            out.push(d);
        }
    };
    match e {
        E::Num(_) | E::Bool(_) | E::Str(_) => {}
        E::Name(parts) => match parts.as_slice() {
            [n] => {
                if let Some(j) = m.state(n) {
                    add(DimId::State(j));
                }
            }
            [ns, n] if ns == "prev" => {
                if let Some(i) = m.action(n) {
                    add(DimId::Prev(i));
                }
            }
            [ns, n] if ns == "budget" => {
                if let Some(k) = m.budgets.iter().position(|b| b.name == *n) {
                    add(DimId::Budget(k));
                }
            }
            [ns, n] if ns == "agent" => add(DimId::Attr(n.clone())),
            [ns, n] if ns == "next" && depth < 4 => {
                if let (Some(j), Some(d)) = (m.state(n), &m.dynamics) {
                    if let Some((k, (_, eq, _))) = d.iter().enumerate().find(|(_, x)| x.0 == j) {
                        add(DimId::Err(k));
                        reads(m, eq, out, depth + 1);
                    }
                }
            }
            _ => {}
        },
        E::Neg(a) | E::Not(a) => reads(m, a, out, depth),
        E::Bin(_, a, b) | E::Cmp(_, a, b) => {
            reads(m, a, out, depth);
            reads(m, b, out, depth);
        }
        E::In(a, items) => {
            reads(m, a, out, depth);
            for i in items {
                reads(m, i, out, depth);
            }
        }
        E::Call(_, args) => {
            for a in args {
                reads(m, a, out, depth);
            }
        }
        E::If(c, a, b) => {
            reads(m, c, out, depth);
            reads(m, a, out, depth);
            reads(m, b, out, depth);
        }
    }
}

/// The inputs row `r` reads (guard, condition, and for barrier and Lyapunov rows the
/// dynamics of every state the function reads, with their error terms).
fn row_reads(m: &Model, r: usize) -> Vec<DimId> {
    let mut out = Vec::new();
    let Some(row) = m.rows.get(r) else {
        return out;
    };
    let Some(c) = m.constraint_of(row) else {
        return out;
    };
    if let Some(g) = &c.guard {
        reads(m, g, &mut out, 0);
    }
    if let Some(e) = &row.cond {
        reads(m, e, &mut out, 0);
    }
    if let Body::Barrier { h: f, .. } | Body::Lyapunov { v: f, .. } = &c.body {
        let mut fr = Vec::new();
        reads(m, f, &mut fr, 0);
        for d in &fr {
            if let (DimId::State(j), Some(dy)) = (d, &m.dynamics) {
                if let Some((k, (_, eq, _))) = dy.iter().enumerate().find(|(_, x)| x.0 == *j) {
                    if !out.contains(&DimId::Err(k)) {
                        out.push(DimId::Err(k));
                    }
                    reads(m, eq, &mut out, 1);
                }
            }
        }
        for d in fr {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out.sort();
    out
}

/// What Tier 1 claimed about a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// SAT over the whole box.
    Sat,
    /// Inactive: its guard is false over the whole box.
    Inactive,
}

/// A counterexample to a verdict.
#[derive(Clone, Debug)]
pub struct Refutation {
    /// The point, as `name = value` pairs of the inputs the row reads.
    pub at: String,
    /// The exact margin there (or why it is undefined).
    pub margin: String,
    /// `violated` or `undefined`.
    pub how: &'static str,
}

/// The search's answer for one verdict.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Every point tried satisfies the row (or its guard is false there).
    Held,
    /// Some point tried could not be decided, and none refutes.
    Undecided(String),
    /// A counterexample.
    Refuted(Refutation),
}

fn corners(d: &Dim) -> Vec<Pt> {
    match d {
        Dim::Fixed(p) => vec![p.clone()],
        Dim::Span(a, b) if a == b => vec![Pt::Num(a.clone())],
        Dim::Span(a, b) => vec![Pt::Num(a.clone()), Pt::Num(b.clone())],
        Dim::Choice(v) => v.clone(),
    }
}

/// A random point of `[a, b]`: `a + (b - a)·k/2^20`.
fn interior(a: &Q, b: &Q, rng: &mut Rng) -> Q {
    let k = rng.below(1 << 20);
    a + (b - a) * Q::from_dyadic(BigInt::from(k), -20)
}

enum Cand {
    Pt(Pt),
    Attr(AttrPt),
}

/// Search the box for a counterexample to `claim` about row `r`: the corners (all of them,
/// or random ones when too many), then the center and random interior points.
pub fn refute(
    m: &Model,
    r: usize,
    bx: &BoxIn,
    rng: &mut Rng,
    cc: &mut Ctx,
) -> Result<Outcome, String> {
    let Some(row) = m.rows.get(r) else {
        return Err(format!("no row {r}"));
    };
    let mut search = Search::new(m, row, row_reads(m, r), bx)?;
    let mut p = search.base_point();
    if let Some(found) = search.corners(&mut p, rng, cc)? {
        return Ok(Outcome::Refuted(found));
    }
    if let Some(found) = search.interior(&mut p, rng, cc)? {
        return Ok(Outcome::Refuted(found));
    }
    Ok(match search.undecided {
        Some(u) => Outcome::Undecided(u),
        None => Outcome::Held,
    })
}

/// One row's search: the inputs it reads, their candidates, and the first reason a point
/// could not be decided.
struct Search<'a> {
    m: &'a Model,
    row: &'a Row,
    bx: &'a BoxIn,
    /// The inputs the row reads.
    ids: Vec<DimId>,
    /// Per dynamics equation: its error's range.
    err_dims: Vec<Dim>,
    /// Candidates (corners) per read input.
    cands: Vec<(DimId, Vec<Cand>)>,
    undecided: Option<String>,
}

impl<'a> Search<'a> {
    fn new(m: &'a Model, row: &'a Row, ids: Vec<DimId>, bx: &'a BoxIn) -> Result<Self, String> {
        let err_dims: Vec<Dim> = m
            .dynamics
            .as_ref()
            .map(|d| {
                d.iter()
                    .map(|(_, _, e)| Dim::Span(-qf(*e), qf(*e)))
                    .collect()
            })
            .unwrap_or_default();
        let mut search = Search {
            m,
            row,
            bx,
            ids,
            err_dims,
            cands: Vec::new(),
            undecided: None,
        };
        search.cands = search
            .ids
            .iter()
            .map(|id| {
                let c = match id {
                    DimId::Attr(a) => search.attr_cands(a).into_iter().map(Cand::Attr).collect(),
                    _ => search
                        .dim_of(id)
                        .map(|d| corners(&d).into_iter().map(Cand::Pt).collect())
                        .unwrap_or_default(),
                };
                (id.clone(), c)
            })
            .collect();
        for (id, c) in &search.cands {
            if c.is_empty() {
                return Err(format!("the box gives no value for {id:?}"));
            }
        }
        Ok(search)
    }

    /// The range of a numeric (or enum/bool) input; `None` for attributes.
    fn dim_of(&self, id: &DimId) -> Option<Dim> {
        match id {
            DimId::State(j) => self.bx.states.get(*j).cloned().flatten(),
            DimId::Prev(i) => self.bx.prev.get(*i).cloned(),
            DimId::Budget(k) => self.bx.budgets.get(*k).cloned(),
            DimId::Err(k) => self.err_dims.get(*k).cloned(),
            DimId::Attr(_) => None,
        }
    }

    /// The candidate values of an agent attribute.
    fn attr_cands(&self, name: &str) -> Vec<AttrPt> {
        self.bx
            .attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    }

    /// The base point: every input at its first corner.
    fn base_point(&self) -> Point {
        let bx = self.bx;
        let first = |d: &Dim| corners(d).into_iter().next();
        let num = |d: &Dim| match first(d) {
            Some(Pt::Num(x)) => x,
            _ => Q::zero(),
        };
        Point {
            actions: bx.actions.clone(),
            states: bx
                .states
                .iter()
                .map(|d| d.as_ref().and_then(first))
                .collect(),
            prev: bx
                .prev
                .iter()
                .map(|d| first(d).unwrap_or(Pt::Num(Q::zero())))
                .collect(),
            budgets: bx.budgets.iter().map(num).collect(),
            attrs: bx
                .attrs
                .iter()
                .filter_map(|(n, c)| c.first().map(|a| (n.clone(), a.clone())))
                .collect(),
            errs: self.err_dims.iter().map(num).collect(),
        }
    }

    /// Every corner when there are at most [`CORNER_CAP`], else [`RANDOM_CORNERS`] random
    /// ones.
    fn corners(
        &mut self,
        p: &mut Point,
        rng: &mut Rng,
        cc: &mut Ctx,
    ) -> Result<Option<Refutation>, String> {
        let total = self
            .cands
            .iter()
            .try_fold(1usize, |acc, (_, c)| acc.checked_mul(c.len()))
            .unwrap_or(usize::MAX);
        if total <= CORNER_CAP {
            for mut k in 0..total {
                for (id, c) in &self.cands {
                    let n = c.len();
                    if let Some(v) = c.get(k % n) {
                        set(p, id, v);
                    }
                    k /= n;
                }
                if let Some(r) = self.try_point(p, cc)? {
                    return Ok(Some(r));
                }
            }
        } else {
            for _ in 0..RANDOM_CORNERS {
                for (id, c) in &self.cands {
                    set_random(p, id, c, rng);
                }
                if let Some(r) = self.try_point(p, cc)? {
                    return Ok(Some(r));
                }
            }
        }
        Ok(None)
    }

    /// The center, then [`INTERIOR`] random interior points (discrete inputs at random
    /// candidates).
    fn interior(
        &mut self,
        p: &mut Point,
        rng: &mut Rng,
        cc: &mut Ctx,
    ) -> Result<Option<Refutation>, String> {
        for t in 0..=INTERIOR {
            for (id, c) in &self.cands {
                let span = match id {
                    DimId::Attr(_) => None,
                    _ => match self.dim_of(id) {
                        Some(Dim::Span(a, b)) if a != b => Some((a, b)),
                        _ => None,
                    },
                };
                match span {
                    Some((a, b)) => {
                        let v = if t == 0 {
                            (&a + &b) / Q::from_integer(BigInt::from(2))
                        } else {
                            interior(&a, &b, rng)
                        };
                        set(p, id, &Cand::Pt(Pt::Num(v)));
                    }
                    None => set_random(p, id, c, rng),
                }
            }
            if let Some(r) = self.try_point(p, cc)? {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Evaluate the row at one point: a refutation, or nothing (noting why the point was
    /// undecided, the first time).
    fn try_point(&mut self, p: &Point, cc: &mut Ctx) -> Result<Option<Refutation>, String> {
        let at = match eval_row(self.m, self.row, p, cc) {
            Ok(at) => at,
            Err(Why::Bad(w)) => return Err(format!("row `{}`: {w}", self.row.name)),
            Err(w) => {
                self.undecided.get_or_insert(format!("{w:?}"));
                return Ok(None);
            }
        };
        let applies = matches!(at.guard, B::T | B::Undef);
        let fails = matches!(at.holds, B::F | B::Undef);
        if applies && fails {
            return Ok(Some(Refutation {
                at: describe(self.m, p, &self.ids),
                margin: at
                    .margin
                    .as_ref()
                    .map_or_else(|| "undefined".to_string(), Ex::show),
                how: if at.holds == B::Undef {
                    "undefined"
                } else {
                    "violated"
                },
            }));
        }
        if (at.guard == B::Undec && fails) || (applies && at.holds == B::Undec) {
            self.undecided
                .get_or_insert_with(|| "an enclosure straddles the bound".to_string());
        }
        Ok(None)
    }
}

/// Set one input of a point to a candidate.
fn set(p: &mut Point, id: &DimId, c: &Cand) {
    match (id, c) {
        (DimId::State(j), Cand::Pt(v)) => {
            if let Some(s) = p.states.get_mut(*j) {
                *s = Some(v.clone());
            }
        }
        (DimId::Prev(i), Cand::Pt(v)) => {
            if let Some(s) = p.prev.get_mut(*i) {
                *s = v.clone();
            }
        }
        (DimId::Budget(k), Cand::Pt(Pt::Num(v))) => {
            if let Some(s) = p.budgets.get_mut(*k) {
                *s = v.clone();
            }
        }
        (DimId::Err(k), Cand::Pt(Pt::Num(v))) => {
            if let Some(s) = p.errs.get_mut(*k) {
                *s = v.clone();
            }
        }
        (DimId::Attr(a), Cand::Attr(v)) => match p.attrs.iter_mut().find(|(n, _)| n == a) {
            Some(s) => s.1 = v.clone(),
            None => p.attrs.push((a.clone(), v.clone())),
        },
        _ => {}
    }
}

/// Set one input of a point to a random one of its candidates.
fn set_random(p: &mut Point, id: &DimId, c: &[Cand], rng: &mut Rng) {
    let n = u64::try_from(c.len()).unwrap_or(1);
    let k = usize::try_from(rng.below(n)).unwrap_or(0);
    if let Some(v) = c.get(k) {
        set(p, id, v);
    }
}

fn show_pt(p: &Pt) -> String {
    match p {
        Pt::Num(x) => Ex::Exact(x.clone()).show(),
        Pt::Bool(b) => b.to_string(),
        Pt::Enum(i) => format!("#{i}"),
    }
}

fn describe(m: &Model, p: &Point, ids: &[DimId]) -> String {
    let mut s: Vec<String> = Vec::new();
    for (a, v) in m.actions.iter().zip(&p.actions) {
        s.push(format!("{} = {}", a.name, show_pt(v)));
    }
    for id in ids {
        let txt = match id {
            DimId::State(j) => m.states.get(*j).and_then(|v| {
                p.states
                    .get(*j)
                    .cloned()
                    .flatten()
                    .map(|x| format!("{} = {}", v.name, show_pt(&x)))
            }),
            DimId::Prev(i) => m.actions.get(*i).and_then(|a| {
                p.prev
                    .get(*i)
                    .map(|x| format!("prev.{} = {}", a.name, show_pt(x)))
            }),
            DimId::Budget(k) => m.budgets.get(*k).and_then(|b| {
                p.budgets
                    .get(*k)
                    .map(|x| format!("budget.{} = {}", b.name, show_pt(&Pt::Num(x.clone()))))
            }),
            DimId::Attr(a) => p.attrs.iter().find(|(n, _)| n == a).map(|(n, v)| {
                format!(
                    "agent.{n} = {:?} / {}",
                    v.sym,
                    show_pt(&Pt::Num(v.num.clone()))
                )
            }),
            DimId::Err(k) => p
                .errs
                .get(*k)
                .map(|x| format!("dynamics error #{k} = {}", show_pt(&Pt::Num(x.clone())))),
        };
        if let Some(t) = txt {
            s.push(t);
        }
    }
    s.join(", ")
}
