//! The policy loader must never panic, whatever the text: it either loads or returns
//! positioned errors, and rendering those errors must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match aioss_core::load("fuzz.toml", text) {
            Ok(p) => {
                // A loaded policy must also check without panicking on its own ranges.
                let inputs = p.range_inputs();
                let mut t1 = aioss_core::Checker::new(&p.lattice);
                let _ = t1.check(&p.lattice, &inputs, &p.fallback);
                let _ = t1.certify(&p.lattice);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
