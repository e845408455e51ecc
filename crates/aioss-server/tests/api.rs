//! The HTTP API: identity, bad input, confirmations, outcomes, reload, overload. Most
//! tests drive the router without a socket (`tower::ServiceExt::oneshot`); the bad-input,
//! auth and impersonation tests go over a real socket. Every refusal must be a 4xx JSON
//! error that names a record which is in the store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::{json, Value};

fn finish(s: Server) -> Vec<aioss_audit::Record> {
    let store = s.store.clone();
    s.running.stop().unwrap();
    records(&store)
}

/// The refusal is a JSON error with a code and a message, and it is in the audit chain.
fn assert_recorded_error(s: &Server, status: u16, v: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let r = record_of(&s.store, v);
    let recorded: Value = serde_json::from_str(&r.decision).unwrap();
    assert_eq!(recorded["error"]["code"], code);
    assert!(r.kind == "input_error" || r.kind == "refused", "{}", r.kind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_takes_its_identity_from_the_token() {
    let s = server("identity", Some(&config_text()));
    let (st, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(R1),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(st, 200, "{d}");
    // warehouse-robot.toml's own test: the baseline is ALLOW for a picker with trust 0.9.
    assert_eq!(d["final_outcome"], "ALLOW");
    assert_eq!(d["agent"], "r1");
    let r = record_of(&s.store, &d);
    assert_eq!(r.kind, "decision");
    assert_eq!(
        d["policy"]["hash"].as_str(),
        Some(s.running.app.shared.policy().hash.as_str())
    );
    assert_eq!(r.policy_hash, s.running.app.shared.policy().hash);
    // The recorded proposal carries the configured identity.
    let p: Value = serde_json::from_str(&r.proposal).unwrap();
    assert_eq!(p["agent"], "r1");
    assert_eq!(
        p["agent_attributes"],
        json!({"role": "picker", "trust": 0.9})
    );
    // The same agent reads it back, with its record.
    let id = d["decision_id"].as_str().unwrap();
    let (st, g) = call(&s, "GET", &format!("/v1/decisions/{id}"), Some(R1), "").await;
    assert_eq!(st, 200);
    assert_eq!(g["record"], d["record"]);
    assert_eq!(g["final_outcome"], "ALLOW");
    // Another agent may not.
    let (st, v) = call(&s, "GET", &format!("/v1/decisions/{id}"), Some(LOW), "").await;
    assert_recorded_error(&s, st, &v, 403, "not_your_decision");
    // The trust in the configuration decides: the low-trust agent's identical body is held.
    let (st, h) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(LOW),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(h["final_outcome"], "HOLD_FOR_CONFIRMATION");
    assert_eq!(h["rule"], "rule-low-trust");
    let recs = finish(s);
    assert!(recs.iter().all(|r| r.policy_hash == recs[0].policy_hash));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_is_refused_and_recorded() {
    // Over a real socket.
    let s = on_socket(server("impersonate", Some(&config_text()))).await;
    let mut b = baseline();
    b["agent"] = json!("low");
    let (st, v) = call(&s, "POST", "/v1/decisions", Some(R1), &b.to_string()).await;
    assert_recorded_error(&s, st, &v, 403, "identity_mismatch");
    assert_eq!(v["error"]["field"], "agent");
    // Claiming more trust than configured.
    let mut b = baseline();
    b["agent_attributes"] = json!({"role": "picker", "trust": 1.0});
    let (st, v) = call(&s, "POST", "/v1/decisions", Some(LOW), &b.to_string()).await;
    assert_recorded_error(&s, st, &v, 403, "attributes_mismatch");
    assert_eq!(v["error"]["field"], "agent_attributes");
    // Restating one's own identity is fine.
    let mut b = baseline();
    b["agent"] = json!("r1");
    b["agent_attributes"] = json!({"trust": 0.9, "role": "picker"});
    let (st, v) = call(&s, "POST", "/v1/decisions", Some(R1), &b.to_string()).await;
    assert_eq!(st, 200, "{v}");
    let recs = finish(s);
    let refused: Vec<_> = recs.iter().filter(|r| r.kind == "refused").collect();
    assert_eq!(refused.len(), 2);
    // The record says who tried.
    assert!(refused[0].proposal.contains("\"r1\""));
    assert!(refused[1].proposal.contains("\"low\""));
}

/// A 401 is a JSON error that is counted, never recorded (anyone who can reach the port
/// could otherwise fill the disk).
fn assert_unrecorded_401(s: &Server, status: u16, v: &Value, code: &str) {
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v.get("record").is_none(), "{v}");
    assert!(records(&s.store)
        .iter()
        .all(|r| r.kind != "refused" || !r.decision.contains(&format!("\"{code}\""))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_are_401_unrecorded_or_403_recorded() {
    // Over a real socket.
    let s = on_socket(server("auth", Some(&config_text()))).await;
    let body = baseline().to_string();
    let (st, v) = call(&s, "POST", "/v1/decisions", None, &body).await;
    assert_unrecorded_401(&s, st, &v, "missing_token");
    let (st, v) = call(&s, "POST", "/v1/decisions", Some("not-a-token"), &body).await;
    assert_unrecorded_401(&s, st, &v, "bad_token");
    // An operator does not propose; an agent does not answer holds or reload.
    let (st, v) = call(&s, "POST", "/v1/decisions", Some(ALICE), &body).await;
    assert_recorded_error(&s, st, &v, 403, "forbidden");
    let (st, v) = call(&s, "GET", "/v1/confirmations", Some(R1), "").await;
    assert_recorded_error(&s, st, &v, 403, "forbidden");
    let (st, v) = call(&s, "POST", "/v1/confirmations/x/approve", Some(R1), "").await;
    assert_recorded_error(&s, st, &v, 403, "forbidden");
    let (st, v) = call(&s, "POST", "/v1/policy/reload", Some(R1), "").await;
    assert_recorded_error(&s, st, &v, 403, "forbidden");
    let (st, v) = call(&s, "GET", "/v1/confirmations", None, "").await;
    assert_unrecorded_401(&s, st, &v, "missing_token");
    let (_, m) = call(&s, "GET", "/metrics", None, "").await;
    let m = m.as_str().unwrap().to_string();
    assert!(
        m.contains("aioss_unauthenticated_total{code=\"missing_token\"} 2"),
        "{m}"
    );
    finish(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_a_4xx_json_error_and_recorded() {
    // Over a real socket.
    let s = on_socket(server("badinput", Some(&config_text()))).await;
    let mut cases: Vec<(String, &str, Option<&str>)> = vec![
        ("{\"action\":".into(), "malformed_json", None),
        ("[1,2]".into(), "wrong_type", None),
    ];
    let mut b = baseline();
    b["action"]["vx"] = json!("fast");
    cases.push((b.to_string(), "wrong_type", Some("action.vx")));
    let mut b = baseline();
    b["action"]["warp"] = json!(1.0);
    cases.push((b.to_string(), "unknown_field", Some("action.warp")));
    let mut b = baseline();
    b["state"]["zone"] = json!("moon");
    cases.push((b.to_string(), "unknown_enum_value", Some("state.zone")));
    let mut b = baseline();
    b["timestamp"] = json!("yesterday");
    cases.push((b.to_string(), "invalid_value", Some("timestamp")));
    for (body, code, field) in &cases {
        let (st, v) = call(&s, "POST", "/v1/decisions", Some(R1), body).await;
        assert_recorded_error(&s, st, &v, 400, code);
        if let Some(f) = field {
            assert_eq!(v["error"]["field"], *f, "{v}");
        }
    }
    // Bad outcomes and answers.
    let (_, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(R1),
        &baseline().to_string(),
    )
    .await;
    let id = d["decision_id"].as_str().unwrap().to_string();
    let out = format!("/v1/decisions/{id}/outcome");
    let (st, v) = call(&s, "POST", &out, Some(R1), "{}").await;
    assert_recorded_error(&s, st, &v, 400, "missing_field");
    let (st, v) = call(&s, "POST", &out, Some(R1), "{\"state\": 3}").await;
    assert_recorded_error(&s, st, &v, 400, "wrong_type");
    let (st, v) = call(
        &s,
        "POST",
        &out,
        Some(R1),
        "{\"state\": {\"zone\": \"moon\"}}",
    )
    .await;
    assert_recorded_error(&s, st, &v, 400, "unknown_enum_value");
    assert_eq!(v["error"]["field"], "state.zone");
    let (st, v) = call(&s, "POST", &out, Some(R1), "nope").await;
    assert_recorded_error(&s, st, &v, 400, "malformed_json");
    let (st, v) = call(
        &s,
        "POST",
        "/v1/decisions/nope-1/outcome",
        Some(R1),
        "{\"state\":{}}",
    )
    .await;
    assert_recorded_error(&s, st, &v, 404, "unknown_decision");
    let (st, v) = call(&s, "GET", "/v1/decisions/nope-1", Some(R1), "").await;
    assert_recorded_error(&s, st, &v, 404, "unknown_decision");
    let (st, v) = call(
        &s,
        "POST",
        "/v1/confirmations/nope-1/approve",
        Some(ALICE),
        "",
    )
    .await;
    assert_recorded_error(&s, st, &v, 404, "no_pending_hold");
    let (st, v) = call(
        &s,
        "POST",
        "/v1/confirmations/nope-1/reject",
        Some(ALICE),
        "[",
    )
    .await;
    assert_recorded_error(&s, st, &v, 400, "malformed_json");
    // The whole chain verifies, and replay re-decides what the governor decided.
    let store = s.store.clone();
    let policy = s.policy.clone();
    finish(s);
    let mut st = aioss_audit::open_store(store.to_str().unwrap(), false).unwrap();
    let v = aioss_audit::verify::verify(st.as_mut(), None).unwrap();
    assert!(v.problem.is_none(), "{:?}", v.problem);
    let mut g = aioss_core::Governor::new(aioss_server::serve::load_policy(&policy).unwrap());
    let rep = aioss_audit::replay::replay(st.as_mut(), &mut g, true).unwrap();
    assert!(rep.agrees(), "{:?}", rep.differences);
    assert!(rep.events > 0 && rep.input_errors == cases.len() as u64);
}

/// A hold for the low-trust agent; returns its decision.
async fn hold(s: &Server) -> Value {
    let (st, h) = call(
        s,
        "POST",
        "/v1/decisions",
        Some(LOW),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["final_outcome"], "HOLD_FOR_CONFIRMATION");
    h
}

async fn pending(s: &Server, id: &str) -> Value {
    let (st, l) = call(s, "GET", "/v1/confirmations", Some(ALICE), "").await;
    assert_eq!(st, 200);
    l["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_and_reject_are_recorded_with_who_answered() {
    let s = server("approve", Some(&config_text()));
    let h = hold(&s).await;
    let id = h["decision_id"].as_str().unwrap().to_string();
    let p = pending(&s, &id).await;
    assert_eq!(p["agent"], "low");
    assert_eq!(p["action"]["vx"], 0.3);
    assert_eq!(p["policy_hash"], h["policy"]["hash"]);
    // While pending, the agent sees so.
    let (_, g) = call(&s, "GET", &format!("/v1/decisions/{id}"), Some(LOW), "").await;
    assert_eq!(g["confirmation"]["status"], "pending");
    // Long poll: the answer arrives while the agent waits.
    let router = s.running.router();
    let wait = tokio::spawn({
        let id = id.clone();
        async move {
            use tower::ServiceExt;
            let req = axum::http::Request::get(format!("/v1/decisions/{id}?wait=30"))
                .header("authorization", format!("Bearer {LOW}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let r = router.oneshot(req).await.unwrap();
            let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
            serde_json::from_slice::<Value>(&b).unwrap()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let body = json!({"action_digest": p["action_digest"], "reason": "checked on camera"});
    let (st, a) = call(
        &s,
        "POST",
        &format!("/v1/confirmations/{id}/approve"),
        Some(ALICE),
        &body.to_string(),
    )
    .await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["status"], "approved");
    assert_eq!(a["by"]["id"], "alice");
    assert_eq!(a["action"]["vx"], 0.3);
    let r = record_of(&s.store, &a);
    assert_eq!(r.kind, "confirmation");
    assert_eq!(r.decision_id, id);
    assert!(r.proposal.contains("alice"));
    let polled = tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(polled["confirmation"]["status"], "approved", "{polled}");
    assert_eq!(polled["confirmation"]["record"], a["record"]);
    assert!(pending(&s, &id).await.is_null());
    // Answered once only.
    let (st, v) = call(
        &s,
        "POST",
        &format!("/v1/confirmations/{id}/reject"),
        Some(ALICE),
        "",
    )
    .await;
    assert_recorded_error(&s, st, &v, 404, "no_pending_hold");
    // Reject.
    let h2 = hold(&s).await;
    let id2 = h2["decision_id"].as_str().unwrap();
    let (st, a) = call(
        &s,
        "POST",
        &format!("/v1/confirmations/{id2}/reject"),
        Some(ALICE),
        "{\"reason\":\"no\"}",
    )
    .await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["status"], "rejected");
    assert_eq!(a["reason"], "no");
    let (_, g) = call(&s, "GET", &format!("/v1/decisions/{id2}"), Some(LOW), "").await;
    assert_eq!(g["confirmation"]["status"], "rejected");
    assert_eq!(g["confirmation"]["by"]["id"], "alice");
    let store = s.store.clone();
    finish(s);
    // The governance report counts the answers as server events, not as input errors.
    let mut st = aioss_audit::open_store(store.to_str().unwrap(), false).unwrap();
    let stats = aioss_audit::report::gather(st.as_mut(), "t").unwrap();
    assert_eq!(stats.decisions, 2);
    assert_eq!(stats.events.get("confirmation"), Some(&2));
    assert_eq!(stats.input_errors.values().sum::<u64>(), 1); // the second answer
                                                             // The approval executed the held action: the governor's state changed with it (the
                                                             // agent's last action, and its budgets where the policy has any; caught: approvals
                                                             // were not charged), the rejection left it alone, and a replay of the log, which
                                                             // re-applies the approval, agrees with every recorded state.
    let recs = records(&store);
    let digest_before = |seq: u64| {
        recs.iter()
            .rfind(|r| r.seq < seq)
            .map(|r| r.state_digest.clone())
            .unwrap()
    };
    let approved = recs
        .iter()
        .find(|r| r.kind == "confirmation" && r.decision_id == id)
        .unwrap();
    assert_ne!(approved.state_digest, digest_before(approved.seq));
    let rejected = recs
        .iter()
        .find(|r| r.kind == "confirmation" && r.decision_id == id2)
        .unwrap();
    assert_eq!(rejected.state_digest, digest_before(rejected.seq));
    let text = std::fs::read_to_string(repo().join("policies/warehouse-robot.toml")).unwrap();
    let policy = aioss_core::load("warehouse-robot.toml", &text).unwrap();
    let mut g = aioss_core::Governor::new(policy);
    let rep = aioss_audit::replay::replay(st.as_mut(), &mut g, true).unwrap();
    assert_eq!(rep.differing, 0, "{:?}", rep.differences);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_of_a_changed_action_or_an_unsafe_state_is_refused() {
    let s = server("unsafe", Some(&config_text()));
    let h = hold(&s).await;
    let id = h["decision_id"].as_str().unwrap().to_string();
    let approve = format!("/v1/confirmations/{id}/approve");
    // A digest of another action.
    let (st, v) = call(
        &s,
        "POST",
        &approve,
        Some(ALICE),
        "{\"action_digest\":\"sha256:00\"}",
    )
    .await;
    assert_recorded_error(&s, st, &v, 409, "action_changed");
    // The agent reports a new state: inside pillar A's keep-out disc (10, 5.5), where no
    // action keeps the barrier (warehouse-robot.toml's FAILED_GOVERNANCE test).
    let mut b = baseline();
    b["state"]["px"] = json!(10.0);
    b["state"]["py"] = json!(5.5);
    let (st, _) = call(&s, "POST", "/v1/decisions", Some(LOW), &b.to_string()).await;
    assert_eq!(st, 200);
    let (st, v) = call(&s, "POST", &approve, Some(ALICE), "").await;
    assert_recorded_error(&s, st, &v, 409, "unsafe_now");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("pillar-a"),
        "{v}"
    );
    // Still pending: it may be approved once the state is safe again.
    assert!(!pending(&s, &id).await.is_null());
    let (st, _) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(LOW),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(st, 200);
    let (st, a) = call(&s, "POST", &approve, Some(ALICE), "").await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["status"], "approved");
    finish(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_expires_as_a_denial() {
    let cfg = config_text().replace("hold_expiry_secs = 600", "hold_expiry_secs = 0.3");
    let s = server("expire", Some(&cfg));
    let h = hold(&s).await;
    let id = h["decision_id"].as_str().unwrap().to_string();
    // The agent long-polls and learns the denial.
    let mut status = Value::Null;
    for _ in 0..100 {
        let (_, g) = call(
            &s,
            "GET",
            &format!("/v1/decisions/{id}?wait=5"),
            Some(LOW),
            "",
        )
        .await;
        status = g["confirmation"]["status"].clone();
        if status != "pending" {
            break;
        }
    }
    assert_eq!(status, "expired");
    // An answer after the expiry is refused as the documentation says: 409 (caught: the
    // hold was gone from memory and the answer was 404 `no_pending_hold`).
    let (st, v) = call(
        &s,
        "POST",
        &format!("/v1/confirmations/{id}/approve"),
        Some(ALICE),
        "",
    )
    .await;
    assert_recorded_error(&s, st, &v, 409, "hold_expired");
    let recs = finish(s);
    let exp: Vec<_> = recs
        .iter()
        .filter(|r| r.kind == "confirmation" && r.decision_id == id)
        .collect();
    assert_eq!(exp.len(), 1);
    assert!(exp[0].decision.contains("\"expired\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_under_another_policy_is_refused() {
    let s = server("stale", Some(&config_text()));
    let h = hold(&s).await;
    let id = h["decision_id"].as_str().unwrap().to_string();
    let old = h["policy"]["hash"].clone();
    // A bad policy file is refused and the old one stays.
    let text = std::fs::read_to_string(&s.policy).unwrap();
    std::fs::write(&s.policy, "this is not a policy").unwrap();
    let (st, v) = call(&s, "POST", "/v1/policy/reload", Some(ALICE), "").await;
    assert_recorded_error(&s, st, &v, 422, "bad_policy");
    assert_eq!(s.running.app.shared.policy().hash, old.as_str().unwrap());
    // A new version is put in force.
    std::fs::write(&s.policy, text).unwrap();
    let (st, v) = edit_policy(&s, "version = \"1.0.0\"", "version = \"1.0.1\"").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["previous"]["hash"], old);
    assert_ne!(v["policy"]["hash"], old);
    assert_eq!(v["policy"]["version"], "1.0.1");
    // Approving the old hold names the old policy: refused, and the hold ends denied.
    let body = json!({"policy_hash": old}).to_string();
    let (st, v) = call(
        &s,
        "POST",
        &format!("/v1/confirmations/{id}/approve"),
        Some(ALICE),
        &body,
    )
    .await;
    assert_recorded_error(&s, st, &v, 409, "stale_policy");
    let (_, g) = call(&s, "GET", &format!("/v1/decisions/{id}"), Some(LOW), "").await;
    assert_eq!(g["confirmation"]["status"], "refused", "{g}");
    // New decisions name the new policy.
    let (_, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(R1),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(d["policy"]["version"], "1.0.1");
    assert_eq!(
        record_of(&s.store, &d).policy_hash,
        d["policy"]["hash"].as_str().unwrap()
    );
    finish(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_effective_or_failed() {
    let s = server("outcome", Some(&config_text()));
    let decide = || async {
        let (st, d) = call(
            &s,
            "POST",
            "/v1/decisions",
            Some(R1),
            &baseline().to_string(),
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(d["action"]["vx"], 0.3);
        d["decision_id"].as_str().unwrap().to_string()
    };
    // The baseline state moved as the dynamics say (px + dt * vx = 15 + 0.1 * 0.3).
    let mut state = baseline()["state"].clone();
    state["px"] = json!(15.03);
    let id = decide().await;
    let out = format!("/v1/decisions/{id}/outcome");
    let (st, o) = call(
        &s,
        "POST",
        &out,
        Some(R1),
        &json!({"state": state}).to_string(),
    )
    .await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["evaluation"], "EFFECTIVE", "{o}");
    assert_eq!(record_of(&s.store, &o).kind, "outcome");
    let (_, g) = call(&s, "GET", &format!("/v1/decisions/{id}"), Some(R1), "").await;
    assert_eq!(g["outcome"]["evaluation"], "EFFECTIVE");
    let (st, v) = call(
        &s,
        "POST",
        &out,
        Some(R1),
        &json!({"state": state}).to_string(),
    )
    .await;
    assert_recorded_error(&s, st, &v, 409, "outcome_already_reported");
    // 0.5 m off the prediction: beyond the model's error bound (0.01) and the noise.
    let id = decide().await;
    state["px"] = json!(15.53);
    let (_, o) = call(
        &s,
        "POST",
        &format!("/v1/decisions/{id}/outcome"),
        Some(R1),
        &json!({"state": state}).to_string(),
    )
    .await;
    assert_eq!(o["evaluation"], "FAILED", "{o}");
    assert_eq!(o["failure_modes"], json!(["model_mismatch"]));
    assert_eq!(o["diverged"][0]["state"], "px");
    let agent = o["agent"].as_str().unwrap().to_string();
    // Issue 20: the model no longer describes this robot, so its trajectory guarantees do
    // not hold: the agent is in the fallback mode until an operator resets it.
    let (st, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(R1),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["operating_mode"], "fallback", "{d}");
    assert_eq!(d["final_outcome"], "REVIEW_AUDIT", "{d}");
    assert_eq!(d["action"]["vx"], 0.0, "the fallback executes: {d}");
    let reset = format!("/v1/agents/{agent}/reset");
    let (st, v) = call(&s, "POST", &reset, Some(R1), "").await;
    assert_recorded_error(&s, st, &v, 403, "forbidden");
    let (st, r) = call(&s, "POST", &reset, Some(ALICE), "").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["was"], "fallback", "{r}");
    assert_eq!(r["since"], "model_mismatch", "{r}");
    assert_eq!(r["operating_mode"], "normal", "{r}");
    assert_eq!(record_of(&s.store, &r).kind, "agent_reset");
    // Inside pillar A's keep-out disc: out of the safe set.
    let id = decide().await;
    state["px"] = json!(10.0);
    state["py"] = json!(5.5);
    let (_, o) = call(
        &s,
        "POST",
        &format!("/v1/decisions/{id}/outcome"),
        Some(R1),
        &json!({"state": state}).to_string(),
    )
    .await;
    assert_eq!(o["evaluation"], "FAILED", "{o}");
    assert!(o["failure_modes"]
        .as_array()
        .unwrap()
        .contains(&json!("left_safe_set")));
    assert!(o["left_safe_set"].to_string().contains("pillar-a"));
    // Counted.
    let (_, m) = call(&s, "GET", "/metrics", None, "").await;
    let m = m.as_str().unwrap().to_string();
    assert!(
        m.contains("aioss_outcomes_total{evaluation=\"EFFECTIVE\"} 1"),
        "{m}"
    );
    assert!(m.contains("aioss_outcomes_total{evaluation=\"FAILED\"} 2"));
    assert!(m.contains("aioss_failure_modes_total{mode=\"model_mismatch\"}"));
    // Tier 3 (issue 20), from its own thread: the dynamics of `px` were seen 0.5 off (a
    // declared error_bound of 0.01).
    let mut seen = String::new();
    for _ in 0..100 {
        let (_, m) = call(&s, "GET", "/metrics", None, "").await;
        seen = m.as_str().unwrap().to_string();
        if seen.contains("aioss_tier3_dynamics_error_samples{state=\"px\"} 3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let observed = seen
        .lines()
        .find_map(|l| l.strip_prefix("aioss_tier3_dynamics_error_observed{state=\"px\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(observed.is_some_and(|x| x > 0.4), "{seen}");
    assert!(
        seen.contains("aioss_tier3_dynamics_error_declared{state=\"px\"} 0.01"),
        "{seen}"
    );
    finish(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_the_fallback() {
    // A queue of one that nobody drains: the second proposal is shed at once.
    let policy =
        aioss_server::serve::load_policy(&repo().join("policies/warehouse-robot.toml")).unwrap();
    let fallback: Value = serde_json::from_str(&aioss_core::governor::action_to_json(
        &policy,
        &policy.fallback,
    ))
    .unwrap();
    let settings = aioss_server::config::Settings::default();
    let shared = std::sync::Arc::new(aioss_server::engine::Shared::new(
        std::sync::Arc::new(policy),
        &settings,
    ));
    let (tx, _rx) = std::sync::mpsc::sync_channel(1);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let app = std::sync::Arc::new(aioss_server::App::new(
        tx,
        shared,
        None,
        "p".into(),
        "s".into(),
        stop_rx,
    ));
    let router = aioss_server::app(app);
    use tower::ServiceExt;
    let req = || {
        axum::http::Request::post("/v1/decisions")
            .body(axum::body::Body::from(baseline().to_string()))
            .unwrap()
    };
    let first = tokio::spawn(router.clone().oneshot(req()));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        router.clone().oneshot(req()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["error"]["code"], "overloaded");
    assert_eq!(v["execute"], "fallback");
    assert_eq!(v["fallback"], fallback);
    assert_eq!(v["fallback_certified"], true, "{v}");
    // Issue 20: the fallback is checked at the state the shed proposal reports. Inside
    // pillar A's keep-out disc a stop does not bring the robot back into the safe set.
    let mut inside = baseline();
    inside["state"]["px"] = serde_json::json!(10.0);
    inside["state"]["py"] = serde_json::json!(5.5);
    let r = router
        .clone()
        .oneshot(
            axum::http::Request::post("/v1/decisions")
                .body(axum::body::Body::from(inside.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["fallback_certified"], false, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not certify"),
        "{v}"
    );
    first.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_its_rate_gets_429() {
    let cfg = config_text().replace(
        "attributes = { role = \"picker\", trust = 0.9 }",
        "attributes = { role = \"picker\", trust = 0.9 }\nrate_limit = 0.01\nburst = 2",
    );
    let s = server("rate", Some(&cfg));
    let body = baseline().to_string();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(call(&s, "POST", "/v1/decisions", Some(R1), &body).await);
    }
    assert_eq!(got[0].0, 200);
    assert_eq!(got[1].0, 200);
    assert_eq!(got[2].0, 429, "{}", got[2].1);
    assert_eq!(got[2].1["error"]["code"], "rate_limited");
    // Another agent is not limited by it.
    let (st, _) = call(&s, "POST", "/v1/decisions", Some(LOW), &body).await;
    assert_eq!(st, 200);
    finish(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_bounded_and_old_decisions_come_from_the_store() {
    let cfg = config_text().replace(
        "decision_cache = 1000",
        "decision_cache = 2\nmax_pending_holds = 1",
    );
    let s = server("bounded", Some(&cfg));
    // Two holds with room for one: the second is denied at once, and recorded.
    let h1 = hold(&s).await;
    let h2 = hold(&s).await;
    let id2 = h2["decision_id"].as_str().unwrap().to_string();
    let (_, g) = call(&s, "GET", &format!("/v1/decisions/{id2}"), Some(LOW), "").await;
    assert_eq!(g["confirmation"]["status"], "expired", "{g}");
    assert!(g["confirmation"]["reason"]
        .as_str()
        .unwrap()
        .contains("too many pending holds"));
    // Push both out of the cache of two decisions.
    for _ in 0..3 {
        let (st, _) = call(
            &s,
            "POST",
            "/v1/decisions",
            Some(R1),
            &baseline().to_string(),
        )
        .await;
        assert_eq!(st, 200);
    }
    assert!(s
        .running
        .app
        .shared
        .cache
        .lock()
        .unwrap()
        .get(&id2)
        .is_none());
    // Read back from the store, with the answer to the hold.
    let (st, g) = call(&s, "GET", &format!("/v1/decisions/{id2}"), Some(LOW), "").await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(g["record"], h2["record"]);
    assert_eq!(g["confirmation"]["status"], "expired");
    // The first hold is still pending, and still shown so from the store.
    let id1 = h1["decision_id"].as_str().unwrap();
    let (_, g) = call(&s, "GET", &format!("/v1/decisions/{id1}"), Some(LOW), "").await;
    assert_eq!(g["confirmation"]["status"], "pending", "{g}");
    // Another agent's old decision is still not readable.
    let (st, v) = call(&s, "GET", &format!("/v1/decisions/{id1}"), Some(R1), "").await;
    assert_recorded_error(&s, st, &v, 403, "not_your_decision");
    finish(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_holds_survive_a_restart() {
    let s = server("restart", Some(&config_text()));
    let h = hold(&s).await;
    let id = h["decision_id"].as_str().unwrap().to_string();
    let (dir, store, policy) = (s.dir.clone(), s.store.clone(), s.policy.clone());
    s.running.stop().unwrap();
    let running = aioss_server::serve::Running::open(
        &policy,
        store.to_str().unwrap(),
        None,
        Some(aioss_server::config::Config::parse(&config_text()).unwrap()),
    )
    .unwrap();
    let s = Server {
        dir,
        store,
        policy,
        running,
        addr: None,
    };
    let p = pending(&s, &id).await;
    assert_eq!(p["agent"], "low", "{p}");
    assert_eq!(p["action_digest"], pending_digest(&h));
    let body = json!({"action_digest": p["action_digest"]}).to_string();
    let (st, a) = call(
        &s,
        "POST",
        &format!("/v1/confirmations/{id}/approve"),
        Some(ALICE),
        &body,
    )
    .await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["status"], "approved");
    finish(s);
}

/// The digest of a held decision's proposed action (its `action` is the fallback).
fn pending_digest(h: &Value) -> Value {
    let policy =
        aioss_server::serve::load_policy(&repo().join("policies/warehouse-robot.toml")).unwrap();
    let mut p = aioss_core::Proposal::parse(&policy, &baseline().to_string()).unwrap();
    p.agent = h["agent"].as_str().unwrap().to_string();
    json!(aioss_server::engine::action_digest(&policy, &p.action))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_each_agents_last_action() {
    let s = server("carry", Some(&config_text()));
    let (_, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(R1),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(d["final_outcome"], "ALLOW");
    let (st, _) = edit_policy(&s, "version = \"1.0.0\"", "version = \"1.0.1\"").await;
    assert_eq!(st, 200);
    // The ramp is checked from the agent's last executed action (0.3 m/s: 0.45 m/s is
    // within it); from the fallback's 0 m/s, 0.45 m/s would break `speed-ramp` and be
    // repaired.
    let b = faster_than_from_rest();
    let (_, d) = call(&s, "POST", "/v1/decisions", Some(R1), &b.to_string()).await;
    assert_eq!(d["policy"]["version"], "1.0.1");
    assert_eq!(d["final_outcome"], "ALLOW", "{d}");
    // The same proposal from an agent with no executed action yet is repaired.
    let (_, d) = call(&s, "POST", "/v1/decisions", Some(LOW), &b.to_string()).await;
    assert!(d["constraints"].to_string().contains("speed-ramp"), "{d}");
    finish(s);
}

/// G5 (timing): the answer reports it after `latency_us`, and `/metrics` counts an overrun
/// as `deadline_missed` (a measured overrun; the failure mode `deadline_overrun` is the
/// modeled stop of `enforce_deadline`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_overrun_is_reported_and_counted() {
    let s = server("deadline", Some(&config_text()));
    let (st, _) = edit_policy(&s, "deadline_us = 1000\n", "deadline_us = 1\n").await;
    assert_eq!(st, 200);
    // A repair (an agent with no executed action yet: see
    // `a_reload_keeps_each_agents_last_action`): tens of µs, over 1 µs.
    let b = faster_than_from_rest();
    let (_, d) = call(&s, "POST", "/v1/decisions", Some(R1), &b.to_string()).await;
    assert_eq!(d["final_outcome"], "ALLOW_AFTER_REPAIR", "{d}");
    let latency = d["latency_us"].as_u64().unwrap();
    assert_eq!(
        d["timing"],
        json!({"deadline_us": 1, "met": latency <= 1}),
        "{d}"
    );
    let (_, m) = call(&s, "GET", "/metrics", None, "").await;
    let m = m.as_str().unwrap().to_string();
    assert_eq!(
        m.contains("aioss_failure_modes_total{mode=\"deadline_missed\"} 1"),
        latency > 1,
        "{m}"
    );
    finish(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_too_large_is_413_and_recorded() {
    let s = server("toolarge", Some(&config_text()));
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(aioss_server::http::MAX_BODY));
    let (st, v) = call(&s, "POST", "/v1/decisions", Some(R1), &big).await;
    assert_recorded_error(&s, st, &v, 413, "too_large");
    finish(s);
}

/// The HTTP worker parses a proposal before it is queued; the governor thread uses that
/// parse only under the policy it was made against (a reload may come in between), and
/// parses the line again otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_parsed_under_another_policy_is_parsed_again() {
    use aioss_server::engine::{Job, Reply};
    let s = server("parsed", None);
    let app = &s.running.app;
    let hash = app.shared.policy().hash.clone();
    let planted = || aioss_core::InputError {
        code: aioss_core::InputCode::InvalidValue,
        message: "planted by the test".into(),
        field: None,
    };
    let send = |tag: &str| {
        let (tx, rx) = tokio::sync::oneshot::channel::<Reply>();
        let job = Job::Decide {
            raw: baseline().to_string(),
            parsed: Some(aioss_server::engine::Parsed {
                policy_hash: tag.to_string(),
                result: Err(planted()),
            }),
            enqueued: std::time::Instant::now(),
            who: aioss_server::who::Who::local(),
            reply: tx,
        };
        app.shared
            .metrics
            .queue_depth
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        app.jobs.send(job).unwrap();
        rx
    };
    // Under the policy in force, the worker's parse is what the governor uses...
    let used = send(&hash).await.unwrap();
    assert_eq!(used.status, 400, "{}", used.body);
    assert!(used.body.contains("planted by the test"), "{}", used.body);
    // ... and under any other policy the line is parsed again (the baseline is valid).
    let again = send("sha256:another-policy").await.unwrap();
    assert_eq!(again.status, 200, "{}", again.body);
    finish(s);
}

/// Replace `from` (which must be there) with `to` in the server's policy file, and reload
/// it as the administrator.
async fn edit_policy(s: &Server, from: &str, to: &str) -> (u16, Value) {
    let text = std::fs::read_to_string(&s.policy).unwrap();
    assert!(text.contains(from), "the policy has no `{from}`");
    std::fs::write(&s.policy, text.replace(from, to)).unwrap();
    call(s, "POST", "/v1/policy/reload", Some(ALICE), "").await
}

/// The baseline at 0.45 m/s: within the speed-up ramp from the baseline's 0.3 m/s, beyond
/// it from rest (the fallback's 0 m/s, an agent's `prev.` before its first action).
fn faster_than_from_rest() -> Value {
    let mut b = baseline();
    b["action"]["vx"] = json!(0.45);
    b
}

/// Caught: a numeric `timestamp` past year 9999 panicked while its record's time was
/// formatted; the governor thread died, every later request got 503 and `/healthz` still
/// said ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_past_year_9999_does_not_kill_the_governor() {
    let s = server("year10000", Some(&config_text()));
    for ts in [json!(1e12), json!(f64::MAX), json!("9999-12-31T23:59:59Z")] {
        let mut b = baseline();
        b["timestamp"] = ts;
        let (st, v) = call(&s, "POST", "/v1/decisions", Some(R1), &b.to_string()).await;
        // Decided (at the server's time, not the body's), or refused as bad input (absurd
        // times are refused at parse time): either way answered and recorded.
        assert!(st == 200 || st == 400, "{st} {v}");
        let r = record_of(&s.store, &v);
        assert!(
            r.kind == "decision" || r.kind == "input_error",
            "{}",
            r.kind
        );
    }
    let (st, v) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(R1),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, h) = call(&s, "GET", "/healthz", None, "").await;
    assert_eq!((st, &h["status"]), (200, &json!("ok")), "{h}");
    finish(s);
}

/// A store whose every write panics: the committer thread dies on the first commit.
struct PanickingStore;

impl aioss_audit::Store for PanickingStore {
    fn head(&mut self) -> Result<Option<(u64, String)>, aioss_audit::Error> {
        Ok(None)
    }
    fn append(
        &mut self,
        _: &[aioss_audit::Record],
        _: &[aioss_audit::Checkpoint],
    ) -> Result<(), aioss_audit::Error> {
        panic!("the disk caught fire")
    }
    fn scan(
        &mut self,
        _: &mut dyn FnMut(aioss_audit::Record) -> Result<bool, aioss_audit::Error>,
    ) -> Result<(), aioss_audit::Error> {
        Ok(())
    }
    fn checkpoints(&mut self) -> Result<Vec<aioss_audit::Checkpoint>, aioss_audit::Error> {
        Ok(Vec::new())
    }
    fn count(&mut self) -> Result<u64, aioss_audit::Error> {
        Ok(0)
    }
    fn put_policy(&mut self, _: &str, _: &str) -> Result<(), aioss_audit::Error> {
        Ok(())
    }
    fn policies(&mut self) -> Result<Vec<(String, String)>, aioss_audit::Error> {
        Ok(Vec::new())
    }
}

/// Caught: `/healthz` said ok while the governor thread was dead. Now it says which
/// thread is gone, with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_once_the_governor_or_the_committer_thread_is_gone() {
    let dir = tempdir("deadthreads");
    let policy = repo().join("policies/warehouse-robot.toml");
    let g = aioss_core::Governor::new(aioss_server::serve::load_policy(&policy).unwrap());
    let w = aioss_audit::Writer::new(Box::new(PanickingStore), None, 0).unwrap();
    let running = aioss_server::serve::Running::start(
        g,
        w,
        Some(aioss_server::config::Config::parse(&config_text()).unwrap()),
        policy.clone(),
        dir.join("none.db"),
    );
    let s = Server {
        dir: dir.clone(),
        store: dir.join("none.db"),
        policy,
        running,
        addr: None,
    };
    let (st, h) = call(&s, "GET", "/healthz", None, "").await;
    assert_eq!((st, &h["status"]), (200, &json!("ok")), "{h}");
    let (st, v) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(R1),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(st, 503, "{v}");
    // The committer died (its flag clears as it unwinds, just after the answer above);
    // the governor thread stops once it cannot hand records over.
    let mut h = Value::Null;
    for _ in 0..100 {
        let (st, v) = call(&s, "GET", "/healthz", None, "").await;
        if v["audit_committer"] == "stopped" {
            assert_eq!((st, &v["status"]), (503, &json!("failing")), "{v}");
        }
        h = v;
        if h["governor"] == "stopped" && h["audit_committer"] == "stopped" {
            break;
        }
        let _ = call(
            &s,
            "POST",
            "/v1/decisions",
            Some(R1),
            &baseline().to_string(),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(h["governor"], "stopped", "{h}");
    assert_eq!(h["audit_committer"], "stopped", "{h}");
    let (st, v) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(R1),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(
        (st, &v["error"]["code"]),
        (503, &json!("unavailable")),
        "{v}"
    );
    assert!(s.running.stop().is_err());
}

/// Restart the server of `s` on its store (its checkpoints signed by no key).
fn restart(s: Server, config: &str) -> Server {
    let (dir, store, policy) = (s.dir.clone(), s.store.clone(), s.policy.clone());
    s.running.stop().unwrap();
    let running = aioss_server::serve::Running::open(
        &policy,
        store.to_str().unwrap(),
        None,
        Some(aioss_server::config::Config::parse(config).unwrap()),
    )
    .unwrap();
    Server {
        dir,
        store,
        policy,
        running,
        addr: None,
    }
}

/// Caught: a held proposal with `"timestamp": "9999-12-31T23:59:59Z"` made every later
/// start panic while its hold was restored (its expiry, past year 9999, could not be
/// formatted). The restored hold expires at most `hold_expiry_secs` after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_timestamped_in_year_9999_does_not_stop_a_restart() {
    let s = server("restart9999", Some(&config_text()));
    let mut b = baseline();
    b["timestamp"] = json!("9999-12-31T23:59:59Z");
    let (st, h) = call(&s, "POST", "/v1/decisions", Some(LOW), &b.to_string()).await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["final_outcome"], "HOLD_FOR_CONFIRMATION");
    let id = h["decision_id"].as_str().unwrap().to_string();
    let s = restart(s, &config_text());
    let p = pending(&s, &id).await;
    assert_eq!(p["agent"], "low", "{p}");
    let expires = p["expires_unix"].as_f64().unwrap();
    assert!(expires <= aioss_audit::record::now_secs() + 600.0, "{p}");
    let (st, a) = call(
        &s,
        "POST",
        &format!("/v1/confirmations/{id}/approve"),
        Some(ALICE),
        "",
    )
    .await;
    assert_eq!(st, 200, "{a}");
    finish(s);
}

/// A hold the store holds but a restart cannot make pending again (here: its decision
/// has no time) is denied at start, and the denial recorded with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_that_cannot_be_restored_is_denied_and_recorded() {
    let dir = tempdir("unrestorable");
    let policy_path = dir.join("policy.toml");
    std::fs::copy(repo().join("policies/warehouse-robot.toml"), &policy_path).unwrap();
    let store = dir.join("audit.db");
    let policy = aioss_server::serve::load_policy(&policy_path).unwrap();
    {
        let s = aioss_audit::SqliteStore::open(&store).unwrap();
        let mut w = aioss_audit::Writer::new(Box::new(s), None, 0).unwrap();
        let mut r = aioss_audit::event_record(
            aioss_audit::Kind::Decision,
            &policy,
            "held-1",
            "{\"agent\":\"low\",\"action\":{}}",
            "{\"decision_id\":\"held-1\",\"final_outcome\":\"HOLD_FOR_CONFIRMATION\"}",
            1.7e9,
            String::new(),
        );
        r.latency_us = 1;
        w.push(r);
        w.finish().unwrap();
    }
    let running = aioss_server::serve::Running::open(
        &policy_path,
        store.to_str().unwrap(),
        None,
        Some(aioss_server::config::Config::parse(&config_text()).unwrap()),
    )
    .unwrap();
    let s = Server {
        dir,
        store: store.clone(),
        policy: policy_path,
        running,
        addr: None,
    };
    assert!(pending(&s, "held-1").await.is_null());
    let recs = finish(s);
    let denial = recs
        .iter()
        .find(|r| r.kind == "confirmation" && r.decision_id == "held-1")
        .expect("the denial is recorded");
    let d: Value = serde_json::from_str(&denial.decision).unwrap();
    assert_eq!(d["status"], "refused");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("could not be restored"),
        "{d}"
    );
}

/// Caught: the listing sorted the action's keys, so a listed hold's `action` could not be
/// re-hashed to its `action_digest`. The bytes after `"action":` are the bytes hashed, and
/// `action_json` carries them as a string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_holds_action_rehashes_to_its_digest() {
    use sha2::Digest;
    let s = server("rehash", Some(&config_text()));
    let h = hold(&s).await;
    let (st, text) = call_text(&s, "GET", "/v1/confirmations", Some(ALICE), "").await;
    assert_eq!(st, 200);
    let listed: Value = serde_json::from_str(&text).unwrap();
    let p = &listed["pending"][0];
    assert_eq!(p["id"], h["decision_id"]);
    let digest = |bytes: &str| {
        format!(
            "sha256:{}",
            aioss_audit::record::hex(&sha2::Sha256::digest(bytes.as_bytes()))
        )
    };
    let action_json = p["action_json"].as_str().unwrap();
    assert_eq!(digest(action_json), p["action_digest"].as_str().unwrap());
    // The listed `action` is those very bytes (not a re-serialisation with sorted keys).
    let raw = text
        .split("\"action\":")
        .nth(1)
        .unwrap()
        .split_once('}')
        .unwrap()
        .0
        .to_string()
        + "}";
    assert_eq!(raw, action_json);
    assert_eq!(digest(&raw), p["action_digest"].as_str().unwrap());
    assert_eq!(
        serde_json::from_str::<Value>(action_json).unwrap(),
        p["action"]
    );
    finish(s);
}

/// Caught: refused requests were recorded with their whole body, those without a valid
/// token included (six clients wrote 1.36 GB in 10 s). Unauthenticated refusals are
/// counted, not recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_refusals_are_counted_not_recorded() {
    let s = server("unauth-flood", Some(&config_text()));
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(60_000));
    for i in 0..40 {
        let token = if i % 2 == 0 {
            None
        } else {
            Some("not-a-token")
        };
        let path = [
            "/v1/decisions",
            "/v1/confirmations/x/approve",
            "/v1/decisions/x/outcome",
        ][i % 3];
        let (st, v) = call(&s, "POST", path, token, &big).await;
        assert_eq!(st, 401, "{v}");
        assert!(v["error"]["code"].is_string());
    }
    let (_, m) = call(&s, "GET", "/metrics", None, "").await;
    let m = m.as_str().unwrap().to_string();
    assert!(
        m.contains("aioss_unauthenticated_total{code=\"missing_token\"} 20"),
        "{m}"
    );
    assert!(
        m.contains("aioss_unauthenticated_total{code=\"bad_token\"} 20"),
        "{m}"
    );
    let recs = finish(s);
    assert!(recs.iter().all(|r| r.kind != "refused"), "{recs:?}");
}

/// Caught: an agent with a valid token could have every refusal recorded with its whole
/// body. Refusals are recorded at most `refusal_record_rate` per second per principal
/// (the rest counted), each with a bounded prefix of the body, its length and SHA-256; a
/// bad proposal too long to keep whole is a `refused` record, not an `input_error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_refusals_are_rate_limited_and_recorded_with_bounded_bodies() {
    use sha2::Digest;
    let cfg = config_text().replace(
        "decision_cache = 1000",
        "decision_cache = 1000\nrefusal_record_rate = 0.01\nrefusal_record_burst = 4\nrefusal_body_bytes = 256",
    );
    let s = server("refusal-flood", Some(&cfg));
    // A bad proposal longer than refusal_body_bytes: answered 400, recorded as `refused`.
    let long_bad = format!("{{\"action\": {{\"vx\": \"{}\"}}", "9".repeat(5000));
    let (st, v) = call(&s, "POST", "/v1/decisions", Some(R1), &long_bad).await;
    assert_eq!(st, 400, "{v}");
    let r = record_of(&s.store, &v);
    assert_eq!(r.kind, "refused");
    let req: Value = serde_json::from_str(&r.proposal).unwrap();
    assert_eq!(req["body_len"], long_bad.len());
    assert_eq!(
        req["body_sha256"],
        aioss_audit::record::hex(&sha2::Sha256::digest(long_bad.as_bytes()))
    );
    assert_eq!(req["body"].as_str().unwrap().len(), 256);
    // A short one is still a replayable input error.
    let (st, v) = call(&s, "POST", "/v1/decisions", Some(R1), "{\"action\":").await;
    assert_eq!(st, 400);
    assert_eq!(record_of(&s.store, &v).kind, "input_error");
    // Impersonation with a 60 kB body, over and over: two more are recorded (the burst of
    // four), every one is answered.
    let mut b = baseline();
    b["agent"] = json!("low");
    b["transition"] = json!("x".repeat(60_000));
    let body = b.to_string();
    let mut recorded = 0;
    for _ in 0..20 {
        let (st, v) = call(&s, "POST", "/v1/decisions", Some(R1), &body).await;
        assert_eq!(st, 403, "{v}");
        assert_eq!(v["error"]["code"], "identity_mismatch");
        if v.get("record").is_some() {
            recorded += 1;
            assert!(record_of(&s.store, &v).proposal.len() < 1024);
        }
    }
    assert_eq!(recorded, 2);
    // Malformed proposals past the rate: answered 400, not recorded.
    let (st, v) = call(&s, "POST", "/v1/decisions", Some(R1), "{\"action\":").await;
    assert_eq!(st, 400);
    assert!(v.get("record").is_none(), "{v}");
    let (_, m) = call(&s, "GET", "/metrics", None, "").await;
    let m = m.as_str().unwrap().to_string();
    assert!(
        m.contains("aioss_refusals_unrecorded_total{code=\"identity_mismatch\"} 18"),
        "{m}"
    );
    // Another principal has its own allowance.
    let (st, v) = call(&s, "GET", "/v1/decisions/nope", Some(LOW), "").await;
    assert_recorded_error(&s, st, &v, 404, "unknown_decision");
    let recs = finish(s);
    let total: usize = recs.iter().map(|r| r.proposal.len()).sum();
    assert!(total < 16 * 1024, "{total} bytes of requests recorded");
}

/// Caught: GETs escaped an agent's rate limit (and their refusals were recorded). Every
/// route costs a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_count_against_an_agents_rate_limit() {
    let cfg = config_text().replace(
        "attributes = { role = \"picker\", trust = 0.9 }",
        "attributes = { role = \"picker\", trust = 0.9 }\nrate_limit = 0.01\nburst = 2",
    );
    let s = server("rate-get", Some(&cfg));
    for _ in 0..2 {
        let (st, v) = call(&s, "GET", "/v1/decisions/nope", Some(R1), "").await;
        assert_eq!(st, 404, "{v}");
    }
    let (st, v) = call(&s, "GET", "/v1/decisions/nope", Some(R1), "").await;
    assert_eq!(st, 429, "{v}");
    let (st, v) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(R1),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(st, 429, "{v}");
    assert!(v.get("record").is_none());
    finish(s);
}

/// Caught: a record appended after the last checkpoint (its hash recomputed) by someone
/// who can write the database but holds no key was signed over at the next restart, and
/// `verify --public-key` and replay then passed. A restart with the key refuses records no
/// signature of that key covers, unless the operator accepts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_appended_behind_the_servers_back_is_not_signed_over_at_restart() {
    let dir = tempdir("forgedtail");
    let policy = dir.join("policy.toml");
    std::fs::copy(repo().join("policies/warehouse-robot.toml"), &policy).unwrap();
    let store = dir.join("audit.db");
    let key_file = dir.join("k.key");
    aioss_audit::Key::generate()
        .unwrap()
        .write_new(&key_file)
        .unwrap();
    let key = || Some(aioss_audit::Key::read(&key_file).unwrap());
    let pk = aioss_audit::Key::read(&key_file).unwrap().public_hex();
    let cfg = || Some(aioss_server::config::Config::parse(&config_text()).unwrap());
    let open = |accept: bool| {
        aioss_server::serve::Running::open_with(
            &policy,
            store.to_str().unwrap(),
            key(),
            cfg(),
            accept,
        )
    };
    let serve = |running| Server {
        dir: dir.clone(),
        store: store.clone(),
        policy: policy.clone(),
        running,
        addr: None,
    };
    let s = serve(open(false).unwrap());
    for _ in 0..3 {
        let (st, _) = call(
            &s,
            "POST",
            "/v1/decisions",
            Some(R1),
            &baseline().to_string(),
        )
        .await;
        assert_eq!(st, 200);
    }
    // Everything the server committed is covered already, before any shutdown.
    let mut ro = aioss_audit::SqliteStore::open_read_only(&store).unwrap();
    let k = aioss_audit::Key::read(&key_file).unwrap();
    assert_eq!(aioss_audit::unsigned_tail(&mut ro, &k).unwrap(), None);
    drop(ro);
    s.running.stop().unwrap();
    // A clean restart is no problem.
    let s = serve(open(false).unwrap());
    s.running.stop().unwrap();
    // Someone who can write the file appends a well-chained decision.
    {
        let p = aioss_server::serve::load_policy(&policy).unwrap();
        let st = aioss_audit::SqliteStore::open(&store).unwrap();
        let mut w = aioss_audit::Writer::new(Box::new(st), None, 0).unwrap();
        w.push(aioss_audit::event_record(
            aioss_audit::Kind::Decision,
            &p,
            "forged-1",
            &baseline().to_string(),
            "{\"decision_id\":\"forged-1\",\"final_outcome\":\"ALLOW\"}",
            1.7e9,
            String::new(),
        ));
        w.commit().unwrap();
    }
    let e = open(false).unwrap_err().to_string();
    assert!(e.contains("not covered by a signature of this key"), "{e}");
    // Nothing was signed: verify with the key still shows the tail.
    let mut ro = aioss_audit::SqliteStore::open_read_only(&store).unwrap();
    let v = aioss_audit::verify::verify(&mut ro, Some(&pk)).unwrap();
    assert_eq!(
        v.problem.map(|p| p.kind),
        Some(aioss_audit::verify::ProblemKind::Unsigned)
    );
    drop(ro);
    // The operator may accept it explicitly.
    let s = serve(open(true).unwrap());
    s.running.stop().unwrap();
    let mut ro = aioss_audit::SqliteStore::open_read_only(&store).unwrap();
    let v = aioss_audit::verify::verify(&mut ro, Some(&pk)).unwrap();
    assert!(v.ok(), "{:?}", v.problem);
}

/// A hold, then its agent reports a state in which the held action is unsafe (inside
/// pillar A's keep-out disc): the approval is refused `unsafe_now`. Returns the hold's id.
async fn hold_then_unsafe_state(s: &Server) -> String {
    let h = hold(s).await;
    let id = h["decision_id"].as_str().unwrap().to_string();
    let mut b = baseline();
    b["state"]["px"] = json!(10.0);
    b["state"]["py"] = json!(5.5);
    let (st, _) = call(s, "POST", "/v1/decisions", Some(LOW), &b.to_string()).await;
    assert_eq!(st, 200);
    let approve = format!("/v1/confirmations/{id}/approve");
    let (st, v) = call(s, "POST", &approve, Some(ALICE), "").await;
    assert_recorded_error(s, st, &v, 409, "unsafe_now");
    id
}

/// Caught: a reload dropped every agent's latest reported state, so an approval refused as
/// `unsafe_now` succeeded after SIGHUP of the unchanged file and the action executed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_state_is_remembered_across_a_reload() {
    let s = server("unsafe-reload", Some(&config_text()));
    let id = hold_then_unsafe_state(&s).await;
    let (st, _) = call(&s, "POST", "/v1/policy/reload", Some(ALICE), "").await;
    assert_eq!(st, 200);
    let approve = format!("/v1/confirmations/{id}/approve");
    let (st, v) = call(&s, "POST", &approve, Some(ALICE), "").await;
    assert_recorded_error(&s, st, &v, 409, "unsafe_now");
    finish(s);
}

/// Caught: a restart forgot every agent's latest reported state, so the same approval
/// succeeded after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_state_is_remembered_across_a_restart() {
    let s = server("unsafe-restart", Some(&config_text()));
    let id = hold_then_unsafe_state(&s).await;
    let s = restart(s, &config_text());
    assert!(!pending(&s, &id).await.is_null());
    let approve = format!("/v1/confirmations/{id}/approve");
    let (st, v) = call(&s, "POST", &approve, Some(ALICE), "").await;
    assert_recorded_error(&s, st, &v, 409, "unsafe_now");
    // Reported safe again, it may be approved.
    let (st, _) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(LOW),
        &baseline().to_string(),
    )
    .await;
    assert_eq!(st, 200);
    let (st, a) = call(&s, "POST", &approve, Some(ALICE), "").await;
    assert_eq!(st, 200, "{a}");
    finish(s);
}

/// agent-tools.toml, and a finance agent `fin` (token `token-fin`).
fn agent_tools_server(tag: &str, extra: &str) -> (Server, String) {
    let cfg = format!(
        "[server]\n{extra}\n[[agent]]\nid = \"fin\"\ntoken_sha256 = \"{}\"\nattributes = {{ role = \"finance\", trust = 0.9, status = \"active\" }}\n[[operator]]\nid = \"alice\"\ntoken_sha256 = \"{}\"\n",
        aioss_server::config::hash_token("token-fin"),
        aioss_server::config::hash_token(ALICE)
    );
    let dir = tempdir(tag);
    let policy = dir.join("policy.toml");
    std::fs::copy(repo().join("policies/agent-tools.toml"), &policy).unwrap();
    let store = dir.join("audit.db");
    let running = aioss_server::serve::Running::open(
        &policy,
        store.to_str().unwrap(),
        None,
        Some(aioss_server::config::Config::parse(&cfg).unwrap()),
    )
    .unwrap();
    (
        Server {
            dir,
            store,
            policy,
            running,
            addr: None,
        },
        cfg,
    )
}

/// A confirmed transfer of `amount` EUR by `fin`, its state variable for the balance
/// named `balance`.
fn transfer(amount: f64, balance: &str) -> String {
    json!({
        "action": {"tool": "transfer", "amount": amount, "recipients": 0, "file_count": 0,
                   "write_mb": 0.0, "tokens": 500, "external": false, "preview": false},
        "state": {"session_risk": "low", "user_confirmed": true, "sandboxed": true,
                  "protected_dir": false, "pii_detected": false, "injection_score": 0.05,
                  balance: 1_000_000.0, "task_description": "pay a supplier"},
    })
    .to_string()
}

/// Caught: a restart rebuilt the governor state by re-deciding the whole log under the
/// policy it starts with, so an edit of the policy (here: a state variable renamed, which
/// no old proposal has) emptied every budget window and an agent could spend its daily
/// budget twice. The state is restored from the last snapshot as a reload carries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_budget_survives_a_restart_under_an_edited_policy() {
    let (s, cfg) = agent_tools_server("budget-restart", "");
    for _ in 0..2 {
        let (st, d) = call(
            &s,
            "POST",
            "/v1/decisions",
            Some("token-fin"),
            &transfer(20_000.0, "balance"),
        )
        .await;
        assert_eq!((st, &d["final_outcome"]), (200, &json!("ALLOW")), "{d}");
    }
    let (_, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some("token-fin"),
        &transfer(20_000.0, "balance"),
    )
    .await;
    assert_eq!(d["final_outcome"], "BLOCK_NO_REPAIR", "{d}");
    // The operator renames a state variable and restarts.
    let text = std::fs::read_to_string(&s.policy).unwrap();
    std::fs::write(&s.policy, text.replace("balance", "funds")).unwrap();
    let s = restart(s, &cfg);
    let (st, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some("token-fin"),
        &transfer(20_000.0, "funds"),
    )
    .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["final_outcome"], "BLOCK_NO_REPAIR", "{d}");
    assert!(d["constraints"].to_string().contains("spend-cap"), "{d}");
    finish(s);
}

/// The same across a plain restart and a reload, and `aioss audit replay` agrees with every
/// record afterwards (snapshots every few records, so both the periodic ones and the start
/// and shutdown ones are crossed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_survive_reloads_and_restarts_and_replay_agrees() {
    let (s, cfg) = agent_tools_server("budget-replay", "snapshot_every = 2");
    let (_, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some("token-fin"),
        &transfer(20_000.0, "balance"),
    )
    .await;
    assert_eq!(d["final_outcome"], "ALLOW", "{d}");
    let (st, _) = call(&s, "POST", "/v1/policy/reload", Some(ALICE), "").await;
    assert_eq!(st, 200);
    let (_, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some("token-fin"),
        &transfer(20_000.0, "balance"),
    )
    .await;
    assert_eq!(d["final_outcome"], "ALLOW", "{d}");
    let s = restart(s, &cfg);
    let (_, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some("token-fin"),
        &transfer(20_000.0, "balance"),
    )
    .await;
    assert_eq!(d["final_outcome"], "BLOCK_NO_REPAIR", "{d}");
    let (_, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some("token-fin"),
        &transfer(9_000.0, "balance"),
    )
    .await;
    assert_eq!(d["final_outcome"], "ALLOW", "{d}");
    let store = s.store.clone();
    let policy = s.policy.clone();
    let recs = finish(s);
    let kinds: Vec<&str> = recs.iter().map(|r| r.kind.as_str()).collect();
    assert!(
        kinds.iter().filter(|k| **k == "snapshot").count() >= 3,
        "{kinds:?}"
    );
    let start = recs
        .iter()
        .find(|r| r.kind == "snapshot" && r.proposal.contains("\"start\""))
        .unwrap();
    assert!(
        start.proposal.contains("\"restored_from\":"),
        "{}",
        start.proposal
    );
    let mut st = aioss_audit::open_store(store.to_str().unwrap(), false).unwrap();
    let mut g = aioss_core::Governor::new(aioss_server::serve::load_policy(&policy).unwrap());
    let rep = aioss_audit::replay::replay(st.as_mut(), &mut g, true).unwrap();
    assert!(rep.agrees(), "{:?}", rep.differences);
    let v = aioss_audit::verify::verify(st.as_mut(), None).unwrap();
    assert!(v.ok(), "{:?}", v.problem);
}

/// `transfer`, with a `timestamp`.
fn transfer_at(amount: f64, timestamp: f64) -> String {
    let mut b: Value = serde_json::from_str(&transfer(amount, "balance")).unwrap();
    b["timestamp"] = json!(timestamp);
    b.to_string()
}

/// Caught (issue 18, item 3): budgets followed the caller's clock. Transfers of 20,000 EUR
/// stamped one, two, … days ahead each opened a fresh 24-hour window, and seven of them
/// executed 140,000 EUR against the 50,000 EUR daily cap. The server decides at its own
/// time: a `timestamp` counts only within the policy's `max_clock_skew_secs` (default 0);
/// replay decides each record at its recorded time and agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_follow_the_servers_clock_not_the_agents_timestamps() {
    let (s, _) = agent_tools_server("clock", "");
    let now = aioss_audit::record::now_secs();
    let mut executed = 0.0;
    for day in 0..7 {
        let body = transfer_at(20_000.0, now + f64::from(day) * 86_400.0);
        let (st, d) = call(&s, "POST", "/v1/decisions", Some("token-fin"), &body).await;
        assert_eq!(st, 200, "{d}");
        executed += d["action"]["amount"].as_f64().unwrap();
        // Decided at the server's time, whatever the body claims.
        let r = record_of(&s.store, &d);
        let t: f64 = r.time.parse().unwrap();
        assert!((t - aioss_audit::record::now_secs()).abs() < 60.0, "{t}");
    }
    assert!(executed <= 50_000.0, "{executed} EUR executed");
    assert_eq!(executed, 40_000.0);
    let (store, policy) = (s.store.clone(), s.policy.clone());
    finish(s);
    let mut st = aioss_audit::open_store(store.to_str().unwrap(), false).unwrap();
    let mut g = aioss_core::Governor::new(aioss_server::serve::load_policy(&policy).unwrap());
    let rep = aioss_audit::replay::replay(st.as_mut(), &mut g, true).unwrap();
    assert!(rep.agrees(), "{:?}", rep.differences);
    // A policy that states a skew: a timestamp within it is the decision's time, one
    // beyond it is not.
    let (s, _) = agent_tools_server("clock-skew", "");
    let (st, _) = edit_policy(&s, "[governor]\n", "[governor]\nmax_clock_skew_secs = 30\n").await;
    assert_eq!(st, 200);
    let near = aioss_audit::record::now_secs() + 10.0;
    let (_, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some("token-fin"),
        &transfer_at(1.0, near),
    )
    .await;
    assert_eq!(record_of(&s.store, &d).time.parse::<f64>().unwrap(), near);
    let far = aioss_audit::record::now_secs() + 86_400.0;
    let (_, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some("token-fin"),
        &transfer_at(1.0, far),
    )
    .await;
    assert!(record_of(&s.store, &d).time.parse::<f64>().unwrap() < far - 3600.0);
    finish(s);
}

/// Caught (issue 18, item 4): `prev.` came from the body. From a real stop, a proposal
/// claiming `"prev": {"vx": 0.9}` got 0.725 m/s executed where the critical speed-up ramp
/// allows 0.346 from the recorded state. In the server `prev.` is what the governor
/// executed (the fallback before the agent's first action); a body claiming another is
/// refused (`prev_mismatch`) and recorded, and replay agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_prev_is_refused_and_the_ramp_counts_from_what_was_executed() {
    let s = server("prev", Some(&config_text()));
    let mut b = baseline();
    b["prev"] = json!({"vx": 0.9, "vy": 0.0});
    b["action"]["vx"] = json!(0.725);
    let (st, v) = call(&s, "POST", "/v1/decisions", Some(R1), &b.to_string()).await;
    assert_recorded_error(&s, st, &v, 400, "prev_mismatch");
    assert_eq!(v["error"]["field"], "prev.vx", "{v}");
    // Without the claim, the ramp counts from the stop: 0.725 m/s is cut to what it allows.
    b.as_object_mut().unwrap().remove("prev");
    let (st, d) = call(&s, "POST", "/v1/decisions", Some(R1), &b.to_string()).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["final_outcome"], "ALLOW_AFTER_REPAIR", "{d}");
    let vx = d["action"]["vx"].as_f64().unwrap();
    assert!(vx <= 0.12f64.sqrt() + 1e-9, "{vx} m/s executed from a stop");
    // Claiming exactly what was executed is fine.
    b["prev"] = json!({"vx": d["action"]["vx"], "vy": d["action"]["vy"]});
    b["action"]["vx"] = json!(vx);
    let (st, d) = call(&s, "POST", "/v1/decisions", Some(R1), &b.to_string()).await;
    assert_eq!(st, 200, "{d}");
    let (store, policy) = (s.store.clone(), s.policy.clone());
    finish(s);
    let mut st = aioss_audit::open_store(store.to_str().unwrap(), false).unwrap();
    let mut g = aioss_core::Governor::new(aioss_server::serve::load_policy(&policy).unwrap());
    let rep = aioss_audit::replay::replay(st.as_mut(), &mut g, true).unwrap();
    assert!(rep.agrees(), "{:?}", rep.differences);
    assert_eq!(rep.input_errors, 1);
}

/// Caught in review: a `long_poll_max_secs` far beyond any real wait made
/// `?wait=` overflow an `Instant` and panic the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_long_poll_setting_does_not_panic_a_handler() {
    let cfg = config_text().replace(
        "decision_cache = 1000",
        "decision_cache = 1000\nlong_poll_max_secs = 1e300",
    );
    let s = server("longpoll", Some(&cfg));
    let (_, d) = call(
        &s,
        "POST",
        "/v1/decisions",
        Some(R1),
        &baseline().to_string(),
    )
    .await;
    let id = d["decision_id"].as_str().unwrap();
    let (st, g) = call(
        &s,
        "GET",
        &format!("/v1/decisions/{id}?wait=1e300"),
        Some(R1),
        "",
    )
    .await;
    assert_eq!(st, 200, "{g}");
    finish(s);
}

/// Issue 23, item 5: a hold whose proposal fails a critical row could never be approved
/// (the approval re-checks the held action: `unsafe_now`). The warehouse's battery hold
/// (1 % charge at 0.5 m/s breaks critical rows) is a hold of the offered repair:
/// it is listed with the repair's action and digest, and approving it executes the repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_whose_critical_row_is_violated_can_never_be_approved() {
    let s = server("hold-of-repair", Some(&config_text()));
    let mut b = baseline();
    b["action"]["vx"] = json!(0.5);
    b["state"]["battery"] = json!(1.0);
    let (st, h) = call(&s, "POST", "/v1/decisions", Some(R1), &b.to_string()).await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["final_outcome"], "HOLD_FOR_CONFIRMATION", "{h:#}");
    assert!(h["candidate"].is_object(), "{h:#}");
    let id = h["decision_id"].as_str().unwrap().to_string();
    let p = pending(&s, &id).await;
    assert_eq!(p["action"], h["candidate"], "{p:#}");
    let body = json!({"action_digest": p["action_digest"], "reason": "crawl to the charger"});
    let (st, a) = call(
        &s,
        "POST",
        &format!("/v1/confirmations/{id}/approve"),
        Some(ALICE),
        &body.to_string(),
    )
    .await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["status"], "approved");
    assert_eq!(a["action"], h["candidate"], "{a:#}");
    finish(s);
}

/// A confirmed transfer of `amount` EUR by `fin`.
async fn spend_as_fin(s: &Server, amount: f64) -> (u16, Value) {
    let body = transfer(amount, "balance");
    call(s, "POST", "/v1/decisions", Some("token-fin"), &body).await
}

/// Issue 23, item 10: a log spanning policy changes (a reload of an edited policy, then a
/// restart under another edit) replays with no `--policy`: the store keeps every policy
/// text by hash, and each record is re-decided under the policy it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_spans_a_policy_change_cannot_be_replayed() {
    let (s, cfg) = agent_tools_server("policy-change-replay", "");
    let (_, d) = spend_as_fin(&s, 20_000.0).await;
    assert_eq!(d["final_outcome"], "ALLOW", "{d}");
    let text = std::fs::read_to_string(&s.policy).unwrap();
    let edit = |from: &str, to: &str| {
        text.replace(&format!("max = {from}"), &format!("max = {to}"))
            .replace(&format!("<= {from}"), &format!("<= {to}"))
    };
    std::fs::write(&s.policy, edit("50000", "45000")).unwrap();
    let (st, v) = call(&s, "POST", "/v1/policy/reload", Some(ALICE), "").await;
    assert_eq!(st, 200, "{v}");
    let (_, d) = spend_as_fin(&s, 20_000.0).await;
    assert_eq!(d["final_outcome"], "ALLOW", "{d}");
    std::fs::write(&s.policy, edit("50000", "60000")).unwrap();
    let s = restart(s, &cfg);
    let (_, d) = spend_as_fin(&s, 15_000.0).await;
    assert_eq!(d["final_outcome"], "ALLOW", "{d}");
    let store = s.store.clone();
    finish(s);
    let mut st = aioss_audit::open_store(store.to_str().unwrap(), false).unwrap();
    let first = aioss_audit::replay::first_policy(st.as_mut())
        .unwrap()
        .unwrap();
    let mut g = aioss_core::Governor::new(first);
    g.set_prev_source(aioss_core::governor::PrevSource::Governor);
    let rep = aioss_audit::replay::replay_following(st.as_mut(), &mut g, true).unwrap();
    assert!(rep.agrees(), "{:?}", rep.differences);
    assert_eq!(rep.other_policy, 0);
    assert_eq!(st.policies().unwrap().len(), 3);
}
