//! Outward-rounded interval arithmetic: the trusted kernel of Tier 1.
//!
//! Hand-written because it is the hot path (allocation-free, branch-light, a few
//! nanoseconds an operation) and because soundness has to be argued line by line, which a
//! general crate would not let us do.
//!
//! Soundness argument, kept without changing the FPU rounding mode (so it holds on every
//! x86-64 and aarch64 machine, with any target-cpu flags): each basic operation `+ - * /
//! sqrt` is computed in round-to-nearest, whose error is at most half an ulp, so the exact
//! result lies in `[next_down(r), next_up(r)]`. Where an error-free transformation (TwoSum,
//! Dekker's TwoProduct) proves the rounded result exact, or tells the sign of the error, the
//! bound is kept tight on that side: this is what makes action-only rows cost no width
//! beyond the rounding error. Transcendental functions come from the pure-Rust `libm`
//! crate (deterministic on every platform; documented error below one ulp) and are widened
//! by four ulps on each side.
//!
//! An operation that is undefined for some point of its arguments (division by an interval
//! containing zero, `sqrt` or `log` of a negative, `inf - inf`) yields [`Interval::INVALID`]
//! (both bounds NaN). INVALID propagates through every operation and never compares as
//! true or false, so it can only ever make a row UNCERTAIN, never a wrong SAT.
//!
//! Booleans are intervals too: `[1,1]` true, `[0,0]` false, `[0,1]` unknown (Kleene logic).

/// A closed interval `[lo, hi]` of reals, or INVALID (both bounds NaN).
///
/// INVARIANT (interval-order): `lo <= hi`, or both are NaN. Infinite bounds are allowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// The next double below `x`. (A branch-free version for finite values, like
/// [`step_finite`], measured no faster here: `next_down`'s branches predict well.)
#[inline]
fn down(x: f64) -> f64 {
    x.next_down()
}
/// The next double above `x`.
#[inline]
fn up(x: f64) -> f64 {
    x.next_up()
}

/// Lower bound of the exact sum `a + b`.
#[inline]
fn sum_lo(a: f64, b: f64) -> f64 {
    let s = a + b;
    if s.is_finite() {
        // exact = s + e; when e >= 0, s is already a lower bound. A NaN `e` (unknown
        // sign) steps too. `|`, not `||`: whether a sum rounded is close to a coin toss,
        // and a short-circuit is a conditional jump the predictor loses half the time.
        let e = two_sum_err(a, b, s);
        step_finite(s, (e < 0.0) | e.is_nan(), -1)
    } else {
        down(s)
    }
}

/// Upper bound of the exact sum `a + b`.
#[inline]
fn sum_hi(a: f64, b: f64) -> f64 {
    let s = a + b;
    if s.is_finite() {
        let e = two_sum_err(a, b, s);
        step_finite(s, (e > 0.0) | e.is_nan(), 1)
    } else {
        up(s)
    }
}

/// `s` moved one ulp toward `-inf` (`toward = -1`) or `+inf` (`toward = 1`) when `go`,
/// else `s`, without a branch: whether a sum was rounded is data-dependent and close to
/// a coin toss, so a branch on it mispredicts about half the time. For a finite, non-zero
/// `s`, one ulp is one step of the bit pattern (toward zero or away from it by the sign).
/// A zero `s` never steps: a sum that rounds to zero is exact (sums near zero land on
/// the subnormal grid), so its error is zero and `go` is false; the mask keeps that
/// true even if a caller passes `go` for a zero.
#[inline]
fn step_finite(s: f64, go: bool, toward: i64) -> f64 {
    #[expect(
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        reason = "bit patterns of a finite double, moved by one"
    )]
    {
        let b = s.to_bits() as i64;
        let away = (b >> 63) | 1; // -1 for a negative s, +1 for a positive one
        let go = i64::from(go & (s != 0.0));
        f64::from_bits(b.wrapping_add(go * toward * away) as u64)
    }
}

/// The exact error of `s = fl(a + b)` (NaN if an intermediate overflowed,
/// which the callers treat as "unknown sign" because NaN fails both comparisons).
#[inline]
fn two_sum_err(a: f64, b: f64, s: f64) -> f64 {
    // Knuth's TwoSum: exact for any order of magnitudes, so no data-dependent swap.
    let bb = s - a;
    (a - (s - bb)) + (b - bb)
}

