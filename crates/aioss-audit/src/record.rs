//! The audit record (format version 1), its canonical encoding and its hash.
//!
//! See `docs/audit-format.md` for the normative description.

use sha2::{Digest, Sha256};

/// The version of the record format described in `docs/audit-format.md`.
pub const FORMAT_VERSION: u32 = 1;

/// The domain-separation tag that starts the canonical encoding of every record.
pub const RECORD_TAG: &[u8] = b"aioss-audit-record-v1";

/// The `prev_hash` of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A decided proposal; `decision` is the decision JSON.
    Decision,
    /// A line that was refused as bad input; `decision` is the error JSON.
    InputError,
    /// A request the server refused before the governor saw it (a bad or missing token, a
    /// body claiming another agent's identity, an unknown hold); `proposal` is the request
    /// (method, path, who, body) and `decision` the error JSON. Not re-decided by replay.
    Refused,
    /// An answer to a held decision (approved, rejected, refused approval, expired), with
    /// who gave it; `decision_id` is the held decision's. Not re-decided by replay.
    Confirmation,
    /// An observed outcome of a decision and its re-evaluation (EFFECTIVE or FAILED);
    /// `decision_id` is the decision's. Not re-decided by replay.
    Outcome,
    /// The policy was reloaded: the record carries the new policy's name, version and hash,
    /// and who asked. Not re-decided by replay (which starts the repairers' warm starts
    /// afresh here, as the server's new governor did).
    PolicyReload,
    /// An operator reset an agent's mode of operation to normal (`POST
    /// /v1/agents/{id}/reset`); `decision_id` is the agent's id. Replay resets it there too.
    AgentReset,
    /// The governor state (`Governor::snapshot`) as the server had it here, written
    /// periodically, at start and at shutdown; `proposal` says why. A restart restores the
    /// last one and re-decides only the records after it; replay compares its own state
    /// with it and then takes it, warm starts afresh, as the server did.
    Snapshot,
}

impl Kind {
    /// The name stored and hashed.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decision => "decision",
            Kind::InputError => "input_error",
            Kind::Refused => "refused",
            Kind::Confirmation => "confirmation",
            Kind::Outcome => "outcome",
            Kind::PolicyReload => "policy_reload",
            Kind::AgentReset => "agent_reset",
            Kind::Snapshot => "snapshot",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "decision" => Some(Kind::Decision),
            "input_error" => Some(Kind::InputError),
            "refused" => Some(Kind::Refused),
            "confirmation" => Some(Kind::Confirmation),
            "outcome" => Some(Kind::Outcome),
            "policy_reload" => Some(Kind::PolicyReload),
            "agent_reset" => Some(Kind::AgentReset),
            "snapshot" => Some(Kind::Snapshot),
            _ => None,
        }
    }
}

/// One audit record. Every field is covered by `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position in the log, from 0, without gaps.
    pub seq: u64,
    /// `decision`, `input_error`, `refused`, `confirmation`, `outcome`, `policy_reload` or
    /// `snapshot`, as stored (an unknown value fails verification).
    pub kind: String,
    /// The governor's decision id (empty for an input error).
    pub decision_id: String,
    /// RFC 3339 (UTC, microseconds) time of the decision.
    pub timestamp: String,
    /// The decision time in seconds since the Unix epoch, exactly as the governor used it
    /// (shortest round-trip decimal), which replay passes back; empty if none.
    pub time: String,
    /// Policy name.
    pub policy_name: String,
    /// Policy version.
    pub policy_version: String,
    /// Policy hash (`sha256:…` of the policy text).
    pub policy_hash: String,
    /// The proposal line exactly as received (without its line terminator).
    pub proposal: String,
    /// The decision JSON as written by the governor (without the `record` field), or the
    /// error JSON of an input error.
    pub decision: String,
    /// Time spent deciding, microseconds.
    pub latency_us: u64,
    /// Hex SHA-256 of the governor state after this record.
    pub state_digest: String,
    /// The hash of the previous record ([`GENESIS`] for seq 0).
    pub prev_hash: String,
    /// Hex SHA-256 of the canonical encoding of all the fields above.
    pub hash: String,
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    s
}

/// Bytes of lower-case or upper-case hex; `None` if not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| match p {
            [a, b] => Some(digit(*a)? << 4 | digit(*b)?),
            _ => None,
        })
        .collect()
}

impl Record {
    /// The canonical encoding: [`RECORD_TAG`], then each field in the order of the struct
    /// (`seq` … `prev_hash`, not `hash`) as an 8-byte big-endian length followed by its
    /// UTF-8 bytes; numbers are written in decimal ASCII.
    pub fn canonical(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(256 + self.proposal.len() + self.decision.len());
        let mut put = |b: &[u8]| {
            v.extend_from_slice(&(b.len() as u64).to_be_bytes());
            v.extend_from_slice(b);
        };
        put(RECORD_TAG);
        for f in self.fields() {
            put(f.as_bytes());
        }
        v
    }

