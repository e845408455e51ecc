//! `aioss audit verify`: recompute every hash, check the chain and every checkpoint.

use std::collections::HashMap;

use crate::record::{Kind, GENESIS};
use crate::{Error, Store};

/// What is wrong at the first bad place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// A record's fields do not match its hash.
    Edited,
    /// Sequence numbers jump: records are missing.
    Deleted,
    /// A record's `prev_hash` is the hash of a record that is not its predecessor.
    Reordered,
    /// A record's `prev_hash` matches no record: its predecessor was replaced or rehashed.
    Unlinked,
    /// A checkpoint names a head that is no longer in the store.
    Truncated,
    /// A checkpoint names a head whose hash differs from the stored record's.
    CheckpointMismatch,
    /// A checkpoint's signature does not verify.
    BadSignature,
    /// A checkpoint is signed by a key other than the expected one.
    WrongKey,
    /// A record is malformed (unknown kind).
    Malformed,
}

impl ProblemKind {
    /// A short name: `edited`, `deleted`, `reordered`, …
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Edited => "edited",
            ProblemKind::Deleted => "deleted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Unlinked => "unlinked",
            ProblemKind::Truncated => "truncated",
            ProblemKind::CheckpointMismatch => "checkpoint-mismatch",
            ProblemKind::BadSignature => "bad-signature",
            ProblemKind::WrongKey => "wrong-key",
            ProblemKind::Malformed => "malformed",
        }
    }
}

/// The first break found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The first bad sequence number.
    pub seq: u64,
    /// What kind of break.
    pub kind: ProblemKind,
    /// What is wrong, in words.
    pub message: String,
}

/// The result of a verification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Records read.
    pub count: u64,
    /// The last record's `(seq, hash)`.
    pub head: Option<(u64, String)>,
    /// Checkpoints in the store.
    pub checkpoints: usize,
    /// Checkpoints whose signature verified.
    pub signatures_ok: usize,
    /// The public keys that signed the checkpoints (hex).
    pub public_keys: Vec<String>,
    /// The latest checkpointed head, if any.
    pub last_checkpoint: Option<u64>,
    /// The first break, or `None` if the log verifies.
    pub problem: Option<Problem>,
}

