//! The loader's results, pinned: what every policy the repository ships (and every
//! one-line variant of it) loads to, compared with a snapshot (`data/load-golden.txt`).
//!
//! The loader is part of the trusted base (G1 assumes compiled rows mean what the policy
//! says), so a change to it that is meant to change nothing must leave this test green:
//! the same policies load to the same `Policy` (its hash, its rows with their senses and
//! criticality, its tape, its linear rows and fallback, and a digest of everything its
//! `Debug` shows), and the same bad policies give the same errors (a digest of every
//! error's kind, position, message and help, as rendered).
//!
//! The variants reach the errors: for each line of each policy, the policy without it,
//! with its key misspelt, its value of another type, out of range, empty, or (for an
//! expression) misspelt or cut short, and a section header misspelt or of the other kind.
//! The snapshot keeps one digest per line over all of its variants.
//!
//! The variants of the long policies take a few thousand loads, minutes in a debug build,
//! so they are checked by an ignored test: after changing the loader, run
//! `cargo test -p aioss-core --test load_golden -- --include-ignored`. A change meant to
//! change what loads (or a new policy file): run it with `AIOSS_BLESS_LOAD_GOLDEN=1` and
//! review the diff of `data/load-golden.txt`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/load-golden.txt");

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every policy the repository ships, relative to its root, sorted.
fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for dir in [
        "policies",
        "crates/aioss-core/tests/data",
        "crates/aioss/tests/data",
    ] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            if name.ends_with(".toml") {
                out.push(format!("{dir}/{name}"));
            }
        }
    }
    out.sort();
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn digest(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Everything a loaded policy shows. The lattice's `id` is unique per compilation (per
/// process), so it is cleared first.
fn policy_debug(p: &aioss_core::Policy) -> String {
    let mut p = p.clone();
    p.lattice.id = 0;
    format!("{p:?}")
}

/// Every error: kind, position, message and help (the rendered text holds all but kind).
fn errors_text(e: &aioss_core::PolicyErrors) -> String {
    let kinds: Vec<String> = e.errors.iter().map(|x| format!("{:?}", x.kind)).collect();
    format!("{e}\nkinds: {}", kinds.join(", "))
}

/// The readable record of one policy's load.
fn record(path: &str, src: &str) -> String {
    let mut s = format!("== {path}\n");
    match aioss_core::load(path, src) {
        Ok(p) => {
            let lat = &p.lattice;
            let _ = writeln!(s, "ok {} ({} {})", p.hash, p.name, p.version);
            let _ = writeln!(
                s,
                "actions {} states {} params {} rules {} constraints {} budgets {} tests {}",
                p.actions.len(),
                p.states.len(),
                p.params.len(),
                p.rules.len(),
                p.constraints.len(),
                p.budgets.len(),
                p.tests.len()
            );
            let _ = writeln!(
                s,
                "slots {} attrs {} symbols {}",
                p.layout.len,
                p.layout.attrs.len(),
                p.symbols.len()
            );
            let _ = writeln!(s, "rows {}", lat.rows.len());
            for r in &lat.rows {
                let _ = writeln!(
                    s,
                    "  {} {:?} {} {}",
                    r.name,
                    r.sense,
                    r.criticality.as_str(),
                    r.kind.as_str()
                );
            }
            let _ = writeln!(s, "tape {}", lat.tape.len());
            let _ = writeln!(s, "linear {}", lat.linear.len());
            let _ = writeln!(s, "fallback {:?}", p.fallback);
            let _ = writeln!(s, "debug {}", digest(&policy_debug(&p)));
        }
        Err(e) => {
            let _ = writeln!(s, "err");
            for line in errors_text(&e).lines() {
                let _ = writeln!(s, "  {line}");
            }
        }
    }
    s
}

/// One variant's result, as a digest.
fn outcome(src: &str) -> String {
    match aioss_core::load("v.toml", src) {
        Ok(p) => format!("ok {}", digest(&policy_debug(&p))),
        Err(e) => format!("err {}", digest(&errors_text(&e))),
    }
}

/// Is `s` a TOML number as policies write them?
fn numeric(s: &str) -> bool {
    let t = s.replace('_', "");
    !t.is_empty() && t.parse::<f64>().is_ok() && !t.contains("inf") && !t.contains("nan")
}

/// The one-line variants of line `i`: `(name, source)`.
fn variants(lines: &[&str], i: usize) -> Vec<(&'static str, String)> {
    let line = lines[i];
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return Vec::new();
    }
    let with = |new: &str| -> String {
        let mut v: Vec<&str> = lines.to_vec();
        v[i] = new;
        let mut s = v.join("\n");
        s.push('\n');
        s
    };
    let mut out = Vec::new();
    let mut without: Vec<&str> = lines.to_vec();
    without.remove(i);
    out.push(("del", without.join("\n") + "\n"));
    if t.starts_with('[') {
        if let Some(close) = t.find(']') {
            out.push((
                "header-typo",
                with(&format!("{}q{}", &t[..close], &t[close..])),
            ));
        }
        let other = if t.starts_with("[[") {
            t.replacen("[[", "[", 1).replacen("]]", "]", 1)
        } else {
            t.replacen('[', "[[", 1).replacen(']', "]]", 1)
        };
        out.push(("header-kind", with(&other)));
        return out;
    }
    let Some(eq) = line.find('=') else {
        return out;
    };
    let (key, value) = (&line[..eq], line[eq + 1..].trim());
    // Only a line that starts a key (not a continuation line of a multi-line array).
    if key.trim().is_empty() || key.contains('{') || key.contains('"') || key.contains(',') {
        return out;
    }
    let key = key.trim_end();
    out.push(("key-typo", with(&format!("{key}q = {value}"))));
    let quoted = value.starts_with('"') || value.starts_with('\'');
    out.push((
        "value-type",
        with(&format!("{key} = {}", if quoted { "1" } else { "\"x\"" })),
    ));
    if numeric(value) {
        let negated = match value.strip_prefix('-') {
            Some(v) => v.to_string(),
            None => format!("-{value}"),
        };
        out.push(("value-negated", with(&format!("{key} = {negated}"))));
        out.push(("value-zero", with(&format!("{key} = 0"))));
        out.push(("value-large", with(&format!("{key} = 1e9"))));
        out.push(("value-fraction", with(&format!("{key} = 0.5"))));
    }
    if value.starts_with('"') && value.ends_with('"') && value.len() >= 2 {
        let inner = &value[1..value.len() - 1];
        out.push(("string-empty", with(&format!("{key} = \"\""))));
        out.push(("string-cut", with(&format!("{key} = \"{inner} +\""))));
        // The first name in the text, misspelt.
        if let Some(start) = inner.find(|c: char| c.is_ascii_alphabetic()) {
            let len = inner[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len() - start);
            let end = start + len;
            let typo = format!(
                "{}{}q{}",
                &inner[..start],
                &inner[start..end],
                &inner[end..]
            );
            out.push(("string-typo", with(&format!("{key} = \"{typo}\""))));
        }
    }
    if value.starts_with('{') || value.starts_with('[') {
        let empty = if value.starts_with('{') { "{}" } else { "[]" };
        out.push(("value-empty", with(&format!("{key} = {empty}"))));
    }
    out
}

