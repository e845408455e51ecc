//! AIOSS audit log: every decision leaves a record a person can verify later.
//!
//! * [`record`]: the record (format version 1), its canonical encoding and hash chain;
//! * [`checkpoint`]: Ed25519 signatures over the chain head, and key files;
//! * [`store`]: the [`Store`] trait and the embedded [`SqliteStore`];
//! * [`Writer`]: chains records, signs checkpoints, commits in groups;
//! * [`verify`], [`replay`], [`report`]: the checks and the governance report.
//!
//! The format is specified in `docs/audit-format.md`.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod record;
pub mod replay;
pub mod report;
pub mod store;
pub mod verify;

pub use checkpoint::{Checkpoint, Key};
pub use record::{Kind, Record, FORMAT_VERSION, GENESIS};
pub use store::{open_store, SqliteStore, Store};

use aioss_core::{Decision, InputError, Policy};

/// What can go wrong in the audit log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed or is not an audit store.
    #[error("audit store: {0}")]
    Store(String),
    /// A key file or public key could not be read or made.
    #[error("key: {0}")]
    Key(String),
    /// Records at the end of the store that no signature of the writer's key covers: a
    /// writer with that key did not append them (or not with it), so it will not sign
    /// over them unless told to.
    #[error(
        "records {from}..{to} of the store are not covered by a signature of this key \
         (public key {key}): they were not written by a writer holding it (appended by \
         someone who can write the file, or by a writer without the key); refusing to sign \
         over them. Inspect them (`aioss audit export`, `aioss audit verify --public-key`), \
         then start with `--accept-unsigned-tail` to sign over them anyway"
    )]
    UnsignedTail {
        /// The first record not covered.
        from: u64,
        /// The last record.
        to: u64,
        /// The writer's public key (hex).
        key: String,
    },
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store(e.to_string())
    }
}

/// Where a record sits in the chain: the `record` field of a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRef {
    /// The record's sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// The previous record's hash.
    pub prev_hash: String,
}

impl RecordRef {
    /// Insert `"record":{"seq","hash","prev_hash"}` as the last field of a JSON object line.
    pub fn insert_into(&self, json: &str) -> String {
        let body = json.strip_suffix('}').unwrap_or(json);
        let sep = if body.ends_with('{') { "" } else { "," };
        format!(
            "{body}{sep}\"record\":{{\"seq\":{},\"hash\":\"{}\",\"prev_hash\":\"{}\"}}}}",
            self.seq, self.hash, self.prev_hash
        )
    }
}

/// The shortest decimal that reads back as exactly `x` (empty if not finite).
pub fn time_text(x: f64) -> String {
    if x.is_finite() {
        format!("{x:?}")
    } else {
        String::new()
    }
}

