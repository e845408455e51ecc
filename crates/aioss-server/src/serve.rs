//! The `aioss serve` process: load everything, listen, stop gracefully.
//!
//! Shutdown order (SIGTERM or Ctrl-C), so that nothing acknowledged is lost: stop
//! accepting connections; let in-flight requests finish (each waits for its record to be
//! durable); then the governor thread decides whatever is still queued, the committer
//! commits it with a signed checkpoint over the head, and only then does the process exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use aioss_core::Governor;

use crate::config::{Config, Settings};
use crate::engine::{self, Job, Shared};
use crate::http::{self, App};
use crate::who::Who;
use crate::Error;

/// Options of `aioss serve`.
#[derive(Clone, Debug)]
pub struct Options {
    /// The policy file.
    pub policy: PathBuf,
    /// The audit store (an SQLite file).
    pub audit: String,
    /// Where to listen (default 127.0.0.1:8080).
    pub listen: Option<String>,
    /// The configuration file; without it, local-development mode.
    pub config: Option<PathBuf>,
    /// The checkpoint signing key file.
    pub key: Option<PathBuf>,
    /// Sign over records at the end of the store that no signature of the key covers (an
    /// operator's explicit decision; by default the server refuses to start on them).
    pub accept_unsigned_tail: bool,
}

/// The default listening address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Load the policy file.
pub fn load_policy(path: &std::path::Path) -> Result<aioss_core::Policy, Error> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Policy(format!("error: cannot read `{shown}`: {e}")))?;
    aioss_core::load(&shown, &text).map_err(|e| Error::Policy(e.to_string()))
}

/// WAL bytes between the full checkpoints of the server's embedded store (the writer's
/// short pass that lets the WAL restart; the background thread copies and syncs every
/// 2 MiB in between).
pub const CHECKPOINT_BYTES: u64 = 16 << 20;

/// Open the store for the server (with background WAL checkpoints, so that no commit
/// stalls on one), rebuild `g`'s state from it (its last snapshot and the records after
/// it), and make its writer; with the `snapshot` record the server writes first (why it
/// starts, what it restored), unless the store is empty.
fn open_store(
    g: &mut Governor,
    arg: &str,
    key: Option<aioss_audit::Key>,
    checkpoint_every: u64,
    accept_unsigned_tail: bool,
) -> Result<(aioss_audit::Writer, Vec<String>, Option<serde_json::Value>), Error> {
    if arg.contains("://") {
        return Err(Error::Usage(format!(
            "`{arg}`: database URLs are not supported yet; give a path to an SQLite file"
        )));
    }
    let mut s = aioss_audit::SqliteStore::open(std::path::Path::new(arg))?;
    s.enable_background_checkpoints(CHECKPOINT_BYTES)?;
    let o = aioss_audit::open_writer(
        g,
        Box::new(s),
        arg,
        key,
        checkpoint_every,
        accept_unsigned_tail,
    )?;
    let start = (o.writer.next_seq() > 0).then(|| {
        serde_json::json!({
            "reason": "start",
            "restored_from": o.from_snapshot,
            "redecided": o.redecided,
            "accepted_unsigned": o.accepted_unsigned.map(|(a, b)| [a, b]),
        })
    });
    Ok((o.writer, o.notes, start))
}

