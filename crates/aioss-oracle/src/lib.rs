//! An independent exact oracle for AIOSS Tier 1, for differential soundness testing.
//!
//! Tier 1 (in `aioss-core`) compiles a policy's constraints to a tape and evaluates it with
//! outward-rounded intervals over the state-uncertainty box, answering SAT, VIOLATED or
//! UNCERTAIN per row. A wrong SAT — SAT while, in exact real arithmetic, the row fails at
//! some point of the box — is the worst bug the product can have. This crate checks Tier 1's
//! SAT (and "inactive") verdicts against the *source* of the policy, sharing no code with
//! the core (it does not depend on it):
//!
//! * [`model`]: its own reader of policy TOML (actions, states, params, `[dynamics]` with
//!   `error_bound`, fallback, constraints with guards, kinds, barrier and Lyapunov rows,
//!   budgets), splitting constraints into rows as the spec says (`id#1`, `id#2`, ...);
//! * [`expr`]: its own recursive-descent parser of the expression language;
//! * [`exact`] and [`eval`]: exact evaluation — rationals for `+ - * /` and integer powers
//!   over the exact values of the doubles, 320-bit enclosures with an explicit margin for
//!   `sqrt exp log sin cos tanh` and real powers, Kleene logic, `next.` as the dynamics plus
//!   its error term, enum values by name;
//! * [`mod@refute`]: the search of a verdict's box for a counterexample (corners, center,
//!   random interior points of the inputs the row reads);
//! * [`gen`]: a seeded generator of random policies (as TOML text) and proposals, including
//!   proposals within 4 ulps of a row's boundary and boxes whose worst corner sits on it.
//!
//! **What it proves and what it does not.** A refutation is a real counterexample: the
//! oracle says "violated" only when the exact value is certainly on the wrong side (or the
//! margin is undefined at a point of the box, which the spec says is never SAT); an
//! enclosure that straddles the bound makes the point *undecided*, counted apart and never
//! as a pass or a failure. Finding no counterexample proves nothing: corners and samples
//! refute, they do not prove (an interior extremum of a non-monotone row can be missed).
//!
//! **Not supported** (an error, never a silent pass): expressions that read text state;
//! `next.` inside `[dynamics]`, a budget's `add` or a barrier/Lyapunov function; keys of
//! `[action.*]`, `[state.*]`, `[budget.*]` and `[[constraint]]` sections it does not know;
//! unknown functions, names or enum values. `[policy]`, `[governor]`, `[[rule]]` (their
//! conditions are parsed, not evaluated: rules decide verdicts, not safety) and `[[test]]`
//! are read no further. Exponentials of arguments beyond 5000 in magnitude, `sin`/`cos`/
//! `tanh` beyond 10^6 and real powers of enclosures are undecided.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test-support code: casts between small counts and doubles in the generator"
)]

pub mod eval;
pub mod exact;
pub mod expr;
pub mod gen;
pub mod model;
pub mod q;
pub mod refute;

pub use eval::{eval_num, eval_row, AttrPt, Point, Pt, Why, B};
pub use exact::Ctx;
pub use exact::{Ex, Q};
pub use gen::{AIn, Case, Form, Rng, SIn, Spec};
pub use model::{Crit, Lit, Model, VTy};
pub use refute::{refute, BoxIn, Claim, Dim, Outcome, Refutation};
