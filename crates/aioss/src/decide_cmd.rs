//! `aioss decide`: JSON-lines proposals on stdin, one decision per line on stdout.
//!
//! Streaming: one line is read, decided and written at a time, so memory does not grow with
//! the input. A decision is flushed as soon as it is made unless the next line is already
//! in the input buffer, so an interactive caller never waits on a buffer, and a stream is
//! not written one system call per line. Whether a line is waiting is read off the buffer,
//! never by peeking at stdin (a regression test caught an earlier version that blocked on
//! such a peek).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use aioss_core::governor::{Clock, PrevSource, RecentDecisions};
use aioss_core::{Governor, InputError};

/// Decisions an outcome line may still report on (the most recent ones).
pub const OUTCOME_WINDOW: usize = 4096;

pub use aioss_core::governor::Answer;

/// Answer one line ([`Governor::answer_line`]).
pub fn answer(
    g: &mut Governor,
    recent: &mut RecentDecisions,
    text: &str,
    clock: Clock,
) -> Result<Answer, InputError> {
    g.answer_line(recent, text, clock)
}

/// Options of `aioss decide`.
pub struct Options<'a> {
    /// The policy file.
    pub policy: &'a Path,
    /// Print a human-readable account instead of JSON.
    pub explain: bool,
    /// Force dry-run mode.
    pub dry_run: bool,
    /// Take the time from the wall clock, not from the proposals ([`Clock::Trusted`]).
    pub wall_clock: bool,
    /// Take `prev.` from the governor's record, refusing other claims
    /// ([`PrevSource::Governor`]).
    pub untrusted: bool,
    /// Decide in the critical-rows-only mode ([`Governor::set_critical_only`]).
    pub critical_only: bool,
}

/// A line source that can tell, without blocking, whether a complete next line is already
/// buffered.
pub trait Lines: BufRead {
    /// Is a whole line (up to `\n`) already in memory?
    fn line_waiting(&self) -> bool;
}

impl<R: Read> Lines for BufReader<R> {
    fn line_waiting(&self) -> bool {
        self.buffer().contains(&b'\n')
    }
}

impl Lines for &[u8] {
    fn line_waiting(&self) -> bool {
        self.contains(&b'\n')
    }
}

/// Run `aioss decide` over `input`, writing to `output`. With `wall_clock` a decision's time
/// is the wall clock's ([`Clock::Trusted`]), else the proposal's or the latest seen
/// ([`Clock::Logical`]). Returns the number of lines that were errors.
pub fn run(
    g: &mut Governor,
    input: &mut dyn Lines,
    output: &mut dyn Write,
    explain: bool,
    wall_clock: bool,
) -> std::io::Result<u64> {
    let mut line = String::new();
    let mut lineno = 0u64;
    let mut errors = 0u64;
    let mut recent = RecentDecisions::new(OUTCOME_WINDOW);
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        lineno += 1;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let clock = if wall_clock {
            Clock::Trusted(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(f64::NAN, |d| d.as_secs_f64()),
            )
        } else {
            Clock::Logical
        };
        match answer(g, &mut recent, text, clock) {
            Ok(Answer::Outcome(json)) => {
                output.write_all(json.as_bytes())?;
                output.write_all(b"\n")?;
            }
            Ok(Answer::Decision(d)) => {
                if explain {
                    output.write_all(d.explain(g.policy()).as_bytes())?;
                    output.write_all(b"\n")?;
                } else {
                    output.write_all(d.to_json(g.policy()).as_bytes())?;
                    output.write_all(b"\n")?;
                }
            }
            Err(e) => {
                errors += 1;
                if explain {
                    writeln!(output, "line {lineno}: error: {e}\n")?;
                } else {
                    let j = e.to_json();
                    // `{"error": {...}, "line": n}`
                    let body = j.strip_suffix('}').unwrap_or(&j);
                    writeln!(output, "{body},\"line\":{lineno}}}")?;
                }
            }
        }
        // Each decision leaves as soon as it is made when no next line is waiting (an
        // interactive caller waits for it); a stream's decisions leave in buffer-sized
        // writes, not one system call each.
        if !input.line_waiting() {
            output.flush()?;
        }
    }
    output.flush()?;
    Ok(errors)
}

/// `aioss decide --policy FILE [--explain] [--dry-run]`
pub fn decide(o: &Options<'_>) -> ExitCode {
    let p = match crate::policy_cmd::load_file(o.policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(crate::exit::BAD_INPUT);
        }
    };
    let mut g = Governor::new(p);
    if o.dry_run {
        g.set_dry_run(true);
    }
    if o.untrusted {
        g.set_prev_source(PrevSource::Governor);
    }
    g.set_critical_only(o.critical_only);
    let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let stdout = std::io::stdout();
    let mut output = BufWriter::with_capacity(1 << 16, stdout.lock());
    match run(&mut g, &mut input, &mut output, o.explain, o.wall_clock) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(crate::exit::INTERNAL)
        }
    }
}
