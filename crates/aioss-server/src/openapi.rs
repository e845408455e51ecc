//! `GET /openapi.json`: OpenAPI 3.1, generated from [`crate::http::ROUTES`] (the table
//! the router is built from) and the schemas below.

use serde_json::{json, Map, Value};

use crate::http::ROUTES;

/// The JSON schemas the routes name, by name.
pub fn schemas() -> Map<String, Value> {
    let obj = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required});
    let error = json!({"type": "object", "required": ["error"], "properties": {"error": obj(json!({
        "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}
    }), &["code", "message"])}});
    let record = obj(
        json!({"seq": {"type": "integer"}, "hash": {"type": "string"}, "prev_hash": {"type": "string"}}),
        &["seq", "hash", "prev_hash"],
    );
    let mut m = Map::new();
    m.insert("Error".into(), error);
    m.insert("Record".into(), record);
    m.insert(
        "Proposal".into(),
        obj(
            json!({
                "id": {"type": "string"},
                "agent": {"type": "string", "description": "with a configuration, the token's agent (a body naming another is refused)"},
                "timestamp": {"description": "seconds since the Unix epoch or RFC 3339; used only within the policy's max_clock_skew_secs of the server's clock (default 0), which decides otherwise"},
                "action": {"type": "object"},
                "state": {"type": "object", "description": "each value a number, {value, noise} or {lo, hi}"},
                "prev": {"type": "object", "description": "optional; if given, exactly the action the governor last executed for the agent (else 400 prev_mismatch): prev. is the governor's record"},
                "transition": {"type": "string"},
                "agent_attributes": {"type": "object", "description": "with a configuration, the token's attributes (a body claiming others is refused)"}
            }),
            &["action"],
        ),
    );
    m.insert(
        "Decision".into(),
        obj(
            json!({
                "id": {"type": "string"}, "decision_id": {"type": "string"},
                "final_outcome": {"enum": ["ALLOW", "ALLOW_AFTER_REPAIR", "HOLD_FOR_CONFIRMATION", "BLOCK_NO_REPAIR", "REVIEW_AUDIT", "FAILED_GOVERNANCE"]},
                "classification": {"enum": ["GO", "REPAIR", "HOLD", "BLOCK"]},
                "evaluation": {"enum": ["EFFECTIVE", "PARTIAL", "NEUTRAL", "FAILED"]},
                "audit": {"enum": ["VALID", "QUESTIONABLE", "INSUFFICIENT", "INVALID"]},
                "repair_status": {"enum": ["NOT_REQUIRED", "REPAIRED", "CONFIRMATION_REQUIRED", "NO_REPAIR_AVAILABLE"]},
                "report_type": {"type": "string"}, "human_action_required": {"type": "boolean"},
                "action": {"type": "object", "description": "the action to execute now"},
                "candidate": {"type": "object"}, "distance": {"type": "number"},
                "constraints": {"type": "array"}, "relaxed": {"type": "array"},
                "rule": {"type": "string"}, "reasons": {"type": "array", "items": {"type": "string"}},
                "failure_modes": {"type": "array"}, "guarantees": {"type": "object"},
                "policy": obj(json!({"name": {"type": "string"}, "version": {"type": "string"}, "hash": {"type": "string"}}), &["hash"]),
                "latency_us": {"type": "integer"},
                "timing": obj(json!({"deadline_us": {"type": "integer"}, "met": {"type": "boolean", "description": "G5: latency_us <= deadline_us (measured; with enforce_deadline the repair search is also bounded by a deterministic modeled cost)"}}), &["deadline_us", "met"]),
                "record": {"$ref": "#/components/schemas/Record"},
                "confirmation": {"$ref": "#/components/schemas/ConfirmationAnswer"},
                "outcome": {"$ref": "#/components/schemas/OutcomeAnswer"}
            }),
            &["decision_id", "final_outcome", "action", "policy", "record"],
        ),
    );
    m.insert(
        "Overloaded".into(),
        obj(
            json!({"error": {"type": "object"}, "execute": {"const": "fallback"}, "fallback": {"type": "object"},
                   "fallback_certified": {"type": "boolean", "description": "for a proposal shed: whether Tier 1 certifies the fallback at the state it reports (budgets and prev. over their declared ranges); false means stop and retry"},
                   "policy": {"type": "object"}}),
            &["error", "execute", "fallback"],
        ),
    );
    m.insert(
        "OutcomeRequest".into(),
        obj(
            json!({"state": {"type": "object", "description": "the observed next state, as in a proposal"}}),
            &["state"],
        ),
    );
    m.insert(
        "OutcomeAnswer".into(),
        obj(
            json!({
                "decision_id": {"type": "string"}, "evaluation": {"enum": ["EFFECTIVE", "FAILED"]},
                "left_safe_set": {"type": "array"}, "diverged": {"type": "array"},
                "failure_modes": {"type": "array"}, "reasons": {"type": "array"},
                "by": {"type": "object"}, "policy": {"type": "object"},
                "record": {"$ref": "#/components/schemas/Record"}
            }),
            &["decision_id", "evaluation"],
        ),
    );
    m.insert(
        "Holds".into(),
        obj(
            json!({"pending": {"type": "array", "items": obj(json!({
                "id": {"type": "string"}, "agent": {"type": "string"}, "action": {"type": "object"},
                "action_json": {"type": "string", "description": "the exact text action_digest hashes (also the bytes of `action`)"},
                "action_digest": {"type": "string", "description": "sha256: and the hex SHA-256 of action_json"},
                "candidate": {}, "reasons": {"type": "array"},
                "policy_hash": {"type": "string"}, "expires": {"type": "string"}
            }), &["id", "action", "action_json", "action_digest", "policy_hash", "expires"])}}),
            &["pending"],
        ),
    );
    m.insert(
        "ApproveRequest".into(),
        obj(
            json!({
                "action_digest": {"type": "string", "description": "must equal the held action's digest"},
                "policy_hash": {"type": "string", "description": "must equal the hold's policy hash"},
                "reason": {"type": "string"}
            }),
            &[],
        ),
    );
    m.insert(
        "RejectRequest".into(),
        obj(json!({"reason": {"type": "string"}}), &[]),
    );
    m.insert(
        "ConfirmationAnswer".into(),
        obj(
            json!({
                "decision_id": {"type": "string"},
                "status": {"enum": ["pending", "approved", "rejected", "expired", "refused", "unanswered"]},
                "by": {"type": "object"}, "reason": {"type": "string"}, "action": {"type": "object"},
                "action_digest": {"type": "string"}, "policy_hash": {"type": "string"},
                "record": {"$ref": "#/components/schemas/Record"}
            }),
            &["status"],
        ),
    );
    m.insert(
        "ReloadAnswer".into(),
        obj(
            json!({"policy": {"type": "object"}, "previous": {"type": "object"}, "by": {"type": "object"},
                   "record": {"$ref": "#/components/schemas/Record"}}),
            &["policy", "previous"],
        ),
    );
    m.insert(
        "AgentResetAnswer".into(),
        obj(
            json!({"agent": {"type": "string"},
                   "operating_mode": {"enum": ["normal"]},
                   "was": {"enum": ["normal", "degraded", "fallback"]},
                   "since": {"type": ["string", "null"], "description": "the failure mode that set the mode it had"},
                   "by": {"type": "object"},
                   "record": {"$ref": "#/components/schemas/Record"}}),
            &["agent", "operating_mode", "was"],
        ),
    );
    m.insert(
        "Health".into(),
        obj(
            json!({
                "status": {"enum": ["ok", "failing"], "description": "ok only while no audit commit failed and both threads run"},
                "audit_store": {"enum": ["ok", "failed"]},
                "governor": {"enum": ["running", "stopped"]},
                "audit_committer": {"enum": ["running", "stopped"]},
                "mode": {"type": "string"}, "policy": {"type": "object"}
            }),
            &["status"],
        ),
    );
    m
}