impl Report {
    /// True if no break was found.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Verify a store. `public_key` (hex) if given must have signed every checkpoint; without
/// it, every checkpoint must be signed by the key of the first one.
pub fn verify(store: &mut dyn Store, public_key: Option<&str>) -> Result<Report, Error> {
    let cps = store.checkpoints()?;
    let wanted: std::collections::HashSet<u64> = cps.iter().map(|c| c.seq).collect();
    let mut at_checkpoint: HashMap<u64, String> = HashMap::new();
    let mut rep = Report {
        checkpoints: cps.len(),
        ..Report::default()
    };
    let mut expected = 0u64;
    let mut prev = GENESIS.to_string();
    let mut problem: Option<(Problem, Option<String>)> = None;
    store.scan(&mut |r| {
        rep.count += 1;
        let computed = r.compute_hash();
        if r.seq != expected {
            let msg = if r.seq > expected {
                if r.seq == expected + 1 {
                    format!("record {expected} is missing (deleted): the next stored record is {}", r.seq)
                } else {
                    format!(
                        "records {expected}..{} are missing (deleted): the next stored record is {}",
                        r.seq - 1,
                        r.seq
                    )
                }
            } else {
                format!("record {} is out of place (expected {expected})", r.seq)
            };
            problem = Some((
                Problem {
                    seq: expected,
                    kind: ProblemKind::Deleted,
                    message: msg,
                },
                None,
            ));
            return Ok(false);
        }
        if r.prev_hash != prev {
            // Decide between a reordering (its prev_hash names another stored record) and
            // an edit, after the scan.
            let kind = if computed != r.hash {
                ProblemKind::Edited
            } else {
                ProblemKind::Unlinked
            };
            problem = Some((
                Problem {
                    seq: r.seq,
                    kind,
                    message: String::new(),
                },
                Some(r.prev_hash.clone()),
            ));
            return Ok(false);
        }
        if computed != r.hash {
            problem = Some((
                Problem {
                    seq: r.seq,
                    kind: ProblemKind::Edited,
                    message: format!(
                        "record {} does not match its hash (a field was edited): stored {}, computed {}",
                        r.seq, r.hash, computed
                    ),
                },
                None,
            ));
            return Ok(false);
        }
        if Kind::parse(&r.kind).is_none() {
            problem = Some((
                Problem {
                    seq: r.seq,
                    kind: ProblemKind::Malformed,
                    message: format!("record {} has an unknown kind `{}`", r.seq, r.kind),
                },
                None,
            ));
            return Ok(false);
        }
        if wanted.contains(&r.seq) {
            at_checkpoint.insert(r.seq, r.hash.clone());
        }
        rep.head = Some((r.seq, r.hash.clone()));
        prev = r.hash;
        expected += 1;
        Ok(true)
    })?;
    if let Some((mut p, prev_hash)) = problem {
        if let Some(ph) = prev_hash {
            let mut found: Option<u64> = None;
            store.scan(&mut |r| {
                if r.hash == ph {
                    found = Some(r.seq);
                    return Ok(false);
                }
                Ok(true)
            })?;
            p.message = match (found, p.kind) {
                (Some(m), _) => {
                    p.kind = ProblemKind::Reordered;
                    format!(
                        "record {} is out of order (reordered): its prev_hash is the hash of the record stored at {m}, not of record {}",
                        p.seq,
                        p.seq.saturating_sub(1)
                    )
                }
                (None, ProblemKind::Edited) => format!(
                    "record {} does not match its hash and does not link to record {} (a field was edited)",
                    p.seq,
                    p.seq.saturating_sub(1)
                ),
                (None, _) => format!(
                    "record {}'s prev_hash is not the hash of record {}: record {} was edited and rehashed, or replaced",
                    p.seq,
                    p.seq.saturating_sub(1),
                    p.seq.saturating_sub(1)
                ),
            };
        }
        rep.problem = Some(p);
        return Ok(rep);
    }
    let key = public_key
        .map(str::to_ascii_lowercase)
        .or_else(|| cps.first().map(|c| c.public_key.clone()));
    let last = rep.head.as_ref().map(|h| h.0);
    for c in &cps {
        if !rep.public_keys.contains(&c.public_key) {
            rep.public_keys.push(c.public_key.clone());
        }
        let fail = |kind, message| {
            Some(Problem {
                seq: c.seq,
                kind,
                message,
            })
        };
        let problem = if !c.signature_ok() {
            fail(
                ProblemKind::BadSignature,
                format!(
                    "the checkpoint at record {} has a bad signature (forged or altered)",
                    c.seq
                ),
            )
        } else if key.as_deref().is_some_and(|k| k != c.public_key) {
            fail(
                ProblemKind::WrongKey,
                format!(
                    "the checkpoint at record {} is signed by {}, not by the expected key {}",
                    c.seq,
                    c.public_key,
                    key.as_deref().unwrap_or("")
                ),
            )
        } else if last.is_none_or(|l| c.seq > l) {
            fail(
                ProblemKind::Truncated,
                format!(
                    "the checkpoint at record {} names a head that is missing: the store ends at {} (records after it were removed: truncation)",
                    c.seq,
                    last.map_or_else(|| "no record".to_string(), |l| format!("record {l}"))
                ),
            )
        } else if at_checkpoint.get(&c.seq) != Some(&c.head_hash) {
            fail(
                ProblemKind::CheckpointMismatch,
                format!(
                    "the checkpoint at record {} signs hash {}, but the stored record's hash is {} (the chain was rewritten)",
                    c.seq,
                    c.head_hash,
                    at_checkpoint.get(&c.seq).map_or("missing", String::as_str)
                ),
            )
        } else {
            None
        };
        match problem {
            Some(p) => {
                if rep.problem.as_ref().is_none_or(|q| p.seq < q.seq) {
                    rep.problem = Some(p);
                }
            }
            None => {
                rep.signatures_ok += 1;
                rep.last_checkpoint = rep.last_checkpoint.max(Some(c.seq));
            }
        }
    }
    Ok(rep)
}
