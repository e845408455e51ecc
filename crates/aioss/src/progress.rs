//! Progress on standard error for the commands that read a whole audit store (`audit
//! verify`, `audit replay`, `audit export`, `report`).
//!
//! Replaying a million records takes about a minute, and a command that prints nothing for
//! that long looks hung. Rather than thread a callback through every function of
//! `aioss-audit`, the store is wrapped ([`Watched`]): every record a scan hands out is
//! counted, and a line is written at most every half second on a terminal (rewritten in
//! place) and every ten seconds otherwise (one line each, for logs). A scan that ends
//! before the first interval prints nothing, so short runs and the tests' output stay as
//! they were. Standard output, which carries the result, is never touched.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use aioss_audit::checkpoint::Checkpoint;
use aioss_audit::record::Record;
use aioss_audit::store::Store;
use aioss_audit::Error;

/// How often a line may be written: `AIOSS_PROGRESS_MS` (milliseconds) when set, so that
/// a test can see the lines without a long run; else 500 ms on a terminal, 10 s otherwise.
fn interval(tty: bool) -> Duration {
    let ms = std::env::var("AIOSS_PROGRESS_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    match ms {
        Some(ms) => Duration::from_millis(ms),
        None if tty => Duration::from_millis(500),
        None => Duration::from_secs(10),
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One progress line: `verify: 120,000 of 1,000,000 records (12 %), 40,000/s, about 22 s
/// left`. `total` 0 means unknown.
fn line(label: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rate and a percentage for display"
    )]
    let (rate, pct, left) = {
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let pct = done
            .min(total)
            .saturating_mul(100)
            .checked_div(total)
            .unwrap_or(0);
        let left = if rate > 0.0 && total > done {
            Some(((total - done) as f64 / rate).ceil() as u64)
        } else {
            None
        };
        (rate as u64, pct, left)
    };
    let mut s = format!("{label}: {}", thousands(done));
    if total > 0 {
        s.push_str(&format!(" of {} records ({pct} %)", thousands(total)));
    } else {
        s.push_str(" records");
    }
    s.push_str(&format!(", {}/s", thousands(rate)));
    if let Some(left) = left {
        s.push_str(&format!(", about {left} s left"));
    }
    s
}

/// Counts records and writes a line when the interval has passed.
struct Progress {
    label: String,
    total: u64,
    done: u64,
    start: Instant,
    last: Instant,
    every: Duration,
    tty: bool,
    shown: bool,
}

impl Progress {
    fn new(label: String, total: u64) -> Self {
        let tty = std::io::stderr().is_terminal();
        let now = Instant::now();
        Progress {
            label,
            total,
            done: 0,
            start: now,
            last: now,
            every: interval(tty),
            tty,
            shown: false,
        }
    }

    fn tick(&mut self) {
        self.done += 1;
        // The clock is read every 256 records: a record costs microseconds, a read of the
        // clock tens of nanoseconds.
        if !self.done.is_multiple_of(256) {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.last) < self.every {
            return;
        }
        self.last = now;
        self.shown = true;
        let text = line(
            &self.label,
            self.done,
            self.total,
            now.duration_since(self.start),
        );
        let mut err = std::io::stderr().lock();
        // Progress is a courtesy: a closed standard error must not stop the command.
        let _ = if self.tty {
            write!(err, "\r{text}\x1b[K")
        } else {
            writeln!(err, "{text}")
        };
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.shown && self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// A store whose scans report their progress on standard error (see the module docs).
pub struct Watched {
    inner: Box<dyn Store>,
    label: &'static str,
    total: u64,
    passes: u32,
}

impl Watched {
    /// Wrap `inner`; `label` names the command in each line. Counting the records first
    /// gives the total (`0`, unknown, if the store cannot say).
    pub fn new(mut inner: Box<dyn Store>, label: &'static str) -> Self {
        let total = inner.count().unwrap_or(0);
        Watched {
            inner,
            label,
            total,
            passes: 0,
        }
    }
}

impl Store for Watched {
    fn head(&mut self) -> Result<Option<(u64, String)>, Error> {
        self.inner.head()
    }
    fn append(&mut self, records: &[Record], checkpoints: &[Checkpoint]) -> Result<(), Error> {
        self.inner.append(records, checkpoints)
    }
    fn scan(&mut self, f: &mut dyn FnMut(Record) -> Result<bool, Error>) -> Result<(), Error> {
        self.scan_from(0, f)
    }
    fn scan_from(
        &mut self,
        seq: u64,
        f: &mut dyn FnMut(Record) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        self.passes += 1;
        // A command that reads the store twice (`report` verifies it first) says which
        // pass it is in.
        let label = if self.passes > 1 {
            format!("{} (pass {})", self.label, self.passes)
        } else {
            self.label.to_string()
        };
        let mut p = Progress::new(label, self.total);
        let r = self.inner.scan_from(seq, &mut |rec| {
            p.tick();
            f(rec)
        });
        p.finish();
        r
    }
    fn put_policy(&mut self, hash: &str, text: &str) -> Result<(), Error> {
        self.inner.put_policy(hash, text)
    }
    fn policies(&mut self) -> Result<Vec<(String, String)>, Error> {
        self.inner.policies()
    }
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, Error> {
        self.inner.checkpoints()
    }
    fn count(&mut self) -> Result<u64, Error> {
        self.inner.count()
    }
    fn maintain(&mut self) -> Result<(), Error> {
        self.inner.maintain()
    }
    fn records_for(&mut self, decision_id: &str) -> Result<Vec<Record>, Error> {
        self.inner.records_for(decision_id)
    }
    // Every method with a default is forwarded: a default here would hide the store's
    // own (its signed head, its consistent reads).
    fn append_signed(
        &mut self,
        records: &[Record],
        checkpoints: &[Checkpoint],
        head: Option<&Checkpoint>,
    ) -> Result<(), Error> {
        self.inner.append_signed(records, checkpoints, head)
    }
    fn signed_head(&mut self) -> Result<Option<Checkpoint>, Error> {
        self.inner.signed_head()
    }
    fn begin_read(&mut self) -> Result<(), Error> {
        self.inner.begin_read()
    }
    fn end_read(&mut self) -> Result<(), Error> {
        self.inner.end_read()
    }
    fn last_of_kind(&mut self, kind: &str) -> Result<Option<Record>, Error> {
        self.inner.last_of_kind(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(100_000), "100,000");
    }

    #[test]
    fn a_line_gives_the_count_the_share_the_rate_and_the_time_left() {
        assert_eq!(
            line("replay", 120_000, 1_000_000, Duration::from_secs(6)),
            "replay: 120,000 of 1,000,000 records (12 %), 20,000/s, about 44 s left"
        );
        assert_eq!(
            line("verify", 5_000, 0, Duration::from_secs(1)),
            "verify: 5,000 records, 5,000/s"
        );
        // More records than counted at the start (a store still being written to).
        assert_eq!(
            line("export", 1_500, 1_000, Duration::from_secs(1)),
            "export: 1,500 of 1,000 records (100 %), 1,500/s"
        );
    }
}
