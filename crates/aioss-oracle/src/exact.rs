//! Exact numbers and certified enclosures.
//!
//! `+ - * /`, integer powers, `abs`, `min` and `max` are computed exactly over rationals
//! ([`Q`]): every double is a dyadic rational, so an expression over doubles has an exact
//! rational value. `sqrt exp log sin cos tanh` (and real powers) have irrational values;
//! they are computed with `astro-float` at [`PRECISION`] bits and enclosed in a rational
//! interval widened by an explicit margin ([`margin`]), far wider than the library's
//! documented (correctly rounded) error. An enclosure that straddles a comparison leaves it
//! *undecided*: the oracle never guesses.

use astro_float::{BigFloat, Consts, RoundingMode, Sign as FSign};
use num_bigint::{BigInt, Sign};
use num_traits::ToPrimitive;

pub use crate::q::Q;

/// Working precision of the transcendental functions, in bits.
pub const PRECISION: usize = 256;

/// `log2` of the relative margin put around a transcendental result: `2^-MARGIN_BITS`
/// times `(|r| + 1) · max(1, |x|)`. With [`PRECISION`] = 256 bits and arguments limited as
/// in [`transcendental`] (dyadic arguments, every double among them, convert exactly;
/// others with a relative error of `2^-256`), the input conversion and the function's own
/// (correctly rounded) result contribute below `2^-254` of that scale, so the margin holds
/// with a factor of `2^50` to spare.
pub const MARGIN_BITS: i32 = 200;

