//! Tier 1's fast path for linear rows: `Σ kᵢ·xᵢ + c ≤ 0`-shaped margins evaluated in plain
//! round-to-nearest arithmetic with one a-priori error bound, instead of one outward-rounded
//! interval operation per term.
//!
//! Why: a dense row such as `0.5*u0 + 0.2*u1 - 0.1*u2 + ... <= 1` costs the tape ~2n
//! interval operations (each two roundings, a branch on the signs and a `next_up`/`next_down`
//! pair), and a policy of dense linear rows spends most of every check there. Summing in
//! plain `f64` and then widening once by the classical bound on a floating-point sum
//! (error-free transformations: Knuth's TwoSum, and exactness tests on the products) gives
//! an enclosure just as sound, usually tighter (a variable that occurs twice is merged into
//! one term), at a fraction of the cost. It is hand-written because it is Tier 1: small, bounded,
//! allocation-free and checked against exact rationals (`tests/linear_soundness.rs`).
//! Rows of fewer than [`MIN_TERMS`] terms stay on the tape, which is as fast for them.
//!
//! **The bound.** Each term `kᵢ·xᵢ` is one round-to-nearest product per endpoint (RN is
//! monotone, so the least rounded endpoint product is the rounded least one), whose error
//! is 0 when the product is exact (a zero factor, or a power-of-two factor with a normal
//! result), at most `2u·|p|` for another normal result `p` (`u = 2⁻⁵³`), and at most
//! `f64::MIN_POSITIVE` when it may have underflowed. Each addition's error is recovered
//! exactly by TwoSum. The lower and upper sums are widened by the sum of those errors
//! (itself rounded up), so an exact computation — the common case at a boundary, such as
//! `lift_h + dt * lift_v <= 1.8` at `lift_h = 1.8, lift_v = 0` — is not widened at all,
//! exactly like the tape's outward rounding (a widening there made the fallback
//! uncertifiable at load: regression test `an_exact_boundary_margin_is_not_widened`).
//!
//! **Faults.** An invalid input makes the margin INVALID (as on the tape). Any non-finite
//! partial result (an infinite input, an overflow) makes the margin ENTIRE: UNCERTAIN,
//! never a wrong SAT.

use crate::expr::typeck::{Func, Op2, Term};
use crate::policy::Sense;
use crate::tier1::interval::{mulz, Interval};

/// Rows with fewer terms than this are left to the tape (see `linear_row`).
pub const MIN_TERMS: usize = 4;

/// One linear margin `c + Σ kᵢ·input[slotᵢ]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearRow {
    /// The tape slot the margin is written to.
    pub margin: u32,
    /// The constant term.
    pub c: Interval,
    /// `(input index, coefficient)`, one per distinct input.
    pub terms: Vec<(u32, Interval)>,
    /// The terms with a point coefficient, `(input index, coefficient)`: those with a
    /// positive coefficient first (`npos` of them), then the negative ones. Derived from
    /// `terms` by [`LinearRow::new`]; what [`eval`]'s plain pass reads.
    points: Vec<(u32, f64)>,
    npos: usize,
    /// The terms whose coefficient is an interval of positive width (or NaN): rare (a
    /// constant such as `1/3` folded outward), and summed the general way.
    wide: Vec<(u32, Interval)>,
}

impl LinearRow {
    /// The row `c + Σ terms`, with the sign-split layout [`eval`] reads.
    pub fn new(margin: u32, c: Interval, terms: Vec<(u32, Interval)>) -> LinearRow {
        let point = |k: &Interval| k.lo == k.hi && k.lo.is_finite();
        let pos = terms
            .iter()
            .filter(|(_, k)| point(k) && k.lo >= 0.0)
            .map(|&(i, k)| (i, k.lo));
        let neg = terms
            .iter()
            .filter(|(_, k)| point(k) && k.lo < 0.0)
            .map(|&(i, k)| (i, k.lo));
        let points: Vec<(u32, f64)> = pos.chain(neg).collect();
        let npos = terms
            .iter()
            .filter(|(_, k)| point(k) && k.lo >= 0.0)
            .count();
        let wide = terms.iter().copied().filter(|(_, k)| !point(k)).collect();
        LinearRow {
            margin,
            c,
            terms,
            points,
            npos,
            wide,
        }
    }
}