/// Dekker's TwoProduct without FMA (an FMA is a slow library call without target-cpu
/// flags): the exact error of `p = fl(a * b)`, or `None` when overflow or underflow could
/// make the split inexact.
#[inline]
fn two_prod_err(a: f64, b: f64, p: f64) -> Option<f64> {
    const SPLIT: f64 = 134_217_729.0; // 2^27 + 1
    const BIG: f64 = 6.696_928_794_914_171e299; // 2^996
    const SMALL: f64 = 2.004_168_360_008_973e-292; // 2^-969
    let (aa, ab, ap) = (a.abs(), b.abs(), p.abs());
    if !(aa < BIG && ab < BIG && ap < BIG && ap > SMALL) {
        return None;
    }
    let split = |x: f64| {
        let c = SPLIT * x;
        let hi = c - (c - x);
        (hi, x - hi)
    };
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    Some(((ah * bh - p) + ah * bl + al * bh) + al * bl)
}

/// Significant bits of a normal double's significand (53 for subnormals, to be safe).
#[inline]
fn sig_bits(x: f64) -> u32 {
    if !x.is_normal() {
        return 53;
    }
    let m = (x.to_bits() & ((1u64 << 52) - 1)) | (1u64 << 52);
    53 - m.trailing_zeros()
}

/// Is `p = fl(a * b)` provably the exact product? (A zero factor, or significands short
/// enough that the product fits in 53 bits, with a normal result.) Significands of `sa`
/// and `sb` significant bits multiply into at most `sa + sb` bits, and a power of two
/// (`sa = 1`) only shifts the other: `-1.6118537957309582 * u` was widened to two ulps
/// (`1 * -k` is how a linear form carries the coefficient), which sent half the terms of
/// a dense row off the linear fast path's point branch (regression test
/// `a_power_of_two_times_anything_is_exact`).
#[inline]
fn exact_product(a: f64, b: f64, p: f64) -> bool {
    a == 0.0
        || b == 0.0
        || (p.is_finite() && p.abs() > 2.0 * f64::MIN_POSITIVE && {
            let (sa, sb) = (sig_bits(a), sig_bits(b));
            sa + sb <= 53 || sa == 1 || sb == 1
        })
}

/// [`exact_product`] for `a == b`, cheaper: `sig_bits(a) <= 26` is "the low 27 bits of the
/// significand are zero" (a subnormal `a` squares to an underflow, which the test on `p`
/// already refuses).
#[inline]
fn exact_square(a: f64, p: f64) -> bool {
    a == 0.0
        || (p.is_finite()
            && p.abs() > 2.0 * f64::MIN_POSITIVE
            && a.to_bits() & ((1 << 27) - 1) == 0)
}

/// Multiplication where a zero factor gives zero even against an infinite bound (the
/// bound is a limit, not a value; every real times zero is zero).
#[inline]
pub(crate) fn mulz(a: f64, b: f64) -> f64 {
    if a == 0.0 || b == 0.0 {
        0.0
    } else {
        a * b
    }
}

impl Interval {
    /// The undefined result.
    pub const INVALID: Interval = Interval {
        lo: f64::NAN,
        hi: f64::NAN,
    };
    /// All reals.
    pub const ENTIRE: Interval = Interval {
        lo: f64::NEG_INFINITY,
        hi: f64::INFINITY,
    };
    /// Boolean true.
    pub const TRUE: Interval = Interval { lo: 1.0, hi: 1.0 };
    /// Boolean false.
    pub const FALSE: Interval = Interval { lo: 0.0, hi: 0.0 };
    /// Boolean unknown.
    pub const UNKNOWN: Interval = Interval { lo: 0.0, hi: 1.0 };

    /// A degenerate interval holding one double. NaN gives INVALID.
    #[inline]
    pub fn point(x: f64) -> Self {
        Interval { lo: x, hi: x }
    }

    /// `[lo, hi]`; INVALID if either is NaN or `lo > hi`.
    #[inline]
    pub fn new(lo: f64, hi: f64) -> Self {
        if lo <= hi {
            Interval { lo, hi }
        } else {
            Self::INVALID
        }
    }

