//! Token buckets per principal, and what a refusal's record keeps of a request body.
//!
//! Why: everything a caller sends can end up on disk, in the audit chain, and the chain
//! is never pruned. A refusal is recorded only while its principal has tokens left
//! ([`Limiter`]), and only a bounded prefix of its body ([`bounded_body`]); unauthenticated
//! refusals are never recorded at all (see `crate::http`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// One token bucket per key (a principal's id). Keys come from the configuration (or are
/// `local`), so the map stays as small as the list of principals.
#[derive(Debug, Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// Take one token from `key`'s bucket (refilled at `rate` per second, holding at most
    /// `burst`); `Err(seconds until one is available)` when empty. A `rate` of 0 or less
    /// is unlimited.
    pub fn take(&self, key: &str, rate: f64, burst: f64) -> Result<(), f64> {
        if rate <= 0.0 || !rate.is_finite() {
            return Ok(());
        }
        let Ok(mut m) = self.buckets.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let burst = burst.max(1.0);
        let b = m.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let dt = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + dt * rate).min(burst);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - b.tokens) / rate)
        }
    }
}

/// What a refusal's record keeps of a request body: `body`, its first `limit` bytes (cut
/// at a character boundary), `body_len` (bytes) and `body_sha256` (hex) of the whole body.
/// An empty body gives no fields.
pub fn bounded_body(body: &str, limit: usize) -> Map<String, Value> {
    let mut m = Map::new();
    if body.is_empty() {
        return m;
    }
    let mut end = body.len().min(limit);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    m.insert(
        "body".into(),
        Value::from(body.get(..end).unwrap_or_default()),
    );
    m.insert("body_len".into(), Value::from(body.len()));
    m.insert(
        "body_sha256".into(),
        Value::from(aioss_audit::record::hex(&Sha256::digest(body.as_bytes()))),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_body_keeps_a_prefix_at_a_char_boundary_and_the_whole_bodys_digest() {
        let m = bounded_body("aé€b", 4);
        assert_eq!(m.get("body"), Some(&Value::from("aé")));
        assert_eq!(m.get("body_len"), Some(&Value::from(7)));
        assert!(bounded_body("", 4).is_empty());
        let l = Limiter::default();
        assert!(l.take("a", 1.0, 2.0).is_ok());
        assert!(l.take("a", 1.0, 2.0).is_ok());
        assert!(l.take("a", 1.0, 2.0).is_err());
        assert!(l.take("b", 1.0, 2.0).is_ok());
        assert!(l.take("a", 0.0, 0.0).is_ok());
    }
}
