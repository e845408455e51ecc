//! Random policies (as TOML text) and proposals, from a seeded deterministic generator.
//!
//! Policies: real action variables `u0..` (one to six), optionally an enum `mode`, a bool
//! `flag` and an int `gear`; real state `x0..` (zero to four) with ranges and noise, an enum
//! `zone` and a bool `wet`; parameters; `[dynamics]` with error bounds; a budget; and one to
//! seven constraints of the forms listed at [`Form`], each with an optional guard (reading
//! state only, or the action). Two magnitude regimes: ordinary ranges, and extreme ones
//! (coefficients and ranges reaching `1e-300`, `1e17`, `1e300`, subnormals, `f64::MAX`).
//!
//! Proposals ([`Case`]): actions inside or outside their ranges or at extreme magnitudes;
//! states as plain values (declared noise), `{value, noise}`, `{lo, hi}` or exact points;
//! and, for a chosen row, placed 0–4 ulps either side of its boundary — by moving one action
//! variable to the boundary at the box's worst corner, or by moving a `{value, noise}`
//! state so that its extreme corner sits on the boundary (see [`near_boundary`]).

use std::fmt::Write as _;

use crate::exact::Ctx;

use crate::eval::{eval_row, AttrPt, Point, Pt, B};
use crate::exact::{bracket, q, qf, Ex, Q};
use crate::model::{Lit, Model, VTy};
use crate::refute::{BoxIn, Dim};

/// SplitMix64, optionally driven by a byte string (the fuzzer's input): each draw mixes
/// in the next eight bytes while they last, so the bytes steer every choice.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
    bytes: Vec<u8>,
    pos: usize,
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
            bytes: Vec::new(),
            pos: 0,
        }
    }

    /// A generator steered by `data`.
    pub fn from_bytes(data: &[u8]) -> Rng {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in data {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        Rng {
            state: h,
            bytes: data.to_vec(),
            pos: 0,
        }
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        if let Some(chunk) = self
            .bytes
            .get(self.pos..(self.pos + 8).min(self.bytes.len()))
        {
            if !chunk.is_empty() {
                let mut w = [0u8; 8];
                for (d, s) in w.iter_mut().zip(chunk) {
                    *d = *s;
                }
                self.pos += chunk.len();
                // The fuzzer's bytes decide the draw (mixed so that short inputs still vary).
                return u64::from_le_bytes(w) ^ (z >> 59);
            }
        }
        z
    }

    /// Uniform in `0..n` (`n > 0`; 0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "53 random bits convert exactly")]
        let x = (self.next_u64() >> 11) as f64;
        x / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An index below `n`.
    pub fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(u64::try_from(n).unwrap_or(1))).unwrap_or(0)
    }

    /// One of these numbers (0 for an empty slice).
    pub fn of(&mut self, xs: &[f64]) -> f64 {
        xs.get(self.index(xs.len())).copied().unwrap_or(0.0)
    }

    /// An element of a non-empty slice.
    pub fn pick<T: Clone>(&mut self, xs: &[T]) -> Option<T> {
        xs.get(self.index(xs.len())).cloned()
    }
}

/// Text of a double that reads back as the same double (Rust's shortest round trip), valid
/// both in TOML and in the expression language (non-negative values only: callers write
/// the sign as an operator).
pub fn num(x: f64) -> String {
    let s = format!("{:?}", x.abs());
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

/// `+ x` or `- |x|`, for a term of a sum.
fn signed(x: f64) -> String {
    if x.is_sign_negative() {
        format!("- {}", num(x))
    } else {
        format!("+ {}", num(x))
    }
}

/// A TOML number.
fn tnum(x: f64) -> String {
    if x.is_sign_negative() {
        format!("-{}", num(x))
    } else {
        num(x)
    }
}

/// What a generated constraint is, for the statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Form {
    /// `Σ cᵢ·vᵢ <= r` over 1–12 inputs (actions, state, `prev.`, a parameter, a budget).
    Linear,
    /// Action × state products.
    Bilinear,
    /// Squares, cubes and other integer powers.
    Poly,
    /// Division by a variable.
    Div,
    /// `sqrt exp log sin cos tanh` and a real power.
    Trans,
    /// `abs min max`.
    MinMax,
    /// `if c then a else b`.
    If,
    /// `or`, `not`, `in`, enum and bool tests, agent attributes.
    Boolean,
    /// A conjunction (several rows).
    Conj,
    /// `==` / `!=` / strict comparisons.
    EqNe,
    /// `next.` of the dynamics.
    Next,
    /// A barrier row.
    Barrier,
    /// A Lyapunov row.
    Lyapunov,
    /// A budget cap.
    Budget,
}

/// One generated constraint.
#[derive(Clone, Debug)]
pub struct CSpec {
    /// Its id.
    pub id: String,
    /// Its form.
    pub form: Form,
    /// Critical, or demoted to `high` (when the fallback cannot be certified for it).
    pub critical: bool,
    /// `when`.
    pub guard: Option<String>,
    /// The `expr` (or `barrier` / `lyapunov` function).
    pub text: String,
    /// `gamma` for barriers, `(alpha, sigma)` for Lyapunov rows.
    pub coef: (f64, f64),
}

