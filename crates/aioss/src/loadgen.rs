//! The load generator of `aioss bench serve`: N keep-alive HTTP/1.1 connections over
//! loopback, driven from one thread (a current-thread runtime), so that its own CPU cost is
//! one core at most and can be measured and reported beside the server's.
//!
//! Two modes: closed loop (each connection sends its next request when the previous answer
//! arrives: the peak rate) and open loop (requests on a fixed schedule at a given total
//! rate: the latency at that rate). In open loop, latency is reported both from the moment
//! a request was sent and from the moment it was scheduled (which also counts any time the
//! generator itself fell behind).
//!
//! Why here and not in `aioss_server`: it is a client, and the server library has no
//! business with hyper's client side; only the benchmark drives the server this way.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

/// What can go wrong driving the load.
#[derive(Debug)]
pub enum Error {
    /// The runtime, a connection or a request failed; the message says which.
    Io(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server.
    pub addr: SocketAddr,
    /// Request bodies, sent in turn (`POST /v1/decisions`).
    pub bodies: Vec<String>,
    /// Concurrent connections.
    pub connections: usize,
    /// Seconds to run.
    pub secs: f64,
    /// Open loop at this many requests per second in total; `None`: closed loop.
    pub rate: Option<f64>,
    /// A bearer token, if the server has a configuration.
    pub token: Option<String>,
}

/// What was measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Answers with status 200.
    pub ok: u64,
    /// Other answers (status, count).
    pub other: Vec<(u16, u64)>,
    /// Seconds measured.
    pub secs: f64,
    /// Latency from sending, microseconds: p50, p99, p99.9, max.
    pub sent_us: [u64; 4],
    /// Latency from the schedule (open loop), microseconds: p50, p99, p99.9, max.
    pub scheduled_us: [u64; 4],
    /// CPU seconds this process used meanwhile.
    pub cpu_secs: f64,
}

impl Report {
    /// 200 answers per second.
    pub fn rate(&self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "a count as a rate")]
        let ok = self.ok as f64;
        ok / self.secs.max(1e-9)
    }

    /// The generator's CPU share of one core.
    pub fn cpu_share(&self) -> f64 {
        self.cpu_secs / self.secs.max(1e-9)
    }
}

/// CPU seconds (user + system) of a process from `/proc/PID/stat` (`self` for this one);
/// `None` where there is no procfs. Clock ticks are taken as 100 per second (Linux's
/// `USER_HZ` on every common architecture).
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / 100.0)
}

/// p50, p99, p99.9 and the maximum of `v` (sorted in place; all 0 when empty).
pub fn percentiles(v: &mut [u64]) -> [u64; 4] {
    if v.is_empty() {
        return [0; 4];
    }
    v.sort_unstable();
    let at = |q: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into the sorted latencies"
        )]
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied().unwrap_or(0)
    };
    [at(0.5), at(0.99), at(0.999), v.last().copied().unwrap_or(0)]
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[derive(Default)]
struct ConnStats {
    ok: u64,
    other: std::collections::BTreeMap<u16, u64>,
    sent: Vec<u64>,
    scheduled: Vec<u64>,
}

async fn connection(
    o: &Options,
    bodies: &[Bytes],
    k: usize,
    start: Instant,
    end: Instant,
) -> Result<ConnStats, Error> {
    let stream = tokio::net::TcpStream::connect(o.addr)
        .await
        .map_err(|e| Error::Io(format!("connecting to {}: {e}", o.addr)))?;
    let _ = stream.set_nodelay(true);
    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(|e| Error::Io(format!("handshake: {e}")))?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    let auth = o.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut st = ConnStats::default();
    #[expect(clippy::cast_precision_loss, reason = "connection counts")]
    let (n, kf) = (o.connections as f64, k as f64);
    let interval = o.rate.map(|r| Duration::from_secs_f64(n / r.max(1e-9)));
    let mut next = start
        + o.rate
            .map_or(Duration::ZERO, |r| Duration::from_secs_f64(kf / r));
    let mut i = k;
    while Instant::now() < end {
        if interval.is_some() && next > Instant::now() {
            tokio::time::sleep_until(next.into()).await;
        }
        let Some(body) = bodies.get(i % bodies.len().max(1)).cloned() else {
            break;
        };
        i += o.connections;
        let mut req = hyper::Request::post("/v1/decisions")
            .header("host", "aioss")
            .header("content-type", "application/json");
        if let Some(a) = &auth {
            req = req.header("authorization", a.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| Error::Io(e.to_string()))?;
        send.ready()
            .await
            .map_err(|e| Error::Io(format!("connection closed: {e}")))?;
        let t0 = Instant::now();
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| Error::Io(format!("request: {e}")))?;
        let status = resp.status().as_u16();
        let _ = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Io(format!("reading: {e}")))?;
        let done = Instant::now();
        if status == 200 {
            st.ok += 1;
        } else {
            *st.other.entry(status).or_insert(0) += 1;
        }
        st.sent.push(us(done - t0));
        if let Some(iv) = interval {
            st.scheduled.push(us(done.saturating_duration_since(next)));
            next += iv;
        }
    }
    Ok(st)
}

/// Run the load and measure it.
pub fn run(o: &Options) -> Result<Report, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("starting the runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();
    let cpu0 = cpu_secs("self");
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + Duration::from_secs_f64(o.secs);
    let bodies: std::rc::Rc<Vec<Bytes>> =
        std::rc::Rc::new(o.bodies.iter().map(|b| Bytes::from(b.clone())).collect());
    let opts = std::rc::Rc::new(Options {
        bodies: Vec::new(),
        ..o.clone()
    });
    let results = local.block_on(&rt, async {
        let mut tasks = Vec::new();
        for k in 0..o.connections {
            let (o, b) = (std::rc::Rc::clone(&opts), std::rc::Rc::clone(&bodies));
            tasks.push(tokio::task::spawn_local(async move {
                connection(&o, &b, k, start, end).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        out
    });
    let wall = start.elapsed().as_secs_f64();
    let cpu1 = cpu_secs("self");
    let mut rep = Report {
        secs: wall,
        cpu_secs: match (cpu0, cpu1) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        },
        ..Report::default()
    };
    let mut sent = Vec::new();
    let mut sched = Vec::new();
    let mut other = std::collections::BTreeMap::new();
    for r in results {
        let st = r.map_err(|e| Error::Io(format!("a connection task failed: {e}")))??;
        rep.ok += st.ok;
        for (k, v) in st.other {
            *other.entry(k).or_insert(0) += v;
        }
        sent.extend(st.sent);
        sched.extend(st.scheduled);
    }
    rep.other = other.into_iter().collect();
    rep.sent_us = percentiles(&mut sent);
    rep.scheduled_us = percentiles(&mut sched);
    Ok(rep)
}