/// The linear form of `t`, if it has one: `(constant, terms)`.
fn form(t: &Term) -> Option<(Interval, Vec<(u32, Interval)>)> {
    let ok = |i: Interval| !i.is_invalid() && i.lo.is_finite() && i.hi.is_finite();
    match t {
        Term::Const(c) => ok(*c).then(|| (*c, Vec::new())),
        Term::Input(k) => Some((Interval::point(0.0), vec![(*k, Interval::point(1.0))])),
        Term::Un(Func::Neg, a) => {
            let (c, ts) = form(a)?;
            Some((c.neg(), ts.into_iter().map(|(k, x)| (k, x.neg())).collect()))
        }
        Term::Bin(op @ (Op2::Add | Op2::Sub), a, b) => {
            let (ca, mut ta) = form(a)?;
            let (cb, tb) = form(b)?;
            let sub = *op == Op2::Sub;
            let c = if sub { ca.sub(cb) } else { ca.add(cb) };
            for (k, x) in tb {
                let x = if sub { x.neg() } else { x };
                match ta.iter_mut().find(|(j, _)| *j == k) {
                    Some((_, y)) => *y = y.add(x),
                    None => ta.push((k, x)),
                }
            }
            (ok(c) && ta.iter().all(|(_, x)| ok(*x))).then_some((c, ta))
        }
        Term::Bin(Op2::Mul, a, b) => {
            let (fa, fb) = (form(a)?, form(b)?);
            // One side must be a constant.
            let ((c, ts), k) = match (fa.1.is_empty(), fb.1.is_empty()) {
                (_, true) => (fa, fb.0),
                (true, false) => (fb, fa.0),
                (false, false) => return None,
            };
            let c = c.mul(k);
            let ts: Vec<(u32, Interval)> = ts.into_iter().map(|(j, x)| (j, x.mul(k))).collect();
            (ok(c) && ts.iter().all(|(_, x)| ok(*x))).then_some((c, ts))
        }
        Term::Bin(Op2::Div, a, b) => {
            let (c, ts) = form(a)?;
            let (k, kt) = form(b)?;
            if !kt.is_empty() || k.contains(0.0) {
                return None;
            }
            let c = c.div(k);
            let ts: Vec<(u32, Interval)> = ts.into_iter().map(|(j, x)| (j, x.div(k))).collect();
            (ok(c) && ts.iter().all(|(_, x)| ok(*x))).then_some((c, ts))
        }
        _ => None,
    }
}

/// The linear form of the margin `rhs − lhs` of a `<=` / `<` row writing to slot `margin`,
/// if both sides are linear in the inputs with finite constant coefficients.
pub(crate) fn linear_row(sense: Sense, lhs: &Term, rhs: &Term, margin: u32) -> Option<LinearRow> {
    if !matches!(sense, Sense::Le | Sense::Lt) {
        return None;
    }
    let d = Term::bin(Op2::Sub, rhs.clone(), lhs.clone());
    let (c, terms) = form(&d)?;
    // Terms whose coefficient is exactly zero read nothing.
    let terms: Vec<(u32, Interval)> = terms
        .into_iter()
        .filter(|(_, k)| !(k.lo == 0.0 && k.hi == 0.0))
        .collect();
    // Short rows stay on the tape: with one to three terms it is as fast (their
    // subexpressions are often shared with other rows there), and the fast path's fixed
    // cost per row (the bound, the rounding) made the warehouse check slower (BENCHMARKS.md,
    // "Figures moved out of comments"). A constant row (no input) stays there too, folded.
    (terms.len() >= MIN_TERMS).then(|| LinearRow::new(margin, c, terms))
}

/// Is `x` a normal power of two (so multiplying by it is exact unless the result leaves
/// the normal range)?
#[inline]
fn pow2(x: f64) -> bool {
    x.is_normal() && x.to_bits() & ((1u64 << 52) - 1) == 0
}

