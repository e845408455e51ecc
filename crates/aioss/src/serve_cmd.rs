//! `aioss serve`, `aioss serve hash-token` and `aioss bench serve`: thin wrappers over
//! `aioss_server`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::exit;

/// The arguments of `aioss serve`.
pub struct Args<'a> {
    /// `--policy FILE`.
    pub policy: Option<&'a Path>,
    /// `--audit STORE`.
    pub audit: String,
    /// `--listen ADDR`.
    pub listen: String,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--key FILE`.
    pub key: Option<PathBuf>,
    /// `--accept-unsigned-tail`.
    pub accept_unsigned_tail: bool,
}

/// `aioss serve --policy FILE [--audit STORE] [--listen ADDR] [--config FILE] [--key FILE]
/// [--accept-unsigned-tail]`
pub fn serve(a: &Args<'_>) -> ExitCode {
    let Some(policy) = a.policy else {
        eprintln!("error: `aioss serve` needs `--policy FILE`");
        return ExitCode::from(exit::BAD_INPUT);
    };
    let level = match std::env::var("AIOSS_LOG").as_deref() {
        Ok("error") => tracing::Level::ERROR,
        Ok("warn") => tracing::Level::WARN,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("trace") => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let o = aioss_server::serve::Options {
        policy: policy.to_path_buf(),
        audit: a.audit.clone(),
        listen: Some(a.listen.clone()),
        config: a.config.clone(),
        key: a.key.clone(),
        accept_unsigned_tail: a.accept_unsigned_tail,
    };
    match aioss_server::serve::run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                aioss_server::Error::Config(_)
                | aioss_server::Error::Policy(_)
                | aioss_server::Error::Usage(_) => exit::BAD_INPUT,
                _ => exit::INTERNAL,
            })
        }
    }
}

/// `aioss serve hash-token [TOKEN]`
pub fn hash_token(token: Option<&str>) -> ExitCode {
    let t = match token {
        Some(t) => t.to_string(),
        None => {
            let mut line = String::new();
            if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
                eprintln!("error: reading the token: {e}");
                return ExitCode::from(exit::INTERNAL);
            }
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if t.is_empty() {
        eprintln!("error: the token is empty");
        return ExitCode::from(exit::BAD_INPUT);
    }
    println!("{}", aioss_server::config::hash_token(&t));
    ExitCode::SUCCESS
}

/// The server child of `aioss bench serve`.
struct Child {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Drop for Child {
    fn drop(&mut self) {
        // SIGTERM: the server drains, commits and checkpoints; then it is waited for.
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn start_server(exe: &Path, policy: &Path, dir: &Path) -> Result<Child, String> {
    let key = dir.join("bench.key");
    aioss_audit::Key::generate()
        .and_then(|k| k.write_new(&key))
        .map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(exe)
        .arg("serve")
        .arg("--policy")
        .arg(policy)
        .arg("--audit")
        .arg(dir.join("bench.db"))
        .arg("--key")
        .arg(&key)
        .args(["--listen", "127.0.0.1:0"])
        .env("AIOSS_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the server: {e}"))?;
    let err = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if let Some(a) = line.split("listening on http://").nth(1) {
                let _ = tx.send(a.trim().to_string());
            } else if !line.contains("LOCAL-DEVELOPMENT") {
                eprintln!("server: {line}");
            }
        }
    });
    let addr = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .map_err(|_| "the server did not start".to_string())?;
    let addr = addr.parse().map_err(|e| format!("`{addr}`: {e}"))?;
    Ok(Child { child, addr })
}

fn metric(addr: std::net::SocketAddr, name: &str) -> Vec<String> {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return Vec::new();
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    );
    let mut t = String::new();
    let _ = s.read_to_string(&mut t);
    t.lines()
        .filter(|l| l.starts_with(name))
        .map(str::to_string)
        .collect()
}

