//! Re-deciding the log: `aioss audit replay`, and rebuilding the governor state when `aioss
//! decide --audit` restarts on an existing store.

use std::collections::HashMap;

use aioss_core::governor::{Clock, PrevSource};
use aioss_core::Governor;
use serde_json::Value;

use crate::record::Kind;
use crate::{Error, Store};

/// One disagreement between the log and a replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The record.
    pub seq: u64,
    /// Its decision id (empty for an input error).
    pub decision_id: String,
    /// The field (a JSON path such as `final_outcome` or `action.vx`), or `state_digest`,
    /// or `kind`.
    pub field: String,
    /// The recorded value.
    pub recorded: String,
    /// The replayed value.
    pub replayed: String,
}

/// The result of a replay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// Records replayed.
    pub records: u64,
    /// Of them, decisions.
    pub decisions: u64,
    /// Of them, input errors.
    pub input_errors: u64,
    /// Of them, server events (refusals, confirmations, outcomes, policy reloads,
    /// snapshots), which are not re-decided.
    pub events: u64,
    /// Records that differ in anything.
    pub differing: u64,
    /// Records made under a policy whose hash is not the replaying policy's.
    pub other_policy: u64,
    /// Every difference (when comparing).
    pub differences: Vec<Difference>,
    /// The state digest of the last record and whether the rebuilt governor matches it.
    pub last_digest_matches: Option<bool>,
    /// The `snapshot` record a rebuild started from ([`rebuild`]), if any.
    pub from_snapshot: Option<u64>,
}

impl Replay {
    /// True if every record agrees.
    pub fn agrees(&self) -> bool {
        self.differing == 0
    }
}

/// The part of a decision line that replay compares as bytes: everything before
/// `,"latency_us":` (the measured fields, `latency_us` and `timing`, are written last).
fn deterministic_prefix(s: &str) -> &str {
    s.rfind(",\"latency_us\":")
        .and_then(|i| s.get(..i))
        .unwrap_or(s)
}

fn diff_values(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, String, String)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                if path.is_empty() && matches!(k.as_str(), "latency_us" | "timing" | "record") {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff_values(&p, u, v, out),
                    (u, v) => out.push((p, show(u), show(v))),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff_values(&format!("{path}[{i}]"), u, v, out);
            }
        }
        _ => {
            if a != b {
                out.push((path.to_string(), a.to_string(), b.to_string()));
            }
        }
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "(absent)".to_string(), Value::to_string)
}

/// Compare two decision (or error) JSON lines field by field, ignoring `latency_us`,
/// `timing` and `record`; returns `(field, recorded, replayed)` for each difference.
pub fn compare_json(recorded: &str, replayed: &str) -> Vec<(String, String, String)> {
    if deterministic_prefix(recorded) == deterministic_prefix(replayed) {
        return Vec::new();
    }
    let parse =
        |s: &str| serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.to_string()));
    let mut rec = parse(recorded);
    // A log written before the failure mode `deadline_budget` was renamed
    // `deadline_overrun` (the same mode) still replays.
    if let Some(modes) = rec.get_mut("failure_modes").and_then(Value::as_array_mut) {
        for m in modes {
            if m.as_str() == Some("deadline_budget") {
                *m = Value::from("deadline_overrun");
            }
        }
    }
    // A log written before the decision counter was renamed `decision_seq` (issue 23,
    // item 9) still replays.
    if let Some(o) = rec.as_object_mut() {
        if o.contains_key("decision_id") && !o.contains_key("decision_seq") {
            if let Some(v) = o.remove("seq") {
                o.insert("decision_seq".to_string(), v);
            }
        }
    }
    let mut out = Vec::new();
    diff_values("", &rec, &parse(replayed), &mut out);
    out
}

