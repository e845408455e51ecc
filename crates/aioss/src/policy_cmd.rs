//! `aioss policy ...`

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use aioss_core::policy::{ConstraintKind, Criticality, VarType};
use aioss_core::Policy;

/// Read and load one policy file; errors come back rendered.
pub fn load_file(path: &std::path::Path) -> Result<Policy, String> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("error: cannot read `{shown}`: {e}"))?;
    aioss_core::load(&shown, &text).map_err(|e| e.to_string())
}

/// The one-line summary `policy check` prints.
pub fn summary(p: &Policy) -> String {
    let real = p.actions.iter().filter(|a| a.ty == VarType::Real).count();
    let mut s = format!(
        "{} {}: {} action variables ({} real, {} discrete), {} state variables",
        p.name,
        p.version,
        p.actions.len(),
        real,
        p.actions.len() - real,
        p.states.len()
    );
    let _ = write!(
        s,
        ", {} constraints in {} rows",
        p.constraints.len(),
        p.lattice.rows.len()
    );
    let kinds: Vec<String> = ConstraintKind::ALL
        .iter()
        .map(|k| (k, p.constraints.iter().filter(|c| c.kind == *k).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{} {n}", k.as_str()))
        .collect();
    if !p.constraints.is_empty() {
        s.push_str(" (");
        s.push_str(&kinds.join(", "));
        s.push_str("; ");
    }
    let crits: Vec<String> = [
        Criticality::Critical,
        Criticality::High,
        Criticality::Medium,
        Criticality::Low,
    ]
    .iter()
    .map(|c| {
        (
            c,
            p.constraints.iter().filter(|x| x.criticality == *c).count(),
        )
    })
    .filter(|(_, n)| *n > 0)
    .map(|(c, n)| format!("{} {n}", c.as_str()))
    .collect();
    if !p.constraints.is_empty() {
        s.push_str(&crits.join(", "));
        s.push(')');
    }
    let (at_load, at_decision) = p.certification_split();
    let _ = write!(
        s,
        ", {} rules, {} budgets; fallback certified on {at_load} critical rows at load, {at_decision} barrier/lyapunov rows at decision time; tape {} instructions; deadline {} µs ({})",
        p.rules.len(),
        p.budgets.len(),
        p.lattice.tape.len(),
        p.governor.deadline_us,
        if p.governor.enforce_deadline {
            "enforced: bounds the repair search"
        } else {
            "reported"
        }
    );
    s
}

/// The monitors' settings (`[monitor]`, with their defaults), as `policy check` prints them.
fn monitors(p: &Policy) -> String {
    let m = &p.monitor;
    let mut s = format!(
        "recover_after {}, fallback_mode {}",
        m.recover_after,
        match m.fallback_mode {
            aioss_core::policy::FallbackMode::Fallback => "fallback",
            aioss_core::policy::FallbackMode::Freeze => "freeze",
        }
    );
    match m.dt {
        Some(dt) => {
            let _ = write!(s, ", model_mismatch at dt {dt} s (± {} s)", m.dt_tolerance);
        }
        None => s.push_str(", model_mismatch off (no dt)"),
    }
    let _ = write!(
        s,
        ", uncertain_share {} (of at least {} active rows), non_convergence_rate {} over {} repairs, degenerate_cos {:e}, max_metric_condition {:e}",
        m.uncertain_share, m.min_active_rows, m.non_convergence_rate, m.rate_window, m.degenerate_cos, m.max_metric_condition
    );
    match m.rate_limit {
        Some(n) => {
            let _ = write!(s, ", rate_limit {n} per {} s", m.rate_window_secs);
        }
        None => s.push_str(", rate_limit off"),
    }
    let lipschitz = p
        .constraints
        .iter()
        .filter(|c| c.lipschitz.is_some())
        .count();
    let noisy = p.states.iter().filter(|v| v.max_noise.is_some()).count();
    let _ = write!(
        s,
        ", lipschitz on {lipschitz} constraints, max_noise on {noisy} states"
    );
    if !m.review.is_empty() {
        let names: Vec<&str> = m.review.iter().map(|f| f.name()).collect();
        let _ = write!(s, ", review {}", names.join(" "));
    }
    s
}

/// `aioss policy check FILE... [--format json]`
pub fn check(files: &[PathBuf], json: bool) -> ExitCode {
    let mut failed = 0usize;
    let mut results = Vec::new();
    for f in files {
        match load_file(f) {
            Ok(p) => {
                if json {
                    results.push(serde_json::json!({
                        "file": f.display().to_string(),
                        "ok": true,
                        "name": p.name,
                        "version": p.version,
                        "hash": p.hash,
                        "summary": summary(&p),
                        "monitors": monitors(&p),
                    }));
                } else {
                    println!("{}: ok: {}", f.display(), summary(&p));
                    println!("  monitors: {}", monitors(&p));
                }
            }
            Err(e) => {
                failed += 1;
                if json {
                    results.push(serde_json::json!({
                        "file": f.display().to_string(),
                        "ok": false,
                        "errors": e,
                    }));
                } else {
                    eprintln!("{e}");
                }
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"files": results, "refused": failed})
        );
    } else if failed > 0 {
        eprintln!("{failed} of {} policies refused", files.len());
    }
    if failed > 0 {
        ExitCode::from(crate::exit::BAD_INPUT)
    } else {
        ExitCode::SUCCESS
    }
}

/// `aioss policy test FILE... [--run PATTERN] [--format json]`: each policy's `[[test]]`
/// cases, as a table (or one JSON object).
pub fn test(files: &[PathBuf], verbose: bool, pattern: Option<&str>, json: bool) -> ExitCode {
    let (mut passed, mut failed, mut refused) = (0usize, 0usize, 0usize);
    let mut out = Vec::new();
    for f in files {
        let p = match load_file(f) {
            Ok(p) => p,
            Err(e) => {
                refused += 1;
                if json {
                    out.push(serde_json::json!({
                        "file": f.display().to_string(), "loaded": false, "errors": e,
                    }));
                } else {
                    eprintln!("{e}");
                }
                continue;
            }
        };
        if !json {
            println!("{}:", f.display());
            if p.tests.is_empty() {
                println!("  (no [[test]] cases)");
            }
        }
        let mut cases = Vec::new();
        for r in aioss_core::governor::run_tests(&p) {
            if pattern.is_some_and(|pat| !r.name.contains(pat)) {
                continue;
            }
            if r.passed() {
                passed += 1;
                if verbose && !json {
                    println!("  PASS  {}", r.name);
                }
            } else {
                failed += 1;
                if !json {
                    println!("  FAIL  {}", r.name);
                    for (field, want, got) in &r.failures {
                        println!("        {field}: expected {want}, got {got}");
                    }
                }
            }
            if json {
                let failures: Vec<serde_json::Value> = r
                    .failures
                    .iter()
                    .map(|(field, want, got)| {
                        serde_json::json!({"field": field, "expected": want, "got": got})
                    })
                    .collect();
                cases.push(serde_json::json!({
                    "name": r.name, "passed": r.passed(), "failures": failures,
                }));
            }
        }
        if json {
            out.push(serde_json::json!({
                "file": f.display().to_string(), "loaded": true, "cases": cases,
            }));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "files": out, "passed": passed, "failed": failed, "refused": refused,
            })
        );
    } else {
        println!(
            "--------------------------------------------------------------------------------"
        );
        if passed + failed > 0 || refused == 0 {
            println!("PASS: {passed}/{}", passed + failed);
        }
        if failed > 0 {
            println!("FAIL: {failed}/{}", passed + failed);
        }
        if refused > 0 {
            println!(
                "REFUSED: {refused} of {} policy files did not load: their tests did not run",
                files.len()
            );
        }
    }
    if refused > 0 {
        ExitCode::from(crate::exit::BAD_INPUT)
    } else if failed > 0 {
        ExitCode::from(crate::exit::VERDICT)
    } else {
        ExitCode::SUCCESS
    }
}