/// A generated policy.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Ranges of the real actions `u0..`.
    pub actions: Vec<(f64, f64)>,
    /// An enum action `mode` in `['go', 'slow', 'stop']`.
    pub mode: bool,
    /// A bool action `flag`.
    pub flag: bool,
    /// An int action `gear` in `-2..=3`.
    pub gear: bool,
    /// Real states `x0..`: `(min, max, noise)`.
    pub states: Vec<(f64, f64, f64)>,
    /// An enum state `zone` in `['a', 'b', 'c']`.
    pub zone: bool,
    /// A bool state `wet`.
    pub wet: bool,
    /// Parameter `k0`.
    pub k0: f64,
    /// `[dynamics]`: `(state, equation, error bound)`.
    pub dynamics: Vec<(usize, String, f64)>,
    /// A budget `b0`: its `add` and its cap's range `max`.
    pub budget: Option<(String, f64)>,
    /// The constraints.
    pub constraints: Vec<CSpec>,
    /// The extreme-magnitude regime.
    pub extreme: bool,
}

const EXTREMES: [f64; 10] = [
    1e-300,
    1e17,
    1e300,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    1e-17,
    3.0,
    0.1,
    9_007_199_254_740_993.0,
];

impl Spec {
    fn coef(&self, r: &mut Rng) -> f64 {
        let sign = if r.chance(0.3) { -1.0 } else { 1.0 };
        let x = match r.below(if self.extreme { 6 } else { 5 }) {
            0 => (r.below(9) + 1) as f64,
            1 => (r.below(99) + 1) as f64 / 10.0,
            2 => 0.1 + r.unit() * 4.0,
            3 => f64::from_bits(0x3ff0_0000_0000_0000 | (r.next_u64() >> 12)),
            4 => r.of(&[0.5, 0.25, 1.5, 2.0, 0.3, 0.7]),
            _ => r.of(&EXTREMES),
        };
        sign * x
    }

    fn rhs(&self, r: &mut Rng) -> f64 {
        let x = self.coef(r).abs();
        let y = x * (1.0 + r.below(20) as f64);
        if r.chance(0.15) {
            0.0
        } else if y.is_finite() {
            y
        } else {
            x
        }
    }

    fn u(&self, r: &mut Rng) -> String {
        format!("u{}", r.index(self.actions.len()))
    }

    fn x(&self, r: &mut Rng) -> Option<String> {
        (!self.states.is_empty()).then(|| format!("x{}", r.index(self.states.len())))
    }

    /// A state if there is one, else an action.
    fn xu(&self, r: &mut Rng) -> String {
        self.x(r).unwrap_or_else(|| self.u(r))
    }

    fn guard(&self, r: &mut Rng) -> Option<String> {
        match r.below(9) {
            0..=3 => None,
            4 => self.x(r).map(|x| format!("{x} < {}", num(self.rhs(r)))),
            5 => self.zone.then(|| "zone == 'a'".to_string()),
            6 => self.wet.then(|| "not wet".to_string()),
            7 => Some(format!("{} > -{}", self.u(r), num(self.rhs(r)))),
            _ => self.mode.then(|| "mode != 'stop'".to_string()),
        }
    }

    fn linear(&self, r: &mut Rng) -> String {
        let mut pool: Vec<String> = (0..self.actions.len()).map(|i| format!("u{i}")).collect();
        pool.extend((0..self.states.len()).map(|j| format!("x{j}")));
        pool.extend((0..self.actions.len()).map(|i| format!("prev.u{i}")));
        pool.push("k0".into());
        if self.budget.is_some() {
            pool.push("budget.b0".into());
        }
        // Both sides of the linear fast path's threshold (4 terms) are covered.
        let n = 1 + r.index(12.min(pool.len()));
        let mut s = String::new();
        for _ in 0..n {
            let v = pool.swap_remove(r.index(pool.len()));
            let c = self.coef(r);
            let t = match r.below(4) {
                0 => format!("{} * {v}", num(c)),
                1 => format!("{v} * {}", num(c)),
                2 => format!("{v} / {}", num(c)),
                _ => v.clone(),
            };
            let neg = c.is_sign_negative() && !t.starts_with(&v) || (r.chance(0.2) && s.is_empty());
            let _ = write!(s, " {} {t}", if neg { "-" } else { "+" });
        }
        let lhs = s.trim_start_matches(" +").trim().to_string();
        let op = r.pick(&["<=", "<=", "<=", ">=", "<", ">"]).unwrap_or("<=");
        let rhs = self.coef(r);
        let rhs = if rhs < 0.0 {
            format!("-{}", num(rhs))
        } else {
            num(rhs)
        };
        if op.starts_with('>') {
            format!("{rhs} {op} {lhs}")
        } else {
            format!("{lhs} {op} {rhs}")
        }
    }