/// Replay every record of `store` in order through `g` (a fresh governor for the policy to
/// replay under), each at its recorded time. With `compare`, every field of every decision
/// and the state digest after every record are compared with the log; without, only the
/// state digest after the last record is (the restart of `aioss decide --audit`).
///
/// Every record is handled as the writer handled it, so that the state after it is the
/// writer's: a decision or input error is re-decided (a `prev_mismatch` refusal under
/// [`PrevSource::Governor`], the source that refused it); an approved hold charges its
/// held proposal; a `policy_reload` starts the warm starts afresh (the server's new
/// governor); a `snapshot` is compared with this governor's own and then put in force
/// (`Governor::restore_snapshot`), as a restarted server put it in force.
pub fn replay(store: &mut dyn Store, g: &mut Governor, compare: bool) -> Result<Replay, Error> {
    replay_records(store, g, 0, HashMap::new(), compare, None)
}

/// The policy texts a store keeps, by hash, each loaded when first needed.
struct Policies {
    texts: HashMap<String, String>,
    /// Whether `--dry-run` was forced on the governor replay started with.
    forced_dry_run: bool,
}

impl Policies {
    fn of(store: &mut dyn Store, g: &Governor) -> Result<Policies, Error> {
        Ok(Policies {
            texts: store.policies()?.into_iter().collect(),
            forced_dry_run: g.dry_run() && g.policy().mode != aioss_core::policy::Mode::DryRun,
        })
    }

    /// Put the policy of `hash` in force in `g` when it is not already, as a reload does
    /// (the state carried over where it means the same). `Ok(false)` when the store does
    /// not keep its text; an error when the text kept is not that policy.
    fn follow(&self, g: &mut Governor, hash: &str) -> Result<bool, Error> {
        if g.policy().hash == hash {
            return Ok(true);
        }
        let Some(text) = self.texts.get(hash) else {
            return Ok(false);
        };
        let p = aioss_core::load(hash, text).map_err(|e| {
            Error::Store(format!(
                "the policy `{hash}` kept in the store does not load: {e}"
            ))
        })?;
        if p.hash != hash {
            return Err(Error::Store(format!(
                "the policy kept as `{hash}` in the store hashes to `{}`: the store was altered",
                p.hash
            )));
        }
        self.switch(g, p);
        Ok(true)
    }

    fn switch(&self, g: &mut Governor, p: aioss_core::Policy) {
        let mut n = Governor::new(p);
        n.carry_state_from(g);
        n.set_prev_source(g.prev_source());
        if self.forced_dry_run {
            n.set_dry_run(true);
        }
        *g = n;
    }
}

/// Replay every record of `store` under the policy it was made under: the store keeps
/// every policy text its writers used ([`Store::put_policy`]), and at a record under
/// another policy than the one in force, that policy takes over as a reload does (the
/// state carried over). `g` is the governor to start with (its settings: dry-run, the
/// source of `prev.`); records whose policy the store does not keep are replayed under
/// the one in force and counted in [`Replay::other_policy`].
pub fn replay_following(
    store: &mut dyn Store,
    g: &mut Governor,
    compare: bool,
) -> Result<Replay, Error> {
    let policies = Policies::of(store, g)?;
    replay_records(store, g, 0, HashMap::new(), compare, Some(&policies))
}

/// The policy text under which the first record of `store` was made, if the store keeps
/// it (what `aioss audit replay STORE` starts with).
pub fn first_policy(store: &mut dyn Store) -> Result<Option<aioss_core::Policy>, Error> {
    let mut hash = None;
    store.scan_from(0, &mut |r| {
        hash = Some(r.policy_hash);
        Ok(false)
    })?;
    let texts: HashMap<String, String> = store.policies()?.into_iter().collect();
    let Some(text) = hash.as_ref().and_then(|h| texts.get(h)) else {
        return Ok(None);
    };
    aioss_core::load(hash.as_deref().unwrap_or_default(), text)
        .map(Some)
        .map_err(|e| {
            Error::Store(format!(
                "the first record's policy kept in the store does not load: {e}"
            ))
        })
}

