//! The expression parser must never panic (deep nesting included).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = aioss_core::expr::parse::parse(text, 0);
    }
});
