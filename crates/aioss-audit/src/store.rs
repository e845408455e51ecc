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
    /// Append records and checkpoints, and replace the store's signed head with `head`
    /// (a signature over the last of these records), in one transaction. The default
    /// keeps no signed head ([`Store::append`]).
    fn append_signed(
        &mut self,
        records: &[Record],
        checkpoints: &[Checkpoint],
        head: Option<&Checkpoint>,
    ) -> Result<(), Error> {
        let _ = head;
        self.append(records, checkpoints)
    }
    /// The signed head: a signature over the head as of the writer's last commit (see
    /// `docs/audit-format.md`), if the store keeps one.
    fn signed_head(&mut self) -> Result<Option<Checkpoint>, Error> {
        Ok(None)
    }
    /// Start reading a consistent view: every read until [`Store::end_read`] sees the
    /// store as it was at the first of them, whatever a writer appends meanwhile.
    fn begin_read(&mut self) -> Result<(), Error> {
        Ok(())
    }
    /// End the view of [`Store::begin_read`].
    fn end_read(&mut self) -> Result<(), Error> {
        Ok(())
    }
    /// Every record from `seq` on, in storage order (as [`Store::scan`]). The default
    /// scans the whole store and skips the others.
    fn scan_from(
        &mut self,
        seq: u64,
        f: &mut dyn FnMut(Record) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        self.scan(&mut |r| if r.seq < seq { Ok(true) } else { f(r) })
    }
    /// Keep the text of a policy a writer decides under, by its hash (`sha256:…` of the
    /// text): `aioss audit replay STORE` re-decides every record under the policy it names,
    /// across any number of policy changes. Keeping a text already kept changes nothing.
    fn put_policy(&mut self, hash: &str, text: &str) -> Result<(), Error>;
    /// Every policy text kept ([`Store::put_policy`]), as `(hash, text)`; none in a store
    /// written before they were kept.
    fn policies(&mut self) -> Result<Vec<(String, String)>, Error>;
    /// The last record of this kind, if any. The default scans the whole store.
    fn last_of_kind(&mut self, kind: &str) -> Result<Option<Record>, Error> {
        let mut last = None;
        self.scan(&mut |r| {
            if r.kind == kind {
                last = Some(r);
            }
            Ok(true)
        })?;
        Ok(last)
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
    /// Whether the file has the `signed_head` table (a read-only store may predate it).
    has_signed_head: bool,
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
/// the writer's, which then flushed everything the background had copied (the main source
/// of the server's p99); synced in 2 MiB steps in the background, the writer's pass is
/// short. The figures are in BENCHMARKS.md ("Figures moved out of comments").
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
CREATE TABLE IF NOT EXISTS signed_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    created TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS policies (hash TEXT PRIMARY KEY, text TEXT NOT NULL);
";

/// The tables a store must have (`signed_head` is optional: stores written before it).
const REQUIRED_TABLES: [&str; 3] = ["meta", "records", "checkpoints"];

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
            has_signed_head: true,
        })
    }

    /// Open an existing store for reading only, changing nothing and creating no file
    /// (`aioss audit verify`, `replay`, `export`, `report`: the store may be evidence).
    ///
    /// Without a `-wal` file beside it, the file is opened `immutable` (SQLite then makes
    /// no `-wal` or `-shm` file either); with one (a writer is running, or one stopped
    /// without a checkpoint), `mode=ro`, which reads the WAL through the `-shm` file that
    /// exists with it. A file that is not an audit store (empty, zero bytes, a table
    /// missing, another format version) is an error naming what is wrong.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, Error> {
        let shown = path.display();
        if !path.is_file() {
            return Err(Error::Store(format!("{shown}: no such store")));
        }
        let mut wal = path.as_os_str().to_os_string();
        wal.push("-wal");
        let params = if Path::new(&wal).exists() {
            "mode=ro"
        } else {
            "mode=ro&immutable=1"
        };
        let uri = format!("file:{}?{params}", uri_path(path));
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&uri, flags)
            .map_err(|e| Error::Store(format!("{shown}: {e}")))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut st| {
                st.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| Error::Store(format!("{shown}: not an aioss audit store: {e}")))?;
        for t in REQUIRED_TABLES {
            if !tables.iter().any(|x| x == t) {
                return Err(Error::Store(format!(
                    "{shown}: not an aioss audit store: it has no `{t}` table{}",
                    if tables.is_empty() {
                        " (it is empty)"
                    } else {
                        ""
                    }
                )));
            }
        }
        let v: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
                r.get(0)
            })
            .ok();
        if v.as_deref() != Some(FORMAT_VERSION.to_string().as_str()) {
            return Err(Error::Store(format!(
                "{shown}: audit format version {}, this build reads version {FORMAT_VERSION}",
                v.as_deref().unwrap_or("(none)")
            )));
        }
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            background: None,
            has_signed_head: tables.iter().any(|x| x == "signed_head"),
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
        self.append_signed(records, checkpoints, None)
    }

    fn append_signed(
        &mut self,
        records: &[Record],
        checkpoints: &[Checkpoint],
        head: Option<&Checkpoint>,
    ) -> Result<(), Error> {
        if records.is_empty() && checkpoints.is_empty() && head.is_none() {
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
            if let Some(c) = head {
                // INVARIANT (signed-head-atomic): the signature over the head is written
                // in the transaction that writes the head.
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO signed_head (id, seq, head_hash, created, public_key, signature) VALUES (1, ?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
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

    fn signed_head(&mut self) -> Result<Option<Checkpoint>, Error> {
        if !self.has_signed_head {
            return Ok(None);
        }
        let mut st = self.conn.prepare_cached(
            "SELECT seq, head_hash, created, public_key, signature FROM signed_head WHERE id = 1",
        )?;
        let mut rows = st.query([])?;
        match rows.next()? {
            Some(r) => Ok(Some(Checkpoint {
                seq: to_u64(r.get(0)?),
                head_hash: r.get(1)?,
                created: r.get(2)?,
                public_key: r.get(3)?,
                signature: r.get(4)?,
            })),
            None => Ok(None),
        }
    }

    fn begin_read(&mut self) -> Result<(), Error> {
        // A deferred transaction: its first read fixes the snapshot every later read sees.
        self.conn.execute_batch("BEGIN")?;
        Ok(())
    }

    fn end_read(&mut self) -> Result<(), Error> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    fn scan_from(
        &mut self,
        seq: u64,
        f: &mut dyn FnMut(Record) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM records WHERE seq >= ?1 ORDER BY seq"
        ))?;
        let mut rows = st.query(params![to_i64(seq)])?;
        while let Some(r) = rows.next()? {
            if !f(row_record(r)?)? {
                break;
            }
        }
        Ok(())
    }

    fn put_policy(&mut self, hash: &str, text: &str) -> Result<(), Error> {
        self.conn.execute(
            "INSERT OR IGNORE INTO policies (hash, text) VALUES (?1, ?2)",
            params![hash, text],
        )?;
        Ok(())
    }

    fn policies(&mut self) -> Result<Vec<(String, String)>, Error> {
        // A store written before policy texts were kept has no such table (and a
        // read-only one cannot be given one).
        let has: i64 = self.conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'policies'",
            [],
            |r| r.get(0),
        )?;
        if has == 0 {
            return Ok(Vec::new());
        }
        let mut st = self
            .conn
            .prepare("SELECT hash, text FROM policies ORDER BY hash")?;
        let v = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(v)
    }

    fn last_of_kind(&mut self, kind: &str) -> Result<Option<Record>, Error> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM records WHERE kind = ?1 ORDER BY seq DESC LIMIT 1"
        ))?;
        let mut rows = st.query(params![kind])?;
        match rows.next()? {
            Some(r) => Ok(Some(row_record(r)?)),
            None => Ok(None),
        }
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

/// A path as the path part of an SQLite `file:` URI (percent-encoded but for unreserved
/// characters and `/`).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(b) {
            out.push(char::from(*b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Open the store named by a command-line `STORE` argument: a path to the embedded store,
/// created if missing with `create`, else opened read-only ([`SqliteStore::open_read_only`]).
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
        SqliteStore::open_read_only(p)?
    }))
}