/// Rebuild `g`'s state for a writer continuing `store`: put the last `snapshot` record in
/// force and re-decide only the records after it (so a restart costs what happened since
/// the last snapshot, and a `kill -9` loses nothing), or, in a store without one (or with
/// one this build cannot read), re-decide every record. Only the state digest after the
/// last record is compared ([`Replay::last_digest_matches`]);
/// [`Replay::from_snapshot`] names the snapshot used.
pub fn rebuild(store: &mut dyn Store, g: &mut Governor) -> Result<Replay, Error> {
    // The state is rebuilt under the policies the records were made under, then handed
    // to this writer's policy as a reload hands it over: a later replay of the store does
    // the same at this writer's first record, and agrees.
    let policies = Policies::of(store, g)?;
    let mine = g.policy().clone();
    let mut rep = rebuild_following(store, g, &policies)?;
    if g.policy().hash != mine.hash {
        policies.switch(g, mine);
        if rep.other_policy == 0 {
            rep.other_policy = 1;
        }
    }
    Ok(rep)
}

fn rebuild_following(
    store: &mut dyn Store,
    g: &mut Governor,
    policies: &Policies,
) -> Result<Replay, Error> {
    let Some(snap) = store.last_of_kind(Kind::Snapshot.as_str())? else {
        return replay_records(store, g, 0, HashMap::new(), false, Some(policies));
    };
    policies.follow(g, &snap.policy_hash)?;
    if g.restore_snapshot(&snap.decision).is_err() {
        return replay_records(store, g, 0, HashMap::new(), false, Some(policies));
    }
    let held = held_at(store, snap.seq)?;
    let mut rep = replay_records(store, g, snap.seq + 1, held, false, Some(policies))?;
    rep.from_snapshot = Some(snap.seq);
    if rep.records == 0 {
        let ok = g.state_digest() == snap.state_digest;
        rep.last_digest_matches = Some(ok);
        if !ok {
            rep.differing += 1;
        }
    }
    Ok(rep)
}

/// The proposals of the holds made before record `seq` and approved after it (what
/// replaying from `seq` must charge when their approvals come).
fn held_at(store: &mut dyn Store, seq: u64) -> Result<HashMap<String, String>, Error> {
    let mut decided_after = std::collections::HashSet::new();
    let mut approved = Vec::new();
    store.scan_from(seq + 1, &mut |r| {
        match Kind::parse(&r.kind) {
            Some(Kind::Decision) => {
                decided_after.insert(r.decision_id);
            }
            Some(Kind::Confirmation) if is_approval(&r.decision) => {
                approved.push(r.decision_id);
            }
            _ => {}
        }
        Ok(true)
    })?;
    let mut held = HashMap::new();
    for id in approved {
        if decided_after.contains(&id) {
            continue;
        }
        let decision = store
            .records_for(&id)?
            .into_iter()
            .find(|r| r.seq < seq && Kind::parse(&r.kind) == Some(Kind::Decision));
        if let Some(d) = decision {
            held.insert(id, d.proposal);
        }
    }
    Ok(held)
}

fn is_approval(answer: &str) -> bool {
    serde_json::from_str::<Value>(answer)
        .ok()
        .is_some_and(|v| v.get("status").and_then(Value::as_str) == Some("approved"))
}

/// A short name of a (possibly long) state text for a difference: its SHA-256.
fn digest_of(text: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        crate::record::hex(&sha2::Sha256::digest(text.as_bytes()))
    )
}

