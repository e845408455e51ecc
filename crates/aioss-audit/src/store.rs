//! Where records live: the [`Store`] trait, and the embedded default, [`SqliteStore`].

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags};

use crate::checkpoint::Checkpoint;
use crate::record::{Record, FORMAT_VERSION};
use crate::Error;

/// A store of audit records and checkpoints. Callers (the CLI, a server) see only this
/// trait, so another backend (a PostgreSQL store shared by replicas) can follow without
/// touching them. A store is `Send`, so it can be committed to from a thread of its own.
pub trait Store: Send {
    /// The last record's `(seq, hash)`, or `None` for an empty store.
    fn head(&mut self) -> Result<Option<(u64, String)>, Error>;
    /// Append records and checkpoints in one transaction. When this returns `Ok`, they are
    /// durable (they survive a crash of the process and of the machine).
    fn append(&mut self, records: &[Record], checkpoints: &[Checkpoint]) -> Result<(), Error>;
    /// Call `f` on every record in storage order (ascending `seq`), until it returns
    /// `Ok(false)` or an error.
    fn scan(&mut self, f: &mut dyn FnMut(Record) -> Result<bool, Error>) -> Result<(), Error>;
    /// Every checkpoint, in the order they were written.
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, Error>;
    /// The number of records.
    fn count(&mut self) -> Result<u64, Error>;
    /// Housekeeping between commits, off the path of any acknowledgement (the embedded
    /// store's two-phase WAL checkpoint, when enabled). The default does nothing.
    fn maintain(&mut self) -> Result<(), Error> {
        Ok(())
    }
    /// Every record with this decision id (the decision, then its confirmations and
    /// outcomes), in storage order. The default scans the whole store.
    fn records_for(&mut self, decision_id: &str) -> Result<Vec<Record>, Error> {
        let mut out = Vec::new();
        self.scan(&mut |r| {
            if r.decision_id == decision_id {
                out.push(r);
            }
            Ok(true)
        })?;
        Ok(out)
    }
}

/// The embedded store: one SQLite file in WAL mode, `synchronous=FULL` (a committed
/// transaction is on disk), one transaction per batch of records (group commit).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: std::path::PathBuf,
    background: Option<Background>,
}

/// Bytes of records between two background passes (each copies them into the database
/// and syncs it, in small steps that do not hold up the commits' syncs for long).
const BACKGROUND_STEP: u64 = 2 << 20;
/// Most passes of the background checkpoint thread per request (the bulk and catch-ups).
const CATCH_UP_PASSES: u32 = 8;
/// WAL frames left uncopied below which the catch-up passes stop (1 MiB of 16 KiB pages).
const SMALL_TAIL_FRAMES: i64 = 64;

/// WAL checkpoints in two phases, so that no commit waits for a large one: a thread with a
/// connection of its own copies the WAL into the database every [`BACKGROUND_STEP`] bytes
/// (PASSIVE checkpoints, which never block the writer) and syncs the database file; once
/// `threshold` bytes were written, the writer copies the short tail written since the last
/// of those passes ([`Store::maintain`]), after which SQLite restarts the WAL from its
/// beginning.
///
/// Why: SQLite's automatic checkpoint runs inside the commit that crosses the threshold
/// and stalls it (and every request waiting on it) for tens of milliseconds. And why the
/// background sync: SQLite syncs the database file only in the pass that empties the WAL,
/// the writer's, which then flushed everything the background had copied (5–6 ms per
/// 8 MiB on this disk, the main source of the server's p99); synced in 2 MiB steps in the
/// background, the writer's pass takes ~1 ms.
#[derive(Debug)]
struct Background {
    request: std::sync::mpsc::Sender<()>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    running: bool,
    bytes: u64,
    threshold: u64,
    /// `bytes` when the last background pass was requested.
    requested_at: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    time TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    proposal TEXT NOT NULL,
    decision TEXT NOT NULL,
    latency_us INTEGER NOT NULL,
    state_digest TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_decision_id ON records (decision_id);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    created TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL
);
";

