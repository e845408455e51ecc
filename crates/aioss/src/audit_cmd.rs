//! The audit log on the command line: `aioss decide --audit`, `aioss audit
//! keygen|verify|replay|export`, `aioss report` and `aioss bench audit`.
//!
//! `decide --audit` reads lines on a thread of their own, so the deciding loop knows whether
//! more input is already waiting: it decides what is waiting (up to [`BATCH`] lines, or
//! [`BATCH_TIME`]), commits the batch's records in one durable transaction, and only then
//! prints the batch's decisions. An interactive caller (one line at a time) gets each
//! decision as soon as its record is on disk; a stream gets group commit.

use std::io::{BufRead, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use aioss_audit::{replay, report, verify, Key, Store, Writer};
use aioss_core::governor::{Clock, PrevSource};
use aioss_core::Governor;

use crate::exit;
use crate::progress::Watched;

/// Most records in one transaction.
pub const BATCH: usize = 4096;
/// Longest time a batch stays open while input keeps arriving.
pub const BATCH_TIME: Duration = Duration::from_millis(10);

/// Options of `aioss decide --audit`.
pub struct DecideOptions<'a> {
    /// The policy file.
    pub policy: &'a Path,
    /// Read proposals from this file instead of standard input.
    pub input: Option<&'a Path>,
    /// The store.
    pub audit: &'a str,
    /// The checkpoint signing key file.
    pub key: Option<&'a Path>,
    /// Records between checkpoints.
    pub checkpoint_every: u64,
    /// Human-readable output.
    pub explain: bool,
    /// Force dry-run.
    pub dry_run: bool,
    /// Take the time from the wall clock, not from the proposals ([`Clock::Trusted`]).
    pub wall_clock: bool,
    /// Take `prev.` from the governor's record ([`PrevSource::Governor`]).
    pub untrusted: bool,
    /// Decide in the critical-rows-only mode ([`Governor::set_critical_only`]).
    pub critical_only: bool,
    /// Sign over records at the end of the store that no signature of the key covers.
    pub accept_unsigned_tail: bool,
}

/// The next input line, as the deciding loop sees it.
pub enum Next {
    /// A line (without its terminator).
    Line(String),
    /// Nothing is waiting right now.
    Empty,
    /// The input is finished.
    End,
}

/// Counts of one audited run.
#[derive(Default)]
pub struct RunStats {
    /// Lines decided or refused.
    pub lines: u64,
    /// Refused lines.
    pub errors: u64,
    /// Decisions held, blocked, sent to review or failed.
    pub not_executed: u64,
    /// Seconds the deciding thread spent making records.
    pub store_secs: f64,
    /// Seconds the committer thread spent chaining (hashing, signing) and committing.
    pub commit_secs: f64,
}

fn wall_now() -> f64 {
    aioss_audit::record::now_secs()
}

/// What to print for a record once it is durable.
enum Out {
    /// The record's decision JSON, with the `record` field inserted.
    Decision,
    /// This JSON (an input error), with the `record` field inserted.
    Json(String),
    /// Explain text, followed by a `record SEQ HASH` line.
    Text(String),
}

/// One group commit: the records to chain and append in one transaction, with what to
/// print for each once the transaction is durable.
struct Batch {
    items: Vec<(aioss_audit::Record, Out)>,
    last: bool,
}

/// The deciding loop of `aioss decide --audit`. `next(block)` gives the next line, waiting
/// for one if `block`.
///
/// Two threads: this one decides and makes the records; a committer thread owns the
/// writer: it chains each batch (hashes, checkpoints), appends it in one durable
/// transaction, and only then writes the batch's lines to `out`. While batch k commits,
/// batch k + 1 is decided; at most two batches wait, in order.
pub fn run(
    g: &mut Governor,
    w: &mut Writer,
    next: &mut dyn FnMut(bool) -> Next,
    out: &mut (dyn Write + Send),
    explain: bool,
    wall_clock: bool,
) -> Result<RunStats, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(8);
    std::thread::scope(|scope| {
        let committer = scope.spawn(move || -> Result<f64, String> {
            let mut busy = 0.0;
            let mut lines: Vec<String> = Vec::new();
            for b in rx {
                let t = Instant::now();
                for (r, o) in b.items {
                    let json = match &o {
                        Out::Decision => Some(r.decision.clone()),
                        _ => None,
                    };
                    let rr = w.push(r);
                    lines.push(match o {
                        Out::Decision => rr.insert_into(json.as_deref().unwrap_or("{}")),
                        Out::Json(j) => rr.insert_into(&j),
                        Out::Text(t) => format!("{t}record {} {}\n", rr.seq, rr.hash),
                    });
                }
                if b.last {
                    w.finish().map_err(|e| e.to_string())?;
                } else {
                    w.commit().map_err(|e| e.to_string())?;
                }
                busy += t.elapsed().as_secs_f64();
                // The batch is durable: now its decisions may be reported.
                for l in lines.drain(..) {
                    out.write_all(l.as_bytes())
                        .and_then(|()| out.write_all(b"\n"))
                        .map_err(|e| format!("writing: {e}"))?;
                }
                out.flush().map_err(|e| format!("writing: {e}"))?;
            }
            Ok(busy)
        });
        let produced = produce(g, next, tx, explain, wall_clock);
        let busy = committer
            .join()
            .map_err(|_| "the committer thread failed".to_string())??;
        let mut stats = produced?;
        stats.commit_secs = busy;
        Ok(stats)
    })
}