/// Per stage of the server (whole run): mean and the bucket holding the 99th percentile.
fn stages(addr: std::net::SocketAddr) {
    let lines = metric(addr, "aioss_stage_latency_seconds");
    for stage in aioss_server::metrics::Stage::ALL {
        let stage = stage.as_str();
        let tag = format!("stage=\"{stage}\"");
        let val = |suffix: &str| -> Vec<(String, f64)> {
            lines
                .iter()
                .filter(|l| l.contains(&tag) && l.contains(suffix))
                .filter_map(|l| {
                    let (k, v) = l.rsplit_once(' ')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect()
        };
        let count = val("_count").first().map_or(0.0, |x| x.1);
        let sum = val("_sum").first().map_or(0.0, |x| x.1);
        let p99 = val("_bucket")
            .into_iter()
            .find(|(_, c)| *c >= 0.99 * count)
            .and_then(|(k, _)| Some(k.split("le=\"").nth(1)?.trim_end_matches("\"}").to_string()))
            .unwrap_or_default();
        println!(
            "    server stage {stage}: {count:.0} observations, mean {:.0} µs, p99 ≤ {p99} s",
            1e6 * sum / count.max(1.0)
        );
    }
}

/// Microseconds some task on the machine waited for a CPU (Linux pressure stall
/// information), to show how contended the machine was during a phase.
fn cpu_pressure_us() -> Option<f64> {
    let t = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let line = t.lines().find(|l| l.starts_with("some"))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

fn show(label: &str, r: &crate::loadgen::Report, server_cpu: f64, stall_us: f64) {
    println!(
        "{label}: {:.0} decisions/s ({} in {:.1} s{}); latency from send p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        r.rate(),
        r.ok,
        r.secs,
        if r.other.is_empty() {
            String::new()
        } else {
            format!("; other answers {:?}", r.other)
        },
        r.sent_us[0],
        r.sent_us[1],
        r.sent_us[2],
        r.sent_us[3]
    );
    if r.scheduled_us[3] > 0 {
        println!(
            "    from schedule: p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            r.scheduled_us[0], r.scheduled_us[1], r.scheduled_us[2], r.scheduled_us[3]
        );
    }
    println!(
        "    CPU: load generator {:.0} % of one core, server {:.0} % of one core; some task waited for a CPU {:.0} % of the time (PSI), load average {}",
        100.0 * r.cpu_share(),
        100.0 * server_cpu / r.secs.max(1e-9),
        100.0 * stall_us / 1e6 / r.secs.max(1e-9),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_default()
    );
}

/// `aioss bench serve`: the server as a child process with a fresh durable store, driven
/// over loopback by `crate::loadgen`.
pub fn bench(
    policy: &Path,
    connections: usize,
    secs: f64,
    mix: (usize, usize, usize),
    fraction: f64,
) -> ExitCode {
    let p = match crate::policy_cmd::load_file(policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let bodies = match crate::bench_cmd::stream(&p, 20_000, mix, 7) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let dir = std::env::temp_dir().join(format!("aioss-bench-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: {}: {e}", dir.display());
        return ExitCode::from(exit::INTERNAL);
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let result = (|| -> Result<(), String> {
        let server = start_server(&exe, policy, &dir)?;
        let pid = server.child.id().to_string();
        let server_cpu = || crate::loadgen::cpu_secs(&pid).unwrap_or(f64::NAN);
        println!(
            "aioss bench serve: {} ({} distinct proposals, mix {}/{}/{} feasible/repairable/blocked), {connections} connections, durable SQLite store with signed checkpoints",
            policy.display(),
            bodies.len(),
            mix.0,
            mix.1,
            mix.2
        );
        let mut o = crate::loadgen::Options {
            addr: server.addr,
            bodies,
            connections,
            secs: 2.0,
            rate: None,
            token: None,
        };
        crate::loadgen::run(&o).map_err(|e| e.to_string())?;
        o.secs = secs;
        let psi = || cpu_pressure_us().unwrap_or(f64::NAN);
        let (c0, p0) = (server_cpu(), psi());
        let peak = crate::loadgen::run(&o).map_err(|e| e.to_string())?;
        show("peak (closed loop)", &peak, server_cpu() - c0, psi() - p0);
        o.rate = Some(peak.rate() * fraction);
        let (c0, p0) = (server_cpu(), psi());
        let at = crate::loadgen::run(&o).map_err(|e| e.to_string())?;
        show(
            &format!(
                "open loop at {:.0} % of the peak ({:.0}/s)",
                100.0 * fraction,
                peak.rate() * fraction
            ),
            &at,
            server_cpu() - c0,
            psi() - p0,
        );
        for l in metric(server.addr, "aioss_decisions_total{") {
            println!("    {l}");
        }
        stages(server.addr);
        for l in metric(server.addr, "aioss_audit_commit_seconds_max") {
            println!("    {l}");
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::INTERNAL)
        }
    }
}