/// Run the server until SIGTERM or Ctrl-C. Prints `aioss serve: listening on http://ADDR`
/// on standard error once it accepts connections.
pub fn run(o: &Options) -> Result<(), Error> {
    let config = o.config.as_deref().map(Config::read).transpose()?;
    let listen = o.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let addr: SocketAddr = listen.parse().map_err(|e| {
        Error::Usage(format!(
            "`{listen}` is not an address like 127.0.0.1:8080: {e}"
        ))
    })?;
    if config.is_none() {
        if !addr.ip().is_loopback() {
            return Err(Error::Usage(format!(
                "`{listen}` is not a loopback address: without `--config` (local-development mode, no authentication) the server only listens on loopback"
            )));
        }
        eprintln!(
            "aioss serve: LOCAL-DEVELOPMENT MODE (no --config): no authentication, loopback only; every caller may propose, answer holds and reload the policy"
        );
    }
    let settings: Settings = config
        .as_ref()
        .map(|c| c.settings.clone())
        .unwrap_or_default();
    let policy = load_policy(&o.policy)?;
    let key = o.key.as_deref().map(aioss_audit::Key::read).transpose()?;
    if key.is_none() {
        eprintln!("aioss serve: no --key: the audit chain is written without signed checkpoints");
    }
    // Listen before the store is opened: a start that fails here (the port in use) leaves
    // no store behind (issue 23, item 8).
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| Error::Io(format!("cannot listen on {addr}: {e}")))?;
    let mut g = Governor::new(policy);
    let (w, notes, start) = open_store(
        &mut g,
        &o.audit,
        key,
        settings.checkpoint_every,
        o.accept_unsigned_tail,
    )?;
    for n in notes {
        eprintln!("{n}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("starting the runtime: {e}")))?;
    rt.block_on(serve(g, w, config, o, listener, start))
}

/// A started server without its listener: the governor and committer threads and the
/// handlers' state. [`run`] serves it on a socket; tests drive [`Running::router`] directly.
#[derive(Debug)]
pub struct Running {
    /// The handlers' state.
    pub app: Arc<App>,
    jobs: std::sync::mpsc::SyncSender<Job>,
    threads: engine::Threads,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Running {
    /// Start the threads for governor `g` (its state already rebuilt from the store) and
    /// writer `w`.
    pub fn start(
        g: Governor,
        w: aioss_audit::Writer,
        config: Option<Config>,
        policy_path: PathBuf,
        store_path: PathBuf,
    ) -> Running {
        Self::start_with(g, w, config, policy_path, store_path, None)
    }

    /// [`Running::start`], writing first a `snapshot` record of the state with `start`
    /// (why the server starts) in its `proposal`.
    pub fn start_with(
        g: Governor,
        w: aioss_audit::Writer,
        config: Option<Config>,
        policy_path: PathBuf,
        store_path: PathBuf,
        start: Option<serde_json::Value>,
    ) -> Running {
        let settings: Settings = config
            .as_ref()
            .map(|c| c.settings.clone())
            .unwrap_or_default();
        let shared = Arc::new(Shared::new(Arc::new(g.policy().clone()), &settings));
        let mut recovered = engine::recover(&store_path, g.policy(), &settings);
        recovered.start = start;
        let (jobs, threads) = engine::start(g, w, settings, Arc::clone(&shared), recovered);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let app = Arc::new(App::new(
            jobs.clone(),
            shared,
            config,
            policy_path,
            store_path,
            stop_rx,
        ));
        Running {
            app,
            jobs,
            threads,
            stop,
        }
    }

    /// Open (or create) the store at `store`, rebuild the state, and start (refusing a
    /// store whose last records no signature of `key` covers: [`Running::open_with`]).
    pub fn open(
        policy_path: &std::path::Path,
        store: &str,
        key: Option<aioss_audit::Key>,
        config: Option<Config>,
    ) -> Result<Running, Error> {
        Self::open_with(policy_path, store, key, config, false)
    }

    /// [`Running::open`]; with `accept_unsigned_tail`, records at the end of the store
    /// that no signature of `key` covers are signed over (the operator accepted them).
    pub fn open_with(
        policy_path: &std::path::Path,
        store: &str,
        key: Option<aioss_audit::Key>,
        config: Option<Config>,
        accept_unsigned_tail: bool,
    ) -> Result<Running, Error> {
        let every = config
            .as_ref()
            .map_or(Settings::default().checkpoint_every, |c| {
                c.settings.checkpoint_every
            });
        let mut g = Governor::new(load_policy(policy_path)?);
        let (w, notes, start) = open_store(&mut g, store, key, every, accept_unsigned_tail)?;
        for n in notes {
            eprintln!("{n}");
        }
        Ok(Running::start_with(
            g,
            w,
            config,
            policy_path.to_path_buf(),
            PathBuf::from(store),
            start,
        ))
    }

    /// The router over this server's state.
    pub fn router(&self) -> axum::Router {
        http::app(Arc::clone(&self.app))
    }

    /// Tell long polls the server is stopping.
    pub fn stopping(&self) {
        let _ = self.stop.send(true);
    }

    /// Stop after the in-flight requests are answered: decide what is queued, commit,
    /// sign a checkpoint over the head, join the threads. Blocks.
    pub fn stop(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        self.app
            .shared
            .metrics
            .queue_depth
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.jobs.send(Job::Shutdown);
        self.threads
            .join()
            .map_err(|e| Error::Io(format!("the final audit commit failed: {e}")))
    }
}

async fn serve(
    g: Governor,
    w: aioss_audit::Writer,
    config: Option<Config>,
    o: &Options,
    listener: std::net::TcpListener,
    start: Option<serde_json::Value>,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| Error::Io(format!("cannot listen: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Io(e.to_string()))?;
    let running = Running::start_with(
        g,
        w,
        config,
        o.policy.clone(),
        PathBuf::from(&o.audit),
        start,
    );
    let app = Arc::clone(&running.app);
    #[cfg(unix)]
    {
        let a = Arc::clone(&app);
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the policy");
                    let who = Who::signal();
                    if let Err(e) = http::reload(&a, &who).await {
                        a.refuse("POST", "/v1/policy/reload", &who, e).await;
                    }
                }
            });
        }
    }
    eprintln!("aioss serve: listening on http://{local}");
    tracing::info!(%local, policy = %app.shared.policy().hash, "listening");
    let stop = running.stop.clone();
    let limits = crate::listen::Limits::of(&running.app.settings);
    crate::listen::serve(
        listener,
        running.router(),
        limits,
        Arc::clone(&running.app.shared),
        async move {
            stop_signal().await;
            tracing::info!("stopping: no new connections; finishing in-flight requests");
            let _ = stop.send(true);
        },
    )
    .await;
    drop(app);
    // Every in-flight request has its answer; drain and commit what is left, checkpoint.
    let joined = tokio::task::spawn_blocking(move || running.stop())
        .await
        .map_err(|e| Error::Io(format!("stopping: {e}")))?;
    joined?;
    eprintln!("aioss serve: stopped; the audit store is flushed and checkpointed");
    Ok(())
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