    fn form_text(&self, form: Form, r: &mut Rng) -> (String, (f64, f64)) {
        let (u, x, c, d) = (self.u(r), self.xu(r), self.coef(r), self.rhs(r));
        let u2 = self.u(r);
        let t = match form {
            Form::Linear => self.linear(r),
            Form::Bilinear => match r.below(3) {
                0 => format!("{u} * {x} <= {}", num(d)),
                1 => format!(
                    "{} * {u} * {x} {} * {u2} <= {}",
                    num(c),
                    signed(self.coef(r)),
                    num(d)
                ),
                _ => format!("{x} * {u} >= -{}", num(d)),
            },
            Form::Poly => match r.below(4) {
                0 => format!("{u}^2 + {} * {x}^2 <= {}", num(c), num(d)),
                1 => format!("{u}^3 - {x} <= {}", num(d)),
                2 => format!("({u} - {x})^2 <= {}", num(d)),
                _ => format!("sq({u}) + {u2}^-2 >= {}", num(d)),
            },
            Form::Div => match r.below(3) {
                0 => format!("{u} / {x} <= {}", num(d)),
                1 => format!("({u} + {}) / ({x}^2 + 1) <= {}", num(c), num(d)),
                _ => format!("{} / {u} <= {}", num(c), num(d)),
            },
            Form::Trans => match r.below(7) {
                0 => format!("sqrt({u}^2 + {x}^2) <= {}", num(d)),
                1 => format!("exp({u}) <= {}", num(d)),
                2 => format!("sin({u}) + cos({x}) <= {}", num(d)),
                3 => format!("tanh({u}) * {} <= {}", num(c), num(d)),
                4 => format!("log({u}^2 + 1) <= {}", num(d)),
                5 => format!("abs({u}) ^ 0.5 <= {}", num(d)),
                _ => format!("sqrt(abs({x})) - {u} >= -{}", num(d)),
            },
            Form::MinMax => match r.below(3) {
                0 => format!("abs({u} - {x}) <= {}", num(d)),
                1 => format!("max({u}, {x}) <= {}", num(d)),
                _ => format!("min({u}, {}) + {x} <= {}", num(c), num(d)),
            },
            Form::If => {
                if self.mode && r.chance(0.5) {
                    format!("(if mode == 'go' then {u} else 0) <= {}", num(d))
                } else {
                    format!("(if {x} > {} then {u} else {u2}) <= {}", num(c), num(d))
                }
            }
            Form::Boolean => match r.below(6) {
                0 if self.flag => format!("{u} <= {} or flag", num(d)),
                1 => format!("not ({u} > {} and {x} > {})", num(d), num(c)),
                2 if self.mode => format!("mode != 'go' or {u} <= {}", num(d)),
                3 if self.zone => format!("zone in ['a', 'b'] or {u} <= {}", num(d)),
                4 => format!("agent.role == 'op' or {u} <= {}", num(d)),
                _ => format!("agent.trust * {u} <= {}", num(d)),
            },
            Form::Conj => format!(
                "{u} <= {} and {u} >= -{} and {x} + {u2} <= {}",
                num(d),
                num(self.rhs(r)),
                num(self.rhs(r))
            ),
            Form::EqNe => match r.below(4) {
                0 => format!("{u} != {}", num(c)),
                1 if self.gear => "gear == 0".to_string(),
                2 => format!("{u} - {x} != 0"),
                _ => format!("{u} + {x} < {}", num(d)),
            },
            Form::Next => {
                let j = self.dynamics.first().map_or(0, |e| e.0);
                format!(
                    "next.x{j} <= {}",
                    num(if (d + 1.0).is_finite() { d + 1.0 } else { d })
                )
            }
            Form::Barrier => {
                let j = self.dynamics.first().map_or(0, |e| e.0);
                let g = r.of(&[0.1, 0.3, 0.5, 1.0]);
                let h = match r.below(3) {
                    0 => format!("x{j} + {}", num(d)),
                    1 => format!("{} - x{j}", num(d)),
                    _ => format!("(x{j} - {})^2 - 0.25", num(c.abs())),
                };
                return (h, (g, 0.0));
            }
            Form::Lyapunov => {
                let j = self.dynamics.first().map_or(0, |e| e.0);
                let a = r.of(&[0.0, 0.01, 0.1]);
                let s = r.of(&[0.0, 0.1, 1.0]);
                return (format!("(x{j} - {})^2", num(c.abs())), (a, s));
            }
            Form::Budget => format!("budget.b0 + {u} <= {}", num(d)),
        };
        (t, (0.0, 0.0))
    }

    /// A random policy.
    pub fn random(r: &mut Rng) -> Spec {
        Spec::random_forms(r, None)
    }