/// One line of the snapshot per line of `src` that has variants: `line digest`.
fn variant_lines(src: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = src.lines().collect();
    let jobs: Vec<usize> = (0..lines.len()).collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let mut out: Vec<(usize, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (lines, jobs) = (&lines, &jobs);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for &i in jobs.iter().skip(w).step_by(workers) {
                        let vs = variants(lines, i);
                        if vs.is_empty() {
                            continue;
                        }
                        let all: String = vs
                            .iter()
                            .map(|(name, v)| format!("{name} {}\n", outcome(v)))
                            .collect();
                        mine.push((i + 1, digest(&all)[..16].to_string()));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    out.sort();
    out
}

/// Policies longer than this have their variants checked only by the ignored test (their
/// few thousand loads take minutes in a debug build).
const QUICK_LINES: usize = 300;

/// The whole snapshot, as the code under test loads it; with `all` false, without the
/// variant lines of policies longer than [`QUICK_LINES`].
fn snapshot(all: bool) -> String {
    let mut s = String::from(
        "# What every policy of the repository loads to, and a digest per line of the \
         results of its one-line variants.\n# Written by tests/load_golden.rs \
         (AIOSS_BLESS_LOAD_GOLDEN=1); do not edit.\n",
    );
    for path in corpus() {
        let src = std::fs::read_to_string(root().join(&path)).unwrap();
        s.push_str(&record(&path, &src));
        if all || src.lines().count() <= QUICK_LINES {
            for (line, d) in variant_lines(&src) {
                let _ = writeln!(s, "  {path}:{line} {d}");
            }
        }
    }
    s
}

/// The snapshot's lines that [`snapshot`] writes with `all` false.
fn quick_part(snapshot: &str) -> String {
    let long: Vec<String> = corpus()
        .into_iter()
        .filter(|path| {
            std::fs::read_to_string(root().join(path))
                .is_ok_and(|src| src.lines().count() > QUICK_LINES)
        })
        .map(|path| format!("  {path}:"))
        .collect();
    snapshot
        .lines()
        .filter(|l| !long.iter().any(|p| l.starts_with(p.as_str())))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// For a differing variant line `path:line`, each variant's result in full.
fn explain(entry: &str) -> String {
    let Some((path, line)) = entry
        .trim()
        .split(' ')
        .next()
        .and_then(|x| x.rsplit_once(':'))
    else {
        return String::new();
    };
    let (Ok(src), Ok(line)) = (
        std::fs::read_to_string(root().join(path)),
        line.parse::<usize>(),
    ) else {
        return String::new();
    };
    let lines: Vec<&str> = src.lines().collect();
    let mut s = format!("variants of {path}:{line}:\n");
    for (name, v) in variants(&lines, line - 1) {
        let r = match aioss_core::load("v.toml", &v) {
            Ok(p) => format!("loads ({} rows)", p.lattice.rows.len()),
            Err(e) => errors_text(&e),
        };
        let _ = writeln!(s, "--- {name}:\n{r}");
    }
    s
}

/// Compare what loads now with the snapshot (`all`: with every policy's variants).
fn compare(all: bool) {
    if std::env::var_os("AIOSS_BLESS_LOAD_GOLDEN").is_some() {
        // The test with every variant writes the snapshot; the other would read it half
        // written.
        if all {
            std::fs::write(SNAPSHOT, snapshot(true)).unwrap();
        }
        return;
    }
    let now = snapshot(all);
    let before = std::fs::read_to_string(SNAPSHOT).unwrap_or_else(|e| {
        panic!("cannot read {SNAPSHOT} ({e}); write it with AIOSS_BLESS_LOAD_GOLDEN=1")
    });
    let before = if all { before } else { quick_part(&before) };
    if now == before {
        return;
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), now.lines().collect());
    let mut report = String::new();
    let mut shown = 0;
    for k in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(k).copied(), b.get(k).copied());
        if x == y {
            continue;
        }
        let _ = writeln!(
            report,
            "line {}:\n  snapshot: {}\n  now:      {}",
            k + 1,
            x.unwrap_or("(none)"),
            y.unwrap_or("(none)")
        );
        if let Some(y) = y {
            report.push_str(&explain(y));
        }
        shown += 1;
        if shown == 5 {
            break;
        }
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("load-golden.now.txt");
    let _ = std::fs::write(&out, &now);
    panic!(
        "the loader's results differ from {SNAPSHOT} (the whole result is in {}):\n{report}",
        out.display()
    );
}

#[test]
fn every_policy_and_the_variants_of_the_short_ones_load_as_the_snapshot_says() {
    compare(false);
}

/// Every variant of every policy: a few thousand loads, minutes in a debug build.
/// `cargo test -p aioss-core --test load_golden -- --include-ignored` (also how the
/// snapshot is written, with `AIOSS_BLESS_LOAD_GOLDEN=1`).
#[test]
#[ignore = "minutes in a debug build; run with --include-ignored after changing the loader"]
fn every_policy_and_every_variant_load_as_the_snapshot_says() {
    compare(true);
}
