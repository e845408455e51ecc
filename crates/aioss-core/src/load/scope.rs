//! Name resolution for the type checker: what each name of an expression means, given
//! the policy's declarations.

use std::collections::HashMap;

use super::reader::suggest;
use crate::error::{ErrorKind, PolicyError, Span};
use crate::expr::typeck::{Resolved, Resolver, Term, Ty};
use crate::interval::Interval;
use crate::policy::{ActionVar, AttrSlot, StateVar, VarType};

/// Name resolution for one expression context.
pub(super) struct Scope<'a> {
    pub(super) actions: &'a [ActionVar],
    pub(super) states: &'a [StateVar],
    pub(super) params: &'a [(String, f64)],
    pub(super) enum_of_action: &'a [Option<u32>],
    pub(super) enum_of_state: &'a [Option<u32>],
    pub(super) enums: &'a [(String, Vec<String>)],
    pub(super) budgets: &'a [(String, u32)],
    /// `next.<state>` terms by state index, or `None` when there is no `[dynamics]`.
    pub(super) next: Option<&'a HashMap<usize, Term>>,
    pub(super) allow_next: bool,
    pub(super) attrs: &'a mut Vec<AttrSlot>,
    pub(super) next_slot: &'a mut u32,
    pub(super) symbols: &'a mut Vec<String>,
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
