//! The HTTP API of `aioss serve` must hold whatever a caller sends: a token or none, any
//! method, path, query, header and body, timestamps and `prev` of any value. Driven
//! without a socket (the router of a running server, `tower::ServiceExt::oneshot`, as the
//! API tests do) against one server that lives across inputs, so its state (budgets,
//! holds, the latest reports, the chain) accumulates as in production.
//!
//! Checked after every request: nothing panicked (a panic in a handler fails the run; one
//! in the governor or committer thread shows in the next check); the answer is JSON, but
//! for `GET /metrics` (text) and `HEAD` (an empty body); `/healthz` answers 200 `ok` (it
//! must say `failing` the moment a thread is gone or a commit failed, and neither may
//! happen). After 256, 512, 1024, … inputs (and every 32,768), the store verifies
//! (read-only, as `aioss audit verify --public-key` does: its signed head covers the last
//! record).
//!
//! The store lives in `/dev/shm` where there is one (every commit is fsynced), in a
//! directory named after the process; remove it after a run.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use aioss_server::serve::Running;
use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tower::ServiceExt;

const POLICY: &str = include_str!("../../policies/warehouse-robot.toml");
const BASELINE: &str = include_str!("../../crates/aioss-server/tests/data/baseline.json");
const TOKENS: [&str; 3] = ["token-r1", "token-low", "token-alice"];

struct World {
    rt: tokio::runtime::Runtime,
    running: Running,
    store: std::path::PathBuf,
    public_key: String,
    last_id: std::sync::Mutex<String>,
    inputs: AtomicU64,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        // Commits are fsynced: on tmpfs where there is one.
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("aioss-fuzz-http-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let policy = dir.join("policy.toml");
        std::fs::write(&policy, POLICY).expect("the policy file");
        let store = dir.join("audit.db");
        let key_file = dir.join("k.key");
        let key = aioss_audit::Key::generate().expect("a key");
        key.write_new(&key_file).expect("the key file");
        let public_key = key.public_hex();
        let h = aioss_server::config::hash_token;
        let config = format!(
            "[server]\nhold_expiry_secs = 2\nlong_poll_max_secs = 0.01\ndecision_cache = 64\nmax_pending_holds = 16\nmax_tracked_agents = 8\ncheckpoint_every = 50\nsnapshot_every = 40\n\
             [[agent]]\nid = \"r1\"\ntoken_sha256 = \"{}\"\nattributes = {{ role = \"picker\", trust = 0.9 }}\n\
             [[agent]]\nid = \"low\"\ntoken_sha256 = \"{}\"\nattributes = {{ role = \"picker\", trust = 0.1 }}\nrate_limit = 1000\nburst = 50\n\
             [[operator]]\nid = \"alice\"\ntoken_sha256 = \"{}\"\n",
            h(TOKENS[0]),
            h(TOKENS[1]),
            h(TOKENS[2])
        );
        let config = aioss_server::config::Config::parse(&config).expect("the configuration");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let running = Running::open(
            &policy,
            store.to_str().expect("a UTF-8 path"),
            Some(key),
            Some(config),
        )
        .expect("the server starts");
        World {
            rt,
            running,
            store,
            public_key,
            last_id: std::sync::Mutex::new(String::new()),
            inputs: AtomicU64::new(0),
        }
    })
}

/// The fuzz input, read a byte (or a few) at a time; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn text(&mut self) -> String {
        let n = usize::from(self.u8());
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    fn f64(&mut self) -> f64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        f64::from_le_bytes(b)
    }
    /// A number as JSON: any double (not finite ones as text), an integer, or a string.
    fn number(&mut self) -> Value {
        match self.u8() % 6 {
            0 => json!(self.f64().to_string()),
            1 => json!(i64::from(self.u8()) - 128),
            2 => json!(self.text()),
            3 => json!(1.7e9 + f64::from(self.u8()) * 86_400.0),
            _ => {
                let x = self.f64();
                if x.is_finite() {
                    json!(x)
                } else {
                    json!(x.to_string())
                }
            }
        }
    }
}

/// A proposal: the baseline with fields replaced, added or removed.
fn proposal(b: &mut Bytes<'_>) -> String {
    let mut v: Value = serde_json::from_str(BASELINE).unwrap_or(Value::Null);
    for _ in 0..(b.u8() % 6) {
        match b.u8() % 12 {
            0 => v["timestamp"] = b.number(),
            1 => v["prev"] = json!({"vx": b.number(), "vy": b.number()}),
            2 => v["agent"] = json!(["r1", "low", "alice", ""][usize::from(b.u8() % 4)]),
            3 => v["agent_attributes"] = json!({"role": b.text(), "trust": b.number()}),
            4 => v["action"]["vx"] = b.number(),
            5 => v["action"]["gripper"] = json!(b.text()),
            6 => v["state"]["px"] = b.number(),
            7 => v["state"]["human_dist"] = json!({"lo": b.number(), "hi": b.number()}),
            8 => v["state"]["zone"] = json!(b.text()),
            9 => {
                let k = b.text();
                v[k] = b.number();
            }
            10 => {
                if let Some(o) = v.as_object_mut() {
                    let keys: Vec<String> = o.keys().cloned().collect();
                    if !keys.is_empty() {
                        let k = &keys[usize::from(b.u8()) % keys.len()];
                        o.remove(k);
                    }
                }
            }
            _ => v["transition"] = json!(b.text()),
        }
    }
    v.to_string()
}