/// A (not yet chained) record of a decision: `seq`, `prev_hash` and `hash` are set by
/// [`Writer::push`].
pub fn decision_record(
    policy: &Policy,
    raw: &str,
    d: &Decision,
    decision_json: &str,
    state_digest: String,
) -> Record {
    Record {
        seq: 0,
        kind: Kind::Decision.as_str().to_string(),
        decision_id: d.decision_id.clone(),
        timestamp: record::rfc3339(d.time),
        time: time_text(d.time),
        policy_name: policy.name.clone(),
        policy_version: policy.version.clone(),
        policy_hash: policy.hash.clone(),
        proposal: raw.to_string(),
        decision: decision_json.to_string(),
        latency_us: d.latency_us,
        state_digest,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// A (not yet chained) record of a refused input line, at wall-clock time `now`.
pub fn error_record(
    policy: &Policy,
    raw: &str,
    e: &InputError,
    now: f64,
    state_digest: String,
) -> Record {
    Record {
        seq: 0,
        kind: Kind::InputError.as_str().to_string(),
        decision_id: String::new(),
        timestamp: record::rfc3339(now),
        time: time_text(now),
        policy_name: policy.name.clone(),
        policy_version: policy.version.clone(),
        policy_hash: policy.hash.clone(),
        proposal: raw.to_string(),
        decision: e.to_json(),
        latency_us: 0,
        state_digest,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// A (not yet chained) record of a server event that does not go through the governor
/// ([`Kind::Refused`], [`Kind::Confirmation`], [`Kind::Outcome`], [`Kind::PolicyReload`]) at
/// wall-clock time `now`: `request` is what was asked (and by whom), `answer` the JSON given
/// back.
pub fn event_record(
    kind: Kind,
    policy: &Policy,
    decision_id: &str,
    request: &str,
    answer: &str,
    now: f64,
    state_digest: String,
) -> Record {
    Record {
        seq: 0,
        kind: kind.as_str().to_string(),
        decision_id: decision_id.to_string(),
        timestamp: record::rfc3339(now),
        time: time_text(now),
        policy_name: policy.name.clone(),
        policy_version: policy.version.clone(),
        policy_hash: policy.hash.clone(),
        proposal: request.to_string(),
        decision: answer.to_string(),
        latency_us: 0,
        state_digest,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// Open the store named by `arg` (created if missing), rebuild `g`'s state from its records
/// ([`replay::rebuild`]: the last snapshot and the records after it, so budgets, `prev` and
/// sequence numbers survive restarts), and make a writer that
/// continues its chain. Returns the writer and notes for the operator (records made under
/// another policy; a state digest that does not match), which the caller prints.
///
/// With a key, a store whose last records no signature of that key covers is refused
/// ([`Error::UnsignedTail`]) unless `accept_unsigned_tail`: see [`unsigned_tail`].
pub fn open_audited(
    g: &mut aioss_core::Governor,
    arg: &str,
    key: Option<Key>,
    checkpoint_every: u64,
    accept_unsigned_tail: bool,
) -> Result<(Writer, Vec<String>), Error> {
    open_audited_store(
        g,
        open_store(arg, true)?,
        arg,
        key,
        checkpoint_every,
        accept_unsigned_tail,
    )
}

/// The records at the end of `store` that no valid signature of `key` covers (a
/// checkpoint or the signed head whose signed hash is the stored record's), as
/// `(first, last)`; `None` when every record is covered (or there is none).
///
/// Why this shows which records this writer wrote: a writer with a key signs the head of
/// every commit in the commit's own transaction ([`Writer::commit`]), so every record it
/// wrote is covered the moment it is durable, crash or not. A record after the last
/// signature was appended by something without the key, e.g. someone who can write the
/// file and recomputed the hashes; signing over it would vouch for it. A signature whose
/// record was rewritten no longer matches its stored hash and proves nothing.
pub fn unsigned_tail(store: &mut dyn Store, key: &Key) -> Result<Option<(u64, u64)>, Error> {
    let Some((last, _)) = store.head()? else {
        return Ok(None);
    };
    let pk = key.public_hex();
    let mut proven: Option<u64> = None;
    let signed = store.checkpoints()?.into_iter().chain(store.signed_head()?);
    for c in signed {
        if c.public_key != pk || !c.signature_ok() || proven.is_some_and(|p| p >= c.seq) {
            continue;
        }
        let mut stored = None;
        store.scan_from(c.seq, &mut |r| {
            stored = (r.seq == c.seq).then_some(r.hash);
            Ok(false)
        })?;
        if stored.as_deref() == Some(c.head_hash.as_str()) {
            proven = Some(c.seq);
        }
    }
    Ok(match proven {
        Some(p) if p >= last => None,
        Some(p) => Some((p + 1, last)),
        None => Some((0, last)),
    })
}

/// [`open_audited`] on a store already open (`arg` names it in the notes).
pub fn open_audited_store(
    g: &mut aioss_core::Governor,
    store: Box<dyn Store>,
    arg: &str,
    key: Option<Key>,
    checkpoint_every: u64,
    accept_unsigned_tail: bool,
) -> Result<(Writer, Vec<String>), Error> {
    open_writer(g, store, arg, key, checkpoint_every, accept_unsigned_tail)
        .map(|o| (o.writer, o.notes))
}

/// What [`open_writer`] did.
#[derive(Debug)]
pub struct Opened {
    /// The writer continuing the chain.
    pub writer: Writer,
    /// Notes for the operator.
    pub notes: Vec<String>,
    /// The `snapshot` record the governor state was restored from, if any.
    pub from_snapshot: Option<u64>,
    /// Records re-decided to rebuild the state (after the snapshot, or all).
    pub redecided: u64,
    /// Records no signature of the key covered, signed over because the operator said so.
    pub accepted_unsigned: Option<(u64, u64)>,
}

/// [`open_audited_store`], saying what it did.
pub fn open_writer(
    g: &mut aioss_core::Governor,
    mut store: Box<dyn Store>,
    arg: &str,
    key: Option<Key>,
    checkpoint_every: u64,
    accept_unsigned_tail: bool,
) -> Result<Opened, Error> {
    let mut notes = Vec::new();
    let mut accepted_unsigned = None;
    let mut from_snapshot = None;
    let mut redecided = 0;
    if let Some(k) = &key {
        // INVARIANT (sign-only-own): a writer never signs over records it cannot show it
        // wrote, unless the operator accepted them.
        if let Some((from, to)) = unsigned_tail(store.as_mut(), k)? {
            if !accept_unsigned_tail {
                return Err(Error::UnsignedTail {
                    from,
                    to,
                    key: k.public_hex(),
                });
            }
            notes.push(format!(
                "WARNING: records {from}..{to} of {arg} are not covered by a signature of this key; \
                 accepted (--accept-unsigned-tail): the next signed head will cover them"
            ));
            accepted_unsigned = Some((from, to));
        }
    }
    if store.count()? > 0 {
        let r = replay::rebuild(store.as_mut(), g)?;
        from_snapshot = r.from_snapshot;
        redecided = r.records;
        if let Some(s) = r.from_snapshot {
            notes.push(format!(
                "note: the governor state is the snapshot at record {s} of {arg}, and {} records re-decided after it",
                r.records
            ));
        }
        if r.other_policy > 0 {
            notes.push(format!(
                "note: {arg} was last written under another policy: the governor state rebuilt under the policies its records name (where it keeps their texts) goes on under this one"
            ));
        }
        if r.last_digest_matches == Some(false) {
            notes.push(format!(
                "warning: the governor state rebuilt from {arg} does not match the state digest of its last record; \
                 run `aioss audit replay {arg} --policy FILE` to see where the log and this governor differ"
            ));
        }
    }
    // INVARIANT (policies-kept): every policy a writer decides under is in the store, by
    // its hash, before the writer's first record.
    store.put_policy(&g.policy().hash, &g.policy().source)?;
    Ok(Opened {
        writer: Writer::new(store, key, checkpoint_every)?,
        notes,
        from_snapshot,
        redecided,
        accepted_unsigned,
    })
}

/// Appends to a store: chains each record to the head, signs a checkpoint every
/// `checkpoint_every` records and at [`Writer::finish`], and writes a batch of records (and
/// its checkpoints) in one durable transaction at [`Writer::commit`].
pub struct Writer {
    store: Box<dyn Store>,
    key: Option<Key>,
    checkpoint_every: u64,
    next_seq: u64,
    head_hash: String,
    last_checkpoint: Option<u64>,
    pending: Vec<Record>,
    pending_checkpoints: Vec<Checkpoint>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("next_seq", &self.next_seq)
            .field("head_hash", &self.head_hash)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Continue the chain of `store` (or start it). `checkpoint_every` 0 means only at
    /// [`Writer::finish`]; without a key no checkpoints are made.
    pub fn new(
        mut store: Box<dyn Store>,
        key: Option<Key>,
        checkpoint_every: u64,
    ) -> Result<Writer, Error> {
        let (next_seq, head_hash) = match store.head()? {
            Some((seq, hash)) => (seq + 1, hash),
            None => (0, GENESIS.to_string()),
        };
        let last_checkpoint = store.checkpoints()?.last().map(|c| c.seq);
        Ok(Writer {
            store,
            key,
            checkpoint_every,
            next_seq,
            head_hash,
            last_checkpoint,
            pending: Vec::new(),
            pending_checkpoints: Vec::new(),
        })
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Records pushed and not yet committed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Chain a record (setting its `seq`, `prev_hash` and `hash`) and queue it for the next
    /// commit. It is durable only once [`Writer::commit`] returns `Ok`.
    pub fn push(&mut self, mut r: Record) -> RecordRef {
        r.seq = self.next_seq;
        r.prev_hash = std::mem::take(&mut self.head_hash);
        r.seal();
        let rr = RecordRef {
            seq: r.seq,
            hash: r.hash.clone(),
            prev_hash: r.prev_hash.clone(),
        };
        self.head_hash = r.hash.clone();
        self.next_seq += 1;
        self.pending.push(r);
        if self.checkpoint_every > 0 && self.next_seq.is_multiple_of(self.checkpoint_every) {
            self.checkpoint();
        }
        rr
    }

    fn checkpoint(&mut self) {
        let Some(head) = self.next_seq.checked_sub(1) else {
            return;
        };
        if self.last_checkpoint == Some(head) {
            return;
        }
        if let Some(k) = &self.key {
            let c = k.checkpoint(head, &self.head_hash, record::rfc3339(record::now_secs()));
            self.pending_checkpoints.push(c);
            self.last_checkpoint = Some(head);
        }
    }

    /// Write the queued records and checkpoints in one transaction; when this returns `Ok`
    /// they are durable. On error nothing of the batch is written and the batch is dropped:
    /// the caller must not report its decisions, and must stop using this writer (its head
    /// has moved past records that are not in the store).
    pub fn commit(&mut self) -> Result<(), Error> {
        // With a key, every commit also signs its head (the store's signed head), in the
        // same transaction: a store this writer wrote never has records no signature
        // covers, even after a crash, so a restart can tell its records from ones
        // appended behind its back, and `verify --public-key` can demand full coverage.
        let head = match (&self.key, self.next_seq.checked_sub(1)) {
            (Some(k), Some(seq)) if !self.pending.is_empty() => {
                Some(k.checkpoint(seq, &self.head_hash, record::rfc3339(record::now_secs())))
            }
            _ => None,
        };
        let r = self
            .store
            .append_signed(&self.pending, &self.pending_checkpoints, head.as_ref());
        self.pending.clear();
        self.pending_checkpoints.clear();
        r
    }

    /// Keep the text of a policy this writer decides under ([`Store::put_policy`]).
    pub fn put_policy(&mut self, hash: &str, text: &str) -> Result<(), Error> {
        self.store.put_policy(hash, text)
    }

    /// The store's housekeeping between commits ([`Store::maintain`]).
    pub fn maintain(&mut self) -> Result<(), Error> {
        self.store.maintain()
    }

    /// Sign a checkpoint over the head (if there is a key and the head is not already
    /// checkpointed) and commit.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.checkpoint();
        self.commit()
    }
}

/// Every record of a store as JSON lines (the export format), to `out`.
pub fn export(store: &mut dyn Store, out: &mut dyn std::io::Write) -> Result<u64, Error> {
    let mut n = 0u64;
    store.scan(&mut |r| {
        out.write_all(r.to_json().as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| Error::Other(format!("writing: {e}")))?;
        n += 1;
        Ok(true)
    })?;
    out.flush()
        .map_err(|e| Error::Other(format!("writing: {e}")))?;
    Ok(n)
}