/// The OpenAPI document of every route.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut responses = Map::new();
        for (status, schema) in r.responses {
            let content = if schema.is_empty() {
                json!({})
            } else {
                json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}})
            };
            responses.insert(
                status.to_string(),
                json!({"description": status.to_string(), "content": content}),
            );
        }
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = Map::new();
        op.insert("summary".into(), json!(r.summary));
        op.insert("x-auth".into(), json!(r.auth()));
        op.insert("parameters".into(), Value::Array(params));
        op.insert("responses".into(), Value::Object(responses));
        if r.roles().is_some() {
            op.insert("security".into(), json!([{"bearer": []}]));
        }
        if let Some(s) = r.request {
            op.insert(
                "requestBody".into(),
                json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}}}),
            );
        }
        if let Value::Object(entry) = paths.entry(r.path.to_string()).or_insert_with(|| json!({})) {
            entry.insert(r.method.as_str().to_ascii_lowercase(), Value::Object(op));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "AIOSS", "version": env!("CARGO_PKG_VERSION"),
                 "description": "The execution governor's HTTP service (`aioss serve`)."},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every schema a route or a schema names exists.
    #[test]
    fn every_reference_resolves() {
        let doc = document().to_string();
        let s = schemas();
        let mut n = 0;
        for part in doc.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(s.contains_key(&name), "missing schema `{name}`");
            n += 1;
        }
        assert!(n > 10);
    }
}
