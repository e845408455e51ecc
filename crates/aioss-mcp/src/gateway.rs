//! The governing MCP proxy: an MCP server downstream (the agent's client), an MCP client of
//! each upstream server, and the governor between them.
//!
//! `tools/list` offers the upstream tools the mapping maps and that some rule or
//! constraint could allow for the session's agent ([`crate::reach`]). `tools/call`:
//!
//! | outcome | what the gateway does |
//! |---|---|
//! | ALLOW | forwards the call unchanged |
//! | ALLOW_AFTER_REPAIR | forwards the repaired arguments; the result's `_meta.aioss.repaired` lists what changed, with the decision's reasons |
//! | HOLD_FOR_CONFIRMATION | asks a human (MCP elicitation when the client declares it, else the operator endpoints of `--server`), waits up to `--hold-wait`; approved: forwards unchanged; anything else (rejected, expired, refused): a tool error |
//! | BLOCK_NO_REPAIR, REVIEW_AUDIT, FAILED_GOVERNANCE | a tool error (its text as the mapping's `disclosure` says); nothing is forwarded, unless the executed action (the fallback) is itself a mapped tool, whose call is then made instead |
//!
//! Every forwarded call's result is recorded by its SHA-256 in an `outcome` record, and
//! every result the gateway returns carries `_meta.aioss` (the decision id, the outcome,
//! the record).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aioss_core::{Decision, Outcome, Policy, Proposal};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ElicitRequestParams,
    ElicitationAction, ElicitationSchema, Implementation, JsonObject, ListToolsResult, MetaObject,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{ElicitationMode, RequestContext, RunningService};
use rmcp::{ErrorData, Peer, RoleClient, RoleServer, ServerHandler};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::govern::{Answer, Decided, Governance, Status};
use crate::mapping::{Disclosure, Mapping, Session};
use crate::operator::Server;
use crate::Error;

/// One connected upstream server.
pub struct Upstream {
    /// What it was started as (for messages).
    pub name: String,
    /// The running client.
    pub service: RunningService<RoleClient, ()>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A tool as offered downstream, and the upstream that serves it.
#[derive(Clone, Debug)]
pub struct Offered {
    /// The upstream's description of it.
    pub tool: Tool,
    /// Which upstream.
    pub peer: Peer<RoleClient>,
}

/// A tool hidden from `tools/list`, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hidden {
    /// The tool.
    pub tool: String,
    /// Why.
    pub why: String,
}

/// How the gateway asks a human about a hold.
#[derive(Clone, Debug)]
pub struct Holds {
    /// How long a held call waits for an answer before it is denied.
    pub wait: Duration,
    /// The operator endpoints of a running `aioss serve`, for clients without
    /// elicitation.
    pub server: Option<Server>,
}

/// Who calls, with the tools `tools/list` hides from it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The agent and its attributes.
    pub session: Session,
    /// The mapped tools no rule or constraint could ever allow for it.
    pub hidden: Vec<Hidden>,
}

impl Caller {
    /// `session` and the `tools` (mapped) it may never be allowed to call.
    pub fn new(policy: &Policy, mapping: &Mapping, session: Session, tools: &[Offered]) -> Caller {
        let hidden = tools
            .iter()
            .filter_map(|o| {
                let name = o.tool.name.to_string();
                crate::reach::reachable(policy, mapping, &session, &name)
                    .err()
                    .map(|u| Hidden {
                        why: format!(
                            "`{}` blocks every call of it for agent `{}`",
                            u.by, session.agent
                        ),
                        tool: name,
                    })
            })
            .collect();
        Caller { session, hidden }
    }

    fn sees(&self, tool: &str) -> bool {
        !self.hidden.iter().any(|h| h.tool == tool)
    }
}

/// Where the caller of a request comes from.
#[derive(Clone, Debug)]
pub enum Callers {
    /// One caller for the whole connection (standard input and output: the mapping's
    /// `[session]`).
    One(Arc<Caller>),
    /// Each HTTP request's bearer token: the request's [`Caller`] and [`Bearer`] are in
    /// its extensions, put there by [`crate::listen`]'s authentication. A request without
    /// them is refused.
    Bearer,
}

/// The bearer token of an HTTP request (its caller's token at `--server`).
#[derive(Clone)]
pub struct Bearer(pub String);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(..)")
    }
}

struct Inner {
    policy: Policy,
    mapping: Mapping,
    gov: Mutex<Governance>,
    tools: Vec<Offered>,
    callers: Callers,
    holds: Holds,
    next: std::sync::atomic::AtomicU64,
    run: String,
}