    /// A random policy whose constraints take only the given forms (those the policy can
    /// have: `Next`, `Barrier` and `Lyapunov` need dynamics, `Budget` a budget).
    pub fn random_forms(r: &mut Rng, only: Option<&[Form]>) -> Spec {
        let extreme = r.chance(0.15);
        let na = 1 + r.index(6);
        let actions = (0..na)
            .map(|_| {
                if extreme && r.chance(0.5) {
                    let m = r.of(&[1e300, 1e17, 1.7976931348623157e308, 1e-300]);
                    (-m, m)
                } else {
                    let lo = -(r.below(10) as f64) - r.unit();
                    (lo, (r.below(10) as f64) + 1.0 + r.unit())
                }
            })
            .collect();
        let ns = r.index(5);
        let states = (0..ns)
            .map(|_| {
                if extreme && r.chance(0.4) {
                    // Huge or tiny state: noise that is below an ulp of the value, or a
                    // subnormal, is where rounding the box outward matters.
                    let m = r.of(&[1e300, 1e17, 1e-300, 1.0]);
                    let noise = r.of(&[0.0, 5e-324, 1e-300, 1e-17, 1.0, 1e283]);
                    return (-m, m, noise);
                }
                let lo = -((r.below(20) + 1) as f64);
                let hi = (r.below(20) + 1) as f64;
                let noise = r.of(&[0.0, 0.01, 0.05, 0.1, 0.5]);
                (lo, hi, noise)
            })
            .collect::<Vec<_>>();
        let mut s = Spec {
            actions,
            mode: r.chance(0.4),
            flag: r.chance(0.3),
            gear: r.chance(0.3),
            states,
            zone: r.chance(0.4),
            wet: r.chance(0.3),
            k0: r.of(&[0.5, 2.0, 0.1, 3.0]),
            dynamics: Vec::new(),
            budget: None,
            constraints: Vec::new(),
            extreme,
        };
        if !s.states.is_empty() && r.chance(0.5) {
            for j in 0..s.states.len() {
                if j == 0 || r.chance(0.5) {
                    let i = r.index(na);
                    let eq = match r.below(3) {
                        0 => format!("x{j} + dt * u{i}"),
                        1 => format!("x{j} + dt * u{i} * {}", num(s.coef(r).abs())),
                        _ => format!("0.9 * x{j} + dt * sin(u{i})"),
                    };
                    s.dynamics.push((j, eq, r.of(&[0.0, 0.01, 0.001, 0.05])));
                }
            }
        }
        if r.chance(0.3) {
            let add = if s.mode && r.chance(0.5) {
                "if mode == 'go' then 1 else 0".to_string()
            } else {
                format!("u{} * {}", r.index(na), num(s.coef(r).abs()))
            };
            s.budget = Some((add, 10.0 + r.below(100) as f64));
        }
        let nc = 1 + r.index(7);
        let mut forms = vec![
            Form::Linear,
            Form::Linear,
            Form::Linear,
            Form::Bilinear,
            Form::Bilinear,
            Form::Poly,
            Form::Div,
            Form::Trans,
            Form::MinMax,
            Form::If,
            Form::Boolean,
            Form::Conj,
            Form::EqNe,
        ];
        if !s.dynamics.is_empty() {
            forms.extend([Form::Next, Form::Barrier, Form::Barrier, Form::Lyapunov]);
        }
        if s.budget.is_some() {
            forms.push(Form::Budget);
        }
        if let Some(only) = only {
            forms.retain(|f| only.contains(f));
            if forms.is_empty() {
                forms.push(Form::Linear);
            }
        }
        for k in 0..nc {
            let form = r.pick(&forms).unwrap_or(Form::Linear);
            let (text, coef) = s.form_text(form, r);
            let guard = s.guard(r);
            s.constraints.push(CSpec {
                id: format!("c{k}"),
                form,
                // A barrier is always critical (G2 rests on it; the loader refuses others).
                // The draw is made either way, so the rest of the stream is unchanged.
                critical: r.chance(0.85) || form == Form::Barrier,
                guard,
                text,
                coef,
            });
        }
        s
    }

    /// The policy text.
    pub fn toml(&self) -> String {
        let mut t = String::from("[policy]\nname = \"generated\"\n\n");
        for (i, (lo, hi)) in self.actions.iter().enumerate() {
            let _ = writeln!(
                t,
                "[action.u{i}]\nmin = {}\nmax = {}\n",
                tnum(*lo),
                tnum(*hi)
            );
        }
        if self.mode {
            t.push_str("[action.mode]\ntype = \"enum\"\nvalues = [\"go\", \"slow\", \"stop\"]\n\n");
        }
        if self.flag {
            t.push_str("[action.flag]\ntype = \"bool\"\n\n");
        }
        if self.gear {
            t.push_str("[action.gear]\ntype = \"int\"\nmin = -2\nmax = 3\n\n");
        }
        for (j, (lo, hi, e)) in self.states.iter().enumerate() {
            let _ = writeln!(
                t,
                "[state.x{j}]\nmin = {}\nmax = {}\nnoise = {}\n",
                tnum(*lo),
                tnum(*hi),
                tnum(*e)
            );
        }
        if self.zone {
            t.push_str("[state.zone]\ntype = \"enum\"\nvalues = [\"a\", \"b\", \"c\"]\n\n");
        }
        if self.wet {
            t.push_str("[state.wet]\ntype = \"bool\"\n\n");
        }
        let _ = writeln!(t, "[param]\nk0 = {}\ndt = 0.1\n", tnum(self.k0));
        if !self.dynamics.is_empty() {
            t.push_str("[dynamics]\n");
            for (j, eq, _) in &self.dynamics {
                let _ = writeln!(t, "x{j} = \"{eq}\"");
            }
            let eb: Vec<String> = self
                .dynamics
                .iter()
                .map(|(j, _, e)| format!("x{j} = {}", tnum(*e)))
                .collect();
            let _ = writeln!(t, "error_bound = {{ {} }}\n", eb.join(", "));
        }
        if let Some((add, max)) = &self.budget {
            let _ = writeln!(
                t,
                "[budget.b0]\nwindow = \"60s\"\nadd = \"{add}\"\nmin = 0\nmax = {}\n",
                tnum(*max)
            );
        }
        t.push_str("[fallback]\n");
        for i in 0..self.actions.len() {
            let _ = writeln!(t, "u{i} = 0.0");
        }
        if self.mode {
            t.push_str("mode = \"stop\"\n");
        }
        if self.flag {
            t.push_str("flag = false\n");
        }
        if self.gear {
            t.push_str("gear = 0\n");
        }
        for c in &self.constraints {
            let _ = writeln!(t, "\n[[constraint]]\nid = \"{}\"", c.id);
            if !c.critical {
                t.push_str("criticality = \"high\"\n");
            }
            if let Some(g) = &c.guard {
                let _ = writeln!(t, "when = \"{g}\"");
            }
            match c.form {
                Form::Barrier => {
                    let _ = writeln!(
                        t,
                        "kind = \"barrier\"\nbarrier = \"{}\"\ngamma = {}",
                        c.text,
                        tnum(c.coef.0)
                    );
                }
                Form::Lyapunov => {
                    let _ = writeln!(
                        t,
                        "kind = \"lyapunov\"\nlyapunov = \"{}\"\nalpha = {}\nsigma = {}",
                        c.text,
                        tnum(c.coef.0),
                        tnum(c.coef.1)
                    );
                }
                _ => {
                    let _ = writeln!(t, "expr = \"{}\"", c.text);
                }
            }
        }
        t
    }
}

