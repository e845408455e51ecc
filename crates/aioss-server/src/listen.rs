//! Serving connections: the accept loop, its caps, and the timeouts of every connection.
//!
//! Why not `axum::serve`: it has no header-read or idle timeout and no per-address cap, so
//! idle sockets up to `max_connections` locked everyone out, `/healthz` included
//! (slowloris). Here:
//!
//! * every connection has a **keep-alive timeout** (no byte for `keep_alive_timeout_secs`
//!   while no request is in progress: closed) and a **header-read timeout** (a request's
//!   head must be complete `header_read_timeout_secs` after its first byte); a response
//!   the client does not read is given up after `keep_alive_timeout_secs` of stalled
//!   writing. The **body-read timeout** is the handlers' (`crate::http`), which answer 408;
//! * one address holds at most `max_connections_per_address` connections (more are
//!   closed at once, counted in `aioss_connection_events_total{event="refused_per_address"}`);
//! * a request hyper cannot parse (a bad request line or header, a URI or head too long,
//!   a bad `Content-Length`) is answered by hyper itself, 400, 414 or 431 with an empty
//!   body and `connection: close` (hyper has no hook for the body), and counted
//!   (`event="protocol_error"`); a connection closed by a deadline is `event="timed_out"`;
//! * past `max_connections`, up to `reserved_connections` more are accepted, each for one
//!   request, and answer only `GET /healthz` and `GET /metrics` (anything else: 503
//!   `too_many_connections`), so health stays answerable while the cap is reached; past
//!   those, new connections wait in the kernel's backlog;
//! * on shutdown no new connection is accepted, idle ones are closed, and in-flight
//!   requests are answered before [`serve`] returns.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Settings;
use crate::engine::Shared;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Family;

/// The peer address of a request's connection, as a request extension (logged with
/// refusals that are not recorded).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// A duration of `secs` seconds, clamped into `[1 ms, 1 day]` (a setting is validated as
/// finite and non-negative; this keeps any value from overflowing an `Instant`).
pub fn secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.clamp(0.001, 86_400.0)).unwrap_or(Duration::from_secs(1))
}

/// The limits of the accept loop and of each connection, from the settings.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served normally at once.
    pub max_connections: usize,
    /// Connections accepted past that, answering health and metrics only.
    pub reserved: usize,
    /// Connections from one address at once.
    pub per_address: usize,
    /// Longest time from a request's first byte to its complete head.
    pub header_read: Duration,
    /// Longest silence while no request is in progress; also the longest write stall.
    pub keep_alive: Duration,
}

impl Limits {
    /// The limits of `s`.
    pub fn of(s: &Settings) -> Limits {
        Limits {
            max_connections: s.max_connections.max(1),
            reserved: s.reserved_connections,
            per_address: s.max_connections_per_address.max(1),
            header_read: secs(s.header_read_timeout_secs),
            keep_alive: secs(s.keep_alive_timeout_secs),
        }
    }
}

/// Where a connection is in its life: what decides which deadline applies to a read.
#[derive(Debug)]
struct Phase {
    /// Requests being handled (hyper serves one at a time on HTTP/1).
    in_flight: usize,
    /// When the connection last became idle (accepted, or a response was produced).
    idle_since: Instant,
    /// When the first byte of the next request's head arrived, while it is incomplete.
    head_since: Option<Instant>,
    /// The connection's task, parked on a read while a request was in flight (no deadline
    /// then): woken when the request ends, so that the keep-alive deadline is armed.
    parked: Option<std::task::Waker>,
}

type SharedPhase = Arc<Mutex<Phase>>;

fn phase<R>(p: &SharedPhase, f: impl FnOnce(&mut Phase) -> R) -> Option<R> {
    p.lock().ok().map(|mut g| f(&mut g))
}

/// A TCP stream with the connection's read and write deadlines.
struct TimedIo {
    stream: TcpStream,
    phase: SharedPhase,
    limits: Limits,
    read_timer: Pin<Box<tokio::time::Sleep>>,
    write_timer: Pin<Box<tokio::time::Sleep>>,
    write_stalled: Option<Instant>,
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_string())
}

