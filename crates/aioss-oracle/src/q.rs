//! Exact rationals with a fast path for dyadic numbers.
//!
//! Every double is a dyadic rational `m·2^e`, and sums, differences and products of
//! dyadics are dyadic: kept as a (big) integer and an exponent they need no gcd, which is
//! what made plain `BigRational` arithmetic the oracle's bottleneck (two thirds of its time
//! in `gcd`). A quotient that is not dyadic becomes a fraction `n/d` that is *not* reduced:
//! sums, products and comparisons of fractions need no gcd either (the expressions are short,
//! so the numbers stay small); only printing reduces.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, Div, Mul, Neg, Sub};

use num_bigint::{BigInt, Sign};
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

#[derive(Clone, Debug)]
enum Repr {
    /// `m · 2^e`, `m` odd or zero (then `e = 0`).
    D(BigInt, i64),
    /// `n / d` with `d > 0`, not necessarily in lowest terms.
    R(BigInt, BigInt),
}

/// An exact rational number.
#[derive(Clone)]
pub struct Q(Repr);

fn dy(m: BigInt, e: i64) -> Q {
    if m.is_zero() {
        return Q(Repr::D(m, 0));
    }
    let tz = m.trailing_zeros().unwrap_or(0);
    if tz == 0 {
        Q(Repr::D(m, e))
    } else {
        Q(Repr::D(m >> tz, e + i64::try_from(tz).unwrap_or(0)))
    }
}

fn pow2(k: u64) -> BigInt {
    BigInt::one() << k
}

impl Q {
    /// `n / d` (`d != 0`).
    pub fn new(n: BigInt, d: BigInt) -> Q {
        Q::frac(n, d)
    }

    /// An integer.
    pub fn from_integer(n: BigInt) -> Q {
        dy(n, 0)
    }

    /// `n / d` (`d != 0`), dyadic when `d` is a power of two.
    fn frac(n: BigInt, d: BigInt) -> Q {
        let (n, d) = if d.is_negative() { (-n, -d) } else { (n, d) };
        let tz = d.trailing_zeros().unwrap_or(0);
        if d == pow2(tz) {
            dy(n, -i64::try_from(tz).unwrap_or(0))
        } else {
            Q(Repr::R(n, d))
        }
    }

    /// `(n, d)`, `d > 0`, not reduced.
    fn parts(&self) -> (BigInt, BigInt) {
        match &self.0 {
            Repr::R(n, d) => (n.clone(), d.clone()),
            Repr::D(m, e) => {
                if *e >= 0 {
                    (m << e.unsigned_abs(), BigInt::one())
                } else {
                    (m.clone(), pow2(e.unsigned_abs()))
                }
            }
        }
    }