/// The gateway: an MCP [`ServerHandler`].
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// The upstream tools of `upstreams`, by name, with their input schemas (for
/// [`Mapping::bind`]) and who serves each. Two upstreams offering one name is an error.
pub async fn upstream_tools(
    upstreams: &[Upstream],
) -> Result<Vec<(Tool, Peer<RoleClient>)>, Error> {
    let mut all: Vec<(Tool, Peer<RoleClient>, String)> = Vec::new();
    for u in upstreams {
        let tools = u
            .service
            .list_all_tools()
            .await
            .map_err(|e| Error::Upstream(format!("{}: tools/list: {e}", u.name)))?;
        for t in tools {
            if let Some((_, _, other)) = all.iter().find(|(x, _, _)| x.name == t.name) {
                return Err(Error::Upstream(format!(
                    "the tool `{}` is offered by both `{other}` and `{}`",
                    t.name, u.name
                )));
            }
            all.push((t, u.service.peer().clone(), u.name.clone()));
        }
    }
    Ok(all.into_iter().map(|(t, p, _)| (t, p)).collect())
}

fn sha256_hex(bytes: &[u8]) -> String {
    aioss_audit::record::hex(&Sha256::digest(bytes))
}

fn error_result(text: String, meta: Value) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
    r.meta = Some(meta_object(meta));
    r
}

fn meta_object(aioss: Value) -> MetaObject {
    let mut m = JsonObject::new();
    m.insert("aioss".into(), aioss);
    MetaObject(m)
}

fn record_json(r: &aioss_audit::RecordRef) -> Value {
    json!({"seq": r.seq, "hash": r.hash, "prev_hash": r.prev_hash})
}

impl Gateway {
    /// A gateway over the mapped upstream `tools` (already bound to the mapping), each
    /// caller seeing those its [`Caller::hidden`] does not name.
    pub fn new(
        policy: Policy,
        mapping: Mapping,
        gov: Governance,
        tools: Vec<Offered>,
        callers: Callers,
        holds: Holds,
    ) -> Gateway {
        let run = format!("{:08x}", std::process::id());
        Gateway {
            inner: Arc::new(Inner {
                policy,
                mapping,
                gov: Mutex::new(gov),
                tools,
                callers,
                holds,
                next: std::sync::atomic::AtomicU64::new(0),
                run,
            }),
        }
    }

    /// The upstream tools the mapping maps (the others are hidden from every caller).
    pub fn mapped(
        mapping: &Mapping,
        upstream: Vec<(Tool, Peer<RoleClient>)>,
    ) -> (Vec<Offered>, Vec<Hidden>) {
        let mut offered = Vec::new();
        let mut hidden = Vec::new();
        for (tool, peer) in upstream {
            if mapping.tool(&tool.name).is_some() {
                offered.push(Offered { tool, peer });
            } else {
                hidden.push(Hidden {
                    tool: tool.name.to_string(),
                    why: "the mapping does not map it".into(),
                });
            }
        }
        (offered, hidden)
    }

    /// The caller of a request, and its bearer token when it came over HTTP. `None`: a
    /// request over HTTP without an authenticated agent (never served).
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Option<(Arc<Caller>, Option<Bearer>)> {
        match &self.inner.callers {
            Callers::One(c) => Some((Arc::clone(c), None)),
            Callers::Bearer => {
                let parts = ctx.extensions.get::<axum::http::request::Parts>()?;
                let c = parts.extensions.get::<Arc<Caller>>()?;
                Some((Arc::clone(c), parts.extensions.get::<Bearer>().cloned()))
            }
        }
    }

