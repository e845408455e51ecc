//! A map with at most `cap` keys, evicting the least recently written: the governor
//! thread's memory of agents, recent decisions and ended holds stays bounded whatever
//! callers send.

use std::collections::{HashMap, VecDeque};

/// A map with at most `cap` keys, evicting the least recently written.
#[derive(Debug)]
pub(super) struct Bounded<V> {
    map: HashMap<String, (u64, V)>,
    order: VecDeque<(String, u64)>,
    tick: u64,
    cap: usize,
}

impl<V> Bounded<V> {
    pub(super) fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    pub(super) fn put(&mut self, k: &str, v: V) {
        self.tick += 1;
        let t = self.tick;
        self.order.push_back((k.to_string(), t));
        self.map.insert(k.to_string(), (t, v));
        // INVARIANT (bounded-state): at most `cap` keys, and the order queue holds at most
        // one stale entry per write since the last compaction.
        while self.map.len() > self.cap {
            let Some((old, ot)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|(t, _)| *t == ot) {
                self.map.remove(&old);
            }
        }
        if self.order.len() > 2 * self.cap + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, t)| map.get(k).is_some_and(|(mt, _)| mt == t));
        }
    }

    pub(super) fn get(&self, k: &str) -> Option<&V> {
        self.map.get(k).map(|(_, v)| v)
    }

    pub(super) fn get_mut(&mut self, k: &str) -> Option<&mut V> {
        self.map.get_mut(k).map(|(_, v)| v)
    }
}