/// Why a value could not be given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The exact value does not exist (division by zero, `sqrt` or `log` out of its domain,
    /// an unknown enum value): a real point where the margin is undefined.
    Undefined(&'static str),
    /// The oracle cannot tell (an enclosure straddles zero, an argument beyond the range
    /// the high-precision functions are trusted on).
    Undecided(&'static str),
}

/// An exact value, or a rational interval certainly holding it.
#[derive(Clone, Debug, PartialEq)]
pub enum Ex {
    /// Exactly this rational.
    Exact(Q),
    /// Somewhere in `[lo, hi]` (`lo < hi`).
    Range(Q, Q),
}

/// The exact value of a finite double.
pub fn q(x: f64) -> Option<Q> {
    Q::from_float(x)
}

/// The exact value of a finite double (0 for a non-finite one; callers reject those first).
pub fn qf(x: f64) -> Q {
    q(x).unwrap_or_else(Q::zero)
}

/// A small integer as a rational.
pub fn qi(n: i64) -> Q {
    Q::from_integer(BigInt::from(n))
}

/// The largest double `<= x` and the smallest double `>= x` (both `x` when it is a double);
/// `None` outside the finite doubles.
pub fn bracket(x: &Q) -> Option<(f64, f64)> {
    let mut f = x.to_f64()?;
    if !f.is_finite() {
        return None;
    }
    // `to_f64` is close; step until `f <= x < next_up(f)`.
    for _ in 0..64 {
        let fq = q(f)?;
        if &fq > x {
            f = f.next_down();
            continue;
        }
        let up = f.next_up();
        if !up.is_finite() {
            return (fq == *x).then_some((f, f));
        }
        let uq = q(up)?;
        if &uq <= x {
            f = up;
            continue;
        }
        return Some(if fq == *x { (f, f) } else { (f, up) });
    }
    None
}

impl Ex {
    /// An exact value.
    pub fn exact(x: Q) -> Ex {
        Ex::Exact(x)
    }

    /// Lower end.
    pub fn lo(&self) -> &Q {
        match self {
            Ex::Exact(x) | Ex::Range(x, _) => x,
        }
    }

    /// Upper end.
    pub fn hi(&self) -> &Q {
        match self {
            Ex::Exact(x) | Ex::Range(_, x) => x,
        }
    }

    /// The exact value, if known.
    pub fn as_exact(&self) -> Option<&Q> {
        match self {
            Ex::Exact(x) => Some(x),
            Ex::Range(..) => None,
        }
    }

    fn range(lo: Q, hi: Q) -> Ex {
        if lo == hi {
            Ex::Exact(lo)
        } else {
            Ex::Range(lo, hi)
        }
    }

    /// `-x`.
    pub fn neg(&self) -> Ex {
        match self {
            Ex::Exact(x) => Ex::Exact(-x),
            Ex::Range(a, b) => Ex::Range(-b, -a),
        }
    }

    /// `a + b`.
    pub fn add(&self, o: &Ex) -> Ex {
        match (self, o) {
            (Ex::Exact(a), Ex::Exact(b)) => Ex::Exact(a + b),
            _ => Ex::range(self.lo() + o.lo(), self.hi() + o.hi()),
        }
    }

    /// `a - b`.
    pub fn sub(&self, o: &Ex) -> Ex {
        self.add(&o.neg())
    }

    /// `a * b`.
    pub fn mul(&self, o: &Ex) -> Ex {
        match (self, o) {
            (Ex::Exact(a), Ex::Exact(b)) => Ex::Exact(a * b),
            _ => {
                let c = [
                    self.lo() * o.lo(),
                    self.lo() * o.hi(),
                    self.hi() * o.lo(),
                    self.hi() * o.hi(),
                ];
                hull(&c)
            }
        }
    }

    /// `a / b`: undefined when `b` is exactly zero, undecided when its enclosure holds zero.
    pub fn div(&self, o: &Ex) -> Result<Ex, Stop> {
        match (self, o) {
            (_, Ex::Exact(b)) if b.is_zero() => Err(Stop::Undefined("division by zero")),
            (Ex::Exact(a), Ex::Exact(b)) => Ok(Ex::Exact(a / b)),
            _ => {
                if !o.lo().is_positive() && !o.hi().is_negative() {
                    return Err(Stop::Undecided("divisor enclosure holds zero"));
                }
                let c = [
                    self.lo() / o.lo(),
                    self.lo() / o.hi(),
                    self.hi() / o.lo(),
                    self.hi() / o.hi(),
                ];
                Ok(hull(&c))
            }
        }
    }

    /// `|x|`.
    pub fn abs(&self) -> Ex {
        match self {
            Ex::Exact(x) => Ex::Exact(x.abs()),
            Ex::Range(a, b) => {
                if !a.is_negative() {
                    self.clone()
                } else if !b.is_positive() {
                    self.neg()
                } else {
                    Ex::range(Q::zero(), a.abs().max(b.clone()))
                }
            }
        }
    }

    /// `min(a, b)`.
    pub fn min(&self, o: &Ex) -> Ex {
        Ex::range(
            self.lo().clone().min(o.lo().clone()),
            self.hi().clone().min(o.hi().clone()),
        )
    }

    /// `max(a, b)`.
    pub fn max(&self, o: &Ex) -> Ex {
        Ex::range(
            self.lo().clone().max(o.lo().clone()),
            self.hi().clone().max(o.hi().clone()),
        )
    }

    /// `x ^ n` for an integer `n` (`x^0 = 1`, also for `x = 0`, as in the policy language).
    pub fn powi(&self, n: i32) -> Result<Ex, Stop> {
        if n == 0 {
            return Ok(Ex::Exact(Q::one()));
        }
        if n < 0 {
            let p = self.powi(n.checked_neg().unwrap_or(i32::MAX))?;
            return Ex::Exact(Q::one()).div(&p);
        }
        match self {
            Ex::Exact(x) => Ok(Ex::Exact(x.powu(n.unsigned_abs()))),
            Ex::Range(a, b) => {
                let k = n.unsigned_abs();
                let pa: Q = a.powu(k);
                let pb: Q = b.powu(k);
                Ok(if k % 2 == 1 || !a.is_negative() {
                    Ex::range(pa.clone().min(pb.clone()), pa.max(pb))
                } else if !b.is_positive() {
                    Ex::range(pb, pa)
                } else {
                    Ex::range(Q::zero(), pa.max(pb))
                })
            }
        }
    }

    /// Compare with `o`: `Some(Less | Equal | Greater)` when decided.
    pub fn cmp_ex(&self, o: &Ex) -> Option<std::cmp::Ordering> {
        use std::cmp::Ordering::*;
        match (self, o) {
            (Ex::Exact(a), Ex::Exact(b)) => Some(a.cmp(b)),
            _ => {
                if self.hi() < o.lo() {
                    Some(Less)
                } else if self.lo() > o.hi() {
                    Some(Greater)
                } else {
                    None
                }
            }
        }
    }

    /// A short decimal rendering (exact values as a double approximation plus the exact
    /// fraction when it is short).
    pub fn show(&self) -> String {
        let f = |x: &Q| format!("{:e}", x.to_f64().unwrap_or(f64::NAN));
        match self {
            Ex::Exact(x) => {
                let s = x.to_string();
                if s.len() <= 80 {
                    format!("{} (exactly {s})", f(x))
                } else {
                    format!("{} (exact, {} digits)", f(x), s.len())
                }
            }
            Ex::Range(a, b) => format!("[{}, {}]", f(a), f(b)),
        }
    }
}

fn hull(c: &[Q]) -> Ex {
    let lo = c.iter().min().cloned().unwrap_or_else(Q::zero);
    let hi = c.iter().max().cloned().unwrap_or_else(Q::zero);
    Ex::range(lo, hi)
}

/// The one-argument functions with irrational values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trans {
    /// `sqrt`
    Sqrt,
    /// `exp`
    Exp,
    /// `log` (natural)
    Log,
    /// `sin`
    Sin,
    /// `cos`
    Cos,
    /// `tanh`
    Tanh,
}

