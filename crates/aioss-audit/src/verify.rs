//! `aioss audit verify`: recompute every hash, check the chain and every checkpoint.

use std::collections::HashMap;

use crate::record::{Kind, GENESIS};
use crate::{Checkpoint, Error, Store};

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
    /// With an expected key: records that no signature of that key covers (a tail after
    /// the last signed head, or a store whose checkpoints and signed head were removed,
    /// or an empty one).
    Unsigned,
    /// Fewer records than the caller expects at least (`--min-records`): a truncation back
    /// to an earlier signed head, which signatures alone cannot show.
    TooFew,
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
            ProblemKind::Unsigned => "unsigned",
            ProblemKind::TooFew => "too-few-records",
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
    /// The store's signed head (the head as of its writer's last commit), if it keeps one
    /// and its signature verified.
    pub signed_head: Option<u64>,
    /// The last record covered by a valid signature (a checkpoint or the signed head) of
    /// the expected key; with `--public-key`, verification demands the last record.
    pub covered: Option<u64>,
    /// The first break, or `None` if the log verifies.
    pub problem: Option<Problem>,
}

impl Report {
    /// True if no break was found.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// What [`verify_with`] demands besides an intact chain.
#[derive(Clone, Debug, Default)]
pub struct Options<'a> {
    /// The key (hex) every signature must be made with; with it, the last record must be
    /// covered by one of its signatures (and an empty store fails).
    pub public_key: Option<&'a str>,
    /// At least this many records.
    pub min_records: u64,
}

/// Verify a store. `public_key` (hex) if given must have signed every checkpoint and the
/// signed head, and one of them must cover the last record; without it, every signature
/// must be by the key of the first checkpoint.
pub fn verify(store: &mut dyn Store, public_key: Option<&str>) -> Result<Report, Error> {
    verify_with(
        store,
        &Options {
            public_key,
            min_records: 0,
        },
    )
}

/// [`verify`], reading the store as one consistent view (a writer may be appending).
pub fn verify_with(store: &mut dyn Store, o: &Options<'_>) -> Result<Report, Error> {
    store.begin_read()?;
    let r = verify_view(store, o);
    let ended = store.end_read();
    let r = r?;
    ended?;
    Ok(r)
}

/// Verify what a read view shows: the chain, then the signatures, then what `o` demands.
fn verify_view(store: &mut dyn Store, o: &Options<'_>) -> Result<Report, Error> {
    let public_key = o.public_key;
    let cps = store.checkpoints()?;
    let head_sig = store.signed_head()?;
    let mut rep = Report {
        checkpoints: cps.len(),
        ..Report::default()
    };
    let (problem, at_checkpoint) = scan_chain(store, &cps, head_sig.as_ref(), &mut rep)?;
    if let Some((p, prev_hash)) = problem {
        rep.problem = Some(match prev_hash {
            Some(ph) => explain_unlinked(store, p, &ph)?,
            None => p,
        });
        return Ok(rep);
    }
    let key = public_key
        .map(str::to_ascii_lowercase)
        .or_else(|| cps.first().map(|c| c.public_key.clone()))
        .or_else(|| head_sig.as_ref().map(|c| c.public_key.clone()));
    check_signatures(
        &cps,
        head_sig.as_ref(),
        key.as_deref(),
        &at_checkpoint,
        &mut rep,
    );
    if rep.problem.is_some() {
        return Ok(rep);
    }
    if let Some(k) = public_key {
        if let Some(p) = uncovered(k, &rep) {
            rep.problem = Some(p);
            return Ok(rep);
        }
    }
    if rep.count < o.min_records {
        rep.problem = Some(Problem {
            seq: rep.count,
            kind: ProblemKind::TooFew,
            message: format!(
                "the store holds {} records, fewer than the {} expected at least (truncated back to an earlier signed head?)",
                rep.count, o.min_records
            ),
        });
    }
    Ok(rep)
}

/// A chain break: the problem, and for a record whose `prev_hash` names no predecessor,
/// that hash (explained by [`explain_unlinked`]).
type Break = (Problem, Option<String>);