    /// Run `f` on the governance, off the async threads (commits wait for the disk).
    async fn with_gov<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Governance) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut g = inner
                .gov
                .lock()
                .map_err(|_| Error::Internal("the governance lock was poisoned".into()))?;
            f(&mut g)
        })
        .await
        .map_err(|e| Error::Internal(format!("the governance task failed: {e}")))?
    }

    /// Sign and commit the store's head: at shutdown.
    pub async fn finish(&self) -> Result<(), Error> {
        self.with_gov(Governance::finish).await
    }

    fn refusal_text(&self, d: &Decision, why: &str) -> String {
        let p = &self.inner.policy;
        let mut s = format!(
            "AIOSS: the call was not made ({}; decision {})",
            d.final_outcome.as_str(),
            d.decision_id
        );
        if !why.is_empty() {
            s.push_str(": ");
            s.push_str(why);
        }
        match self.inner.mapping.disclosure {
            Disclosure::Outcome => {}
            Disclosure::Reasons | Disclosure::Full => {
                for r in &d.reasons {
                    s.push_str("\n- ");
                    s.push_str(r);
                }
            }
        }
        if self.inner.mapping.disclosure == Disclosure::Full {
            if let Some(r) = d.rule.and_then(|i| p.rules.get(i)) {
                s.push_str(&format!("\nrule: {}", r.id));
            }
            for c in &d.constraints {
                s.push_str(&format!(
                    "\nnot satisfied: {} ({})",
                    c.id,
                    c.status.as_str()
                ));
            }
        }
        s
    }

    async fn refuse_call(&self, request: Value, message: String, code: &str) -> CallToolResult {
        let err = json!({"error": {"code": code, "message": message}});
        let rec = self
            .with_gov({
                let err = err.clone();
                move |g| g.refuse(&request, &err)
            })
            .await;
        let meta = match &rec {
            Ok(r) => json!({"error": code, "record": record_json(r)}),
            Err(e) => json!({"error": code, "audit_error": e.to_string()}),
        };
        error_result(format!("AIOSS: {message}"), meta)
    }

    async fn call(
        &self,
        params: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let tool = params.name.to_string();
        let args: Map<String, Value> = params.arguments.clone().unwrap_or_default();
        let Some((caller, bearer)) = self.caller(&ctx) else {
            // Unreachable through `aioss mcp --listen` (its authentication answers 401
            // first); nothing is recorded for a caller nobody authenticated.
            return error_result(
                "AIOSS: the request carries no authenticated agent".into(),
                json!({"error": "unauthenticated"}),
            );
        };
        let via = match self.inner.callers {
            Callers::One(_) => "mcp",
            Callers::Bearer => "mcp-http",
        };
        let request = json!({
            "method": "tools/call",
            "by": {"id": caller.session.agent, "via": via},
            "tool": tool,
            "arguments_sha256": sha256_hex(Value::Object(args.clone()).to_string().as_bytes()),
        });
        let Some(offered) = self
            .inner
            .tools
            .iter()
            .find(|o| o.tool.name == tool && caller.sees(&tool))
            .cloned()
        else {
            let why = if self.inner.mapping.tool(&tool).is_some() {
                format!("the tool `{tool}` is not offered: no rule or constraint could allow it for this agent")
            } else {
                format!("the tool `{tool}` is not offered by this gateway")
            };
            return self.refuse_call(request, why, "unknown_tool").await;
        };
        let n = self
            .inner
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("mcp-{}-{n}", self.inner.run);
        let line = match self.inner.mapping.proposal(
            &self.inner.policy,
            &caller.session,
            &id,
            &tool,
            &args,
        ) {
            Ok(l) => l,
            Err(e) => return self.refuse_call(request, e.to_string(), "bad_call").await,
        };
        let decided = {
            let line = line.clone();
            self.with_gov(move |g| g.decide(&line)).await
        };
        let (d, dec_json, prop, record) = match decided {
            Err(e) => {
                return error_result(
                    format!("AIOSS: the call was not decided: {e}"),
                    json!({"error": "governance_failed"}),
                )
            }
            Ok(Decided::Refused { error, record }) => {
                let v: Value = serde_json::from_str(&error).unwrap_or(Value::Null);
                let msg = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                return error_result(
                    format!("AIOSS: the call is not a valid proposal for the policy: {msg}"),
                    json!({"error": v.get("error"), "record": record_json(&record)}),
                );
            }
            Ok(Decided::Decision {
                decision,
                json,
                proposal,
                record,
            }) => (decision, json, proposal, record),
        };
        let _ = dec_json;
        let mut meta = json!({
            "decision_id": d.decision_id,
            "final_outcome": d.final_outcome.as_str(),
            "record": record_json(&record),
        });
        match d.final_outcome {
            Outcome::Allow => {
                self.forward(&offered, &tool, args, &d, meta, "proposal")
                    .await
            }
            Outcome::AllowAfterRepair => {
                match self.inner.mapping.write_back(
                    &self.inner.policy,
                    &tool,
                    &args,
                    &d.proposed,
                    &d.action,
                ) {
                    Ok((repaired, changes)) => {
                        if let Some(o) = meta.as_object_mut() {
                            o.insert(
                                "repaired".into(),
                                changes
                                    .iter()
                                    .map(|c| {
                                        json!({"variable": c.variable, "argument": c.argument, "from": c.from, "to": c.to})
                                    })
                                    .collect(),
                            );
                            o.insert("reasons".into(), Value::from(d.reasons.clone()));
                        }
                        self.forward(&offered, &tool, repaired, &d, meta, "repaired")
                            .await
                    }
                    Err(e) => {
                        let why = e.to_string();
                        let _ = self
                            .with_gov({
                                let id = d.decision_id.clone();
                                let why = why.clone();
                                move |g| {
                                    g.outcome(
                                        &id,
                                        &json!({"by": {"id": "aioss-mcp", "role": "gateway"}, "forwarded": false}),
                                        &json!({"decision_id": id, "forwarded": false, "reason": why}),
                                    )
                                }
                            })
                            .await;
                        error_result(self.refusal_text(&d, &why), meta)
                    }
                }
            }
            Outcome::HoldForConfirmation => {
                let answer = self.ask_human(&tool, &args, &d, &line, &ctx, bearer).await;
                let recorded = self
                    .with_gov({
                        let id = d.decision_id.clone();
                        let prop: Proposal = (*prop).clone();
                        let via = answer.1.clone();
                        let a = answer.0.clone();
                        move |g| g.answer(&id, &prop, &via, a)
                    })
                    .await;
                match recorded {
                    Err(e) => error_result(
                        format!("AIOSS: the answer to the hold could not be recorded: {e}"),
                        meta,
                    ),
                    Ok((a, rr)) => {
                        if let Some(o) = meta.as_object_mut() {
                            o.insert(
                                "confirmation".into(),
                                json!({"status": a.status.as_str(), "by": a.by, "reason": a.reason, "record": record_json(&rr)}),
                            );
                        }
                        if a.status == Status::Approved {
                            self.forward(&offered, &tool, args, &d, meta, "approved")
                                .await
                        } else {
                            let why = format!(
                                "the hold was {}{}",
                                a.status.as_str(),
                                a.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                            );
                            error_result(self.refusal_text(&d, &why), meta)
                        }
                    }
                }
            }
            Outcome::BlockNoRepair | Outcome::ReviewAudit | Outcome::FailedGovernance => {
                let text = self.refusal_text(&d, "");
                match self.fallback_call(&d, &caller) {
                    Some((ftool, fargs, fpeer)) => {
                        let r = self
                            .forward(&fpeer, &ftool, fargs, &d, meta.clone(), "fallback")
                            .await;
                        let mut e = error_result(text, meta);
                        e.content.extend(r.content);
                        e
                    }
                    None => error_result(text, meta),
                }
            }
        }
    }

    /// The fallback as a call, when the executed action names a mapped tool whose other
    /// variables are all constants or the fallback's values.
    fn fallback_call(
        &self,
        d: &Decision,
        caller: &Caller,
    ) -> Option<(String, Map<String, Value>, Offered)> {
        let p = &self.inner.policy;
        let m = &self.inner.mapping;
        let decoded = crate::mapping::decode_action(p, &d.action);
        let value = decoded
            .get(&p.actions.get(m.tool_var)?.name)?
            .as_str()?
            .to_string();
        let t = m.tools.iter().find(|t| t.value == value)?;
        if t.vars
            .iter()
            .any(|v| !matches!(v.source, crate::mapping::Source::Const(_)))
        {
            return None;
        }
        let o = self
            .inner
            .tools
            .iter()
            .find(|o| o.tool.name == t.name && caller.sees(&t.name))?
            .clone();
        Some((t.name.clone(), Map::new(), o))
    }

    /// Ask a human about a held call; the answer and the channel it came through.
    async fn ask_human(
        &self,
        tool: &str,
        args: &Map<String, Value>,
        d: &Decision,
        line: &str,
        ctx: &RequestContext<RoleServer>,
        bearer: Option<Bearer>,
    ) -> (Answer, String) {
        let wait = self.inner.holds.wait;
        if ctx
            .peer
            .supported_elicitation_modes()
            .contains(&ElicitationMode::Form)
        {
            let mut message = format!(
                "AIOSS holds the call `{tool}` {} for your confirmation (decision {}).",
                Value::Object(args.clone()),
                d.decision_id
            );
            for r in &d.reasons {
                message.push_str("\n- ");
                message.push_str(r);
            }
            message.push_str("\nAccept to run it as it is; decline to refuse it.");
            let schema = ElicitationSchema::from_json_schema(
                json!({
                    "type": "object",
                    "properties": {"reason": {"type": "string", "title": "Why (optional)"}}
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            );
            let by = json!({"id": "mcp-client", "role": "elicitation"});
            let Ok(schema) = schema else {
                return (
                    Answer {
                        status: Status::Refused,
                        by,
                        reason: Some("the elicitation schema could not be built".into()),
                    },
                    "elicitation".into(),
                );
            };
            let params = ElicitRequestParams::FormElicitationParams {
                meta: None,
                message,
                requested_schema: schema,
            };
            let asked = tokio::time::timeout(
                wait,
                ctx.peer.create_elicitation_with_timeout(params, Some(wait)),
            )
            .await;
            let reason_of = |c: &Option<Value>| {
                c.as_ref()
                    .and_then(|v| v.get("reason"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
            };
            let a = match asked {
                Ok(Ok(r)) => match r.action {
                    ElicitationAction::Accept => Answer {
                        status: Status::Approved,
                        by,
                        reason: reason_of(&r.content),
                    },
                    // Decline, cancel, and any answer this SDK does not know: not an approval.
                    _ => Answer {
                        status: Status::Rejected,
                        by,
                        reason: reason_of(&r.content),
                    },
                },
                Ok(Err(rmcp::ServiceError::Timeout { .. })) | Err(_) => Answer {
                    status: Status::Expired,
                    by,
                    reason: Some(format!("no answer within {}s", wait.as_secs())),
                },
                Ok(Err(e)) => Answer {
                    status: Status::Refused,
                    by,
                    reason: Some(format!("the elicitation failed: {e}")),
                },
            };
            return (a, "elicitation".into());
        }
        if let Some(s) = &self.inner.holds.server {
            // Over HTTP the server is asked with the caller's own token, so that it sees
            // the same agent (both read the same configuration).
            let s = match bearer {
                Some(Bearer(t)) => s.with_token(t),
                None => s.clone(),
            };
            return (s.ask(line, wait).await, "server".into());
        }
        (
            Answer {
                status: Status::Refused,
                by: json!({"id": "aioss-mcp", "role": "gateway"}),
                reason: Some(
                    "no human can be asked: the client does not support elicitation and no --server was given"
                        .into(),
                ),
            },
            "none".into(),
        )
    }

    /// Forward a call upstream and record the digest of its result.
    async fn forward(
        &self,
        offered: &Offered,
        tool: &str,
        args: Map<String, Value>,
        d: &Decision,
        mut meta: Value,
        what: &str,
    ) -> CallToolResult {
        let args_digest = sha256_hex(Value::Object(args.clone()).to_string().as_bytes());
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = Some(args);
        let got = offered.peer.call_tool(params).await;
        let (mut result, answer) = match got {
            Ok(r) => {
                let bytes = serde_json::to_vec(&r).unwrap_or_default();
                let digest = format!("sha256:{}", sha256_hex(&bytes));
                let answer = json!({
                    "decision_id": d.decision_id,
                    "forwarded": what,
                    "upstream": {"is_error": r.is_error.unwrap_or(false), "result_sha256": digest},
                });
                (r, answer)
            }
            Err(e) => {
                let msg = format!("the upstream call failed: {e}");
                let answer = json!({
                    "decision_id": d.decision_id,
                    "forwarded": what,
                    "upstream": {"error": msg},
                });
                (
                    CallToolResult::error(vec![ContentBlock::text(format!("AIOSS: {msg}"))]),
                    answer,
                )
            }
        };
        let request = json!({
            "by": {"id": "aioss-mcp", "role": "gateway"},
            "tool": tool,
            "arguments_sha256": format!("sha256:{args_digest}"),
        });
        let rec = self
            .with_gov({
                let id = d.decision_id.clone();
                let answer = answer.clone();
                move |g| g.outcome(&id, &request, &answer)
            })
            .await;
        if let Some(o) = meta.as_object_mut() {
            o.insert("forwarded".into(), Value::from(what));
            if let Some(u) = answer.get("upstream") {
                o.insert("upstream".into(), u.clone());
            }
            match rec {
                Ok(r) => {
                    o.insert("outcome_record".into(), record_json(&r));
                }
                Err(e) => {
                    o.insert("audit_error".into(), Value::from(e.to_string()));
                }
            }
        }
        let mut m = result.meta.take().unwrap_or_default();
        m.0.insert("aioss".into(), meta);
        result.meta = Some(m);
        result
    }
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder().enable_tools().build();
        ServerConfig::new(caps)
            .with_server_info(Implementation::new("aioss-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Every tool call is decided by the AIOSS governor before it reaches the tool; \
                 a call may be repaired, held for a human, or refused.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let Some((caller, _)) = self.caller(&context) else {
            return Err(ErrorData::invalid_request(
                "the request carries no authenticated agent",
                None,
            ));
        };
        Ok(ListToolsResult::with_all_items(
            self.inner
                .tools
                .iter()
                .filter(|o| caller.sees(&o.tool.name))
                .map(|o| o.tool.clone())
                .collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResponse::Complete(
            self.call(request, context).await,
        ))
    }
}