fn int_to_bf(n: &BigInt) -> BigFloat {
    let (sign, digits) = n.to_u64_digits();
    if digits.is_empty() {
        return BigFloat::from_word(0, 64);
    }
    let s = if sign == Sign::Minus {
        FSign::Neg
    } else {
        FSign::Pos
    };
    let bits = digits.len() * 64;
    // 0.M × 2^bits = M exactly (the mantissa holds every word).
    BigFloat::from_words(&digits, s, i32::try_from(bits).unwrap_or(i32::MAX))
}

fn q_to_bf(x: &Q) -> BigFloat {
    if let Some((m, e)) = x.as_dyadic() {
        // m · 2^e exactly: the words of m with the exponent moved by e.
        let (sign, digits) = m.to_u64_digits();
        if digits.is_empty() {
            return BigFloat::from_word(0, 64);
        }
        let s = if sign == Sign::Minus {
            FSign::Neg
        } else {
            FSign::Pos
        };
        let bits = i64::try_from(digits.len() * 64).unwrap_or(i64::MAX);
        if let Ok(ex) = i32::try_from(bits + e) {
            return BigFloat::from_words(&digits, s, ex);
        }
    }
    let n = int_to_bf(&x.numer());
    let d = int_to_bf(&x.denom());
    n.div(&d, PRECISION, RoundingMode::ToEven)
}

/// The exact rational value of a finite `BigFloat`.
fn bf_to_q(b: &BigFloat) -> Option<Q> {
    let (words, _, sign, e, _) = b.as_raw_parts()?;
    let mut m = BigInt::from(0);
    for w in words.iter().rev() {
        m = (m << 64u32) + BigInt::from(*w);
    }
    if sign == FSign::Neg {
        m = -m;
    }
    // value = M / 2^(64·len) · 2^e
    let shift = i64::from(e) - 64 * i64::try_from(words.len()).ok()?;
    let one = BigInt::from(1);
    Some(if shift >= 0 {
        Q::from_integer(m << shift.unsigned_abs())
    } else {
        Q::new(m, one << shift.unsigned_abs())
    })
}

/// The margin put around a transcendental result `r` of argument `x` (see [`MARGIN_BITS`]).
pub fn margin(r: &Q, x: &Q) -> Q {
    let one = Q::one();
    let scale = (r.abs() + &one) * x.abs().max(one);
    scale / Q::from_integer(BigInt::from(1) << MARGIN_BITS.unsigned_abs())
}