/// Replay the records from `from` on; `held` holds the proposals of the holds pending
/// there.
#[expect(
    clippy::too_many_lines,
    reason = "each kind of record, handled as its writer handled it, reads best in one place"
)]
fn replay_records(
    store: &mut dyn Store,
    g: &mut Governor,
    from: u64,
    mut held: HashMap<String, String>,
    compare: bool,
    follow: Option<&Policies>,
) -> Result<Replay, Error> {
    let mut rep = Replay::default();
    let mut last_digest: Option<String> = None;
    // Decisions an outcome record may report on, as the writer kept them (the server keeps
    // its last `decision_cache`, `aioss decide` its last 4,096; replay keeps as many as the
    // larger default, so every outcome the writer accepted is found).
    let mut recent = aioss_core::governor::RecentDecisions::new(OUTCOME_WINDOW);
    // The proposals of pending holds, by decision id: an approval executes the held
    // action, which the governor charges to its budgets (`Governor::record_execution`).
    store.scan_from(from, &mut |r| {
        rep.records += 1;
        if let Some(p) = follow {
            // INVARIANT (replay-follows-policies): each record under the policy it names,
            // when the store keeps its text.
            p.follow(g, &r.policy_hash)?;
        }
        if r.policy_hash != g.policy().hash {
            rep.other_policy += 1;
        }
        let now = r.time.parse::<f64>().unwrap_or(f64::NAN);
        let kind = Kind::parse(&r.kind);
        let mut diffs: Vec<(String, String, String)> = Vec::new();
        match kind {
            Some(Kind::Snapshot) => {
                rep.events += 1;
                if compare {
                    let mine = g.snapshot();
                    if mine != r.decision {
                        diffs.push(("snapshot".into(), digest_of(&r.decision), digest_of(&mine)));
                    }
                }
                // INVARIANT (replay-follows-restarts): from here on the state is the one
                // recorded, warm starts afresh, as the server that wrote it had it.
                if let Err(e) = g.restore_snapshot(&r.decision) {
                    diffs.push(("snapshot".into(), "(unreadable)".into(), e.to_string()));
                }
            }
            Some(
                Kind::Refused
                | Kind::Confirmation
                | Kind::Outcome
                | Kind::PolicyReload
                | Kind::AgentReset,
            ) => {
                // Events of the server that do not go through the governor: nothing to
                // re-decide, but the state they recorded must still be the governor's. An
                // approved hold executed its action: charged again here.
                rep.events += 1;
                if kind == Some(Kind::PolicyReload) {
                    g.reset_warm_starts();
                }
                if kind == Some(Kind::AgentReset) {
                    g.reset_agent(&r.decision_id);
                }
                if kind == Some(Kind::Outcome) {
                    // An outcome moves its agent's mode of operation: re-evaluated here as
                    // its writer evaluated it.
                    if let Some(diff) =
                        replay_outcome(g, &mut recent, &r.decision_id, &r.proposal, &r.decision)
                    {
                        if compare {
                            diffs.push(diff);
                        }
                    }
                }
                if kind == Some(Kind::Confirmation) {
                    if let Some(text) = held.remove(&r.decision_id) {
                        if is_approval(&r.decision) {
                            if let Ok(p) = aioss_core::Proposal::parse(g.policy(), &text) {
                                let _ = g.record_execution(&p);
                            }
                        }
                    }
                }
            }
            _ => {
                // A `prev` refused as not the governor's was refused under that source.
                let source = g.prev_source();
                if kind == Some(Kind::InputError) && r.decision.contains("\"prev_mismatch\"") {
                    g.set_prev_source(PrevSource::Governor);
                }
                // At the recorded time, whatever the line's own `timestamp` says: where
                // the governor kept the time (`serve`, `decide --clock wall`) it was not
                // the line's.
                // The line answered as its writer answered it (`aioss decide` takes outcome
                // lines too; one refused is an input error record).
                // A decision made in the critical-rows-only mode (the server's overload
                // mode) is re-decided in it.
                g.set_critical_only(r.decision.contains("\"decision_mode\":\"critical_only\""));
                let answered = g.answer_line(&mut recent, &r.proposal, Clock::Recorded(now));
                g.set_critical_only(false);
                let decided = match answered {
                    Ok(aioss_core::governor::Answer::Decision(d)) => Ok(d),
                    Ok(aioss_core::governor::Answer::Outcome(json)) => {
                        Err(aioss_core::InputError {
                            code: aioss_core::InputCode::InvalidValue,
                            message: format!("an outcome line answered {json}"),
                            field: None,
                        })
                    }
                    Err(e) => Err(e),
                };
                g.set_prev_source(source);
                match (kind, &decided) {
                    (Some(Kind::Decision), Ok(d)) => {
                        rep.decisions += 1;
                        if d.final_outcome == aioss_core::Outcome::HoldForConfirmation {
                            held.insert(d.decision_id.clone(), r.proposal.clone());
                        }
                        if compare {
                            diffs = compare_json(&r.decision, &d.to_json(g.policy()));
                        }
                    }
                    (Some(Kind::InputError), Err(e)) => {
                        rep.input_errors += 1;
                        if compare {
                            diffs = compare_json(&r.decision, &e.to_json());
                        }
                    }
                    (_, Ok(_)) => diffs.push(("kind".into(), r.kind.clone(), "decision".into())),
                    (_, Err(e)) => {
                        diffs.push(("kind".into(), r.kind.clone(), format!("input_error: {e}")));
                    }
                }
            }
        }
        if compare {
            let digest = g.state_digest();
            if digest != r.state_digest {
                diffs.push(("state_digest".into(), r.state_digest.clone(), digest));
            }
        } else {
            last_digest = Some(r.state_digest);
        }
        if !diffs.is_empty() {
            rep.differing += 1;
            rep.differences
                .extend(
                    diffs
                        .into_iter()
                        .map(|(field, recorded, replayed)| Difference {
                            seq: r.seq,
                            decision_id: r.decision_id.clone(),
                            field,
                            recorded,
                            replayed,
                        }),
                );
        }
        Ok(true)
    })?;
    if compare {
        rep.last_digest_matches = (rep.records > 0).then_some(rep.differing == 0);
    } else if let Some(d) = last_digest {
        let ok = g.state_digest() == d;
        rep.last_digest_matches = Some(ok);
        if !ok {
            rep.differing += 1;
        }
    }
    Ok(rep)
}