fn produce(
    g: &mut Governor,
    next: &mut dyn FnMut(bool) -> Next,
    tx: std::sync::mpsc::SyncSender<Batch>,
    explain: bool,
    wall_clock: bool,
) -> Result<RunStats, String> {
    let mut stats = RunStats::default();
    let mut lineno = 0u64;
    let mut hinted = false;
    let mut done = false;
    let mut recent = aioss_core::governor::RecentDecisions::new(crate::decide_cmd::OUTCOME_WINDOW);
    while !done {
        let mut items = Vec::with_capacity(64);
        let started = Instant::now();
        let mut block = true;
        while items.len() < BATCH && (block || started.elapsed() < BATCH_TIME) {
            let raw = match next(block) {
                Next::Line(l) => l,
                Next::Empty => break,
                Next::End => {
                    done = true;
                    break;
                }
            };
            // A pretty-printed object arrives whole, over several lines.
            let first = lineno + 1;
            lineno += 1 + raw.bytes().filter(|b| *b == b'\n').count() as u64;
            if raw.trim().is_empty() {
                continue;
            }
            block = false;
            stats.lines += 1;
            let clock = if wall_clock {
                Clock::Trusted(wall_now())
            } else {
                Clock::Logical
            };
            let decided = crate::decide_cmd::answer(g, &mut recent, &raw, clock);
            let mut t = Instant::now();
            let item = match decided {
                Ok(crate::decide_cmd::Answer::Outcome(json)) => {
                    // Recorded as the server records an outcome report: the line as the
                    // request's body, the re-evaluation as the answer.
                    let id = serde_json::from_str::<serde_json::Value>(&json)
                        .ok()
                        .and_then(|v| Some(v.get("decision_id")?.as_str()?.to_string()))
                        .unwrap_or_default();
                    let request = serde_json::json!({"by": {"cli": true}, "body": raw}).to_string();
                    let r = aioss_audit::event_record(
                        aioss_audit::Kind::Outcome,
                        g.policy(),
                        &id,
                        &request,
                        &json,
                        wall_now(),
                        g.state_digest(),
                    );
                    let o = if explain {
                        Out::Text(format!("outcome of `{id}`: {json}\n"))
                    } else {
                        Out::Json(json)
                    };
                    (r, o)
                }
                Ok(crate::decide_cmd::Answer::Decision(d)) => {
                    if !matches!(
                        d.final_outcome,
                        aioss_core::Outcome::Allow | aioss_core::Outcome::AllowAfterRepair
                    ) {
                        stats.not_executed += 1;
                    }
                    let json = d.to_json(g.policy());
                    t = Instant::now();
                    let o = if explain {
                        Out::Text(d.explain(g.policy()))
                    } else {
                        Out::Decision
                    };
                    let r =
                        aioss_audit::decision_record(g.policy(), &raw, &d, &json, g.state_digest());
                    (r, o)
                }
                Err(e) => {
                    stats.errors += 1;
                    crate::decide_cmd::hint_not_json_lines(&mut hinted, first, &raw);
                    let r = aioss_audit::error_record(
                        g.policy(),
                        &raw,
                        &e,
                        wall_now(),
                        g.state_digest(),
                    );
                    let o = if explain {
                        Out::Text(format!("line {first}: error: {e}\n"))
                    } else {
                        let j = e.to_json();
                        let body = j.strip_suffix('}').unwrap_or(&j);
                        Out::Json(format!("{body},\"line\":{first}}}"))
                    };
                    (r, o)
                }
            };
            stats.store_secs += t.elapsed().as_secs_f64();
            items.push(item);
        }
        if tx.send(Batch { items, last: done }).is_err() {
            // The committer stopped on an error: it reports it.
            break;
        }
    }
    Ok(stats)
}

