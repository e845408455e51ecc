//! `aioss serve` as a real process: SIGTERM under load loses nothing acknowledged, and hot
//! reload (SIGHUP and the operator endpoint) under load fails no request and each record
//! names the policy that decided it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{aioss, repo};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aioss_audit::{SqliteStore, Store};
use serde_json::{json, Value};

fn tmpdir(name: &str) -> PathBuf {
    common::tmpdir("serve", name)
}

/// The first proposal of the bundled examples, an ALLOW for the warehouse robot from rest:
/// without the `prev` it claims (the server's `prev.` is what it executed; the fallback's
/// 0 m/s before an agent's first action) and at 0.3 m/s (within the speed-up ramp from 0).
fn proposal(agent: &str) -> String {
    let text = std::fs::read_to_string(repo().join("policies/examples/warehouse.jsonl")).unwrap();
    let mut v: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    v["agent"] = json!(agent);
    v["action"]["vx"] = json!(0.3);
    if let Some(o) = v.as_object_mut() {
        o.remove("timestamp");
        o.remove("id");
        o.remove("prev");
    }
    v.to_string()
}

struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

fn start(args: &[&str]) -> Server {
    let mut child = aioss()
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let l = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if let Some(a) = line.split("listening on http://").nth(1) {
                let _ = tx.send(a.trim().to_string());
            }
            l.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("the server did not start: {}", log.lock().unwrap()));
    Server {
        child,
        addr: addr.parse().unwrap(),
        log,
    }
}

fn signal(s: &Server, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(s.child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(s: &mut Server) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            return st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the server did not stop: {}",
            s.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One request (HTTP/1.1, `Connection: close`); `None` if the connection failed.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8(buf).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_string()))
}

fn all_records(store: &Path) -> Vec<aioss_audit::Record> {
    let mut s = SqliteStore::open_existing(store).unwrap();
    let mut out = Vec::new();
    s.scan(&mut |r| {
        out.push(r);
        Ok(true)
    })
    .unwrap();
    out
}