/// A state's value in a proposal.
#[derive(Clone, Debug, PartialEq)]
pub enum SIn {
    /// A plain number: the declared `noise` applies.
    Value(f64),
    /// `{value, noise}`.
    Noise(f64, f64),
    /// `{lo, hi}`.
    LoHi(f64, f64),
    /// A bool state.
    Bool(bool),
    /// An enum state, by index.
    Enum(usize),
    /// Missing: its declared range (enum and bool: every value).
    Missing,
}

/// An agent attribute in a proposal.
#[derive(Clone, Debug, PartialEq)]
pub enum AIn {
    /// A string.
    Sym(String),
    /// A number.
    Num(f64),
}

/// One proposal for a policy, in the oracle's terms.
#[derive(Clone, Debug)]
pub struct Case {
    /// Per action variable.
    pub actions: Vec<Lit>,
    /// Per state variable.
    pub states: Vec<SIn>,
    /// `prev.` per action variable.
    pub prev: Vec<Lit>,
    /// Per budget: the accumulated value's range.
    pub budgets: Vec<(f64, f64)>,
    /// Given agent attributes (others are unknown).
    pub attrs: Vec<(String, AIn)>,
    /// Placed within this many ulps of this row's boundary (row index, ulps).
    pub near: Option<(usize, i64)>,
}

fn lit_pt(l: &Lit) -> Pt {
    match l {
        Lit::Num(x) => Pt::Num(qf(*x)),
        Lit::Bool(b) => Pt::Bool(*b),
        Lit::Enum(i) => Pt::Enum(*i),
    }
}

/// Agent attribute names the policy reads, the strings and the numbers it writes.
pub fn literals(m: &Model) -> (Vec<String>, Vec<String>, Vec<f64>) {
    use crate::expr::E;
    fn walk(e: &E, out: &mut (Vec<String>, Vec<String>, Vec<f64>)) {
        match e {
            E::Num(x) => {
                if !out.2.contains(x) && out.2.len() < 24 {
                    out.2.push(*x);
                }
            }
            E::Str(s) => {
                if !out.1.contains(s) {
                    out.1.push(s.clone());
                }
            }
            E::Name(p) => {
                if let [a, n] = p.as_slice() {
                    if a == "agent" && !out.0.contains(n) {
                        out.0.push(n.clone());
                    }
                }
            }
            E::Bool(_) => {}
            E::Neg(a) | E::Not(a) => walk(a, out),
            E::Bin(_, a, b) | E::Cmp(_, a, b) => {
                walk(a, out);
                walk(b, out);
            }
            E::In(a, xs) => {
                walk(a, out);
                xs.iter().for_each(|x| walk(x, out));
            }
            E::Call(_, xs) => xs.iter().for_each(|x| walk(x, out)),
            E::If(c, a, b) => {
                walk(c, out);
                walk(a, out);
                walk(b, out);
            }
        }
    }
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for c in &m.constraints {
        if let Some(g) = &c.guard {
            walk(g, &mut out);
        }
        match &c.body {
            crate::model::Body::Expr(e) => walk(e, &mut out),
            crate::model::Body::Barrier { h: e, .. }
            | crate::model::Body::Lyapunov { v: e, .. } => {
                walk(e, &mut out);
            }
        }
    }
    out
}