fn body(b: &mut Bytes<'_>) -> Vec<u8> {
    match b.u8() % 6 {
        0 => {
            let n = usize::from(b.u8()) * 4;
            b.take(n).to_vec()
        }
        1 | 2 => proposal(b).into_bytes(),
        3 => json!({"state": {"px": b.number(), "py": 10.0, "zone": b.text()}})
            .to_string()
            .into_bytes(),
        4 => json!({"action_digest": b.text(), "policy_hash": b.text(), "reason": b.text()})
            .to_string()
            .into_bytes(),
        _ => Vec::new(),
    }
}

fn path(b: &mut Bytes<'_>, last: &str) -> String {
    let id = if b.u8() % 4 == 0 {
        b.text()
    } else {
        last.to_string()
    };
    let mut p = match b.u8() % 12 {
        0 | 1 | 2 => "/v1/decisions".to_string(),
        3 => format!("/v1/decisions/{id}"),
        4 => format!("/v1/decisions/{id}/outcome"),
        5 => "/v1/confirmations".to_string(),
        6 => format!("/v1/confirmations/{id}/approve"),
        7 => format!("/v1/confirmations/{id}/reject"),
        8 => "/v1/policy/reload".to_string(),
        9 => "/healthz".to_string(),
        10 => "/metrics".to_string(),
        _ => format!("/{}", b.text()),
    };
    if b.u8() % 5 == 0 {
        p.push_str(&format!("?wait={}", b.text()));
    }
    p
}

async fn send(
    router: axum::Router,
    method: &str,
    path: &str,
    headers: &[(String, Vec<u8>)],
    body: Vec<u8>,
) -> Option<(u16, Vec<u8>)> {
    let mut r = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_bytes(v),
        ) else {
            continue;
        };
        r = r.header(k, v);
    }
    // A request the HTTP library cannot even build never reaches the server.
    let req = r.body(Body::from(body)).ok()?;
    let resp = router.oneshot(req).await.ok()?;
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 26).await.ok()?;
    Some((status, bytes.to_vec()))
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut b = Bytes(data);
    let n = 1 + b.u8() % 4;
    for _ in 0..n {
        let method = ["GET", "POST", "PUT", "DELETE", "HEAD"][usize::from(b.u8() % 5)];
        let last = w.last_id.lock().map(|l| l.clone()).unwrap_or_default();
        let path = path(&mut b, &last);
        let mut headers = Vec::new();
        match b.u8() % 6 {
            0 => {}
            k @ 1..=3 => headers.push((
                "authorization".to_string(),
                format!("Bearer {}", TOKENS[usize::from(k - 1)]).into_bytes(),
            )),
            4 => headers.push(("authorization".to_string(), b.take(24).to_vec())),
            _ => headers.push(("authorization".to_string(), format!("Bearer {}", b.text()).into_bytes())),
        }
        if b.u8() % 4 == 0 {
            headers.push((b.text(), b.take(16).to_vec()));
        }
        let body = body(&mut b);
        let got = w
            .rt
            .block_on(send(w.running.router(), method, &path, &headers, body));
        let Some((status, bytes)) = got else { continue };
        let text = String::from_utf8_lossy(&bytes);
        let text_ok = (path.starts_with("/metrics") && status == 200)
            || (method == "HEAD" && bytes.is_empty());
        if !text_ok {
            let v: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => panic!("{method} {path} answered {status} with a body that is not JSON ({e}): {text}"),
            };
            if status >= 400 {
                assert!(v["error"]["code"].is_string(), "{method} {path} {status}: {text}");
            }
            if let Some(id) = v.get("decision_id").and_then(Value::as_str) {
                if let Ok(mut l) = w.last_id.lock() {
                    *l = id.to_string();
                }
            }
        }
        // Health is honest: nothing here may kill a thread or fail a commit.
        let health = w
            .rt
            .block_on(send(w.running.router(), "GET", "/healthz", &[], Vec::new()));
        let Some((hs, hb)) = health else {
            panic!("/healthz could not be asked")
        };
        let h: Value = serde_json::from_slice(&hb).unwrap_or(Value::Null);
        assert!(hs == 200 && h["status"] == "ok", "after {method} {path} ({status}): {h}");
    }
    // Verifying reads the whole store: at 256, 512, 1024, … inputs and every 32,768.
    let done = w.inputs.fetch_add(1, Ordering::Relaxed) + 1;
    if done >= 256 && (done.is_power_of_two() || done % 32_768 == 0) {
        let mut s = match aioss_audit::SqliteStore::open_read_only(&w.store) {
            Ok(s) => s,
            Err(e) => panic!("the store cannot be read: {e}"),
        };
        let rep = match aioss_audit::verify::verify(&mut s, Some(&w.public_key)) {
            Ok(r) => r,
            Err(e) => panic!("verify failed to run: {e}"),
        };
        if rep.count > 0 {
            assert!(rep.ok(), "the store does not verify: {:?}", rep.problem);
        }
    }
});