/// Lines read from standard input, in chunks: every complete line already buffered is sent
/// at once (at most 1024), so a stream costs one channel message per chunk, while a caller
/// that writes one line at a time gets it through alone.
type Chunk = std::io::Result<Vec<String>>;

fn reader_thread(source: Box<dyn Read + Send>) -> Receiver<Chunk> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(16);
    std::thread::spawn(move || {
        let mut input = std::io::BufReader::with_capacity(1 << 16, source);
        let mut chunk: Vec<String> = Vec::new();
        loop {
            let mut line = String::new();
            let mut read = input.read_line(&mut line);
            if matches!(read, Ok(n) if n > 0) && crate::decide_cmd::is_open_object(&line) {
                // A pretty-printed object: read on until it is complete.
                while crate::decide_cmd::still_open(&line) {
                    match input.read_line(&mut line) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            read = Err(e);
                            break;
                        }
                    }
                }
            }
            match read {
                Ok(0) => break,
                Ok(_) => {
                    while line.ends_with('\n') || line.ends_with('\r') {
                        line.pop();
                    }
                    chunk.push(line);
                    // More complete lines waiting in the buffer: take them without blocking.
                    if chunk.len() < 1024 && input.buffer().contains(&b'\n') {
                        continue;
                    }
                    if tx.send(Ok(std::mem::take(&mut chunk))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Ok(std::mem::take(&mut chunk)));
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(Ok(chunk));
        }
    });
    rx
}

/// Open the store, rebuild the governor state and make a writer ([`aioss_audit::open_audited`]),
/// printing its notes on standard error.
pub fn open_audited(
    g: &mut Governor,
    audit: &str,
    key: Option<Key>,
    checkpoint_every: u64,
    accept_unsigned_tail: bool,
) -> Result<Writer, String> {
    let (w, notes) =
        aioss_audit::open_audited(g, audit, key, checkpoint_every, accept_unsigned_tail)
            .map_err(|e| e.to_string())?;
    for n in notes {
        eprintln!("{n}");
    }
    Ok(w)
}

/// `aioss decide --policy FILE --audit STORE [--key FILE] [--checkpoint-every N]`
pub fn decide(o: &DecideOptions<'_>) -> ExitCode {
    let p = match crate::policy_cmd::load_file(o.policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let key = match o.key.map(Key::read).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let mut g = Governor::new(p);
    if o.dry_run {
        // Before the state is rebuilt: a dry run passes proposals through, and the rebuilt
        // state must be the one these decisions were made with.
        g.set_dry_run(true);
    }
    let mut w = match open_audited(
        &mut g,
        o.audit,
        key,
        o.checkpoint_every,
        o.accept_unsigned_tail,
    ) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    // After the state is rebuilt: the records are re-decided as they were made, and a line
    // refused for its `prev` never became a decision.
    if o.untrusted {
        g.set_prev_source(PrevSource::Governor);
    }
    g.set_critical_only(o.critical_only);
    let source = match crate::decide_cmd::input_source(o.input) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let rx = reader_thread(source);
    let mut read_error: Option<std::io::Error> = None;
    let mut pending: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut next = |block: bool| -> Next {
        loop {
            if let Some(l) = pending.pop_front() {
                return Next::Line(l);
            }
            let got = if block {
                rx.recv().map_err(|_| TryRecvError::Disconnected)
            } else {
                rx.try_recv()
            };
            match got {
                Ok(Ok(lines)) => pending.extend(lines),
                Ok(Err(e)) => {
                    read_error = Some(e);
                    return Next::End;
                }
                Err(TryRecvError::Empty) => return Next::Empty,
                Err(TryRecvError::Disconnected) => return Next::End,
            }
        }
    };
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout());
    let r = run(&mut g, &mut w, &mut next, &mut out, o.explain, o.wall_clock);
    match (r, read_error) {
        (Ok(s), None) => crate::decide_cmd::Tally {
            errors: s.errors,
            not_executed: s.not_executed,
        }
        .exit_code(),
        (Ok(_), Some(e)) => {
            eprintln!("error: reading input: {e}");
            ExitCode::from(exit::INTERNAL)
        }
        (Err(e), _) if e.contains("Broken pipe") => ExitCode::SUCCESS,
        (Err(e), _) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::INTERNAL)
        }
    }
}

/// `aioss audit keygen FILE`
pub fn keygen(path: &Path) -> ExitCode {
    let k = match Key::generate() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    if let Err(e) = k.write_new(path) {
        eprintln!("error: {e}");
        return ExitCode::from(exit::BAD_INPUT);
    }
    println!("{}", k.public_hex());
    ExitCode::SUCCESS
}

