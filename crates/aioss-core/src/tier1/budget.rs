//! A budget's rolling window: the governor-held accumulator `budget.<name>` reads. Part of
//! the trusted checker because a critical cap such as `budget.daily_spend + amount <=
//! 50000` is only as sound as the interval the window hands to the check.
//!
//! INVARIANT (budget-sound): [`Window::value`] contains the exact sum of the amounts
//! charged at times `t` with `now − t < window` (the window's length) as of the last
//! [`Window::evict`], each amount the exact increment of an executed action at some state
//! of its box. It holds because each charge is the increment's whole enclosure (so a cap
//! and a floor on the budget are both sound), every sum and difference is outward-rounded
//! by the kernel, an entry is evicted only when its age is certainly at least the window's
//! length (its age rounded down), and an amount that could not be computed makes the value
//! unbounded (fail closed) until that entry leaves the window.

use std::collections::VecDeque;

use crate::tier1::interval::Interval;

/// The amounts charged to one budget within its window.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// `(time, amount)` of executed actions still in the window, oldest first; an amount
    /// that could not be computed is ENTIRE.
    entries: VecDeque<(f64, Interval)>,
    /// Sound bounds on the exact sums of the bounded amounts' lower bounds and of their
    /// upper bounds (outward-rounded, so sums of whole numbers stay points and a cap at
    /// exactly the limit is SAT). Two sums, not one interval sum, so that evicting an
    /// amount known as `[lo, hi]` takes back exactly what charging it added (an interval
    /// difference would widen by the amount's width each time).
    sum_lo: Interval,
    sum_hi: Interval,
    /// How many entries have an amount that could not be computed.
    unknown: usize,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            entries: VecDeque::new(),
            sum_lo: Interval::point(0.0),
            sum_hi: Interval::point(0.0),
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
            if bounded(a) {
                self.sum_lo = self.sum_lo.sub(Interval::point(a.lo));
                self.sum_hi = self.sum_hi.sub(Interval::point(a.hi));
            } else {
                self.unknown = self.unknown.saturating_sub(1);
            }
        }
        if self.entries.is_empty() {
            // INVARIANT (budget-exact): an empty window is exactly zero.
            self.sum_lo = Interval::point(0.0);
            self.sum_hi = Interval::point(0.0);
            self.unknown = 0;
        }
    }

    /// Charge the increment `add` (an enclosure of what the executed action adds) at
    /// `now`. Returns `false` when the increment is undefined or unbounded; the window's
    /// value is then unbounded until that entry leaves the window.
    pub fn charge(&mut self, now: f64, add: Interval) -> bool {
        if !bounded(add) {
            self.entries.push_back((now, Interval::ENTIRE));
            self.unknown += 1;
            return false;
        }
        if add != Interval::point(0.0) {
            self.entries.push_back((now, add));
            self.sum_lo = self.sum_lo.add(Interval::point(add.lo));
            self.sum_hi = self.sum_hi.add(Interval::point(add.hi));
        }
        true
    }

    /// The accumulated value as a sound interval.
    pub fn value(&self) -> Interval {
        if self.unknown > 0 {
            Interval::ENTIRE
        } else {
            Interval::new(self.sum_lo.lo, self.sum_hi.hi)
        }
    }

    /// A window as a snapshot of the governor state recorded it: its entries (oldest
    /// first; an amount that could not be computed is ENTIRE) and its running sums. Trusted
    /// as far as the log that holds the snapshot is (its hash chain and signatures; a
    /// snapshot that lists fewer entries would under-count whatever its sum says, so the
    /// sum is not re-derived here: see docs/security.md). The running sum is kept as it
    /// was because its outward rounding depends on the order of past additions and
    /// evictions, and decisions after a restore must be those of the governor that wrote
    /// it.
    pub fn restore(entries: Vec<(f64, Interval)>, sums: [Interval; 2]) -> Window {
        let unknown = entries.iter().filter(|(_, a)| !bounded(*a)).count();
        let valid = |x: Interval| {
            if x.is_invalid() {
                Interval::ENTIRE
            } else {
                x
            }
        };
        Window {
            entries: entries.into(),
            sum_lo: valid(sums[0]),
            sum_hi: valid(sums[1]),
            unknown,
        }
    }

    /// The running sums of the amounts' lower and upper bounds (what a snapshot records;
    /// [`Window::value`] is what a check reads).
    pub fn sums(&self) -> [Interval; 2] {
        [self.sum_lo, self.sum_hi]
    }

    /// The entries, oldest first (what the governor's state digest hashes).
    pub fn entries(&self) -> impl Iterator<Item = &(f64, Interval)> {
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

/// Can an amount enter the running sum (both bounds finite)?
fn bounded(a: Interval) -> bool {
    !a.is_invalid() && a.lo.is_finite() && a.hi.is_finite()
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

    /// Caught by the differential test's review: each charge was the increment's upper
    /// bound, so over a state box the window over-counted, and a floor on the budget
    /// (`budget.b >= c`) could be certified while the exact sum was below it. The window
    /// now holds the increment's whole enclosure.
    #[test]
    fn a_floor_on_a_budget_sees_the_lower_bound_of_each_increment() {
        let mut w = Window::default();
        // An increment known only to lie in [1, 3] (it read a state box).
        w.charge(0.0, Interval::new(1.0, 3.0));
        w.charge(1.0, Interval::point(2.0));
        assert_eq!(w.value(), Interval::new(3.0, 5.0));
        // `budget >= 4` is not certain: the exact sum may be 3.
        assert!(w.value().lo < 4.0);
        w.evict(10.5, 10.0);
        assert_eq!(w.value(), Interval::point(2.0));
    }
}
