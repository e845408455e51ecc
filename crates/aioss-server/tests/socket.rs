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
    let s = server("socket", Some(&config_text()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = s.running.router();
    let served = tokio::spawn(async move { axum::serve(listener, router).await });
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
    state["px"] = json!(15.05);
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
            doc["paths"][r.path][r.method.to_ascii_lowercase()].is_object(),
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
    served.abort();
    let store = s.store.clone();
    s.running.stop().unwrap();
    let mut st = aioss_audit::open_store(store.to_str().unwrap(), false).unwrap();
    let v = aioss_audit::verify::verify(st.as_mut(), None).unwrap();
    assert!(v.problem.is_none(), "{:?}", v.problem);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_development_mode_needs_no_token() {
    let s = server("dev", None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = s.running.router();
    let served = tokio::spawn(async move { axum::serve(listener, router).await });
    let mut b = baseline();
    b["agent"] = json!("anyone");
    let (st, out) = req(addr, "POST", "/v1/decisions".into(), None, b.to_string()).await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(j(&out)["agent"], "anyone");
    let (st, out) = req(addr, "GET", "/healthz".into(), None, String::new()).await;
    assert_eq!(st, 200);
    assert_eq!(j(&out)["mode"], "local-development");
    served.abort();
    s.running.stop().unwrap();
}