/// A bound on `|RN(k·x) − k·x|` given the rounded product `p`: zero when the product is
/// exact (a zero factor, or a power-of-two factor with a normal result), `2u·|p|` for any
/// other normal result, and `f64::MIN_POSITIVE` when the result may have underflowed.
#[inline]
fn prod_err(k: f64, x: f64, p: f64) -> f64 {
    if k == 0.0 || x == 0.0 {
        0.0
    } else if p.abs() >= f64::MIN_POSITIVE {
        if pow2(k) || pow2(x) {
            0.0
        } else {
            p.abs() * f64::EPSILON
        }
    } else {
        f64::MIN_POSITIVE
    }
}

/// Knuth's TwoSum: `s = RN(a + b)` and the exact error `a + b − s` (for finite values).
#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// The sound enclosure of `row`'s margin over `inputs` (see the module documentation).
///
/// First a plain pass (products and sums in round-to-nearest; the lower sum, the upper sum
/// and the sum of magnitudes each in two accumulators) widened by the a-priori bound `(N + 2)·2⁻⁵²·Σ|tᵢ| + (N + 1)·MIN_POSITIVE`
/// (at least twice Higham's `γ_{N+1}·Σ|tᵢ|` plus every underflow). When that already
/// decides the sign (`lo > 0` or `hi < 0`: SAT or VIOLATED for `<=` and `<` alike) it is the
/// answer; otherwise — a margin at or near zero — [`eval_exact`] tracks every rounding
/// error, so an exact zero stays exactly zero.
#[inline]
pub fn eval(row: &LinearRow, inputs: &[Interval]) -> Interval {
    // No NaN test and no `0 × ∞` special case here: an invalid input or an infinite
    // product makes a partial result NaN or infinite, and then `eval_exact` (which
    // handles both) decides.
    let input = |k: u32| inputs.get(k as usize).copied().unwrap_or(Interval::INVALID);
    // Each sum is split in partial sums (`point_sums`, the two signs): the bound below holds
    // for any order of summation.
    // A point coefficient `k` needs no min/max of corner products: RN is monotone, so for
    // `k >= 0` the least rounded product is `RN(k·x.lo)` and the greatest `RN(k·x.hi)`,
    // and the other way round for `k < 0` — which is why the terms are split by sign when
    // the row is built. `|RN(k·x.lo)| + |RN(k·x.hi)|` bounds the term's magnitude (twice
    // it for a point input): a larger `mag` only widens the bound.
    let (pos, neg) = row.points.split_at(row.npos.min(row.points.len()));
    let (pl, ph, pm) = point_sums(pos, inputs);
    let (nl, nh, nm) = point_sums(neg, inputs);
    let mut lo = [row.c.lo + pl, nh];
    let mut hi = [row.c.hi + ph, nl];
    let mut mag = [row.c.lo.abs().max(row.c.hi.abs()) + pm, nm];
    for &(k, coef) in &row.wide {
        let x = input(k);
        let p1 = coef.lo * x.lo;
        let p2 = coef.lo * x.hi;
        let p3 = coef.hi * x.lo;
        let p4 = coef.hi * x.hi;
        let (l, h) = (p1.min(p2).min(p3).min(p4), p1.max(p2).max(p3).max(p4));
        // `min`/`max` drop a NaN operand: a NaN coefficient or input goes to the exact pass.
        let nan = if coef.is_invalid() || x.is_invalid() {
            f64::NAN
        } else {
            0.0
        };
        lo[0] += l + nan;
        hi[0] += h + nan;
        mag[0] += l.abs().max(h.abs());
    }
    let (lo, hi, mag) = (lo[0] + lo[1], hi[0] + hi[1], mag[0] + mag[1]);
    #[expect(
        clippy::cast_precision_loss,
        reason = "a term count far below 2^52 converts exactly"
    )]
    let n = row.terms.len() as f64;
    let e = (n + 2.0) * f64::EPSILON * mag + (n + 1.0) * f64::MIN_POSITIVE;
    let r = Interval {
        lo: (lo - e).next_down(),
        hi: (hi + e).next_up(),
    };
    if r.lo.is_finite() && r.hi.is_finite() && (r.lo > 0.0 || r.hi < 0.0) {
        r
    } else {
        eval_exact(row, inputs)
    }
}