    /// `[v - e, v + e]`, rounded outward (the exact interval is contained).
    #[inline]
    pub fn around(v: f64, e: f64) -> Self {
        let e = e.abs();
        if e == 0.0 {
            return Self::point(v);
        }
        Self::new(sum_lo(v, -e), sum_hi(v, e))
    }

    /// Is this the undefined result?
    #[inline]
    pub fn is_invalid(self) -> bool {
        self.lo.is_nan() || self.hi.is_nan()
    }

    /// Is this a single double?
    #[inline]
    pub fn is_point(self) -> bool {
        self.lo == self.hi
    }

    /// Does it contain `x`?
    #[inline]
    pub fn contains(self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// Upper minus lower bound (rounded up); NaN when invalid.
    #[inline]
    pub fn width(self) -> f64 {
        sum_hi(self.hi, -self.lo)
    }

    /// The midpoint, a double inside the interval (0 for ENTIRE, a bound if the other one
    /// is infinite).
    #[inline]
    pub fn mid(self) -> f64 {
        match (self.lo.is_finite(), self.hi.is_finite()) {
            (true, true) => {
                let m = self.lo / 2.0 + self.hi / 2.0;
                m.clamp(self.lo, self.hi)
            }
            (true, false) => self.lo,
            (false, true) => self.hi,
            (false, false) => {
                if self.is_invalid() {
                    f64::NAN
                } else {
                    0.0
                }
            }
        }
    }

    /// The smallest interval containing both (INVALID if either is).
    #[inline]
    pub fn hull(self, o: Self) -> Self {
        if self.is_invalid() || o.is_invalid() {
            return Self::INVALID;
        }
        Interval {
            lo: self.lo.min(o.lo),
            hi: self.hi.max(o.hi),
        }
    }

    /// `-x` (exact).
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn neg(self) -> Self {
        Interval {
            lo: -self.hi,
            hi: -self.lo,
        }
    }

    /// `a + b`.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, o: Self) -> Self {
        let r = Interval {
            lo: sum_lo(self.lo, o.lo),
            hi: sum_hi(self.hi, o.hi),
        };
        // A NaN bound (from `inf - inf`) already makes `r` invalid: every consumer tests
        // `is_invalid`, which looks at either bound.
        r
    }

