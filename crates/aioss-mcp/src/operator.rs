//! Asking a human through the operator endpoints of a running `aioss serve` (`--server
//! URL`), for clients that do not support MCP elicitation.
//!
//! The gateway puts the held call to the server as the same agent would (`POST
//! /v1/decisions`, the agent's bearer token from `AIOSS_SERVER_TOKEN`), so the server
//! holds it too and lists it under `GET /v1/confirmations`; an operator approves or
//! rejects it there, and the gateway long-polls `GET /v1/decisions/{id}?wait=SECS` for
//! the answer. The server must run the same policy (checked at start against its
//! `/healthz`). The gateway's own log records the answer with who gave it and the
//! server's decision id and record.
//!
//! Plain HTTP/1.1 only (like the server: put TLS in front of both for a remote server).

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};

use crate::govern::{Answer, Status};
use crate::Error;

/// A running `aioss serve`.
#[derive(Clone, Debug)]
pub struct Server {
    host: String,
    port: u16,
    token: Option<String>,
}

impl Server {
    /// `url` is `http://HOST:PORT` (a trailing `/` is allowed); `token` the agent's
    /// bearer token (none for a server in local-development mode).
    pub fn new(url: &str, token: Option<String>) -> Result<Server, Error> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| Error::Server(format!("`{url}` is not an http:// URL")))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| Error::Server(format!("`{p}` in `{url}` is not a port")))?,
            ),
            None => (rest.to_string(), 80),
        };
        if host.is_empty() || host.contains('/') {
            return Err(Error::Server(format!(
                "`{url}` must be http://HOST:PORT, without a path"
            )));
        }
        Ok(Server { host, port, token })
    }

    /// The same server, asked with another agent's bearer token.
    pub fn with_token(&self, token: String) -> Server {
        Server {
            token: Some(token),
            ..self.clone()
        }
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Value), Error> {
        let io = |e: String| Error::Server(format!("{method} {path}: {e}"));
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((host, self.port))
            .await
            .map_err(|e| io(e.to_string()))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .map_err(|e| io(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("{}:{}", self.host, self.port));
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| io(e.to_string()))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| io(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| io(e.to_string()))?
            .to_bytes();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, v))
    }

    /// Check that the server is up and runs the policy with hash `policy_hash`.
    pub async fn check(&self, policy_hash: &str) -> Result<(), Error> {
        let (_, v) = self.request("GET", "/healthz", None).await?;
        let theirs = v
            .pointer("/policy/hash")
            .and_then(Value::as_str)
            .unwrap_or("");
        if theirs != policy_hash {
            return Err(Error::Server(format!(
                "the server runs policy `{theirs}`, not `{policy_hash}`: holds would be decided under another policy"
            )));
        }
        Ok(())
    }

    /// Put the held proposal `line` to the server and wait up to `wait` for an operator's
    /// answer. Never fails: a server that cannot be reached, or that does not hold the
    /// call, is a refusal; no answer in time is an expiry.
    pub async fn ask(&self, line: &str, wait: Duration) -> Answer {
        let deadline = Instant::now() + wait;
        let refused = |reason: String| Answer {
            status: Status::Refused,
            by: json!({"id": "aioss-mcp", "role": "gateway"}),
            reason: Some(reason),
        };
        let decision = match self
            .request("POST", "/v1/decisions", Some(line.to_string()))
            .await
        {
            Ok((200, v)) => v,
            Ok((code, v)) => {
                return refused(format!(
                    "the server refused the held call ({code}): {}",
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ))
            }
            Err(e) => return refused(e.to_string()),
        };
        let outcome = decision
            .get("final_outcome")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(id) = decision.get("decision_id").and_then(Value::as_str) else {
            return refused("the server's decision has no `decision_id`".into());
        };
        if outcome != "HOLD_FOR_CONFIRMATION" {
            return refused(format!(
                "the server decided `{outcome}` for the held call (decision `{id}`), so no operator was asked"
            ));
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Answer {
                    status: Status::Expired,
                    by: json!({"id": "aioss-mcp", "role": "gateway", "server_decision_id": id}),
                    reason: Some(format!("no operator answered within {}s", wait.as_secs())),
                };
            }
            let secs = left.as_secs().clamp(1, 30);
            let got = self
                .request("GET", &format!("/v1/decisions/{id}?wait={secs}"), None)
                .await;
            let v = match got {
                Ok((200, v)) => v,
                Ok((code, v)) => {
                    return refused(format!(
                        "the server answered {code} for decision `{id}`: {}",
                        v.pointer("/error/message")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    ))
                }
                Err(e) => return refused(e.to_string()),
            };
            let c = v.get("confirmation").cloned().unwrap_or(Value::Null);
            let status = match c.get("status").and_then(Value::as_str) {
                Some("pending") | None => {
                    if Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
                Some("approved") => Status::Approved,
                Some("rejected") => Status::Rejected,
                Some("expired") => Status::Expired,
                Some(_) => Status::Refused,
            };
            let mut by = c.get("by").cloned().unwrap_or_else(|| json!({}));
            if let Some(o) = by.as_object_mut() {
                o.insert("server_decision_id".into(), Value::from(id));
                if let Some(r) = c.get("record") {
                    o.insert("server_record".into(), r.clone());
                }
            }
            return Answer {
                status,
                by,
                reason: c.get("reason").and_then(Value::as_str).map(String::from),
            };
        }
    }
}