    /// The exact value of a finite double.
    pub fn from_float(x: f64) -> Option<Q> {
        if !x.is_finite() {
            return None;
        }
        if x == 0.0 {
            return Some(Q::zero());
        }
        let bits = x.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1u64 << 52) - 1);
        let (m, e) = if exp == 0 {
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), exp - 1075)
        };
        let m = BigInt::from(m);
        Some(dy(if x < 0.0 { -m } else { m }, e))
    }

    /// `(m, e)` with `self = m · 2^e`, when it is dyadic.
    pub fn as_dyadic(&self) -> Option<(&BigInt, i64)> {
        match &self.0 {
            Repr::D(m, e) => Some((m, *e)),
            Repr::R(..) => None,
        }
    }

    /// `m · 2^e`.
    pub fn from_dyadic(m: BigInt, e: i64) -> Q {
        dy(m, e)
    }

    /// Zero.
    pub fn zero() -> Q {
        Q(Repr::D(BigInt::zero(), 0))
    }

    /// One.
    pub fn one() -> Q {
        Q(Repr::D(BigInt::one(), 0))
    }

    /// In lowest terms (a gcd: for printing and conversions only).
    fn ratio(&self) -> BigRational {
        let (n, d) = self.parts();
        BigRational::new(n, d)
    }

    fn sign(&self) -> Sign {
        match &self.0 {
            Repr::D(m, _) => m.sign(),
            Repr::R(n, _) => n.sign(),
        }
    }

    /// Is it zero?
    pub fn is_zero(&self) -> bool {
        self.sign() == Sign::NoSign
    }

    /// Is it one?
    pub fn is_one(&self) -> bool {
        matches!(&self.0, Repr::D(m, 0) if m.is_one())
    }

    /// Is it above zero?
    pub fn is_positive(&self) -> bool {
        self.sign() == Sign::Plus
    }

    /// Is it below zero?
    pub fn is_negative(&self) -> bool {
        self.sign() == Sign::Minus
    }

    /// `|x|`.
    pub fn abs(&self) -> Q {
        if self.is_negative() {
            -self
        } else {
            self.clone()
        }
    }

    /// A nearby double (not necessarily the nearest; see [`crate::exact::bracket`]).
    pub fn to_f64(&self) -> Option<f64> {
        match &self.0 {
            Repr::D(m, e) => {
                let bits = m.bits();
                // Keep the top 64 bits of the mantissa so that the conversion cannot overflow.
                let drop = bits.saturating_sub(64);
                let top = (m >> drop).to_f64()?;
                let k = *e + i64::try_from(drop).ok()?;
                let k = i32::try_from(k.clamp(-4000, 4000)).ok()?;
                // Two steps, so that neither power of two over- or underflows alone.
                let h = k / 2;
                Some(top * 2f64.powi(h) * 2f64.powi(k - h))
            }
            Repr::R(..) => self.ratio().to_f64(),
        }
    }

    /// Is it an integer?
    pub fn is_integer(&self) -> bool {
        match &self.0 {
            Repr::D(_, e) => *e >= 0,
            Repr::R(n, d) => (n % d).is_zero(),
        }
    }

    /// The integer part (toward zero).
    pub fn to_integer(&self) -> BigInt {
        match &self.0 {
            Repr::D(m, e) => {
                if *e >= 0 {
                    m << e.unsigned_abs()
                } else {
                    self.ratio().to_integer()
                }
            }
            Repr::R(n, d) => n / d,
        }
    }

    /// Numerator in lowest terms.
    pub fn numer(&self) -> BigInt {
        self.ratio().numer().clone()
    }

    /// Denominator in lowest terms.
    pub fn denom(&self) -> BigInt {
        self.ratio().denom().clone()
    }

    /// `self^k`.
    pub fn powu(&self, k: u32) -> Q {
        match &self.0 {
            Repr::D(m, e) => dy(num_traits::pow::Pow::pow(m, k), e * i64::from(k)),
            Repr::R(n, d) => Q::frac(
                num_traits::pow::Pow::pow(n, k),
                num_traits::pow::Pow::pow(d, k),
            ),
        }
    }

    fn add_q(&self, o: &Q) -> Q {
        match (&self.0, &o.0) {
            (Repr::D(a, ea), Repr::D(b, eb)) => {
                if a.is_zero() {
                    return o.clone();
                }
                if b.is_zero() {
                    return self.clone();
                }
                let e = (*ea).min(*eb);
                let a = a << (ea - e).unsigned_abs();
                let b = b << (eb - e).unsigned_abs();
                dy(a + b, e)
            }
            _ => {
                let ((a, b), (c, d)) = (self.parts(), o.parts());
                if b == d {
                    Q::frac(a + c, b)
                } else {
                    Q::frac(a * &d + c * &b, b * d)
                }
            }
        }
    }

    fn mul_q(&self, o: &Q) -> Q {
        match (&self.0, &o.0) {
            (Repr::D(a, ea), Repr::D(b, eb)) => dy(a * b, ea + eb),
            _ => {
                let ((a, b), (c, d)) = (self.parts(), o.parts());
                Q::frac(a * c, b * d)
            }
        }
    }

    fn div_q(&self, o: &Q) -> Q {
        match &o.0 {
            // Dividing by ±2^k stays dyadic.
            Repr::D(b, eb) if b.abs().is_one() => {
                let inv = dy(b.clone(), -eb);
                self.mul_q(&inv)
            }
            _ => {
                let ((a, b), (c, d)) = (self.parts(), o.parts());
                Q::frac(a * d, b * c)
            }
        }
    }
}

