//! Name resolution for the type checker: what each name of an expression means, given
//! the policy's declarations ([`Names`]), and the input slots that checking adds (agent
//! attributes, as they are first read).

use std::collections::HashMap;

use super::reader::suggest;
use crate::error::{ErrorKind, PolicyError, Span};
use crate::expr::typeck::{Resolved, Resolver, Term, Ty};
use crate::interval::Interval;
use crate::policy::{ActionVar, AttrSlot, StateVar, VarType};

/// Enum value lists, deduplicated: two variables with the same values compare.
#[derive(Default)]
pub(super) struct Enums(Vec<(String, Vec<String>)>);

impl Enums {
    /// The id of `values` (declared first by variable `var`), added if new.
    pub(super) fn id(&mut self, var: &str, values: &[String]) -> u32 {
        let i = self
            .0
            .iter()
            .position(|(_, v)| v == values)
            .unwrap_or_else(|| {
                self.0.push((var.to_string(), values.to_vec()));
                self.0.len() - 1
            });
        u32::try_from(i).unwrap_or(u32::MAX)
    }
}

/// Input slots: actions, states, then `prev.<action>`, in declaration order (budgets and
/// agent attributes follow, as they are read). Returns the next free slot.
pub(super) fn assign_slots(actions: &mut [ActionVar], states: &mut [StateVar]) -> u32 {
    let mut next_slot: u32 = 0;
    for a in actions.iter_mut() {
        a.slot = next_slot;
        next_slot += 1;
    }
    for s in states.iter_mut() {
        if s.ty != VarType::Text {
            s.slot = Some(next_slot);
            next_slot += 1;
        }
    }
    for a in actions.iter_mut() {
        a.prev_slot = next_slot;
        next_slot += 1;
    }
    next_slot
}

/// What the sections with expressions share: the declarations names resolve to, and the
/// input slots and symbols that checking their expressions adds.
pub(super) struct Names {
    /// `[action.*]`, with their slots.
    pub(super) actions: Vec<ActionVar>,
    /// `[state.*]`, with their slots.
    pub(super) states: Vec<StateVar>,
    /// `[param]`.
    pub(super) params: Vec<(String, f64)>,
    /// The enum id of each action variable (`None` unless an enum).
    pub(super) enum_of_action: Vec<Option<u32>>,
    /// The enum id of each state variable.
    pub(super) enum_of_state: Vec<Option<u32>>,
    /// The enums' names and values, by id.
    pub(super) enums: Enums,
    /// `[budget.*]`: name and slot.
    pub(super) budgets: Vec<(String, u32)>,
    /// `next.<state>` terms by state index once `[dynamics]` is read; `None` when the
    /// policy has no `[dynamics]`.
    pub(super) next: Option<HashMap<usize, Term>>,
    /// The next free input slot.
    pub(super) next_slot: u32,
    /// Agent attributes read so far, with their slots.
    pub(super) attrs: Vec<AttrSlot>,
    /// Attribute strings met so far (a symbol's id is its index).
    pub(super) symbols: Vec<String>,
}

/// How an expression may read `next.`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum NextState {
    /// Not at all, as if there were no `[dynamics]`: the dynamics and budgets.
    Hidden,
    /// Rules, guards and constraints.
    Readable,
    /// Refused: a barrier or Lyapunov function, which the constraint applies to `next.`
    /// itself.
    Refused,
}

/// Name resolution for one expression.
pub(super) struct Scope<'a> {
    names: &'a mut Names,
    next: NextState,
}

impl<'a> Scope<'a> {
    /// Resolve over `names`, reading `next.` as `next` says.
    pub(super) fn new(names: &'a mut Names, next: NextState) -> Self {
        Scope { names, next }
    }
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
        let n = &*self.names;
        let mut cands: Vec<&str> = n.actions.iter().map(|a| a.name.as_str()).collect();
        cands.extend(n.states.iter().map(|s| s.name.as_str()));
        cands.extend(n.params.iter().map(|p| p.0.as_str()));
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

    /// An undotted name: an action or state variable, or a parameter.
    fn plain(&self, n: &str, span: Span) -> Result<Resolved, PolicyError> {
        let names = &*self.names;
        if let Some((i, a)) = names.actions.iter().enumerate().find(|(_, a)| a.name == *n) {
            return Ok(Resolved::Value(
                Term::Input(a.slot),
                var_ty(&a.ty, names.enum_of_action.get(i).copied().flatten()),
            ));
        }
        if let Some((i, s)) = names.states.iter().enumerate().find(|(_, s)| s.name == *n) {
            return match s.slot {
                Some(slot) => Ok(Resolved::Value(
                    Term::Input(slot),
                    var_ty(&s.ty, names.enum_of_state.get(i).copied().flatten()),
                )),
                None => Err(PolicyError::new(
                    ErrorKind::TypeMismatch,
                    span,
                    format!("the text variable `{n}` cannot be used in an expression"),
                )
                .help("text state is recorded with the decision but never computed with; declare it as an enum to test its value")),
            };
        }
        if let Some((_, v)) = names.params.iter().find(|(p, _)| p == n) {
            return Ok(Resolved::Value(Term::Const(Interval::point(*v)), Ty::Num));
        }
        Err(self.unknown(n, span))
    }

