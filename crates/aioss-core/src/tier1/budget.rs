//! A budget's rolling window: the governor-held accumulator `budget.<name>` reads. Part of
//! the trusted checker because a critical cap such as `budget.daily_spend + amount <=
//! 50000` is only as sound as the interval the window hands to the check.
//!
//! INVARIANT (budget-sound): [`Window::value`] contains the exact sum of the amounts
//! charged at times `t` with `now − t < window` (the window's length) as of the last
//! [`Window::evict`]. It holds because every sum and difference is outward-rounded by the
//! kernel, an entry is evicted only when its age is certainly at least the window's length
//! (its age rounded down), and an amount that could not be computed makes the value
//! unbounded above (fail closed) until that entry leaves the window.

use std::collections::VecDeque;

use crate::tier1::interval::Interval;

/// The amounts charged to one budget within its window.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// `(time, amount)` of executed actions still in the window, oldest first; an amount
    /// that could not be computed is `+inf`.
    entries: VecDeque<(f64, f64)>,
    /// Sound bounds on the exact sum of the finite amounts in the window (outward-rounded,
    /// so sums of whole numbers stay points and a cap at exactly the limit is SAT).
    sum: Interval,
    /// How many entries have an amount that could not be computed.
    unknown: usize,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            entries: VecDeque::new(),
            sum: Interval::point(0.0),
            unknown: 0,
        }
    }
}

impl Window {
    /// Drop the entries at least `window` seconds older than `now`.
    pub fn evict(&mut self, now: f64, window: f64) {
        while let Some(&(t, a)) = self.entries.front() {
            // The age rounded down: an entry that may still be inside stays (so does one
            // whose age is NaN: a NaN time).
            let age = Interval::point(now).sub(Interval::point(t)).lo;
            let expired = age >= window;
            if !expired {
                break;
            }
            self.entries.pop_front();
            if a.is_finite() {
                self.sum = self.sum.sub(Interval::point(a));
            } else {
                self.unknown = self.unknown.saturating_sub(1);
            }
        }
        if self.entries.is_empty() {
            // INVARIANT (budget-exact): an empty window is exactly zero.
            self.sum = Interval::point(0.0);
            self.unknown = 0;
        }
    }

    /// Charge the increment `add` (an enclosure of what the executed action adds) at
    /// `now`: its upper bound, so a cap is never under-counted. Returns `false` when the
    /// increment is undefined or unbounded; the window's value is then unbounded above
    /// until that entry leaves the window.
    pub fn charge(&mut self, now: f64, add: Interval) -> bool {
        if add.is_invalid() || !add.hi.is_finite() {
            self.entries.push_back((now, f64::INFINITY));
            self.unknown += 1;
            return false;
        }
        if add.hi != 0.0 {
            self.entries.push_back((now, add.hi));
            self.sum = self.sum.add(Interval::point(add.hi));
        }
        true
    }

    /// The accumulated value as a sound interval.
    pub fn value(&self) -> Interval {
        if self.unknown > 0 {
            Interval {
                lo: self.sum.lo,
                hi: f64::INFINITY,
            }
        } else {
            self.sum
        }
    }

    /// A window as a snapshot of the governor state recorded it: its entries (oldest
    /// first; an amount that could not be computed is `+inf`) and its running sum. Trusted
    /// as far as the log that holds the snapshot is (its hash chain and signatures; a
    /// snapshot that lists fewer entries would under-count whatever its sum says, so the
    /// sum is not re-derived here: see docs/security.md). The running sum is kept as it
    /// was because its outward rounding depends on the order of past additions and
    /// evictions, and decisions after a restore must be those of the governor that wrote
    /// it.
    pub fn restore(entries: Vec<(f64, f64)>, sum: Interval) -> Window {
        let unknown = entries.iter().filter(|(_, a)| !a.is_finite()).count();
        Window {
            entries: entries.into(),
            sum: if sum.is_invalid() {
                Interval::ENTIRE
            } else {
                sum
            },
            unknown,
        }
    }

    /// The running sum of the finite amounts (what a snapshot records; [`Window::value`]
    /// is what a check reads).
    pub fn sum(&self) -> Interval {
        self.sum
    }

    /// The entries, oldest first (what the governor's state digest hashes).
    pub fn entries(&self) -> impl Iterator<Item = &(f64, f64)> {
        self.entries.iter()
    }

    /// How many entries the window holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Does the window hold nothing?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_window_evicts_and_returns_to_exact_zero() {
        let mut w = Window::default();
        w.charge(0.0, Interval::point(0.1));
        w.charge(1.0, Interval::point(0.2));
        // 0.1 + 0.2 is not a double: the window holds the exact sum, so it is not a point.
        assert!(w.value().contains(0.30000000000000004) && !w.value().is_point());
        w.evict(10.5, 10.0);
        assert!(w.value().contains(0.2));
        w.charge(10.6, Interval::point(7.0));
        let mut x = Window::default();
        x.charge(0.0, Interval::point(40_000.0));
        x.charge(0.0, Interval::point(10_000.0));
        assert_eq!(
            x.value(),
            Interval::point(50_000.0),
            "whole numbers add exactly"
        );
        w.evict(11.0, 10.0);
        assert!(w.value().contains(7.0), "{:?}", w.value());
        w.evict(21.0, 10.0);
        assert_eq!(w.value(), Interval::point(0.0));
    }

    /// Caught in review: an undefined increment was charged as 0, so a budget whose `add`
    /// could be made undefined (a division by a state near 0) was never spent. Now the
    /// window is unbounded above until that entry leaves it: every cap on it fails closed.
    #[test]
    fn an_undefined_amount_makes_the_window_unbounded_until_it_leaves() {
        let mut w = Window::default();
        w.charge(0.0, Interval::point(5.0));
        assert!(!w.charge(1.0, Interval::INVALID));
        assert_eq!(w.value().hi, f64::INFINITY);
        assert!(!w.charge(2.0, Interval::new(0.0, f64::INFINITY)));
        w.evict(10.5, 10.0);
        assert_eq!(
            w.value().hi,
            f64::INFINITY,
            "one unknown entry is still inside"
        );
        w.evict(12.0, 10.0);
        assert_eq!(w.value(), Interval::point(0.0));
    }

    /// Caught in review: `t > now - window` evicted an entry a rounding error short of a
    /// whole window old: `1.0 - 0.1` rounds up to `0.9`, so an entry charged at `0.9` left
    /// at `1.0`, although its exact age there (`0.0999999999999999778`) is below the
    /// window (`0.1000000000000000056`). It leaves only once its age certainly is not.
    #[test]
    fn an_entry_stays_until_its_age_is_certainly_the_window() {
        let mut w = Window::default();
        w.charge(0.9, Interval::point(1.0));
        w.evict(1.0, 0.1);
        assert_eq!(
            w.value(),
            Interval::point(1.0),
            "not yet a whole window old"
        );
        w.evict(1.0f64.next_up(), 0.1);
        assert_eq!(w.value(), Interval::point(0.0));
    }
}