/// [`open`], with progress on standard error while the command reads the store.
fn open_watched(store: &str, label: &'static str) -> Result<Watched, ExitCode> {
    open(store).map(|s| Watched::new(s, label))
}

fn open(store: &str) -> Result<Box<dyn Store>, ExitCode> {
    aioss_audit::open_store(store, false).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(exit::BAD_INPUT)
    })
}

/// `aioss audit verify STORE [--public-key KEY] [--min-records N]`: reads the store
/// read-only (no file is created or changed).
pub fn verify(store: &str, public_key: Option<&str>, min_records: u64) -> ExitCode {
    let pk = match public_key
        .map(aioss_audit::checkpoint::public_key_arg)
        .transpose()
    {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let mut s = match open_watched(store, "verify") {
        Ok(s) => s,
        Err(c) => return c,
    };
    let started = Instant::now();
    let opts = verify::Options {
        public_key: pk.as_deref(),
        min_records,
    };
    let rep = match verify::verify_with(&mut s, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let secs = started.elapsed().as_secs_f64();
    match &rep.problem {
        Some(p) => {
            println!(
                "FAILED at record {} ({}): {}",
                p.seq,
                p.kind.as_str(),
                p.message
            );
            println!("checked {} records before the break", rep.count);
            ExitCode::from(exit::VERDICT)
        }
        None => {
            println!("OK: {} records, chain intact ({secs:.2} s)", rep.count);
            match &rep.head {
                Some((q, h)) => println!("head: record {q} {h}"),
                None => println!("head: (empty store)"),
            }
            match rep.last_checkpoint {
                Some(c) => println!(
                    "checkpoints: {} signatures valid, last signed head at record {c}{}; key {}",
                    rep.signatures_ok,
                    match &rep.head {
                        Some((q, _)) if *q > c =>
                            format!(" ({} records after it are not yet signed)", q - c),
                        _ => String::new(),
                    },
                    rep.public_keys.join(", ")
                ),
                None => println!("checkpoints: none (records are chained but not signed)"),
            }
            if let Some(h) = rep.signed_head {
                println!("signed head: record {h}");
            }
            if pk.is_none() {
                println!(
                    "note: without --public-key the signatures only show the store agrees with itself (anyone can sign a rewritten store with a key of their own), and records after the last signature are accepted"
                );
            }
            ExitCode::SUCCESS
        }
    }
}

/// `aioss audit replay STORE [--policy FILE]`
pub fn replay_cmd(store: &str, policy: Option<&Path>, limit: usize, dry_run: bool) -> ExitCode {
    let given = match policy.map(crate::policy_cmd::load_file).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let mut s = match open_watched(store, "replay") {
        Ok(s) => s,
        Err(c) => return c,
    };
    let follow = given.is_none();
    let p = match given {
        Some(p) => p,
        None => match replay::first_policy(&mut s) {
            Ok(Some(p)) => p,
            Ok(None) => {
                eprintln!(
                    "error: `{store}` keeps no policy text for its first record (written by an older aioss, or empty): give the policy with `--policy FILE`"
                );
                return ExitCode::from(exit::BAD_INPUT);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(exit::INTERNAL);
            }
        },
    };
    let mut g = Governor::new(p);
    if dry_run {
        g.set_dry_run(true);
    }
    let replayed = if follow {
        replay::replay_following(&mut s, &mut g, true)
    } else {
        replay::replay(&mut s, &mut g, true)
    };
    let rep = match replayed {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    for d in rep.differences.iter().take(limit) {
        println!(
            "record {}{}: {}: recorded {}, replayed {}",
            d.seq,
            if d.decision_id.is_empty() {
                String::new()
            } else {
                format!(" ({})", d.decision_id)
            },
            d.field,
            d.recorded,
            d.replayed
        );
    }
    if rep.differences.len() > limit {
        println!("… and {} more differences", rep.differences.len() - limit);
    }
    if rep.other_policy > 0 {
        println!(
            "note: {} records were made under {}",
            rep.other_policy,
            if follow {
                "a policy the store does not keep (replayed under the one before it)"
            } else {
                "another policy hash"
            }
        );
    }
    println!(
        "{}: {} records replayed ({} decisions, {} input errors{}), {} differ",
        if rep.agrees() { "AGREE" } else { "DIFFER" },
        rep.records,
        rep.decisions,
        rep.input_errors,
        if rep.events > 0 {
            format!(", {} server events not re-decided", rep.events)
        } else {
            String::new()
        },
        rep.differing
    );
    if rep.agrees() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::VERDICT)
    }
}

/// `aioss audit export STORE`
pub fn export(store: &str) -> ExitCode {
    let mut s = match open_watched(store, "export") {
        Ok(s) => s,
        Err(c) => return c,
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match aioss_audit::export(&mut s, &mut out) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) if e.to_string().contains("Broken pipe") => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::INTERNAL)
        }
    }
}