    /// `prev.<action>`.
    fn prev(&self, n: &str, span: Span) -> Result<Resolved, PolicyError> {
        let names = &*self.names;
        match names.actions.iter().enumerate().find(|(_, a)| a.name == *n) {
            Some((i, a)) => Ok(Resolved::Value(
                Term::Input(a.prev_slot),
                var_ty(&a.ty, names.enum_of_action.get(i).copied().flatten()),
            )),
            None => {
                let e = PolicyError::new(
                    ErrorKind::UnknownName,
                    span,
                    format!("unknown action variable `{n}` in `prev.{n}`"),
                );
                Err(match suggest(n, names.actions.iter().map(|a| a.name.as_str())) {
                    Some(s) => e.help(format!("did you mean `prev.{s}`?")),
                    None => e.help("`prev.` reads the agent's last executed action; name an [action] variable"),
                })
            }
        }
    }

    /// `next.<state>`: the state's `[dynamics]` equation.
    fn next(&self, n: &str, span: Span) -> Result<Resolved, PolicyError> {
        let names = &*self.names;
        let next = match self.next {
            NextState::Hidden => None,
            NextState::Readable | NextState::Refused => names.next.as_ref(),
        };
        let Some(next) = next else {
            return Err(PolicyError::new(
                ErrorKind::NeedsDynamics,
                span,
                format!("`next.{n}` needs a [dynamics] section"),
            )
            .help(format!("add [dynamics] with an equation for `{n}`")));
        };
        if self.next == NextState::Refused {
            return Err(PolicyError::new(
                ErrorKind::TypeMismatch,
                span,
                "`next.` cannot be used inside [dynamics] or a budget",
            )
            .help("write the dynamics in terms of the current state and the action"));
        }
        let Some((i, _)) = names.states.iter().enumerate().find(|(_, s)| s.name == *n) else {
            let e = PolicyError::new(
                ErrorKind::UnknownName,
                span,
                format!("unknown state variable `{n}` in `next.{n}`"),
            );
            return Err(
                match suggest(n, names.states.iter().map(|s| s.name.as_str())) {
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

    /// `budget.<name>`.
    fn budget(&self, n: &str, span: Span) -> Result<Resolved, PolicyError> {
        let budgets = &self.names.budgets;
        match budgets.iter().find(|(b, _)| b == n) {
            Some((_, slot)) => Ok(Resolved::Value(Term::Input(*slot), Ty::Num)),
            None => {
                let e = PolicyError::new(
                    ErrorKind::UnknownName,
                    span,
                    format!("unknown budget `{n}`"),
                );
                Err(match suggest(n, budgets.iter().map(|b| b.0.as_str())) {
                    Some(s) => e.help(format!("did you mean `budget.{s}`?")),
                    None => e.help(format!("declare it as [budget.{n}]")),
                })
            }
        }
    }
}

impl Resolver for Scope<'_> {
    fn name(&mut self, parts: &[String], span: Span) -> Result<Resolved, PolicyError> {
        let first = parts.first().map_or("", String::as_str);
        match parts {
            [n] => self.plain(n, span),
            [ns, n] if ns == "prev" => self.prev(n, span),
            [ns, n] if ns == "next" => self.next(n, span),
            [ns, n] if ns == "agent" => Ok(Resolved::Attr(n.clone())),
            [ns, n] if ns == "budget" => self.budget(n, span),
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
        let names = &mut *self.names;
        if let Some(a) = names
            .attrs
            .iter()
            .find(|a| a.name == attr && a.numeric == numeric)
        {
            return a.slot;
        }
        let slot = names.next_slot;
        names.next_slot += 1;
        names.attrs.push(AttrSlot {
            name: attr.to_string(),
            numeric,
            slot,
        });
        slot
    }

    fn symbol(&mut self, text: &str) -> f64 {
        let symbols = &mut self.names.symbols;
        let i = match symbols.iter().position(|s| s == text) {
            Some(i) => i,
            None => {
                symbols.push(text.to_string());
                symbols.len() - 1
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
        self.names
            .enums
            .0
            .get(id as usize)
            .map_or(("?", &[][..]), |(n, v)| (n.as_str(), v.as_slice()))
    }
}
