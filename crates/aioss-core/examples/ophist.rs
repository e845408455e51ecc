//! Print the decision tape's instruction mix for a policy: `cargo run --example ophist FILE`.
fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    match aioss_core::load(&path, &text) {
        Ok(p) => {
            println!(
                "check ops (before gated rows): {} (constants written {}, inputs loaded {})",
                p.lattice.focus_base.len(),
                p.lattice.focus_base.writes().0,
                p.lattice.focus_base.writes().1
            );
            for (k, n) in p.lattice.focus_base.histogram() {
                println!("  {k:8} {n}");
            }
            println!("adjacent pairs (an instruction reading the one before it):");
            for (k, n) in p.lattice.focus_base.adjacent_pairs() {
                println!("  {k:16} {n}");
            }
        }
        Err(e) => eprintln!("{e}"),
    }
}
