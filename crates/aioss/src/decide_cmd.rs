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

/// Does `text` open a JSON object that later lines complete (a pretty-printed proposal)?
/// A complete line ends with `}`, so a stream of JSON lines never pays for the parse.
pub fn is_open_object(text: &str) -> bool {
    let t = text.trim();
    t.starts_with('{')
        && !t.ends_with('}')
        && serde_json::from_str::<serde_json::Value>(t).is_err_and(|e| e.is_eof())
}

/// Is the accumulated `text` (an object over several lines) still incomplete?
pub fn still_open(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_err_and(|e| e.is_eof())
}

/// What the lines decided: how many were refused, how many decisions did not execute the
/// proposal or its repair. The exit code follows them (spec/interfaces.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Lines that were not a valid proposal (exit 2).
    pub errors: u64,
    /// Decisions held, blocked, sent to review or failed (exit 1).
    pub not_executed: u64,
}

impl Tally {
    /// Count decision `d`.
    pub fn count(&mut self, d: &aioss_core::Decision) {
        if !matches!(
            d.final_outcome,
            aioss_core::Outcome::Allow | aioss_core::Outcome::AllowAfterRepair
        ) {
            self.not_executed += 1;
        }
    }

    /// 0 every line executed as proposed or repaired, 1 some decision did not, 2 some line
    /// was not a valid proposal.
    pub fn exit_code(&self) -> ExitCode {
        if self.errors > 0 {
            ExitCode::from(crate::exit::BAD_INPUT)
        } else if self.not_executed > 0 {
            ExitCode::from(crate::exit::VERDICT)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Say once, on standard error, that the input is not JSON lines (`line` is its first
/// refused line).
pub fn hint_not_json_lines(hinted: &mut bool, lineno: u64, text: &str) {
    if *hinted || text.trim_start().starts_with('{') {
        return;
    }
    *hinted = true;
    eprintln!(
        "hint: line {lineno} is not a JSON object: `aioss decide` reads proposals as JSON lines, one object per line (a pretty-printed object is read whole); see policies/examples/warehouse.jsonl"
    );
}

/// Where the proposals come from: `--input FILE`, else standard input (with a word on
/// standard error when that is a terminal).
pub fn input_source(file: Option<&Path>) -> Result<Box<dyn Read + Send>, String> {
    use std::io::IsTerminal as _;
    match file {
        Some(f) => std::fs::File::open(f)
            .map(|h| Box::new(h) as Box<dyn Read + Send>)
            .map_err(|e| format!("error: cannot read `{}`: {e}", f.display())),
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!(
                    "aioss decide: reading proposals from the terminal, one JSON object per line; end with Ctrl-D (or give --input FILE)"
                );
            }
            Ok(Box::new(std::io::stdin()))
        }
    }
}

/// Options of `aioss decide`.
pub struct Options<'a> {
    /// The policy file.
    pub policy: &'a Path,
    /// Read proposals from this file instead of standard input.
    pub input: Option<&'a Path>,
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
/// ([`Clock::Logical`]). Returns what the lines decided.
pub fn run(
    g: &mut Governor,
    input: &mut dyn Lines,
    output: &mut dyn Write,
    explain: bool,
    wall_clock: bool,
) -> std::io::Result<Tally> {
    let mut line = String::new();
    let mut lineno = 0u64;
    let mut tally = Tally::default();
    let mut hinted = false;
    let mut recent = RecentDecisions::new(OUTCOME_WINDOW);
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        lineno += 1;
        let first = lineno;
        if is_open_object(&line) {
            // A pretty-printed object: read on until it is complete (or the input ends).
            let mut more = String::new();
            while still_open(&line) {
                more.clear();
                if input.read_line(&mut more)? == 0 {
                    break;
                }
                lineno += 1;
                line.push_str(&more);
            }
        }
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
                tally.count(&d);
                if explain {
                    output.write_all(d.explain(g.policy()).as_bytes())?;
                    output.write_all(b"\n")?;
                } else {
                    output.write_all(d.to_json(g.policy()).as_bytes())?;
                    output.write_all(b"\n")?;
                }
            }
            Err(e) => {
                tally.errors += 1;
                hint_not_json_lines(&mut hinted, first, text);
                if explain {
                    writeln!(output, "line {first}: error: {e}\n")?;
                } else {
                    let j = e.to_json();
                    // `{"error": {...}, "line": n}`
                    let body = j.strip_suffix('}').unwrap_or(&j);
                    writeln!(output, "{body},\"line\":{first}}}")?;
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
    Ok(tally)
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
    let source = match input_source(o.input) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(crate::exit::BAD_INPUT);
        }
    };
    let mut input = std::io::BufReader::with_capacity(1 << 16, source);
    let stdout = std::io::stdout();
    let mut output = BufWriter::with_capacity(1 << 16, stdout.lock());
    match run(&mut g, &mut input, &mut output, o.explain, o.wall_clock) {
        Ok(t) => t.exit_code(),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(crate::exit::INTERNAL)
        }
    }
}
