//! Helpers of the server's tests: a server over a fresh store in a temporary directory,
//! requests without a socket (`oneshot`) and over a real one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aioss_server::config::Config;
use aioss_server::serve::Running;
use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use tower::ServiceExt;

pub const R1: &str = "token-r1";
pub const LOW: &str = "token-low";
pub const ALICE: &str = "token-alice";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A fresh empty directory.
pub fn tempdir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "aioss-server-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The baseline proposal (warehouse-robot.toml's first test, without identity fields).
pub fn baseline() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("baseline.json")).unwrap()).unwrap()
}

pub struct Server {
    pub dir: PathBuf,
    pub store: PathBuf,
    pub policy: PathBuf,
    pub running: Running,
    /// Set by [`on_socket`]: requests of [`call`] then go over this real socket.
    pub addr: Option<std::net::SocketAddr>,
}

/// Serve `s` on a real socket (127.0.0.1, port 0) with the server's own accept loop
/// (`aioss_server::listen::serve`, its caps and timeouts from the configuration); [`call`]
/// uses it from then on. Must be called inside a Tokio runtime.
pub async fn on_socket(mut s: Server) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    s.addr = Some(listener.local_addr().unwrap());
    let router = s.running.router();
    let limits = aioss_server::listen::Limits::of(&s.running.app.settings);
    let shared = std::sync::Arc::clone(&s.running.app.shared);
    tokio::spawn(aioss_server::listen::serve(
        listener,
        router,
        limits,
        shared,
        std::future::pending(),
    ));
    s
}

/// A server on a copy of warehouse-robot.toml (so tests may rewrite it) and a fresh store;
/// `config` is the configuration text (None: local-development mode).
pub fn server(tag: &str, config: Option<&str>) -> Server {
    let dir = tempdir(tag);
    let policy = dir.join("policy.toml");
    std::fs::copy(repo().join("policies/warehouse-robot.toml"), &policy).unwrap();
    let store = dir.join("audit.db");
    let key = aioss_audit::Key::generate().unwrap();
    let config = config.map(|t| Config::parse(t).unwrap());
    let running = Running::open(&policy, store.to_str().unwrap(), Some(key), config).unwrap();
    Server {
        dir,
        store,
        policy,
        running,
        addr: None,
    }
}

pub fn config_text() -> String {
    std::fs::read_to_string(data("server.toml")).unwrap()
}

/// One request without a socket.
pub async fn call(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    if let Some(addr) = s.addr {
        let (m, p, t, b) = (
            method.to_string(),
            path.to_string(),
            token.map(str::to_string),
            body.to_string(),
        );
        let (status, text) =
            tokio::task::spawn_blocking(move || http(addr, &m, &p, t.as_deref(), &b))
                .await
                .unwrap();
        return (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        );
    }
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let resp = s
        .running
        .router()
        .oneshot(b.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// One request without a socket; the answer's body as text.
pub async fn call_text(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let resp = s
        .running
        .router()
        .oneshot(b.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Every record of a store, in order.
pub fn records(store: &Path) -> Vec<aioss_audit::Record> {
    let mut s = aioss_audit::SqliteStore::open_existing(store).unwrap();
    let mut out = Vec::new();
    aioss_audit::Store::scan(&mut s, &mut |r| {
        out.push(r);
        Ok(true)
    })
    .unwrap();
    out
}

/// The record a JSON answer names (by its `record.seq`).
pub fn record_of(store: &Path, answer: &Value) -> aioss_audit::Record {
    let seq = answer["record"]["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no record in {answer}"));
    let r = records(store)
        .into_iter()
        .find(|r| r.seq == seq)
        .unwrap_or_else(|| panic!("record {seq} is not in the store"));
    assert_eq!(Some(r.hash.as_str()), answer["record"]["hash"].as_str());
    r
}

/// One request over a real socket (HTTP/1.1, `Connection: close`).
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}