impl AsyncRead for TimedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let now = Instant::now();
                    phase(&this.phase, |p| {
                        if p.in_flight == 0 && p.head_since.is_none() {
                            p.head_since = Some(now);
                        }
                    });
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                // While a request is handled, its handler bounds the body read; between
                // requests, a deadline: the head's, or the keep-alive's.
                let deadline = phase(&this.phase, |p| {
                    if p.in_flight > 0 {
                        p.parked = Some(cx.waker().clone());
                        return None;
                    }
                    Some(match p.head_since {
                        Some(t) => (t + this.limits.header_read, "header read timeout"),
                        None => (p.idle_since + this.limits.keep_alive, "keep-alive timeout"),
                    })
                })
                .flatten();
                let Some((at, what)) = deadline else {
                    return Poll::Pending;
                };
                if Instant::now() >= at {
                    return Poll::Ready(Err(timed_out(what)));
                }
                this.read_timer.as_mut().reset(at.into());
                match this.read_timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(timed_out(what))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl TimedIo {
    /// A write that made no progress: an error once it has stalled for the keep-alive
    /// timeout (a client that does not read its answers holds no connection for ever).
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let now = Instant::now();
        let since = *self.write_stalled.get_or_insert(now);
        let at = since + self.limits.keep_alive;
        if now >= at {
            return Poll::Ready(timed_out("write timeout"));
        }
        self.write_timer.as_mut().reset(at.into());
        match self.write_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(timed_out("write timeout")),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Pending => self.stalled(cx).map(Err),
            other => {
                self.write_stalled = None;
                other
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.stalled(cx).map(Err),
            other => {
                self.write_stalled = None;
                other
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Pending => self.stalled(cx).map(Err),
            other => {
                self.write_stalled = None;
                other
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Marks a request in flight on its connection for as long as it lives.
struct InFlight(SharedPhase);

impl InFlight {
    fn begin(p: &SharedPhase) -> InFlight {
        phase(p, |p| {
            p.in_flight += 1;
            p.head_since = None;
        });
        InFlight(Arc::clone(p))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let parked = phase(&self.0, |p| {
            p.in_flight = p.in_flight.saturating_sub(1);
            p.idle_since = Instant::now();
            p.parked.take()
        })
        .flatten();
        // INVARIANT (idle-deadline-armed): a connection that becomes idle reads again,
        // under the keep-alive deadline, even if no byte ever arrives.
        if let Some(w) = parked {
            w.wake();
        }
    }
}

/// The service of one connection: the router (or, on a reserved connection, health and
/// metrics only), with the request's phase and peer.
#[derive(Clone)]
struct ConnService {
    router: TowerToHyperService<Router>,
    phase: SharedPhase,
    peer: SocketAddr,
    reserved: bool,
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

/// The 503 of a reserved connection for anything but health and metrics.
fn too_many_connections() -> Response {
    ApiError::new(
        ErrorCode::TooManyConnections,
        "the server holds max_connections connections: retry later (GET /healthz and /metrics are still answered)",
    )
    .into_response()
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = ServiceFuture;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::begin(&self.phase);
        req.extensions_mut().insert(Peer(self.peer));
        let health = req.method() == axum::http::Method::GET
            && matches!(req.uri().path(), "/healthz" | "/metrics");
        if self.reserved && !health {
            return Box::pin(async move {
                let r = too_many_connections();
                drop(guard);
                Ok(r)
            });
        }
        let fut = self.router.call(req);
        Box::pin(async move {
            let r = fut.await;
            drop(guard);
            r
        })
    }
}

/// What a connection's error was, for `aioss_connection_events_total`: a request hyper
/// could not parse (answered by hyper itself, with an empty body), or one of our
/// deadlines.
fn failure(e: &hyper::Error) -> Option<&'static str> {
    if e.is_parse() || e.is_parse_too_large() || e.is_parse_status() {
        return Some("protocol_error");
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return Some("timed_out");
        }
        cause = c.source();
    }
    None
}

/// Connections open per address.
type PerAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One connection's hold on its address's count and on the caps; released when the
/// connection ends.
struct Slot {
    per_address: PerAddress,
    ip: IpAddr,
    _total: OwnedSemaphorePermit,
    _normal: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.per_address.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

/// Serve `router` on `listener` under `limits` until `shutdown` completes, then stop
/// accepting, let every connection finish its request in flight, and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let total = Arc::new(Semaphore::new(limits.max_connections + limits.reserved));
    let normal = Arc::new(Semaphore::new(limits.max_connections));
    let per_address: PerAddress = Arc::new(Mutex::new(HashMap::new()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    let router = TowerToHyperService::new(router);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // INVARIANT (bounded-connections): at most max_connections + reserved are open;
        // past that, new ones wait in the kernel's backlog.
        let permit = tokio::select! {
            p = Arc::clone(&total).acquire_owned() => p,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ip = peer.ip().to_canonical();
        let admitted = per_address.lock().is_ok_and(|mut m| {
            let n = m.entry(ip).or_insert(0);
            if *n >= limits.per_address {
                false
            } else {
                *n += 1;
                true
            }
        });
        if !admitted {
            shared
                .metrics
                .count(Family::Connection, "refused_per_address");
            drop(stream);
            continue;
        }
        let normal = Arc::clone(&normal).try_acquire_owned().ok();
        let reserved = normal.is_none();
        if reserved {
            shared.metrics.count(Family::Connection, "reserved");
        }
        let slot = Slot {
            per_address: Arc::clone(&per_address),
            ip,
            _total: permit,
            _normal: normal,
        };
        let _ = stream.set_nodelay(true);
        let phase = Arc::new(Mutex::new(Phase {
            in_flight: 0,
            idle_since: Instant::now(),
            head_since: None,
            parked: None,
        }));
        let io = TimedIo {
            stream,
            phase: Arc::clone(&phase),
            limits,
            read_timer: Box::pin(tokio::time::sleep(limits.keep_alive)),
            write_timer: Box::pin(tokio::time::sleep(limits.keep_alive)),
            write_stalled: None,
        };
        let service = ConnService {
            router: router.clone(),
            phase,
            peer,
            reserved,
        };
        let conn_shared = Arc::clone(&shared);
        let mut stop = stop_rx.clone();
        let stopping = async move {
            let _ = stop.wait_for(|s| *s).await.is_ok();
        };
        let done = done_rx.clone();
        tokio::spawn(async move {
            let mut b = hyper::server::conn::http1::Builder::new();
            // Our own deadlines (TimedIo) bound the head; hyper's would need its timer.
            b.header_read_timeout(None).keep_alive(!reserved);
            let conn = b.serve_connection(TokioIo::new(io), service);
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                () = stopping => {
                    // Stopping: answer the request in flight, if any, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "connection ended");
                if let Some(event) = failure(&e) {
                    conn_shared.metrics.count(Family::Connection, event);
                }
            }
            drop(slot);
            drop(done);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
}