/// `(Σ kᵢ·xᵢ.lo, Σ kᵢ·xᵢ.hi, Σ |kᵢ·xᵢ.lo| + |kᵢ·xᵢ.hi|)` over point-coefficient terms, in
/// round-to-nearest, each sum in two accumulators (even and odd terms), written lane by lane
/// over `[x.lo, x.hi]` (which the compiler may pair into two-lane operations).
#[inline(always)]
fn point_sums(terms: &[(u32, f64)], inputs: &[Interval]) -> (f64, f64, f64) {
    let ends = |k: u32| {
        let x = inputs.get(k as usize).copied().unwrap_or(Interval::INVALID);
        [x.lo, x.hi]
    };
    // [accumulator][lane]: lane 0 sums products with `x.lo`, lane 1 with `x.hi`.
    let mut s = [[0.0f64; 2]; 2];
    let mut m = [[0.0f64; 2]; 2];
    let mut pairs = terms.chunks_exact(2);
    for pair in &mut pairs {
        if let [(k0, c0), (k1, c1)] = *pair {
            let ([a0, b0], [a1, b1]) = (ends(k0), ends(k1));
            let (l0, h0, l1, h1) = (c0 * a0, c0 * b0, c1 * a1, c1 * b1);
            let [[s00, s01], [s10, s11]] = &mut s;
            let [[m00, m01], [m10, m11]] = &mut m;
            *s00 += l0;
            *s01 += h0;
            *s10 += l1;
            *s11 += h1;
            *m00 += l0.abs();
            *m01 += h0.abs();
            *m10 += l1.abs();
            *m11 += h1.abs();
        }
    }
    let [[mut s00, mut s01], [s10, s11]] = s;
    let [[mut m00, mut m01], [m10, m11]] = m;
    for &(k, c) in pairs.remainder() {
        let [a, b] = ends(k);
        let (l, h) = (c * a, c * b);
        s00 += l;
        s01 += h;
        m00 += l.abs();
        m01 += h.abs();
    }
    (s00 + s10, s01 + s11, (m00 + m10) + (m01 + m11))
}

/// The enclosure with every rounding error tracked (TwoSum on each addition, exactness
/// tests on each product): not widened at all when the computation was exact.
pub fn eval_exact(row: &LinearRow, inputs: &[Interval]) -> Interval {
    let (mut lo, mut hi) = (row.c.lo, row.c.hi);
    // Bounds on the accumulated rounding errors of the lower and upper sums: products
    // (`prod_err`) plus the exact error of every addition (TwoSum).
    let (mut elo, mut ehi) = (0.0f64, 0.0f64);
    for &(k, coef) in &row.terms {
        let x = inputs.get(k as usize).copied().unwrap_or(Interval::INVALID);
        if x.is_invalid() {
            return Interval::INVALID;
        }
        let (tl, th, e) = if x.lo == x.hi && coef.lo == coef.hi {
            let p = mulz(coef.lo, x.lo);
            (p, p, prod_err(coef.lo, x.lo, p))
        } else {
            let p1 = mulz(coef.lo, x.lo);
            let p2 = mulz(coef.lo, x.hi);
            let p3 = mulz(coef.hi, x.lo);
            let p4 = mulz(coef.hi, x.hi);
            // RN is monotone: the least rounded product is the rounded least product.
            let e = prod_err(coef.lo, x.lo, p1)
                .max(prod_err(coef.lo, x.hi, p2))
                .max(prod_err(coef.hi, x.lo, p3))
                .max(prod_err(coef.hi, x.hi, p4));
            (p1.min(p2).min(p3).min(p4), p1.max(p2).max(p3).max(p4), e)
        };
        let (l, dl) = two_sum(lo, tl);
        let (h, dh) = two_sum(hi, th);
        lo = l;
        hi = h;
        elo += e + dl.abs();
        ehi += e + dh.abs();
    }
    if !(lo.is_finite() && hi.is_finite() && elo.is_finite() && ehi.is_finite()) {
        return Interval::ENTIRE;
    }
    if elo == 0.0 && ehi == 0.0 {
        // Every product and every sum was exact.
        return Interval { lo, hi };
    }
    // The error sums are sums of at most 2N + 1 non-negative terms each, computed in
    // round-to-nearest: scaling by (1 + (2N + 4)·2⁻⁵²) and one more ulp bounds them.
    #[expect(
        clippy::cast_precision_loss,
        reason = "a term count far below 2^52 converts exactly"
    )]
    let grow = 1.0 + (2.0 * row.terms.len() as f64 + 4.0) * f64::EPSILON;
    let (elo, ehi) = ((elo * grow).next_up(), (ehi * grow).next_up());
    Interval {
        lo: if elo == 0.0 {
            lo
        } else {
            (lo - elo).next_down()
        },
        hi: if ehi == 0.0 { hi } else { (hi + ehi).next_up() },
    }
}