impl PartialEq for Q {
    fn eq(&self, o: &Q) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Q {}
impl PartialOrd for Q {
    fn partial_cmp(&self, o: &Q) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Q {
    fn cmp(&self, o: &Q) -> Ordering {
        match (&self.0, &o.0) {
            (Repr::D(a, ea), Repr::D(b, eb)) => {
                let (sa, sb) = (a.sign(), b.sign());
                if sa != sb {
                    return sa.cmp(&sb);
                }
                if a.is_zero() {
                    return Ordering::Equal;
                }
                // Same sign: compare magnitudes by bit length first.
                let la = i64::try_from(a.bits()).unwrap_or(i64::MAX) + ea;
                let lb = i64::try_from(b.bits()).unwrap_or(i64::MAX) + eb;
                let mag = if la != lb {
                    la.cmp(&lb)
                } else {
                    let e = (*ea).min(*eb);
                    let x = a.abs() << (ea - e).unsigned_abs();
                    let y = b.abs() << (eb - e).unsigned_abs();
                    x.cmp(&y)
                };
                if sa == Sign::Minus {
                    mag.reverse()
                } else {
                    mag
                }
            }
            _ => {
                // n1/d1 against n2/d2 with positive denominators.
                let ((a, b), (c, d)) = (self.parts(), o.parts());
                (a * d).cmp(&(c * b))
            }
        }
    }
}

impl fmt::Debug for Q {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Q {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ratio())
    }
}

impl Neg for Q {
    type Output = Q;
    fn neg(self) -> Q {
        -&self
    }
}
impl Neg for &Q {
    type Output = Q;
    fn neg(self) -> Q {
        match &self.0 {
            Repr::D(m, e) => Q(Repr::D(-m, *e)),
            Repr::R(n, d) => Q(Repr::R(-n, d.clone())),
        }
    }
}

macro_rules! binop {
    ($tr:ident, $m:ident, $body:expr) => {
        impl $tr<&Q> for &Q {
            type Output = Q;
            fn $m(self, o: &Q) -> Q {
                $body(self, o)
            }
        }
        impl $tr<Q> for &Q {
            type Output = Q;
            fn $m(self, o: Q) -> Q {
                $body(self, &o)
            }
        }
        impl $tr<&Q> for Q {
            type Output = Q;
            fn $m(self, o: &Q) -> Q {
                $body(&self, o)
            }
        }
        impl $tr<Q> for Q {
            type Output = Q;
            fn $m(self, o: Q) -> Q {
                $body(&self, &o)
            }
        }
    };
}

binop!(Add, add, |a: &Q, b: &Q| a.add_q(b));
binop!(Sub, sub, |a: &Q, b: &Q| a.add_q(&-b));
binop!(Mul, mul, |a: &Q, b: &Q| a.mul_q(b));
binop!(Div, div, |a: &Q, b: &Q| a.div_q(b));

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]
mod tests {
    use super::*;

    #[test]
    fn dyadic_arithmetic_agrees_with_big_rational() {
        let xs = [
            0.1,
            -3.5,
            1e300,
            5e-324,
            2.0,
            -0.0,
            7.0,
            1e-17,
            1.7976931348623157e308,
        ];
        for &a in &xs {
            for &b in &xs {
                let (qa, qb) = (Q::from_float(a).unwrap(), Q::from_float(b).unwrap());
                let (ra, rb) = (
                    BigRational::from_float(a).unwrap(),
                    BigRational::from_float(b).unwrap(),
                );
                assert_eq!((&qa + &qb).ratio(), &ra + &rb);
                assert_eq!((&qa - &qb).ratio(), &ra - &rb);
                assert_eq!((&qa * &qb).ratio(), &ra * &rb);
                if b != 0.0 {
                    assert_eq!((&qa / &qb).ratio(), &ra / &rb);
                }
                assert_eq!(qa.cmp(&qb), ra.cmp(&rb), "{a} {b}");
            }
        }
        let third = Q::new(BigInt::from(1), BigInt::from(3));
        assert!(third > Q::from_float(0.333).unwrap());
        assert_eq!(&third * &Q::from_integer(BigInt::from(3)), Q::one());
        assert_eq!(Q::from_float(0.1).unwrap().to_f64(), Some(0.1));
        assert_eq!(Q::from_float(5e-324).unwrap().to_f64(), Some(5e-324));
        assert_eq!(
            Q::from_float(1e300).unwrap().powu(2).to_f64(),
            Some(f64::INFINITY)
        );
    }
}
