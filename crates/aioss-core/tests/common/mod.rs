//! Helpers shared by the randomised test files.
#![allow(dead_code)]

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