    /// `a - b`.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, o: Self) -> Self {
        self.add(o.neg())
    }

    /// Turn any NaN bound (from `inf - inf` and the like) into INVALID.
    #[inline]
    fn checked(self) -> Self {
        if self.is_invalid() {
            Self::INVALID
        } else {
            self
        }
    }

    /// `a * b`.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn mul(self, o: Self) -> Self {
        if self.is_invalid() || o.is_invalid() {
            return Self::INVALID;
        }
        if self.is_point() && o.is_point() {
            return Self::mul_points(self.lo, o.lo);
        }
        if (self.is_point() && self.lo == 0.0) || (o.is_point() && o.lo == 0.0) {
            // Exactly zero times any real is exactly zero.
            return Self::point(0.0);
        }
        if self.is_point() {
            return o.scale(self.lo);
        }
        if o.is_point() {
            return self.scale(o.lo);
        }
        let p1 = mulz(self.lo, o.lo);
        let p2 = mulz(self.lo, o.hi);
        let p3 = mulz(self.hi, o.lo);
        let p4 = mulz(self.hi, o.hi);
        let lo = p1.min(p2).min(p3).min(p4);
        let hi = p1.max(p2).max(p3).max(p4);
        // Always widen: a zero bound may be an underflowed non-zero product.
        Interval {
            lo: down(lo),
            hi: up(hi),
        }
    }

    /// `self * [k, k]` for a point constant `k` (not NaN): the same result as
    /// `self.mul(Interval::point(k))` and as `Interval::point(k).mul(self)`, bit for bit,
    /// without the tests on `k` that [`Interval::mul`] makes at run time. For the tape's
    /// `k * x` instructions, where `k` is known when the policy loads.
    #[inline]
    pub fn mul_point(self, k: f64) -> Self {
        if self.is_invalid() {
            Self::INVALID
        } else if self.is_point() {
            Self::mul_points(self.lo, k)
        } else if k == 0.0 {
            Self::point(0.0)
        } else {
            self.scale(k)
        }
    }

    /// `[lo, hi] * k` for a non-zero double `k`: two products instead of four.
    #[inline]
    fn scale(self, k: f64) -> Self {
        let (p, q) = (mulz(self.lo, k), mulz(self.hi, k));
        let (pe, qe) = (self.lo == 0.0, self.hi == 0.0); // a zero bound stays exact
        let ((lo, lo_exact), (hi, hi_exact)) = if k > 0.0 {
            ((p, pe), (q, qe))
        } else {
            ((q, qe), (p, pe))
        };
        Interval {
            lo: if lo_exact { lo } else { down(lo) },
            hi: if hi_exact { hi } else { up(hi) },
        }
        .checked()
    }

    #[inline]
    fn mul_points(a: f64, b: f64) -> Self {
        if a == 0.0 || b == 0.0 {
            return Self::point(0.0);
        }
        let p = a * b;
        if p.is_nan() {
            return Self::INVALID;
        }
        // Cheap exactness proof: significands of sa and sb bits multiply into at most
        // sa + sb bits, which fit in 53 when the sum is at most 53 (and the product is a
        // normal number, so no bits were lost to underflow or overflow).
        if exact_product(a, b, p) {
            return Self::point(p);
        }
        // Not provably exact: one ulp each way. (Dekker's TwoProduct would tell the error's
        // sign and keep one side tight, but costs ~17 flops on the hottest path.)
        Interval {
            lo: down(p),
            hi: up(p),
        }
    }

    /// `a / b`; INVALID when `b` contains zero (the quotient is undefined there).
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn div(self, o: Self) -> Self {
        if self.is_invalid() || o.is_invalid() || o.contains(0.0) {
            return Self::INVALID;
        }
        if self.is_point() && o.is_point() {
            let (a, b) = (self.lo, o.lo);
            let q = a / b;
            if q.is_finite() && q != 0.0 {
                if let Some(e) = two_prod_err(q, b, q * b) {
                    if e == 0.0 && q * b == a {
                        return Self::point(q);
                    }
                }
            } else if a == 0.0 {
                return Self::point(0.0);
            }
            return Interval {
                lo: down(q),
                hi: up(q),
            }
            .checked();
        }
        // Both bounds of `o` have one sign and are non-zero, so no 0/0 or inf/inf of the
        // same sign can be a limit of the real quotient except inf/inf, handled as INVALID
        // below through NaN.
        let q1 = self.lo / o.lo;
        let q2 = self.lo / o.hi;
        let q3 = self.hi / o.lo;
        let q4 = self.hi / o.hi;
        if q1.is_nan() || q2.is_nan() || q3.is_nan() || q4.is_nan() {
            return Self::INVALID;
        }
        let lo = q1.min(q2).min(q3).min(q4);
        let hi = q1.max(q2).max(q3).max(q4);
        Interval {
            lo: down(lo),
            hi: up(hi),
        }
    }

    /// `|x|` (exact).
    #[inline]
    pub fn abs(self) -> Self {
        if self.is_invalid() {
            return Self::INVALID;
        }
        if self.lo >= 0.0 {
            self
        } else if self.hi <= 0.0 {
            self.neg()
        } else {
            Interval {
                lo: 0.0,
                hi: (-self.lo).max(self.hi),
            }
        }
    }

    /// `min(a, b)` (exact).
    #[inline]
    pub fn min(self, o: Self) -> Self {
        if self.is_invalid() || o.is_invalid() {
            return Self::INVALID;
        }
        Interval {
            lo: self.lo.min(o.lo),
            hi: self.hi.min(o.hi),
        }
    }

    /// `max(a, b)` (exact).
    #[inline]
    pub fn max(self, o: Self) -> Self {
        if self.is_invalid() || o.is_invalid() {
            return Self::INVALID;
        }
        Interval {
            lo: self.lo.max(o.lo),
            hi: self.hi.max(o.hi),
        }
    }

    /// `x^2`, directly: `[m_lo², m_hi²]` of the magnitudes (tight, never negative).
    #[inline]
    pub fn sq(self) -> Self {
        let m = self.abs();
        if m.is_invalid() {
            return Self::INVALID;
        }
        let lo = m.lo * m.lo;
        let hi = m.hi * m.hi;
        let lo = if exact_square(m.lo, lo) {
            lo
        } else {
            down(lo).max(0.0)
        };
        let hi = if exact_square(m.hi, hi) { hi } else { up(hi) };
        Interval { lo, hi }
    }

    /// `x^n` for an integer `n` (tight: no dependency problem, `x^2 >= 0`).
    pub fn powi(self, n: i32) -> Self {
        if self.is_invalid() {
            return Self::INVALID;
        }
        if n == 0 {
            return Self::point(1.0);
        }
        if n < 0 {
            return Self::point(1.0).div(self.powi(n.saturating_neg()));
        }
        let n = n.unsigned_abs();
        if n == 2 {
            return self.sq();
        }
        if n.is_multiple_of(2) {
            self.abs().pow_nonneg(n)
        } else if self.lo >= 0.0 {
            self.pow_nonneg(n)
        } else if self.hi <= 0.0 {
            self.neg().pow_nonneg(n).neg()
        } else {
            let lo = Self::point(-self.lo).pow_nonneg(n).hi;
            let hi = Self::point(self.hi).pow_nonneg(n).hi;
            Interval { lo: -lo, hi }
        }
    }

    /// `x^n` for `x >= 0` by square-and-multiply; multiplication is monotone there, so the
    /// product of sound enclosures is a sound enclosure of the power.
    fn pow_nonneg(self, mut n: u32) -> Self {
        let mut base = self;
        let mut acc = Self::point(1.0);
        while n > 0 {
            if n & 1 == 1 {
                acc = acc.mul(base);
            }
            n >>= 1;
            if n > 0 {
                base = base.mul(base);
                // A square of a non-negative interval is non-negative.
                base.lo = base.lo.max(0.0);
            }
        }
        acc.lo = acc.lo.max(0.0);
        acc
    }

    /// `x^y` for real `y`: `exp(y * log(x))`, defined for `x > 0` (and `0^y = 0` for a
    /// positive point `y`). Integer exponents should use [`Interval::powi`].
    pub fn pow(self, y: Self) -> Self {
        if self.is_invalid() || y.is_invalid() {
            return Self::INVALID;
        }
        if self.lo == 0.0 && self.hi == 0.0 && y.lo > 0.0 {
            return Self::point(0.0);
        }
        self.log().mul(y).exp()
    }

    /// `sqrt(x)`; INVALID if `x` reaches below zero.
    #[inline]
    pub fn sqrt(self) -> Self {
        if self.is_invalid() || self.lo < 0.0 {
            return Self::INVALID;
        }
        let lo = self.lo.sqrt();
        let hi = self.hi.sqrt();
        let lo = if lo == 0.0 || (lo * lo == self.lo && two_prod_err(lo, lo, lo * lo) == Some(0.0))
        {
            lo
        } else {
            down(lo)
        };
        let hi = if hi * hi == self.hi && two_prod_err(hi, hi, hi * hi) == Some(0.0) {
            hi
        } else {
            up(hi)
        };
        Interval {
            lo: lo.max(0.0),
            hi,
        }
    }

    /// `e^x`.
    pub fn exp(self) -> Self {
        if self.is_invalid() {
            return Self::INVALID;
        }
        Interval {
            lo: down2(libm::exp(self.lo)).max(0.0),
            hi: up2(libm::exp(self.hi)),
        }
    }

    /// Natural logarithm; INVALID if `x` reaches below zero (`log 0 = -inf`).
    pub fn log(self) -> Self {
        if self.is_invalid() || self.lo < 0.0 {
            return Self::INVALID;
        }
        let lo = if self.lo == 0.0 {
            f64::NEG_INFINITY
        } else {
            down2(libm::log(self.lo))
        };
        let hi = if self.hi == 0.0 {
            f64::NEG_INFINITY
        } else {
            up2(libm::log(self.hi))
        };
        if self.hi == 0.0 {
            // log of exactly zero only: every value is -inf, no real result.
            return Self::INVALID;
        }
        Interval { lo, hi }
    }

    /// Hyperbolic tangent.
    pub fn tanh(self) -> Self {
        if self.is_invalid() {
            return Self::INVALID;
        }
        Interval {
            lo: down2(libm::tanh(self.lo)).max(-1.0),
            hi: up2(libm::tanh(self.hi)).min(1.0),
        }
    }

    /// Sine.
    pub fn sin(self) -> Self {
        self.trig(libm::sin, std::f64::consts::FRAC_PI_2)
    }

    /// Cosine.
    pub fn cos(self) -> Self {
        self.trig(libm::cos, 0.0)
    }

    /// Shared range reduction for sine and cosine: `f` has its maxima at
    /// `max_phase + 2kπ` and its minima half a turn later. A critical point within a
    /// slack of the interval is included, so rounding in locating it can only widen.
    fn trig(self, f: fn(f64) -> f64, max_phase: f64) -> Self {
        use std::f64::consts::{PI, TAU};
        if self.is_invalid() {
            return Self::INVALID;
        }
        let full = Interval { lo: -1.0, hi: 1.0 };
        if !(self.lo.is_finite() && self.hi.is_finite())
            || self.lo.abs() > 1e6
            || self.hi.abs() > 1e6
            || self.hi - self.lo >= 6.0
        {
            return full;
        }
        // A point (a state given as a number) needs one evaluation, not two.
        let a = f(self.lo);
        let b = if self.hi == self.lo { a } else { f(self.hi) };
        let mut lo = down2(a.min(b));
        let mut hi = up2(a.max(b));
        let slack = 1e-7;
        let hits = |phase: f64| {
            let k0 = ((self.lo - phase) / TAU).floor() - 1.0;
            (0..4).any(|j| {
                let c = phase + (k0 + f64::from(j)) * TAU;
                c >= self.lo - slack && c <= self.hi + slack
            })
        };
        if hits(max_phase) {
            hi = 1.0;
        }
        if hits(max_phase + PI) {
            lo = -1.0;
        }
        Interval {
            lo: lo.max(-1.0),
            hi: hi.min(1.0),
        }
    }

    // ---- booleans (Kleene logic over {0,1}) ----

    /// The truth value of a condition.
    #[inline]
    pub fn truth(self) -> Truth {
        if self.lo >= 1.0 {
            Truth::True
        } else if self.hi <= 0.0 {
            Truth::False
        } else {
            Truth::Unknown
        }
    }

    /// `a < b`.
    #[inline]
    pub fn lt(self, o: Self) -> Self {
        Truth::cmp(self.hi < o.lo, self.lo >= o.hi)
    }
    /// `a <= b`.
    #[inline]
    pub fn le(self, o: Self) -> Self {
        Truth::cmp(self.hi <= o.lo, self.lo > o.hi)
    }
    /// `a == b`.
    #[inline]
    pub fn eq(self, o: Self) -> Self {
        Truth::cmp(
            self.is_point() && o.is_point() && self.lo == o.lo,
            self.hi < o.lo || o.hi < self.lo,
        )
    }
    /// `a != b`.
    #[inline]
    pub fn ne(self, o: Self) -> Self {
        self.eq(o).not()
    }
    /// `not a`.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        match self.truth() {
            Truth::True => Self::FALSE,
            Truth::False => Self::TRUE,
            Truth::Unknown => Self::UNKNOWN,
        }
    }
    /// `a and b`.
    #[inline]
    pub fn and(self, o: Self) -> Self {
        match (self.truth(), o.truth()) {
            (Truth::False, _) | (_, Truth::False) => Self::FALSE,
            (Truth::True, Truth::True) => Self::TRUE,
            _ => Self::UNKNOWN,
        }
    }
    /// `a or b`.
    #[inline]
    pub fn or(self, o: Self) -> Self {
        match (self.truth(), o.truth()) {
            (Truth::True, _) | (_, Truth::True) => Self::TRUE,
            (Truth::False, Truth::False) => Self::FALSE,
            _ => Self::UNKNOWN,
        }
    }
    /// `if c then a else b`: the taken branch, or the hull of both when `c` is unknown.
    #[inline]
    pub fn select(c: Self, a: Self, b: Self) -> Self {
        match c.truth() {
            Truth::True => a,
            Truth::False => b,
            Truth::Unknown => a.hull(b),
        }
    }
}