/// Read every record in order: counts, the head, the hash of each record a signature
/// names, and the first break of the chain.
fn scan_chain(
    store: &mut dyn Store,
    cps: &[Checkpoint],
    head_sig: Option<&Checkpoint>,
    rep: &mut Report,
) -> Result<(Option<Break>, HashMap<u64, String>), Error> {
    let wanted: std::collections::HashSet<u64> =
        cps.iter().chain(head_sig).map(|c| c.seq).collect();
    let mut at_checkpoint: HashMap<u64, String> = HashMap::new();
    let mut expected = 0u64;
    let mut prev = GENESIS.to_string();
    let mut problem: Option<Break> = None;
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
    Ok((problem, at_checkpoint))
}

/// A record whose `prev_hash` is not its predecessor's hash: reordered (the hash names
/// another stored record), edited, or rehashed/replaced.
fn explain_unlinked(store: &mut dyn Store, mut p: Problem, ph: &str) -> Result<Problem, Error> {
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
    Ok(p)
}

/// Check every checkpoint and the signed head: signature, key, that its record exists
/// and has the hash it signs. The earliest failure becomes the report's problem.
fn check_signatures(
    cps: &[Checkpoint],
    head_sig: Option<&Checkpoint>,
    key: Option<&str>,
    at_checkpoint: &HashMap<u64, String>,
    rep: &mut Report,
) {
    let last = rep.head.as_ref().map(|h| h.0);
    let n_cps = cps.len();
    for (i, c) in cps.iter().chain(head_sig).enumerate() {
        let what = if i < n_cps {
            "checkpoint"
        } else {
            "signed head"
        };
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
                    "the {what} at record {} has a bad signature (forged or altered)",
                    c.seq
                ),
            )
        } else if key.is_some_and(|k| k != c.public_key) {
            fail(
                ProblemKind::WrongKey,
                format!(
                    "the {what} at record {} is signed by {}, not by the expected key {}",
                    c.seq,
                    c.public_key,
                    key.unwrap_or("")
                ),
            )
        } else if last.is_none_or(|l| c.seq > l) {
            fail(
                ProblemKind::Truncated,
                format!(
                    "the {what} at record {} names a head that is missing: the store ends at {} (records after it were removed: truncation)",
                    c.seq,
                    last.map_or_else(|| "no record".to_string(), |l| format!("record {l}"))
                ),
            )
        } else if at_checkpoint.get(&c.seq) != Some(&c.head_hash) {
            fail(
                ProblemKind::CheckpointMismatch,
                format!(
                    "the {what} at record {} signs hash {}, but the stored record's hash is {} (the chain was rewritten)",
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
                if i < n_cps {
                    rep.last_checkpoint = rep.last_checkpoint.max(Some(c.seq));
                } else {
                    rep.signed_head = Some(c.seq);
                }
                rep.covered = rep.covered.max(Some(c.seq));
            }
        }
    }
}

/// With the key `k`, the records no signature of it covers, if any.
fn uncovered(k: &str, rep: &Report) -> Option<Problem> {
    let last = rep.head.as_ref().map(|h| h.0);
    // INVARIANT (covered-head): with a key, every record is under one of its
    // signatures; removing signatures, or appending without the key, shows.
    let k = k.to_ascii_lowercase();
    let (seq, message) = match (last, rep.covered) {
        (None, _) => (
            0,
            "the store holds no record and no signed head: nothing shows what it held (emptied, or never written with this key)".to_string(),
        ),
        (Some(l), None) => (
            0,
            format!("no record of 0..{l} is covered by a signature of key {k}: the checkpoints and the signed head are missing (removed, or the store was written without this key)"),
        ),
        (Some(l), Some(c)) if c < l => (
            c + 1,
            format!("records {}..{l} are not covered by a signature of key {k}: appended after the last signed head (by someone without the key?), or their signatures were removed", c + 1),
        ),
        _ => return None,
    };
    Some(Problem {
        seq,
        kind: ProblemKind::Unsigned,
        message,
    })
}