#[test]
fn sigterm_under_load_loses_nothing_acknowledged() {
    let dir = tmpdir("sigterm");
    let key = dir.join("k.key");
    assert!(aioss()
        .args(["audit", "keygen"])
        .arg(&key)
        .output()
        .unwrap()
        .status
        .success());
    let store = dir.join("a.db");
    let policy = repo().join("policies/warehouse-robot.toml");
    let mut s = start(&[
        "--policy",
        policy.to_str().unwrap(),
        "--audit",
        store.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    let acked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let other: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (acked, other, stop) = (Arc::clone(&acked), Arc::clone(&other), Arc::clone(&stop));
            let addr = s.addr;
            let body = proposal(&format!("r{i}"));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match http(addr, "POST", "/v1/decisions", &body) {
                        Some((200, b)) => acked
                            .lock()
                            .unwrap()
                            .push(serde_json::from_str(&b).unwrap()),
                        Some(x) => other.lock().unwrap().push(x),
                        // Refused connection: the server stopped accepting.
                        None => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        })
        .collect();
    let t = Instant::now();
    while acked.lock().unwrap().len() < 200 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&s, "TERM");
    let st = wait_exit(&mut s);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert!(st.success(), "exit {st:?}: {}", s.log.lock().unwrap());
    let acked = acked.lock().unwrap();
    assert!(acked.len() >= 200, "only {} decisions", acked.len());
    // Anything not acknowledged was told to fall back.
    for (status, b) in other.lock().unwrap().iter() {
        assert_eq!(*status, 503, "{b}");
        assert!(b.contains("fallback"), "{b}");
    }
    let recs = all_records(&store);
    for d in acked.iter() {
        let seq = d["record"]["seq"].as_u64().unwrap();
        let r = recs
            .iter()
            .find(|r| r.seq == seq)
            .unwrap_or_else(|| panic!("acknowledged record {seq} is missing"));
        assert_eq!(Some(r.hash.as_str()), d["record"]["hash"].as_str());
        assert_eq!(Some(r.decision_id.as_str()), d["decision_id"].as_str());
    }
    // The chain verifies against the key, and the shutdown signed the head.
    let out = aioss()
        .args(["audit", "verify"])
        .arg(&store)
        .arg("--public-key")
        .arg(&key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = recs.last().unwrap().seq;
    let mut st = SqliteStore::open_existing(&store).unwrap();
    assert_eq!(st.checkpoints().unwrap().last().unwrap().seq, head);
    // And a restart continues the chain.
    let mut s = start(&[
        "--policy",
        policy.to_str().unwrap(),
        "--audit",
        store.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    let (status, b) = http(s.addr, "POST", "/v1/decisions", &proposal("r9")).unwrap();
    assert_eq!(status, 200, "{b}");
    let d: Value = serde_json::from_str(&b).unwrap();
    // After the `snapshot` record the start writes (what it restored).
    assert_eq!(d["record"]["seq"].as_u64(), Some(head + 2));
    signal(&s, "TERM");
    assert!(wait_exit(&mut s).success());
    let start = all_records(&store)
        .into_iter()
        .find(|r| r.seq == head + 1)
        .unwrap();
    assert_eq!(start.kind, "snapshot");
    assert!(start.proposal.contains("\"start\""), "{}", start.proposal);
}

#[test]
fn hot_reload_under_load_fails_nothing_and_records_name_their_policy() {
    let dir = tmpdir("reload");
    let store = dir.join("a.db");
    let policy = dir.join("p.toml");
    let text = std::fs::read_to_string(repo().join("policies/warehouse-robot.toml")).unwrap();
    let versions = [
        text.clone(),
        text.replace("version = \"1.0.0\"", "version = \"1.0.1\""),
    ];
    std::fs::write(&policy, &versions[0]).unwrap();
    let mut s = start(&[
        "--policy",
        policy.to_str().unwrap(),
        "--audit",
        store.to_str().unwrap(),
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (answers, stop) = (Arc::clone(&answers), Arc::clone(&stop));
            let addr = s.addr;
            let body = proposal(&format!("r{i}"));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = http(addr, "POST", "/v1/decisions", &body)
                        .unwrap_or((0, "connection failed".into()));
                    answers.lock().unwrap().push(r);
                }
            })
        })
        .collect();
    let mut reloads = 0;
    for k in 1..=6 {
        std::thread::sleep(Duration::from_millis(250));
        // Atomic replacement, as an editor or a deployment would do it.
        let tmp = dir.join("p.toml.new");
        std::fs::write(&tmp, &versions[k % 2]).unwrap();
        std::fs::rename(&tmp, &policy).unwrap();
        if k % 2 == 0 {
            signal(&s, "HUP");
        } else {
            let (st, b) = http(s.addr, "POST", "/v1/policy/reload", "").unwrap();
            assert_eq!(st, 200, "{b}");
        }
        reloads += 1;
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    signal(&s, "TERM");
    assert!(wait_exit(&mut s).success(), "{}", s.log.lock().unwrap());
    let answers = answers.lock().unwrap();
    assert!(answers.len() > 50);
    for (st, b) in answers.iter() {
        assert_eq!(*st, 200, "a request failed during reloads: {b}");
    }
    // Walk the chain: each decision names the policy in force at its place in the log.
    let recs = all_records(&store);
    let mut current = recs[0].policy_hash.clone();
    let mut seen = std::collections::BTreeSet::new();
    let mut n_reloads = 0;
    for r in &recs {
        if r.kind == "policy_reload" {
            let a: Value = serde_json::from_str(&r.decision).unwrap();
            assert_eq!(a["previous"]["hash"].as_str(), Some(current.as_str()));
            current = a["policy"]["hash"].as_str().unwrap().to_string();
            assert_eq!(r.policy_hash, current);
            n_reloads += 1;
        } else if r.kind == "decision" {
            let d: Value = serde_json::from_str(&r.decision).unwrap();
            assert_eq!(r.policy_hash, current, "record {}", r.seq);
            assert_eq!(d["policy"]["hash"].as_str(), Some(current.as_str()));
            seen.insert(current.clone());
        }
    }
    assert_eq!(n_reloads, reloads);
    assert_eq!(seen.len(), 2, "decisions under both versions");
    // Every answer the clients got is one of these records.
    for (_, b) in answers.iter() {
        let d: Value = serde_json::from_str(b).unwrap();
        let seq = d["record"]["seq"].as_u64().unwrap();
        let r = &recs[usize::try_from(seq).unwrap()];
        assert_eq!(Some(r.policy_hash.as_str()), d["policy"]["hash"].as_str());
    }
}

#[test]
fn without_a_config_it_refuses_to_listen_beyond_loopback() {
    let dir = tmpdir("loopback");
    let out = aioss()
        .args(["serve", "--policy"])
        .arg(repo().join("policies/warehouse-robot.toml"))
        .arg("--audit")
        .arg(dir.join("a.db"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn hash_token_prints_the_sha256() {
    let mut c = aioss()
        .args(["serve", "hash-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    let out = c.wait_with_output().unwrap();
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn a_bad_config_is_refused_naming_the_field() {
    let dir = tmpdir("badconfig");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[server]\nqueue_bund = 3\n").unwrap();
    let out = aioss()
        .args(["serve", "--policy"])
        .arg(repo().join("policies/warehouse-robot.toml"))
        .arg("--audit")
        .arg(dir.join("a.db"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`server.queue_bund`"), "{err}");
}

/// Past `max_connections`, reserved connections still answer `/healthz` (caught: idle
/// sockets up to the cap locked everyone out, health included); past those, new
/// connections wait in the backlog for a free slot.
#[test]
fn connections_past_the_limit_wait_but_healthz_is_answered() {
    let dir = tmpdir("maxconn");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        "[server]\nmax_connections = 1\nreserved_connections = 1\n",
    )
    .unwrap();
    let mut s = start(&[
        "--policy",
        repo()
            .join("policies/warehouse-robot.toml")
            .to_str()
            .unwrap(),
        "--audit",
        dir.join("a.db").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    let idle = std::net::TcpStream::connect(s.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The reserved slot answers health at once.
    let (st, body) = http(s.addr, "GET", "/healthz", "").unwrap();
    assert_eq!(st, 200, "{body}");
    // With the reserved slot held too, the next connection waits...
    let reserved = std::net::TcpStream::connect(s.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    write!(
        c,
        "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    let early = c.read(&mut buf);
    assert!(
        early.is_err(),
        "answered while every connection slot was taken"
    );
    // ... until one closes.
    drop(idle);
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    drop(reserved);
    signal(&s, "TERM");
    assert!(wait_exit(&mut s).success());
}

/// One request with a bearer token (HTTP/1.1, `Connection: close`).
fn http_as(addr: SocketAddr, token: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

/// Caught (issue 18, item 5): state had to be rebuilt by re-deciding the whole log at a
/// start. With snapshots, `kill -9` still loses nothing: the restart restores the last
/// snapshot and re-decides the records after it, the daily budget holds, the signed head
/// covers every record (so the key does not refuse the store), and replay agrees.
#[test]
fn a_kill_9_loses_no_budget_and_replay_agrees() {
    let dir = tmpdir("kill9");
    let key = dir.join("k.key");
    let out = aioss()
        .args(["audit", "keygen"])
        .arg(&key)
        .output()
        .unwrap();
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let cfg = dir.join("c.toml");
    let hash = aioss_server::config::hash_token("token-fin");
    std::fs::write(
        &cfg,
        format!("[server]\nsnapshot_every = 2\n[[agent]]\nid = \"fin\"\ntoken_sha256 = \"{hash}\"\nattributes = {{ role = \"finance\", trust = 0.9, status = \"active\" }}\n"),
    )
    .unwrap();
    let store = dir.join("a.db");
    let policy = repo().join("policies/agent-tools.toml");
    let args = [
        "--policy",
        policy.to_str().unwrap(),
        "--audit",
        store.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let transfer = |amount: f64| {
        json!({
            "action": {"tool": "transfer", "amount": amount, "recipients": 0, "file_count": 0,
                       "write_mb": 0.0, "tokens": 500, "external": false, "preview": false},
            "state": {"session_risk": "low", "user_confirmed": true, "sandboxed": true,
                      "protected_dir": false, "pii_detected": false, "injection_score": 0.05,
                      "balance": 1_000_000.0, "task_description": "pay a supplier"},
        })
        .to_string()
    };
    let mut s = start(&args);
    for amount in [20_000.0, 5_000.0, 20_000.0] {
        let (st, d) = http_as(s.addr, "token-fin", "/v1/decisions", &transfer(amount));
        assert_eq!((st, &d["final_outcome"]), (200, &json!("ALLOW")), "{d}");
    }
    signal(&s, "KILL");
    let _ = wait_exit(&mut s);
    let mut s = start(&args);
    let (st, d) = http_as(s.addr, "token-fin", "/v1/decisions", &transfer(20_000.0));
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["final_outcome"], "BLOCK_NO_REPAIR", "{d}");
    signal(&s, "TERM");
    assert!(wait_exit(&mut s).success(), "{}", s.log.lock().unwrap());
    let out = aioss()
        .args(["audit", "replay"])
        .arg(&store)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = aioss()
        .args(["audit", "verify"])
        .arg(&store)
        .args(["--public-key", &public])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Issue 23, item 8: a failed start (the port in use) left an empty audit store behind.
#[test]
fn a_failed_start_leaves_an_empty_audit_store_behind() {
    let dir = tmpdir("port-in-use");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let store = dir.join("a.db");
    let out = aioss()
        .args(["serve", "--policy"])
        .arg(repo().join("policies/warehouse-robot.toml"))
        .arg("--audit")
        .arg(&store)
        .args(["--listen", &addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
    assert!(!store.exists(), "{err}");
    drop(taken);
}