    fn fields(&self) -> [std::borrow::Cow<'_, str>; 13] {
        use std::borrow::Cow::{Borrowed, Owned};
        [
            Owned(self.seq.to_string()),
            Borrowed(&self.kind),
            Borrowed(&self.decision_id),
            Borrowed(&self.timestamp),
            Borrowed(&self.time),
            Borrowed(&self.policy_name),
            Borrowed(&self.policy_version),
            Borrowed(&self.policy_hash),
            Borrowed(&self.proposal),
            Borrowed(&self.decision),
            Owned(self.latency_us.to_string()),
            Borrowed(&self.state_digest),
            Borrowed(&self.prev_hash),
        ]
    }

    /// The hash this record should have: hex SHA-256 of [`Record::canonical`].
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        field(&mut h, RECORD_TAG);
        for f in self.fields() {
            field(&mut h, f.as_bytes());
        }
        hex(&h.finalize())
    }

    /// Set `hash` from the other fields.
    pub fn seal(&mut self) {
        self.hash = self.compute_hash();
    }

    /// The record as one line of JSON (the export format): every field, with the proposal
    /// and the decision as strings holding the exact hashed bytes.
    pub fn to_json(&self) -> String {
        let v = serde_json::json!({
            "format": FORMAT_VERSION,
            "seq": self.seq,
            "kind": self.kind,
            "decision_id": self.decision_id,
            "timestamp": self.timestamp,
            "time": self.time,
            "policy": {"name": self.policy_name, "version": self.policy_version, "hash": self.policy_hash},
            "proposal": self.proposal,
            "decision": self.decision,
            "latency_us": self.latency_us,
            "state_digest": self.state_digest,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        });
        v.to_string()
    }
}

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z), in seconds since the epoch.
pub const MAX_RFC3339_SECS: u64 = 253_402_300_799;

/// RFC 3339 (UTC, microseconds, truncated) of seconds since the Unix epoch. Total: a time
/// RFC 3339 cannot write is clamped into its range, so NaN and anything at or before the
/// epoch give `1970-01-01T00:00:00.000000Z`, and anything from year 10000 on (or infinite)
/// gives `9999-12-31T23:59:59.999999Z`. (A record's `time` field keeps the exact value.)
///
/// Why not `humantime`: its formatter fails for years past 9999, and `to_string` turns
/// that failure into a panic; an agent's `"timestamp": 1e12` then killed the governor.
pub fn rfc3339(secs: f64) -> String {
    let (whole, micros) = if secs.is_nan() || secs <= 0.0 {
        (0, 0)
    } else {
        // INVARIANT (rfc3339-total): every f64 maps to a time inside RFC 3339's range.
        match std::time::Duration::try_from_secs_f64(secs) {
            Ok(d) if d.as_secs() <= MAX_RFC3339_SECS => (d.as_secs(), d.subsec_micros()),
            _ => (MAX_RFC3339_SECS, 999_999),
        }
    };
    let (y, m, d) = civil_from_days(whole / 86_400);
    let s = whole % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The proleptic Gregorian date `(year, month, day)` of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`, for non-negative counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Seconds since the Unix epoch now.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hash_is_sha256_of_canonical() {
        let mut r = Record {
            seq: 3,
            kind: "decision".into(),
            decision_id: "abc-3".into(),
            timestamp: rfc3339(1.5),
            time: "1.5".into(),
            policy_name: "p".into(),
            policy_version: "1".into(),
            policy_hash: "sha256:00".into(),
            proposal: "{}".into(),
            decision: "{}".into(),
            latency_us: 7,
            state_digest: "dd".into(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        };
        r.seal();
        assert_eq!(r.hash, hex(&Sha256::digest(r.canonical())));
        assert_eq!(r.timestamp, "1970-01-01T00:00:01.500000Z");
        assert_eq!(unhex(&r.hash).unwrap().len(), 32);
        let before = r.hash.clone();
        r.latency_us = 8;
        assert_ne!(r.compute_hash(), before);
    }

    /// Caught: `"timestamp": 1e12` panicked in the record's time formatting and killed
    /// the governor thread (and `aioss decide --audit`).
    #[test]
    fn a_timestamp_past_year_9999_formats_without_panicking() {
        let epoch = "1970-01-01T00:00:00.000000Z";
        let last = "9999-12-31T23:59:59.999999Z";
        for (x, want) in [
            (f64::NAN, epoch),
            (f64::NEG_INFINITY, epoch),
            (-1.0, epoch),
            (-0.0, epoch),
            (0.0, epoch),
            (1.5, "1970-01-01T00:00:01.500000Z"),
            (951_782_400.0, "2000-02-29T00:00:00.000000Z"),
            (1_735_722_000.25, "2025-01-01T09:00:00.250000Z"),
            (253_402_300_799.0, "9999-12-31T23:59:59.000000Z"),
            (253_402_300_800.0, last),
            (1e12, last),
            (f64::MAX, last),
            (f64::INFINITY, last),
        ] {
            assert_eq!(rfc3339(x), want, "{x}");
        }
        // The same text as before (humantime) wherever that could write one.
        let mut x = 0.000_001_f64;
        while x < 2.5e11 {
            let d = std::time::Duration::from_secs_f64(x);
            let before = humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + d).to_string();
            assert_eq!(rfc3339(x), before, "{x}");
            x = x * 1.37 + 0.123;
        }
    }
}