/// An exact rational square root, if `x` is the square of a rational.
fn exact_sqrt(x: &Q) -> Option<Q> {
    if x.is_negative() {
        return None;
    }
    if let Some((m, e)) = x.as_dyadic() {
        let r = m.sqrt();
        return (e % 2 == 0 && &r * &r == *m).then(|| Q::from_dyadic(r, e / 2));
    }
    let (n, d) = (x.numer(), x.denom());
    let (rn, rd) = (n.sqrt(), d.sqrt());
    (&rn * &rn == n && &rd * &rd == d).then(|| Q::new(rn, rd))
}

/// The high-precision functions' context: astro-float's constant cache, and a memo of
/// results for dyadic arguments (a row's `sin(u)` is the same at every corner of the state
/// box).
#[allow(
    missing_debug_implementations,
    reason = "astro-float's cache has no Debug"
)]
pub struct Ctx {
    cc: Consts,
    memo: std::collections::HashMap<(u8, BigInt, i64), Result<Ex, Stop>>,
}

impl Ctx {
    /// A fresh context (`None` if astro-float cannot allocate its cache).
    pub fn new() -> Option<Ctx> {
        Some(Ctx {
            cc: Consts::new().ok()?,
            memo: std::collections::HashMap::new(),
        })
    }
}

/// `f(x)` for an exact argument: exact where the value is rational and known (`sqrt` of a
/// square, `exp 0`, `log 1`, `sin 0`, `cos 0`, `tanh 0`), otherwise a certified enclosure.
pub fn transcendental(f: Trans, x: &Q, cx: &mut Ctx) -> Result<Ex, Stop> {
    let key = x.as_dyadic().map(|(m, e)| (f as u8, m.clone(), e));
    if let Some(k) = &key {
        if let Some(r) = cx.memo.get(k) {
            return r.clone();
        }
    }
    let r = transcendental_uncached(f, x, &mut cx.cc);
    if let Some(k) = key {
        if cx.memo.len() > 200_000 {
            cx.memo.clear();
        }
        cx.memo.insert(k, r.clone());
    }
    r
}

fn transcendental_uncached(f: Trans, x: &Q, cc: &mut Consts) -> Result<Ex, Stop> {
    let zero = x.is_zero();
    match f {
        Trans::Sqrt => {
            if x.is_negative() {
                return Err(Stop::Undefined("sqrt of a negative number"));
            }
            if let Some(r) = exact_sqrt(x) {
                return Ok(Ex::Exact(r));
            }
        }
        Trans::Log => {
            if !x.is_positive() {
                return Err(Stop::Undefined("log of a number <= 0"));
            }
            if x.is_one() {
                return Ok(Ex::Exact(Q::zero()));
            }
        }
        Trans::Exp => {
            if zero {
                return Ok(Ex::Exact(Q::one()));
            }
            if x.abs() > qi(5000) {
                return Err(Stop::Undecided("exp argument beyond 5000"));
            }
        }
        Trans::Sin | Trans::Tanh if zero => return Ok(Ex::Exact(Q::zero())),
        Trans::Cos if zero => return Ok(Ex::Exact(Q::one())),
        Trans::Sin | Trans::Cos | Trans::Tanh => {
            if x.abs() > qi(1_000_000) {
                return Err(Stop::Undecided("trigonometric argument beyond 1e6"));
            }
        }
    }
    let b = q_to_bf(x);
    let (p, rm) = (PRECISION, RoundingMode::ToEven);
    let r = match f {
        Trans::Sqrt => b.sqrt(p, rm),
        Trans::Exp => b.exp(p, rm, cc),
        Trans::Log => b.ln(p, rm, cc),
        Trans::Sin => b.sin(p, rm, cc),
        Trans::Cos => b.cos(p, rm, cc),
        Trans::Tanh => b.tanh(p, rm, cc),
    };
    let r = bf_to_q(&r).ok_or(Stop::Undecided("high-precision evaluation failed"))?;
    let m = margin(&r, x);
    Ok(Ex::Range(&r - &m, &r + &m))
}