impl Case {
    /// The exact box of this proposal (state noise from the oracle's own reading of the
    /// policy; budgets as given; unknown attributes as candidate values).
    pub fn boxed(&self, m: &Model) -> BoxIn {
        let states = m
            .states
            .iter()
            .zip(&self.states)
            .map(|(s, v)| {
                let span = |lo: f64, hi: f64| Some(Dim::Span(qf(lo), qf(hi)));
                match (&s.ty, v) {
                    (VTy::Text, _) => None,
                    (_, SIn::Value(x)) => {
                        Some(Dim::Span(qf(*x) - qf(s.noise), qf(*x) + qf(s.noise)))
                    }
                    (_, SIn::Noise(x, e)) => {
                        Some(Dim::Span(qf(*x) - qf(e.abs()), qf(*x) + qf(e.abs())))
                    }
                    (_, SIn::LoHi(lo, hi)) => span(*lo, *hi),
                    (_, SIn::Bool(b)) => Some(Dim::Fixed(Pt::Bool(*b))),
                    (_, SIn::Enum(i)) => Some(Dim::Fixed(Pt::Enum(*i))),
                    (VTy::Bool, SIn::Missing) => {
                        Some(Dim::Choice(vec![Pt::Bool(false), Pt::Bool(true)]))
                    }
                    (VTy::Enum(vals), SIn::Missing) => {
                        Some(Dim::Choice((0..vals.len()).map(Pt::Enum).collect()))
                    }
                    (_, SIn::Missing) => span(s.min, s.max),
                }
            })
            .collect();
        let (names, strs, nums) = literals(m);
        let mut numc: Vec<Q> = Vec::new();
        for x in nums
            .iter()
            .flat_map(|x| [*x, -*x, x.next_up(), x.next_down()])
        {
            if let Some(v) = q(x) {
                numc.push(v);
            }
        }
        numc.extend([qf(0.0), qf(1e300), qf(-1e300)]);
        let attrs = names
            .iter()
            .map(|n| {
                let given = self.attrs.iter().find(|(k, _)| k == n).map(|x| &x.1);
                let c: Vec<AttrPt> = match given {
                    Some(AIn::Num(x)) => vec![AttrPt {
                        sym: None,
                        num: qf(*x),
                    }],
                    Some(AIn::Sym(s)) => numc
                        .iter()
                        .map(|v| AttrPt {
                            sym: Some(s.clone()),
                            num: v.clone(),
                        })
                        .collect(),
                    None => strs
                        .iter()
                        .map(|s| AttrPt {
                            sym: Some(s.clone()),
                            num: qf(0.0),
                        })
                        .chain(numc.iter().map(|v| AttrPt {
                            sym: Some("\u{1}unlisted".into()),
                            num: v.clone(),
                        }))
                        .collect(),
                };
                (n.clone(), c)
            })
            .collect();
        BoxIn {
            actions: self.actions.iter().map(lit_pt).collect(),
            states,
            prev: self.prev.iter().map(|l| Dim::Fixed(lit_pt(l))).collect(),
            budgets: self
                .budgets
                .iter()
                .map(|(lo, hi)| Dim::Span(qf(*lo), qf(*hi)))
                .collect(),
            attrs,
        }
    }

    /// A random proposal for `m`.
    pub fn random(m: &Model, extreme: bool, r: &mut Rng) -> Case {
        let actions = m
            .actions
            .iter()
            .map(|a| match &a.ty {
                VTy::Bool => Lit::Bool(r.chance(0.5)),
                VTy::Enum(v) => Lit::Enum(r.index(v.len())),
                VTy::Int => {
                    Lit::Num((a.min + r.below(((a.max - a.min) as u64) + 3) as f64 - 1.0).round())
                }
                _ => Lit::Num(value_in(a.min, a.max, extreme, r)),
            })
            .collect();
        let states = m
            .states
            .iter()
            .map(|s| match &s.ty {
                VTy::Bool => {
                    if r.chance(0.05) {
                        SIn::Missing
                    } else {
                        SIn::Bool(r.chance(0.5))
                    }
                }
                VTy::Enum(v) => {
                    if r.chance(0.05) {
                        SIn::Missing
                    } else {
                        SIn::Enum(r.index(v.len()))
                    }
                }
                VTy::Text => SIn::Missing,
                _ => {
                    let (lo, hi) = finite_range(s.min, s.max);
                    let v = lo + (hi - lo) * r.unit();
                    match r.below(6) {
                        0 => SIn::Noise(v, 0.0),
                        1 | 2 => {
                            let scale = (hi - lo).abs().max(f64::MIN_POSITIVE);
                            let e = if !(1e-10..=1e10).contains(&scale) {
                                scale * r.of(&[1e-17, 1e-3, 2f64.powi(-53), 0.5])
                            } else {
                                r.of(&[0.001, 0.01, 0.1, 0.3])
                            };
                            SIn::Noise(v, if e.is_finite() { e } else { 1.0 })
                        }
                        3 => {
                            let w = (hi - lo) * r.unit() * 0.2;
                            SIn::LoHi(v, (v + w).min(hi.max(v)))
                        }
                        _ => SIn::Value(v),
                    }
                }
            })
            .collect();
        let prev = m
            .actions
            .iter()
            .map(|a| match &a.ty {
                VTy::Bool => Lit::Bool(r.chance(0.5)),
                VTy::Enum(v) => Lit::Enum(r.index(v.len())),
                VTy::Int => Lit::Num(a.min),
                _ => Lit::Num(value_in(a.min, a.max, false, r)),
            })
            .collect();
        let budgets = m
            .budgets
            .iter()
            .map(|b| {
                let top = if b.max.is_finite() { b.max } else { 1000.0 };
                let lo = (top * r.unit()).floor();
                (
                    lo,
                    if r.chance(0.5) {
                        lo
                    } else {
                        lo + (top - lo) * r.unit()
                    },
                )
            })
            .collect();
        let (names, strs, _) = literals(m);
        let attrs = names
            .into_iter()
            .filter_map(|n| match r.below(4) {
                0 => None,
                1 => Some((n, AIn::Num(r.unit()))),
                _ => r
                    .pick(&strs)
                    .map(|s| (n, AIn::Sym(if r.chance(0.2) { "other".into() } else { s }))),
            })
            .collect();
        Case {
            actions,
            states,
            prev,
            budgets,
            attrs,
            near: None,
        }
    }
}