/// `aioss report STORE --format md|html|json [--output FILE]`
pub fn report_cmd(
    store: &str,
    format: &str,
    output: Option<&Path>,
    policy: Option<&Path>,
) -> ExitCode {
    let p = match policy.map(crate::policy_cmd::load_file).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let mut s = match open_watched(store, "report") {
        Ok(s) => s,
        Err(c) => return c,
    };
    let mut stats = match report::gather(&mut s, store) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    if let Some(p) = &p {
        match crate::tier3_cmd::estimate(p, &mut s) {
            Ok(est) => stats.tier3 = est.describe(p),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(exit::INTERNAL);
            }
        }
    }
    let text = match format {
        "html" => report::to_html(&stats),
        "json" => report::to_json(&stats),
        _ => report::to_markdown(&stats),
    };
    let r = match output {
        Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display())),
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.contains("Broken pipe") => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::INTERNAL)
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `aioss bench audit`: the same generated stream decided with no store and with the
/// SQLite store (durable group commit, checkpoints), in one process; medians and the ratio.
pub fn bench(
    policy: &Path,
    n: usize,
    mix: (usize, usize, usize),
    runs: usize,
    checkpoint_every: u64,
) -> ExitCode {
    let p = match crate::policy_cmd::load_file(policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let lines = match crate::bench_cmd::stream(&p, n, mix, 0x5EED) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let dir = std::env::temp_dir();
    let mut plain = Vec::new();
    let mut audited = Vec::new();
    let mut store_only = Vec::new();
    let mut sink: Vec<u8> = Vec::with_capacity(1 << 20);
    for run_no in 0..runs {
        // No store: decide and print.
        let mut g = Governor::new(p.clone());
        let t = Instant::now();
        for l in &lines {
            sink.clear();
            match g.decide_line_at(l, f64::NAN) {
                Ok(d) => sink.extend_from_slice(d.to_json(g.policy()).as_bytes()),
                Err(e) => sink.extend_from_slice(e.to_json().as_bytes()),
            }
            sink.push(b'\n');
        }
        plain.push(t.elapsed().as_secs_f64());
        // With the store.
        let path = dir.join(format!(
            "aioss-bench-audit-{}-{run_no}.db",
            std::process::id()
        ));
        let remove = |path: &Path| {
            for suffix in ["", "-wal", "-shm"] {
                let mut s = path.as_os_str().to_owned();
                s.push(suffix);
                let _ = std::fs::remove_file(Path::new(&s));
            }
        };
        remove(&path);
        let key = match Key::generate() {
            Ok(k) => k,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(exit::INTERNAL);
            }
        };
        let mut g = Governor::new(p.clone());
        let path_s = path.to_string_lossy().to_string();
        let mut w = match open_audited(&mut g, &path_s, Some(key), checkpoint_every, false) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(exit::INTERNAL);
            }
        };
        let mut it = lines.iter();
        let mut next = |_block: bool| it.next().map_or(Next::End, |l| Next::Line(l.clone()));
        let mut out = std::io::sink();
        let t = Instant::now();
        let r = run(&mut g, &mut w, &mut next, &mut out, false, false);
        audited.push(t.elapsed().as_secs_f64());
        remove(&path);
        match r {
            Ok(s) => store_only.push((s.store_secs, s.commit_secs)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(exit::INTERNAL);
            }
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "a count")]
    let nf = n as f64;
    let s = median(store_only.iter().map(|x| x.0).collect());
    let c = median(store_only.iter().map(|x| x.1).collect());
    let (a, b) = (median(plain), median(audited));
    println!("policy {} ({}), {n} proposals, mix {}/{}/{}, {runs} runs, checkpoint every {checkpoint_every}", p.name, policy.display(), mix.0, mix.1, mix.2);
    println!(
        "no store:          {:>10.0} decisions/s  ({a:.3} s)",
        nf / a
    );
    println!(
        "--audit (SQLite):  {:>10.0} decisions/s  ({b:.3} s)  ratio {:.3}",
        nf / b,
        a / b
    );
    println!(
        "records made on the deciding thread: {s:.3} s ({:.2} µs each); committer thread \
         busy {c:.3} s ({:.0} records/s: hash chain, checkpoints, inserts, fsync)",
        s * 1e6 / nf,
        nf / c
    );
    ExitCode::SUCCESS
}
