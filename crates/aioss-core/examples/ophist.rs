//! Print the decision tape's instruction mix for a policy: `cargo run --example ophist FILE`.
fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    match aioss_core::load(&path, &text) {
        Ok(p) => {
            println!(
                "decide ops: {} (constants written {}, inputs loaded {})",
                p.lattice.decide_ops.len(),
                p.lattice.decide_ops.writes().0,
                p.lattice.decide_ops.writes().1
            );
            for (k, n) in p.lattice.decide_ops.histogram() {
                println!("  {k:8} {n}");
            }
            println!("adjacent pairs (an instruction reading the one before it):");
            for (k, n) in p.lattice.decide_ops.adjacent_pairs() {
                println!("  {k:16} {n}");
            }
        }
        Err(e) => eprintln!("{e}"),
    }
}