/// Four ulps down. `libm`'s documented bound is below one ulp, but its `tanh` was measured
/// 2.2 ulps off for |x| < 0.55 (regression test
/// `tanh_two_ulp_widening_misses_libm_error`), so every transcendental result is widened by
/// four ulps on each side: twice the worst error measured.
#[inline]
fn down2(x: f64) -> f64 {
    down(down(down(down(x))))
}
#[inline]
fn up2(x: f64) -> f64 {
    up(up(up(up(x))))
}

/// A three-valued truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    /// Holds for every point of the box.
    True,
    /// Fails for every point of the box.
    False,
    /// Holds for some points only, or could not be decided (including INVALID operands).
    Unknown,
}

impl Truth {
    #[inline]
    fn cmp(surely: bool, surely_not: bool) -> Interval {
        if surely {
            Interval::TRUE
        } else if surely_not {
            Interval::FALSE
        } else {
            Interval::UNKNOWN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `step_finite` is `next_down`/`next_up` on every finite non-zero double (the signs,
    /// the ends of the range, the subnormals), and never moves a zero.
    #[test]
    fn stepping_the_bits_is_next_down_and_next_up() {
        let mut xs = vec![
            1.0,
            0.1,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            1e-310,
            3.0e300,
            (2.0f64).powi(27) + 1.0,
        ];
        let mut r = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let x = f64::from_bits(r);
            if x.is_finite() && x != 0.0 {
                xs.push(x.abs());
            }
        }
        for x in xs.iter().flat_map(|&x| [x, -x]) {
            assert_eq!(
                step_finite(x, true, -1).to_bits(),
                x.next_down().to_bits(),
                "{x:e}"
            );
            assert_eq!(
                step_finite(x, true, 1).to_bits(),
                x.next_up().to_bits(),
                "{x:e}"
            );
            assert_eq!(step_finite(x, false, 1).to_bits(), x.to_bits());
        }
        for z in [0.0, -0.0f64] {
            assert_eq!(step_finite(z, true, -1).to_bits(), z.to_bits());
            assert_eq!(step_finite(z, true, 1).to_bits(), z.to_bits());
        }
    }

    /// Sums that round to zero were exact, so a zero sum is never widened (the premise of
    /// `step_finite`'s zero mask).
    #[test]
    fn a_sum_that_rounds_to_zero_is_exact() {
        for (a, b) in [
            (5e-324, -5e-324),
            (1e-310, -1e-310),
            (0.1, -0.1),
            (f64::MAX, -f64::MAX),
        ] {
            let s = Interval::point(a).add(Interval::point(b));
            assert_eq!(s, Interval::point(0.0), "{a:e} + {b:e}");
        }
    }

    /// Caught: `1 * -k` (how a linear form carries a leading `-k * u`) was widened to two
    /// ulps, because 1 + 53 significant bits exceed 53.
    #[test]
    fn a_power_of_two_times_anything_is_exact() {
        let k = -1.611_853_795_730_958_2;
        for two in [1.0, -1.0, 0.5, 4.0, 2f64.powi(-30)] {
            let p = Interval::point(two).mul(Interval::point(k));
            assert!(p.is_point() && p.lo == two * k, "{two} * {k} = {p:?}");
            assert_eq!(Interval::point(k).mul_point(two), p);
        }
        // Not when the result may have lost bits to underflow.
        let tiny = Interval::point(2f64.powi(-1000)).mul(Interval::point(1.5e-30));
        assert!(!tiny.is_point(), "{tiny:?}");
        // Nor for two long significands.
        assert!(!Interval::point(0.1).mul(Interval::point(0.3)).is_point());
    }

    /// `exact_square` is `exact_product` of a double with itself.
    #[test]
    fn exact_square_is_exact_product_with_itself() {
        let mut r = 0x2545_f491_4f6c_dd1du64;
        let mut xs = vec![
            0.0,
            1.5,
            3.0,
            0.1,
            1e-160,
            1e-154,
            1e154,
            1e155,
            5e-324,
            f64::MAX,
        ];
        for _ in 0..4000 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            // Random doubles, and ones with short significands.
            xs.push(f64::from_bits(r));
            xs.push(f64::from_bits(r & !((1u64 << (r % 53)) - 1)));
        }
        for x in xs.into_iter().filter(|x| !x.is_nan()).map(f64::abs) {
            let p = x * x;
            assert_eq!(exact_square(x, p), exact_product(x, x, p), "{x:e}");
        }
    }

    /// `mul_point` is `mul` by a point, bit for bit, in either order.
    #[test]
    fn multiplying_by_a_point_constant_is_mul() {
        let vals = [
            0.0,
            -0.0,
            1.0,
            -2.5,
            0.1,
            3.0,
            1e308,
            -1e-310,
            5e-324,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let ks = [0.0, -0.0, 1.0, -1.0, 0.1, -3.5, 1e300, 5e-324, 2.0];
        let same = |a: Interval, b: Interval| {
            (a.is_invalid() && b.is_invalid())
                || (a.lo.to_bits() == b.lo.to_bits() && a.hi.to_bits() == b.hi.to_bits())
        };
        for &lo in &vals {
            for &hi in &vals {
                let x = if lo <= hi {
                    Interval { lo, hi }
                } else {
                    Interval::INVALID
                };
                for &k in &ks {
                    let m = x.mul_point(k);
                    assert!(same(m, x.mul(Interval::point(k))), "{x:?} * {k:e}");
                    assert!(same(m, Interval::point(k).mul(x)), "{k:e} * {x:?}");
                }
            }
        }
    }

    #[test]
    fn exact_sums_stay_points() {
        let a = Interval::point(1.5).sub(Interval::point(1.5));
        assert_eq!(a, Interval::point(0.0));
        let b = Interval::point(0.1).add(Interval::point(0.2));
        assert!(
            b.lo < b.hi,
            "0.1 + 0.2 is inexact and must be widened: {b:?}"
        );
        assert_eq!(b.hi - b.lo, (0.1f64 + 0.2).next_up() - (0.1f64 + 0.2));
    }

    #[test]
    fn exact_products_stay_points() {
        assert_eq!(Interval::point(1.5).powi(2), Interval::point(2.25));
        let p = Interval::point(0.1).mul(Interval::point(0.1));
        assert!(p.lo < p.hi);
        assert!(p.contains(0.1 * 0.1));
    }

    #[test]
    fn division_by_interval_containing_zero_is_invalid() {
        let r = Interval::point(1.0).div(Interval::new(-1.0, 1.0));
        assert!(r.is_invalid());
        assert_eq!(r.le(Interval::point(5.0)).truth(), Truth::Unknown);
        assert!(Interval::point(1.0).div(Interval::point(0.0)).is_invalid());
    }

    #[test]
    fn invalid_never_decides_a_comparison_even_through_bounded_functions() {
        let bad = Interval::point(-1.0).sqrt();
        assert!(bad.is_invalid());
        assert!(bad.tanh().is_invalid());
        assert!(bad.sin().is_invalid());
        assert!(bad.abs().min(Interval::point(0.0)).is_invalid());
        assert_eq!(bad.tanh().le(Interval::point(2.0)).truth(), Truth::Unknown);
    }

    #[test]
    fn overflow_keeps_a_sound_lower_bound() {
        let big = Interval::point(f64::MAX);
        let s = big.add(big);
        assert_eq!(s.hi, f64::INFINITY);
        assert_eq!(s.lo, f64::MAX);
        assert!(Interval::ENTIRE.sub(Interval::ENTIRE).lo == f64::NEG_INFINITY);
        let m = Interval::point(0.0).mul(Interval::ENTIRE);
        assert_eq!(m, Interval::point(0.0));
    }

    #[test]
    fn underflowed_product_is_not_exact_zero() {
        let t = Interval::point(1e-200).mul(Interval::point(1e-200));
        assert!(t.lo <= 0.0);
        assert!(t.hi > 0.0, "the exact product is positive: {t:?}");
    }

    #[test]
    fn trig_includes_interior_extrema() {
        let s = Interval::new(1.0, 2.0).sin();
        assert_eq!(s.hi, 1.0);
        let c = Interval::new(3.0, 3.3).cos();
        assert_eq!(c.lo, -1.0);
        let c2 = Interval::new(-0.1, 0.1).cos();
        assert_eq!(c2.hi, 1.0);
    }

    #[test]
    fn powi_even_is_nonnegative() {
        let r = Interval::new(-2.0, 3.0).powi(2);
        assert_eq!(r.lo, 0.0);
        assert!(r.hi >= 9.0);
        let o = Interval::new(-2.0, 3.0).powi(3);
        assert!(o.lo <= -8.0 && o.hi >= 27.0);
    }
}
