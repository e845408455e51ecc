//! Helpers shared by the randomised test files.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// Case counts are multiplied by `AIOSS_TEST_SCALE` (default 1) for longer soak runs.
pub fn scale() -> u32 {
    std::env::var("AIOSS_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// `cases` (times [`scale`]) proptest cases, no failure files, room for rejections.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases * scale(),
        failure_persistence: None,
        max_global_rejects: cases * scale() * 4,
        ..ProptestConfig::default()
    }
}

/// A double from a raw biased exponent range and a random 52-bit mantissa.
pub fn from_parts(neg: bool, biased_exp: u64, mantissa: u64) -> f64 {
    let bits = (u64::from(neg) << 63) | (biased_exp << 52) | (mantissa & ((1 << 52) - 1));
    f64::from_bits(bits)
}

/// Finite doubles: small integers, moderate values, dyadic fractions, arbitrary finite
/// doubles, subnormal/tiny ones, huge ones and a few special values.
pub fn arb_double() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-5i32..=5).prop_map(f64::from),
        4 => -10.0f64..10.0,
        2 => (-64i32..=64).prop_map(|k| f64::from(k) / 16.0),
        2 => (any::<bool>(), 1000u64..1046, any::<u64>())
            .prop_map(|(s, e, m)| from_parts(s, e, m)), // about 2^-23 .. 2^23, full mantissa
        1 => (any::<bool>(), 0u64..=40, any::<u64>()).prop_map(|(s, e, m)| from_parts(s, e, m)),
        1 => (any::<bool>(), 2000u64..=2046, any::<u64>())
            .prop_map(|(s, e, m)| from_parts(s, e, m)),
        1 => prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
        1 => prop::sample::select(vec![
            0.0,
            -0.0,
            f64::MAX,
            -f64::MAX,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            0.1,
            1e-300,
            1e300,
            (2.0f64).powi(27) + 1.0,
        ]),
    ]
}