/// `f` over an enclosure: monotone functions at both ends; `sin` and `cos` (1-Lipschitz)
/// at the lower end widened by the enclosure's width.
pub fn transcendental_ex(f: Trans, x: &Ex, cc: &mut Ctx) -> Result<Ex, Stop> {
    match x {
        Ex::Exact(v) => transcendental(f, v, cc),
        Ex::Range(a, b) => match f {
            Trans::Sqrt | Trans::Log if !a.is_positive() => {
                if (f == Trans::Sqrt && b.is_negative()) || (f == Trans::Log && !b.is_positive()) {
                    Err(Stop::Undefined("sqrt or log out of its domain"))
                } else {
                    Err(Stop::Undecided("sqrt or log of an enclosure reaching 0"))
                }
            }
            Trans::Sqrt | Trans::Log | Trans::Exp | Trans::Tanh => {
                let lo = transcendental(f, a, cc)?;
                let hi = transcendental(f, b, cc)?;
                Ok(Ex::range(lo.lo().clone(), hi.hi().clone()))
            }
            Trans::Sin | Trans::Cos => {
                let at = transcendental(f, a, cc)?;
                let w = b - a;
                Ok(Ex::range(at.lo() - &w, at.hi() + &w))
            }
        },
    }
}

/// `x ^ y` for a real exponent: `exp(y · log x)` for `x > 0`, `0` for `x = 0 < y`, the
/// exact power for an integral `y` of at most 1024 in magnitude, undefined otherwise.
pub fn real_pow(x: &Ex, y: &Ex, cc: &mut Ctx) -> Result<Ex, Stop> {
    let (Some(xv), Some(yv)) = (x.as_exact(), y.as_exact()) else {
        return Err(Stop::Undecided("a real power of an enclosure"));
    };
    if yv.is_integer() && yv.abs() <= qi(1024) {
        let n = yv.to_integer().to_i32().unwrap_or(0);
        return x.powi(n);
    }
    if xv.is_zero() {
        return if yv.is_positive() {
            Ok(Ex::Exact(Q::zero()))
        } else {
            Err(Stop::Undefined("0 to a power <= 0"))
        };
    }
    if xv.is_negative() {
        return Err(Stop::Undefined("a negative number to a non-integer power"));
    }
    let l = transcendental(Trans::Log, xv, cc)?;
    let e = l.mul(y);
    transcendental_ex(Trans::Exp, &e, cc)
}

/// A fresh context for the high-precision functions.
pub fn consts() -> Option<Ctx> {
    Ctx::new()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]
mod tests {
    use super::*;

    #[test]
    fn bigfloat_round_trips_exactly() {
        for x in [1.5, -3.25, 1e300, 5e-324, 0.1, -7.0, 123_456_789.0] {
            let b = q_to_bf(&q(x).unwrap());
            assert_eq!(bf_to_q(&b).unwrap(), q(x).unwrap(), "{x}");
        }
        let big = Q::from_integer(BigInt::from(3).pow(200u32));
        assert_eq!(bf_to_q(&int_to_bf(&big.numer())).unwrap(), big);
    }

    #[test]
    fn enclosures_hold_known_values() {
        let mut cc = consts().unwrap();
        let two = qi(2);
        let s = transcendental(Trans::Sqrt, &two, &mut cc).unwrap();
        // sqrt(2)^2 brackets 2
        assert!(s.lo() * s.lo() < two && s.hi() * s.hi() > two);
        assert_eq!(
            transcendental(Trans::Sqrt, &qi(9), &mut cc).unwrap(),
            Ex::Exact(qi(3))
        );
        let e = transcendental(Trans::Exp, &Q::one(), &mut cc).unwrap();
        let approx = q(std::f64::consts::E).unwrap();
        assert!((e.lo() - &approx).abs() < q(1e-15).unwrap());
        let sn = transcendental(Trans::Sin, &q(std::f64::consts::PI).unwrap(), &mut cc).unwrap();
        // sin(double nearest pi) = 1.2246467991473532e-16
        assert!(sn.lo().is_positive() && sn.hi() < &q(1.3e-16).unwrap());
    }

    #[test]
    fn bracket_finds_neighbouring_doubles() {
        let third = Q::new(BigInt::from(1), BigInt::from(3));
        let (a, b) = bracket(&third).unwrap();
        assert!(q(a).unwrap() < third && q(b).unwrap() > third && a.next_up() == b);
        assert_eq!(bracket(&q(0.1).unwrap()), Some((0.1, 0.1)));
    }
}
