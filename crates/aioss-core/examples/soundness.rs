//! The long differential soundness run of Tier 1 against the exact oracle.
//!
//! ```sh
//! cargo run --release -p aioss-core --example soundness -- --checks 10000000 [--seed S] [--threads T] [--json PERCENT]
//! ```
//!
//! Each thread generates random policies and proposals (half of them placed within 4 ulps
//! of a row's boundary), checks every SAT and inactive verdict of Tier 1 against the exact
//! oracle, and every 16th policy also runs whole decisions through the governor (as does
//! every bundled policy now and then) and checks each executed action against every
//! critical row. Progress goes to standard error every five seconds; the summary to
//! standard output. Exit status 1 if any verdict was refuted (the reports are printed).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    reason = "a test driver: a failure is a panic or a report"
)]

#[path = "../tests/soundness/mod.rs"]
mod soundness;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aioss_oracle::Rng;
use soundness::{check_case, consts, random_case, run_decisions, Stats, Subject};

const BUNDLED: [&str; 3] = ["warehouse-robot.toml", "agent-tools.toml", "i2os-v2.toml"];

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.replace('_', "")
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{name} takes a number, not {v}")) as u64
        })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = arg(&args, "--checks").unwrap_or(1_000_000);
    let seed = arg(&args, "--seed").unwrap_or(1);
    let threads = arg(&args, "--threads").unwrap_or(1).max(1);
    // The share of whole decisions sent as JSON lines (`--json PERCENT`, default 0: the
    // JSON reader is outside Tier 1, and a known issue there is being fixed).
    let json = arg(&args, "--json").unwrap_or(0) as f64 / 100.0;
    let checks = AtomicU64::new(0);
    let refuted = AtomicU64::new(0);
    let near = AtomicU64::new(0);
    let undecided = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let total = Mutex::new(Stats::default());
    let start = Instant::now();
    eprintln!("soundness: {target} checks, seed {seed}, {threads} thread(s)");
    std::thread::scope(|sc| {
        for t in 0..threads {
            let (checks, refuted, near, undecided, total) =
                (&checks, &refuted, &near, &undecided, &total);
            sc.spawn(move || {
                let mut rng = Rng::new(seed.wrapping_mul(0x1000_0000_01b3) ^ t);
                let mut cc = consts();
                let bundled: Vec<Subject> = BUNDLED.iter().map(|f| Subject::bundled(f)).collect();
                let mut mine = Stats::default();
                let mut k = 0u64;
                while checks.load(Ordering::Relaxed) < target {
                    k += 1;
                    let mut st = Stats::default();
                    if k.is_multiple_of(64) {
                        // A bundled policy: direct checks and whole decisions.
                        let s = &bundled[(k / 64) as usize % bundled.len()];
                        for _ in 0..20 {
                            let case = random_case(s, &mut rng, &mut cc);
                            check_case(s, &case, &mut rng, &mut cc, &mut st);
                        }
                        run_decisions(s, 10, json, &mut rng, &mut cc, &mut st);
                    } else {
                        match Subject::generated(&mut rng) {
                            Ok(s) => {
                                st.policies += 1;
                                for _ in 0..50 {
                                    let case = random_case(&s, &mut rng, &mut cc);
                                    check_case(&s, &case, &mut rng, &mut cc, &mut st);
                                }
                                if k.is_multiple_of(16) {
                                    run_decisions(&s, 10, json, &mut rng, &mut cc, &mut st);
                                }
                            }
                            Err(e) => {
                                eprintln!("generator error: {e}");
                                st.failures.push(e);
                            }
                        }
                    }
                    for f in &st.failures {
                        eprintln!("FAILURE\n{f}");
                    }
                    checks.fetch_add(st.checks, Ordering::Relaxed);
                    refuted.fetch_add(st.refuted, Ordering::Relaxed);
                    near.fetch_add(st.near, Ordering::Relaxed);
                    undecided.fetch_add(st.undecided, Ordering::Relaxed);
                    mine.merge(st);
                }
                total.lock().unwrap().merge(mine);
            });
        }
        sc.spawn(|| {
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if checks.load(Ordering::Relaxed) >= target {
                    break;
                }
                if last.elapsed() >= Duration::from_secs(5) {
                    last = Instant::now();
                    let c = checks.load(Ordering::Relaxed);
                    let secs = start.elapsed().as_secs_f64();
                    eprintln!(
                        "[{:7.0} s] {c} checks ({:.1}%, {:.0}/s), {} refuted, {} within 4 ulps, {} undecided",
                        secs,
                        100.0 * c as f64 / target as f64,
                        c as f64 / secs,
                        refuted.load(Ordering::Relaxed),
                        near.load(Ordering::Relaxed),
                        undecided.load(Ordering::Relaxed)
                    );
                }
            }
        });
    });
    done.store(true, Ordering::Relaxed);
    let st = total.into_inner().unwrap();
    let wall = start.elapsed().as_secs_f64();
    println!("soundness run: seed {seed}, {threads} thread(s), wall time {wall:.1} s");
    println!("{}", st.summary());
    println!(
        "total checks {}, SAT/inactive verdicts refuted {}, within 4 ulps of a boundary {} ({} SAT), undecided {}, wall time {:.1} s",
        st.checks, st.refuted, st.near, st.near_sat, st.undecided, wall
    );
    println!("checks by form: {:?}", st.by_form);
    if !st.failures.is_empty() {
        for f in &st.failures {
            println!("FAILURE\n{f}");
        }
        std::process::exit(1);
    }
}