/// Decisions replay keeps for the outcome records after them: at least as many as any
/// writer keeps (the server's default `decision_cache`, `aioss decide`'s window).
pub const OUTCOME_WINDOW: usize = 65_536;

/// Re-apply an outcome record: the observed state in its request's body, re-evaluated
/// against the decision it reports on. A difference from the recorded failure modes is
/// returned; an outcome whose decision replay no longer holds (the server reads old
/// decisions from its store) applies the failure modes its answer recorded.
fn replay_outcome(
    g: &mut Governor,
    recent: &mut aioss_core::governor::RecentDecisions,
    decision_id: &str,
    request: &str,
    answer: &str,
) -> Option<(String, String, String)> {
    let body: serde_json::Value = serde_json::from_str(request).ok()?;
    let body: serde_json::Value = serde_json::from_str(body.get("body")?.as_str()?).ok()?;
    let state = body.get("state")?.to_string();
    let observed = aioss_core::Proposal::parse_state(g.policy(), &state).ok()?;
    let Some((decided, executed)) = recent.take(g.policy(), decision_id) else {
        g.apply_recorded_outcome(answer);
        return None;
    };
    let ev = g.observe_outcome(&decided, &executed, &observed);
    let recorded = aioss_core::governor::recorded_modes(answer);
    (recorded != ev.failure_modes).then(|| {
        let names = |m: &aioss_core::failure::FailureModes| {
            m.iter().map(|f| f.name()).collect::<Vec<_>>().join(",")
        };
        (
            "outcome.failure_modes".to_string(),
            names(&recorded),
            names(&ev.failure_modes),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_fields_are_not_differences_but_everything_else_is() {
        let a = r#"{"final_outcome":"ALLOW","action":{"vx":1},"latency_us":12,"timing":{"deadline_us":1000,"met":true}}"#;
        let b = r#"{"final_outcome":"ALLOW","action":{"vx":1},"latency_us":1500,"timing":{"deadline_us":1000,"met":false}}"#;
        assert_eq!(compare_json(a, b), Vec::new());
        // With `record` after them, as a stored decision may carry.
        let c = r#"{"final_outcome":"ALLOW","action":{"vx":1},"latency_us":3,"timing":{"deadline_us":1000,"met":true},"record":{"seq":1}}"#;
        assert_eq!(compare_json(a, c), Vec::new());
        // A real difference is reported alone, not with the measured fields beside it.
        let d = r#"{"final_outcome":"ALLOW","action":{"vx":2},"latency_us":1200,"timing":{"deadline_us":1000,"met":false}}"#;
        assert_eq!(
            compare_json(a, d),
            vec![("action.vx".to_string(), "1".to_string(), "2".to_string())]
        );
        // `timing` is skipped only at the top level.
        let e = r#"{"final_outcome":"ALLOW","action":{"timing":1},"latency_us":12}"#;
        let f = r#"{"final_outcome":"ALLOW","action":{"timing":2},"latency_us":12}"#;
        assert_eq!(compare_json(e, f).len(), 1);
    }
}
