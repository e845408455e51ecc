//! `aioss serve`, `aioss serve hash-token` and `aioss bench serve`: thin wrappers over
//! `aioss_server`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::exit;

/// `aioss serve --policy FILE [--audit STORE] [--listen ADDR] [--config FILE] [--key FILE]`
pub fn serve(
    policy: Option<&Path>,
    audit: String,
    listen: String,
    config: Option<PathBuf>,
    key: Option<PathBuf>,
) -> ExitCode {
    let Some(policy) = policy else {
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
        audit,
        listen: Some(listen),
        config,
        key,
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

/// `aioss bench serve` (see `aioss_server::loadgen`).
pub fn bench(
    policy: &Path,
    connections: usize,
    secs: f64,
    mix: (usize, usize, usize),
    fraction: f64,
) -> ExitCode {
    let _ = (policy, connections, secs, mix, fraction);
    eprintln!("error: not built yet");
    ExitCode::from(exit::INTERNAL)
}