fn finite_range(min: f64, max: f64) -> (f64, f64) {
    let lo = if min.is_finite() { min } else { -100.0 };
    let hi = if max.is_finite() {
        max
    } else {
        lo.max(0.0) + 100.0
    };
    (lo, hi)
}

/// A value for a real action in `[min, max]`: uniform, an end, zero, slightly outside, or
/// (extreme) a magnitude from [`EXTREMES`] when it fits.
fn value_in(min: f64, max: f64, extreme: bool, r: &mut Rng) -> f64 {
    let k = r.below(if extreme { 10 } else { 8 });
    let x = match k {
        0 => min,
        1 => max,
        2 => 0.0,
        3 => {
            if r.chance(0.5) {
                min - 0.5
            } else {
                max + 0.5
            }
        }
        4..=7 => min + (max - min) * r.unit(),
        _ => {
            let e = r.of(&EXTREMES);
            let s = if r.chance(0.5) { e } else { -e };
            let s = if r.chance(0.3) { s.next_up() } else { s };
            if s.is_finite() {
                s
            } else {
                0.0
            }
        }
    };
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// The exact margin of row `ri` at point `p` (`None` when undefined or undecided).
fn margin_at(m: &Model, ri: usize, p: &Point, cc: &mut Ctx) -> Option<Ex> {
    let row = m.rows.get(ri)?;
    let at = eval_row(m, row, p, cc).ok()?;
    if at.holds == B::Undec || at.holds == B::Undef {
        return None;
    }
    at.margin
}

fn sign_of(x: &Ex) -> Option<i8> {
    if x.lo().is_positive() {
        Some(1)
    } else if x.hi().is_negative() {
        Some(-1)
    } else if x.lo().is_zero() && x.hi().is_zero() {
        Some(0)
    } else {
        None
    }
}

/// The doubles at the boundary of `g` (a margin as a function of one double), near `t0`:
/// `(a, b)` adjacent doubles (or equal) with `g(a) <= 0 <= g(b)` or the reverse. An affine
/// `g` is solved exactly; otherwise bisection over the doubles.
fn boundary(g: &mut dyn FnMut(f64) -> Option<Ex>, t0: f64) -> Option<(f64, f64)> {
    let t0 = if t0.is_finite() { t0 } else { 0.0 };
    let (g0, g1, g2) = (g(t0)?, g(t0 + 1.0)?, g(t0 + 2.0)?);
    if let (Some(a), Some(b), Some(c)) = (g0.as_exact(), g1.as_exact(), g2.as_exact()) {
        let slope = b - a;
        if !slope.is_zero() && (c - b) == slope {
            let root = qf(t0) - a / &slope;
            if let Some(br) = bracket(&root) {
                return Some(br);
            }
        }
    }
    // Bisection: find an opposite sign by doubling steps either way.
    let s0 = sign_of(&g0)?;
    if s0 == 0 {
        return Some((t0, t0));
    }
    let mut other = None;
    'out: for k in -20..64 {
        let step = 2f64.powi(k);
        for t in [t0 + step, t0 - step] {
            if let Some(v) = g(t) {
                if let Some(s) = sign_of(&v) {
                    if s != s0 {
                        other = Some(t);
                        break 'out;
                    }
                }
            }
        }
    }
    let (mut a, mut b) = (t0, other?);
    for _ in 0..200 {
        let mid = bisect_double(a, b)?;
        if mid == a || mid == b {
            break;
        }
        match g(mid).as_ref().and_then(sign_of) {
            Some(s) if s == s0 => a = mid,
            Some(0) => return Some((mid, mid)),
            Some(_) => b = mid,
            None => return None,
        }
    }
    Some(if a < b { (a, b) } else { (b, a) })
}

/// A double between `a` and `b` in the order of the doubles (bisecting the bit patterns).
fn bisect_double(a: f64, b: f64) -> Option<f64> {
    let key = |x: f64| {
        let b = x.to_bits() as i64;
        if b < 0 {
            i64::MIN - b
        } else {
            b
        }
    };
    let unkey = |k: i64| {
        f64::from_bits(if k < 0 {
            (i64::MIN - k) as u64
        } else {
            k as u64
        })
    };
    let (ka, kb) = (key(a), key(b));
    let mid = ka / 2 + kb / 2 + (ka % 2 + kb % 2) / 2;
    let m = unkey(mid);
    m.is_finite().then_some(m)
}

fn step_ulps(x: f64, k: i64) -> f64 {
    let mut y = x;
    for _ in 0..k.unsigned_abs() {
        y = if k > 0 { y.next_up() } else { y.next_down() };
    }
    y
}