/// The most inputs a [`LinearBlock`] may read (its working arrays live on the stack).
pub const BLOCK_MAX: usize = 32;

/// Linear rows that read exactly the same inputs, every coefficient a point: a policy of
/// dense rows over the same action variables (a polytope `A u <= b`) is one block.
///
/// Why: evaluated row by row, each term reads its input through an index and picks its
/// ends by the coefficient's sign, ~15 instructions a term. A block turns each input
/// into midpoint-radius form once per check (`x ⊆ m ± r`, `r` rounded up), and then each
/// row is three dot products over contiguous arrays, `Σ kⱼ·mⱼ`, `Σ |kⱼ|·|mⱼ|` and
/// `Σ |kⱼ|·rⱼ` (the last skipped when every input is a point): for `k·x` with `x` in
/// `[m − r, m + r]`, `k·x` lies in `[k·m − |k|·r, k·m + |k|·r]`. The rounding bound is
/// that of [`eval`] over the `2n + 1` addends, and a margin it cannot decide goes to
/// [`eval_exact`] of the row, as in [`eval`]. Checked against exact rationals in
/// `tests/linear_soundness.rs`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearBlock {
    /// The inputs every row of the block reads, ascending.
    pub inputs: Vec<u32>,
    /// Its rows, as indices into the row list it was built from.
    pub rows: Vec<u32>,
    /// Row-major coefficients, one row per entry of `rows`, aligned with `inputs`.
    k: Vec<f64>,
    /// Their magnitudes.
    kabs: Vec<f64>,
}

/// Group `rows` into blocks: rows with point coefficients only that read the same inputs
/// (at most [`BLOCK_MAX`]), in groups of at least two. The rows left out (`false` in the
/// second result) are evaluated one by one.
pub fn blocks(rows: &[LinearRow]) -> (Vec<LinearBlock>, Vec<bool>) {
    let key = |r: &LinearRow| -> Option<Vec<u32>> {
        if !r.wide.is_empty() || r.points.len() != r.terms.len() || r.terms.len() > BLOCK_MAX {
            return None;
        }
        let mut ins: Vec<u32> = r.terms.iter().map(|t| t.0).collect();
        ins.sort_unstable();
        ins.dedup();
        (ins.len() == r.terms.len()).then_some(ins)
    };
    let keys: Vec<Option<Vec<u32>>> = rows.iter().map(key).collect();
    let mut in_block = vec![false; rows.len()];
    let mut out = Vec::new();
    for (i, ki) in keys.iter().enumerate() {
        let Some(ki) = ki else { continue };
        if in_block.get(i).copied().unwrap_or(true) {
            continue;
        }
        let members: Vec<usize> = keys
            .iter()
            .enumerate()
            .skip(i)
            .filter(|(j, kj)| kj.as_ref() == Some(ki) && !in_block.get(*j).copied().unwrap_or(true))
            .map(|(j, _)| j)
            .collect();
        if members.len() < 2 {
            continue;
        }
        let n = ki.len();
        let mut k = vec![0.0; members.len() * n];
        for (r, &j) in members.iter().enumerate() {
            let Some(row) = rows.get(j) else { continue };
            for &(input, coef) in &row.terms {
                if let (Ok(pos), Some(dst)) = (ki.binary_search(&input), k.get_mut(r * n..)) {
                    if let Some(x) = dst.get_mut(pos) {
                        *x = coef.lo;
                    }
                }
            }
            if let Some(b) = in_block.get_mut(j) {
                *b = true;
            }
        }
        let kabs = k.iter().map(|x| x.abs()).collect();
        out.push(LinearBlock {
            inputs: ki.clone(),
            rows: members
                .iter()
                .filter_map(|&j| u32::try_from(j).ok())
                .collect(),
            k,
            kabs,
        });
    }
    (out, in_block)
}