const COLUMNS: &str = "seq, kind, decision_id, timestamp, time, policy_name, policy_version, \
    policy_hash, proposal, decision, latency_us, state_digest, prev_hash, hash";

fn to_i64(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

fn to_u64(x: i64) -> u64 {
    u64::try_from(x).unwrap_or(0)
}

fn row_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        seq: to_u64(r.get(0)?),
        kind: r.get(1)?,
        decision_id: r.get(2)?,
        timestamp: r.get(3)?,
        time: r.get(4)?,
        policy_name: r.get(5)?,
        policy_version: r.get(6)?,
        policy_hash: r.get(7)?,
        proposal: r.get(8)?,
        decision: r.get(9)?,
        latency_us: to_u64(r.get(10)?),
        state_digest: r.get(11)?,
        prev_hash: r.get(12)?,
        hash: r.get(13)?,
    })
}

impl SqliteStore {
    /// Open the store at `path`, creating it (and its schema) if it does not exist.
    pub fn open(path: &Path) -> Result<SqliteStore, Error> {
        Self::open_with(path, true)
    }

    /// Open an existing store; an error if there is no file at `path`.
    pub fn open_existing(path: &Path) -> Result<SqliteStore, Error> {
        if !path.exists() {
            return Err(Error::Store(format!("{}: no such store", path.display())));
        }
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, create: bool) -> Result<SqliteStore, Error> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Records are a few kB: larger pages (only takes effect on a new file) and a
        // larger WAL between checkpoints mean fewer page writes and fewer copies.
        conn.execute_batch("PRAGMA page_size=16384; PRAGMA cache_size=-65536;")?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Store(format!(
                "{}: could not enable WAL mode",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=4096;")?;
        conn.execute_batch(SCHEMA).map_err(|e| {
            Error::Store(format!("{}: not an aioss audit store: {e}", path.display()))
        })?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?1)",
            params![FORMAT_VERSION.to_string()],
        )?;
        let v: String = conn.query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
            r.get(0)
        })?;
        if v != FORMAT_VERSION.to_string() {
            return Err(Error::Store(format!(
                "{}: audit format version {v}, this build reads version {FORMAT_VERSION}",
                path.display()
            )));
        }
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            background: None,
        })
    }

    /// Checkpoint the WAL in two phases (`Background`), the writer's once about
    /// `threshold_bytes` of records were written since the last full checkpoint, instead
    /// of SQLite's automatic checkpoint inside a commit (kept only as a safety net at
    /// 1 GiB of WAL). For a long-running writer that must not stall: the server.
    pub fn enable_background_checkpoints(&mut self, threshold_bytes: u64) -> Result<(), Error> {
        self.conn
            .execute_batch("PRAGMA wal_autocheckpoint=65536;")?;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conn = Connection::open(&self.path)
            .map_err(|e| Error::Store(format!("{}: {e}", self.path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let d = std::sync::Arc::clone(&done);
        let path = self.path.clone();
        std::thread::Builder::new()
            .name("aioss-checkpoint".into())
            .spawn(move || {
                for () in rx {
                    // The bulk, then catch-up passes: each copies what the writer appended
                    // during the one before, until little is left for the writer's own
                    // final pass (which stalls commits for as long as it takes).
                    for _ in 0..CATCH_UP_PASSES {
                        let left = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                            Ok(r.get::<_, i64>(1)? - r.get::<_, i64>(2)?)
                        });
                        if left.map_or(true, |n| n <= SMALL_TAIL_FRAMES) {
                            break;
                        }
                    }
                    // SQLite syncs the database file only in the pass that empties the
                    // WAL: the writer's. Syncing what the passes above copied now, here,
                    // leaves that pass only its own few pages to flush. (Best effort: if
                    // this fails, that pass still syncs everything itself.)
                    let _ = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.sync_data());
                    d.store(true, std::sync::atomic::Ordering::Release);
                }
            })
            .map_err(|e| Error::Store(format!("starting the checkpoint thread: {e}")))?;
        self.background = Some(Background {
            request: tx,
            done,
            running: false,
            bytes: 0,
            threshold: threshold_bytes.max(1),
            requested_at: 0,
        });
        Ok(())
    }

    /// The underlying connection (for tests and tools that inspect the file).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Store for SqliteStore {
    fn head(&mut self) -> Result<Option<(u64, String)>, Error> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1")?;
        let mut rows = st.query([])?;
        match rows.next()? {
            Some(r) => Ok(Some((to_u64(r.get(0)?), r.get(1)?))),
            None => Ok(None),
        }
    }

    fn append(&mut self, records: &[Record], checkpoints: &[Checkpoint]) -> Result<(), Error> {
        if records.is_empty() && checkpoints.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(&format!(
                "INSERT INTO records ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ))?;
            for r in records {
                st.execute(params![
                    to_i64(r.seq),
                    r.kind,
                    r.decision_id,
                    r.timestamp,
                    r.time,
                    r.policy_name,
                    r.policy_version,
                    r.policy_hash,
                    r.proposal,
                    r.decision,
                    to_i64(r.latency_us),
                    r.state_digest,
                    r.prev_hash,
                    r.hash
                ])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT INTO checkpoints (seq, head_hash, created, public_key, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for c in checkpoints {
                st.execute(params![
                    to_i64(c.seq),
                    c.head_hash,
                    c.created,
                    c.public_key,
                    c.signature
                ])?;
            }
        }
        tx.commit()?;
        if let Some(b) = &mut self.background {
            let n: usize = records
                .iter()
                .map(|r| r.proposal.len() + r.decision.len() + 512)
                .sum();
            b.bytes = b.bytes.saturating_add(n as u64);
        }
        Ok(())
    }

    fn maintain(&mut self) -> Result<(), Error> {
        let Some(b) = &mut self.background else {
            return Ok(());
        };
        if b.running {
            if b.done.swap(false, std::sync::atomic::Ordering::Acquire) {
                b.running = false;
                if b.bytes >= b.threshold {
                    // The bulk is in the database and on disk; copy the tail written
                    // since the last background pass. The next write then restarts the
                    // WAL from its beginning.
                    b.bytes = 0;
                    b.requested_at = 0;
                    self.conn
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
                }
            }
        } else if b.bytes.saturating_sub(b.requested_at) >= BACKGROUND_STEP.min(b.threshold)
            && b.request.send(()).is_ok()
        {
            b.running = true;
            b.requested_at = b.bytes;
        }
        Ok(())
    }

    fn scan(&mut self, f: &mut dyn FnMut(Record) -> Result<bool, Error>) -> Result<(), Error> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM records ORDER BY seq"))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            if !f(row_record(r)?)? {
                break;
            }
        }
        Ok(())
    }

    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, Error> {
        let mut st = self.conn.prepare(
            "SELECT seq, head_hash, created, public_key, signature FROM checkpoints ORDER BY id",
        )?;
        let v = st
            .query_map([], |r| {
                Ok(Checkpoint {
                    seq: to_u64(r.get(0)?),
                    head_hash: r.get(1)?,
                    created: r.get(2)?,
                    public_key: r.get(3)?,
                    signature: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(v)
    }

    fn records_for(&mut self, decision_id: &str) -> Result<Vec<Record>, Error> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM records WHERE decision_id = ?1 ORDER BY seq"
        ))?;
        let v = st
            .query_map(params![decision_id], row_record)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(v)
    }

    fn count(&mut self) -> Result<u64, Error> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))?;
        Ok(to_u64(n))
    }
}

/// Open the store named by a command-line `STORE` argument: a path to the embedded store.
/// (Database URLs are for a later backend.)
pub fn open_store(arg: &str, create: bool) -> Result<Box<dyn Store>, Error> {
    if arg.contains("://") {
        return Err(Error::Store(format!(
            "`{arg}`: database URLs are not supported yet; give a path to an SQLite file"
        )));
    }
    let p = Path::new(arg);
    Ok(Box::new(if create {
        SqliteStore::open(p)?
    } else {
        SqliteStore::open_existing(p)?
    }))
}