/// Move `case` so that row `ri` sits within 4 ulps of its boundary: either one real action
/// variable the row reads moves to the boundary (at the box's worst corner, found over the
/// row's corners), or — for a row reading a `{value, noise}` state — the state's value moves
/// so that its extreme corner is on the boundary. Returns false when no boundary was found.
pub fn near_boundary(m: &Model, case: &mut Case, ri: usize, r: &mut Rng, cc: &mut Ctx) -> bool {
    let bx = case.boxed(m);
    let reals: Vec<usize> = m
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.ty == VTy::Real)
        .map(|(i, _)| i)
        .collect();
    // The worst corner: every corner of the state box, the least margin.
    let corner = worst_corner(m, ri, &bx, cc);
    let Some(mut p) = corner else {
        return false;
    };
    let k = r.below(9) as i64 - 4;
    let noisy: Vec<usize> = case
        .states
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, SIn::Noise(_, e) if *e > 0.0) || matches!(s, SIn::Value(_)))
        .map(|(j, _)| j)
        .collect();
    if !noisy.is_empty() && r.chance(0.5) {
        // The state side: the shape of `a * x <= 3` with x = {value, noise}.
        let Some(j) = r.pick(&noisy) else {
            return false;
        };
        let e = match case.states.get(j) {
            Some(SIn::Noise(_, e)) => *e,
            _ => m.states.get(j).map_or(0.0, |s| s.noise),
        };
        if e == 0.0 {
            return false;
        }
        let up = r.chance(0.5);
        let mut g = |t: f64| {
            if let Some(s) = p.states.get_mut(j) {
                *s = Some(Pt::Num(qf(t)));
            }
            margin_at(m, ri, &p, cc)
        };
        let start = match case.states.get(j) {
            Some(SIn::Noise(v, _) | SIn::Value(v)) => *v,
            _ => 0.0,
        };
        let Some((a, b)) = boundary(&mut g, start) else {
            return false;
        };
        let c = if r.chance(0.5) { a } else { b };
        // The corner value is (value ± noise) exactly: pick the value so that it lands
        // within an ulp of `c`, then step.
        let v = if up { c - e } else { c + e };
        let v = step_ulps(v, k);
        if !v.is_finite() {
            return false;
        }
        if let Some(s) = case.states.get_mut(j) {
            *s = SIn::Noise(v, e);
        }
        case.near = Some((ri, k));
        return true;
    }
    // The action side: the real action variables in a random order, until one moves the
    // margin across zero (a variable the row does not read never does).
    let mut order = reals;
    for k in (1..order.len()).rev() {
        order.swap(k, r.index(k + 1));
    }
    for i in order {
        let start = match case.actions.get(i) {
            Some(Lit::Num(x)) => *x,
            _ => 0.0,
        };
        let saved = p.actions.get(i).cloned();
        let mut g = |t: f64| {
            if let Some(a) = p.actions.get_mut(i) {
                *a = Pt::Num(qf(t));
            }
            margin_at(m, ri, &p, cc)
        };
        let found = boundary(&mut g, start);
        if let (Some(a), Some(v)) = (p.actions.get_mut(i), saved) {
            *a = v;
        }
        let Some((a, b)) = found else {
            continue;
        };
        let t = step_ulps(if r.chance(0.5) { a } else { b }, k);
        if !t.is_finite() {
            continue;
        }
        if let Some(x) = case.actions.get_mut(i) {
            *x = Lit::Num(t);
        }
        case.near = Some((ri, k));
        return true;
    }
    false
}

/// The corner of the row's box with the least exact margin at the current action.
fn worst_corner(m: &Model, ri: usize, bx: &BoxIn, cc: &mut Ctx) -> Option<Point> {
    let mut dims: Vec<(usize, Vec<Pt>)> = Vec::new();
    for (j, d) in bx.states.iter().enumerate() {
        match d {
            Some(Dim::Span(a, b)) if a != b => {
                dims.push((j, vec![Pt::Num(a.clone()), Pt::Num(b.clone())]));
            }
            Some(Dim::Choice(v)) => dims.push((j, v.clone())),
            _ => {}
        }
    }
    let first = |d: &Dim| match d {
        Dim::Fixed(p) => p.clone(),
        Dim::Span(a, _) => Pt::Num(a.clone()),
        Dim::Choice(v) => v.first().cloned().unwrap_or(Pt::Bool(false)),
    };
    let base = Point {
        actions: bx.actions.clone(),
        states: bx.states.iter().map(|d| d.as_ref().map(first)).collect(),
        prev: bx.prev.iter().map(first).collect(),
        budgets: bx
            .budgets
            .iter()
            .map(|d| match d {
                Dim::Span(_, b) => b.clone(),
                _ => Q::zero(),
            })
            .collect(),
        attrs: bx
            .attrs
            .iter()
            .filter_map(|(n, c)| c.first().map(|a| (n.clone(), a.clone())))
            .collect(),
        errs: m
            .dynamics
            .as_ref()
            .map(|d| d.iter().map(|(_, _, e)| qf(*e)).collect())
            .unwrap_or_default(),
    };
    let total: usize = dims.iter().map(|d| d.1.len()).product();
    if dims.len() > 6 || total > 64 {
        return Some(base);
    }
    let mut best: Option<(Ex, Point)> = None;
    for mut k in 0..total {
        let mut p = base.clone();
        for (j, vs) in &dims {
            if let (Some(s), Some(v)) = (p.states.get_mut(*j), vs.get(k % vs.len())) {
                *s = Some(v.clone());
            }
            k /= vs.len().max(1);
        }
        if let Some(mg) = margin_at(m, ri, &p, cc) {
            let better = best.as_ref().is_none_or(|(b, _)| mg.lo() < b.lo());
            if better {
                best = Some((mg, p));
            }
        }
    }
    Some(best.map_or(base, |b| b.1))
}