/// Evaluate every row of `block` (`rows` is the list it was built from) over `inputs`, and
/// hand each margin with its row to `write`.
pub fn eval_block(
    block: &LinearBlock,
    rows: &[LinearRow],
    inputs: &[Interval],
    mut write: impl FnMut(&LinearRow, Interval),
) {
    let n = block.inputs.len();
    let mut mid = [0.0f64; BLOCK_MAX];
    let mut mabs = [0.0f64; BLOCK_MAX];
    let mut rad = [0.0f64; BLOCK_MAX];
    let mut wide = false;
    for (((&k, m), a), r) in block
        .inputs
        .iter()
        .zip(mid.iter_mut())
        .zip(mabs.iter_mut())
        .zip(rad.iter_mut())
    {
        let x = inputs.get(k as usize).copied().unwrap_or(Interval::INVALID);
        if x.lo == x.hi {
            *m = x.lo;
        } else {
            // `[m − r, m + r] ⊇ x`: `r` is the larger distance to an end, rounded up (a
            // subtraction's error is at most half an ulp of its result, and an exact one —
            // `m` near an end — needs no step, but takes one anyway). A NaN or infinite end
            // makes `m` or `r` non-finite, and the row goes to the exact pass.
            *m = 0.5 * x.lo + 0.5 * x.hi;
            let (d1, d2) = (*m - x.lo, x.hi - *m);
            *r = (if d1 >= d2 { d1 } else { d2 }).next_up();
            if x.is_invalid() {
                *r = f64::NAN;
            }
            wide = true;
        }
        *a = m.abs();
    }
    let (mid, mabs, rad) = (
        mid.get(..n).unwrap_or(&[]),
        mabs.get(..n).unwrap_or(&[]),
        rad.get(..n).unwrap_or(&[]),
    );
    #[expect(
        clippy::cast_precision_loss,
        reason = "a term count far below 2^52 converts exactly"
    )]
    let addends = (2 * n + 1) as f64;
    let (ke, ku) = (
        (addends + 2.0) * f64::EPSILON,
        (addends + 1.0) * f64::MIN_POSITIVE,
    );
    for ((&ri, kr), ka) in block
        .rows
        .iter()
        .zip(block.k.chunks_exact(n.max(1)))
        .zip(block.kabs.chunks_exact(n.max(1)))
    {
        let Some(row) = rows.get(ri as usize) else {
            continue;
        };
        let s1 = dot(kr, mid);
        let sa = dot(ka, mabs);
        let s2 = if wide { dot(ka, rad) } else { 0.0 };
        let (lo, hi) = (row.c.lo + s1 - s2, row.c.hi + s1 + s2);
        let mag = row.c.lo.abs().max(row.c.hi.abs()) + sa + s2;
        let e = ke * mag + ku;
        let r = Interval {
            lo: (lo - e).next_down(),
            hi: (hi + e).next_up(),
        };
        let out = if r.lo.is_finite() && r.hi.is_finite() && (r.lo > 0.0 || r.hi < 0.0) {
            r
        } else {
            eval_exact(row, inputs)
        };
        write(row, out);
    }
}

/// `Σ a_k b_k`, for slices of equal length.
///
/// INVARIANT (fixed-summation-order): four partial sums over `k mod 4`, combined as
/// `(s0 + s1) + (s2 + s3)` and then the tail left to right. The order depends only on the
/// length, so results are bit-identical everywhere, while the independent chains let the
/// compiler vectorise.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    let mut acc = [0.0f64; 4];
    for (x, y) in ca.zip(cb) {
        if let (Ok(x), Ok(y)) = (<&[f64; 4]>::try_from(x), <&[f64; 4]>::try_from(y)) {
            acc[0] += x[0] * y[0];
            acc[1] += x[1] * y[1];
            acc[2] += x[2] * y[2];
            acc[3] += x[3] * y[3];
        }
    }
    let [s0, s1, s2, s3] = acc;
    ta.iter()
        .zip(tb)
        .fold((s0 + s1) + (s2 + s3), |s, (x, y)| s + x * y)
}
