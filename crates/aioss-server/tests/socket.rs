//! Every route of the table, over a real socket (port 0 on loopback).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

async fn req(
    addr: std::net::SocketAddr,
    method: &'static str,
    path: String,
    token: Option<&'static str>,
    body: String,
) -> (u16, String) {
    tokio::task::spawn_blocking(move || http(addr, method, &path, token, &body))
        .await
        .unwrap()
}

fn j(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_over_a_real_socket() {
    let s = on_socket(server("socket", Some(&config_text()))).await;
    let addr = s.addr.unwrap();
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    let mut cover = |m: &str, p: &str| covered.insert((m.to_string(), p.to_string()));

    // Bad input and auth failures over the socket too.
    let (st, b) = req(addr, "POST", "/v1/decisions".into(), Some(R1), "{".into()).await;
    assert_eq!(st, 400);
    assert_eq!(record_of(&s.store, &j(&b)).kind, "input_error");
    let (st, b) = req(addr, "POST", "/v1/decisions".into(), None, "{}".into()).await;
    assert_eq!(st, 401);
    // Counted, not recorded.
    assert_eq!(j(&b)["error"]["code"], "missing_token");
    assert!(j(&b).get("record").is_none());

    let base = baseline().to_string();
    let (st, b) = req(addr, "POST", "/v1/decisions".into(), Some(R1), base.clone()).await;
    assert_eq!(st, 200, "{b}");
    cover("POST", "/v1/decisions");
    let d = j(&b);
    let id = d["decision_id"].as_str().unwrap().to_string();
    let (st, b) = req(
        addr,
        "GET",
        format!("/v1/decisions/{id}"),
        Some(R1),
        String::new(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(j(&b)["record"], d["record"]);
    cover("GET", "/v1/decisions/{decision_id}");
    let mut state = baseline()["state"].clone();
    state["px"] = json!(15.03);
    let (st, b) = req(
        addr,
        "POST",
        format!("/v1/decisions/{id}/outcome"),
        Some(R1),
        json!({ "state": state }).to_string(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(j(&b)["evaluation"], "EFFECTIVE");
    cover("POST", "/v1/decisions/{decision_id}/outcome");

    let mut holds = Vec::new();
    for _ in 0..2 {
        let (st, b) = req(
            addr,
            "POST",
            "/v1/decisions".into(),
            Some(LOW),
            base.clone(),
        )
        .await;
        assert_eq!(st, 200);
        holds.push(j(&b)["decision_id"].as_str().unwrap().to_string());
    }
    let (st, b) = req(
        addr,
        "GET",
        "/v1/confirmations".into(),
        Some(ALICE),
        String::new(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(j(&b)["pending"].as_array().unwrap().len(), 2);
    cover("GET", "/v1/confirmations");
    let (st, b) = req(
        addr,
        "POST",
        format!("/v1/confirmations/{}/approve", holds[0]),
        Some(ALICE),
        String::new(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(j(&b)["status"], "approved");
    cover("POST", "/v1/confirmations/{id}/approve");
    let (st, b) = req(
        addr,
        "POST",
        format!("/v1/confirmations/{}/reject", holds[1]),
        Some(ALICE),
        String::new(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(j(&b)["status"], "rejected");
    cover("POST", "/v1/confirmations/{id}/reject");
    let (st, b) = req(
        addr,
        "POST",
        "/v1/policy/reload".into(),
        Some(ALICE),
        String::new(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(record_of(&s.store, &j(&b)).kind, "policy_reload");
    cover("POST", "/v1/policy/reload");
    let agent = d["agent"].as_str().unwrap();
    let (st, b) = req(
        addr,
        "POST",
        format!("/v1/agents/{agent}/reset"),
        Some(ALICE),
        String::new(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(j(&b)["was"], "normal", "{b}");
    assert_eq!(record_of(&s.store, &j(&b)).kind, "agent_reset");
    cover("POST", "/v1/agents/{agent}/reset");
    let (st, b) = req(addr, "GET", "/healthz".into(), None, String::new()).await;
    assert_eq!(st, 200);
    assert_eq!(j(&b)["status"], "ok");
    assert_eq!(j(&b)["mode"], "authenticated");
    cover("GET", "/healthz");
    let (st, b) = req(addr, "GET", "/metrics".into(), None, String::new()).await;
    assert_eq!(st, 200);
    assert!(
        b.contains("aioss_decisions_total{outcome=\"ALLOW\"} 1"),
        "{b}"
    );
    assert!(b.contains("aioss_decisions_total{outcome=\"HOLD_FOR_CONFIRMATION\"} 2"));
    assert!(b.contains("aioss_confirmations_total{status=\"approved\"} 1"));
    assert!(b.contains("aioss_stage_latency_seconds_count{stage=\"decide\"} 3"));
    assert!(b.contains("aioss_pending_holds 0"));
    cover("GET", "/metrics");
    let (st, b) = req(addr, "GET", "/openapi.json".into(), None, String::new()).await;
    assert_eq!(st, 200);
    let doc = j(&b);
    cover("GET", "/openapi.json");
    // Every route served is described, and every route was exercised here.
    for r in aioss_server::http::ROUTES {
        assert!(
            doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()].is_object(),
            "{} {} is not in openapi.json",
            r.method,
            r.path
        );
    }
    let all: BTreeSet<(String, String)> = aioss_server::http::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(covered, all);
    // Anything else is a JSON 404.
    let (st, b) = req(addr, "GET", "/v2/nothing".into(), None, String::new()).await;
    assert_eq!(st, 404);
    assert_eq!(j(&b)["error"]["code"], "not_found");
    let store = s.store.clone();
    s.running.stop().unwrap();
    let mut st = aioss_audit::open_store(store.to_str().unwrap(), false).unwrap();
    let v = aioss_audit::verify::verify(st.as_mut(), None).unwrap();
    assert!(v.problem.is_none(), "{:?}", v.problem);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_development_mode_needs_no_token() {
    let s = on_socket(server("dev", None)).await;
    let addr = s.addr.unwrap();
    let mut b = baseline();
    b["agent"] = json!("anyone");
    let (st, out) = req(addr, "POST", "/v1/decisions".into(), None, b.to_string()).await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(j(&out)["agent"], "anyone");
    let (st, out) = req(addr, "GET", "/healthz".into(), None, String::new()).await;
    assert_eq!(st, 200);
    assert_eq!(j(&out)["mode"], "local-development");
    s.running.stop().unwrap();
}

/// A server on a real socket whose `[server]` section also has `extra`.
async fn serving(tag: &str, extra: &str) -> Server {
    let cfg = config_text().replace("[server]\n", &format!("[server]\n{extra}\n"));
    on_socket(server(tag, Some(&cfg))).await
}

/// Read until the server closes the connection (or `limit` passes): what was read, and
/// whether it closed.
fn read_until_closed(c: &mut std::net::TcpStream, limit: Duration) -> (String, bool) {
    use std::io::Read;
    c.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).to_string(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&out).to_string(), true)
            }
            Err(_) => return (String::from_utf8_lossy(&out).to_string(), false),
        }
    }
}

use std::io::Write as _;
use std::time::{Duration, Instant};

/// Caught (slowloris): a connection that sends nothing was held for ever. It is closed
/// after `keep_alive_timeout_secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_keep_alive_timeout() {
    let s = serving("idle", "keep_alive_timeout_secs = 0.5").await;
    let addr = s.addr.unwrap();
    let (took, closed) = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let t = Instant::now();
        let (_, closed) = read_until_closed(&mut c, Duration::from_secs(10));
        (t.elapsed(), closed)
    })
    .await
    .unwrap();
    assert!(closed, "the idle connection was not closed");
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Between keep-alive requests too: one request, then silence.
    let (text, closed) = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        write!(c, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        read_until_closed(&mut c, Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "the kept-alive connection was not closed");
    s.running.stop().unwrap();
}

/// Caught (slowloris): a request head dribbled a header at a time kept its connection
/// open for ever. The head must be complete `header_read_timeout_secs` after its first
/// byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_dribbled_slowly_is_cut_off() {
    let s = serving("dribble", "header_read_timeout_secs = 0.5").await;
    let addr = s.addr.unwrap();
    let (took, cut) = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let t = Instant::now();
        write!(c, "GET /healthz HTTP/1.1\r\n").unwrap();
        for i in 0..60 {
            std::thread::sleep(Duration::from_millis(100));
            if write!(c, "X-Slow-{i}: y\r\n").is_err() {
                return (t.elapsed(), true);
            }
            c.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            let mut b = [0u8; 64];
            if matches!(std::io::Read::read(&mut c, &mut b), Ok(0)) {
                return (t.elapsed(), true);
            }
        }
        (t.elapsed(), false)
    })
    .await
    .unwrap();
    assert!(cut, "six seconds of dribbled headers were accepted");
    assert!(took < Duration::from_secs(3), "{took:?}");
    s.running.stop().unwrap();
}

/// A body that does not arrive within `body_read_timeout_secs` is answered 408, JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_answered_408() {
    let s = serving("slowbody", "body_read_timeout_secs = 0.5").await;
    let addr = s.addr.unwrap();
    let (text, took) = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let t = Instant::now();
        write!(
            c,
            "POST /v1/decisions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {R1}\r\nContent-Length: 100\r\n\r\n{{\"action\""
        )
        .unwrap();
        let (text, _) = read_until_closed(&mut c, Duration::from_secs(10));
        (text, t.elapsed())
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"]["code"], "body_timeout");
    assert!(took < Duration::from_secs(5), "{took:?}");
    s.running.stop().unwrap();
}

/// Caught: one address could hold every connection slot. It holds at most
/// `max_connections_per_address`; more are closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_connection_cap() {
    let s = serving("peraddr", "max_connections_per_address = 3").await;
    let addr = s.addr.unwrap();
    let ok = tokio::task::spawn_blocking(move || {
        let held: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut fourth = std::net::TcpStream::connect(addr).unwrap();
        let _ = write!(fourth, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        let (text, closed) = read_until_closed(&mut fourth, Duration::from_secs(5));
        assert!(closed && text.is_empty(), "{text}");
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        http(addr, "GET", "/healthz", None, "").0
    })
    .await
    .unwrap();
    assert_eq!(ok, 200);
    let (_, m) = call(&s, "GET", "/metrics", None, "").await;
    assert!(
        m.as_str()
            .unwrap()
            .contains("aioss_connection_events_total{event=\"refused_per_address\"} 1"),
        "{m}"
    );
    s.running.stop().unwrap();
}

/// Caught: idle sockets up to `max_connections` locked everyone out, `/healthz` included.
/// Past the cap, reserved connections still answer `/healthz` (and refuse other routes
/// with a JSON 503); past those, connections wait in the backlog for a free slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_answered_while_every_connection_slot_is_held() {
    let s = serving("healthcap", "max_connections = 2\nreserved_connections = 2").await;
    let addr = s.addr.unwrap();
    tokio::task::spawn_blocking(move || {
        let held: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        let (st, body) = http(addr, "GET", "/healthz", None, "");
        assert_eq!(st, 200, "{body}");
        assert_eq!(j(&body)["status"], "ok");
        assert!(t.elapsed() < Duration::from_secs(2));
        let (st, body) = http(addr, "POST", "/v1/decisions", Some(R1), "{}");
        assert_eq!(st, 503, "{body}");
        assert_eq!(j(&body)["error"]["code"], "too_many_connections");
        // Both reserved slots held too: the next connection waits in the backlog...
        let reserved: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        write!(
            c,
            "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let (early, _) = read_until_closed(&mut c, Duration::from_millis(500));
        assert!(early.is_empty(), "answered past every slot: {early}");
        // ... until one frees.
        drop(held);
        let (text, _) = read_until_closed(&mut c, Duration::from_secs(10));
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        drop(reserved);
    })
    .await
    .unwrap();
    s.running.stop().unwrap();
}

/// Requests hyper cannot parse are answered by it with an empty body (documented: it
/// offers no hook for one) and counted; a body that cannot be read is a JSON 400 (caught:
/// a broken chunked body was answered 413 `too_large`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_have_an_empty_body_and_a_broken_body_is_a_json_400() {
    let s = serving("proto", "").await;
    let addr = s.addr.unwrap();
    let answers = tokio::task::spawn_blocking(move || {
        [
            "BLAH\r\n\r\n".to_string(),
            format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(70_000)),
            format!("GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n", "a".repeat(500_000)),
            format!(
                "POST /v1/decisions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer {R1}\r\n\r\nzz\r\n"
            ),
        ]
        .iter()
        .map(|raw| {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            let _ = c.write_all(raw.as_bytes());
            read_until_closed(&mut c, Duration::from_secs(10)).0
        })
        .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (text, status) in answers.iter().zip(["400", "414", "431"]) {
        assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
        assert!(text.contains("content-length: 0\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }
    let broken = &answers[3];
    assert!(broken.starts_with("HTTP/1.1 400"), "{broken}");
    let v = j(broken.split_once("\r\n\r\n").unwrap().1);
    assert_eq!(v["error"]["code"], "malformed_body", "{v}");
    let (_, m) = call(&s, "GET", "/metrics", None, "").await;
    assert!(
        m.as_str()
            .unwrap()
            .contains("aioss_connection_events_total{event=\"protocol_error\"} 3"),
        "{m}"
    );
    s.running.stop().unwrap();
}
