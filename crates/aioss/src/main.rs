//! The `aioss` command: a thin dispatcher over the AIOSS libraries.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit_cmd;
mod bench_cmd;
mod decide_cmd;
mod loadgen;
mod mcp_cmd;
mod policy_cmd;
mod progress;
mod serve_cmd;
mod tier3_cmd;

/// mimalloc instead of the system allocator. Why: records and decision JSON are built on
/// one thread and freed on another (the audit committer, the HTTP workers), and glibc's
/// allocator spent about a quarter of the governor thread's time in `malloc`, `free` and
/// `malloc_consolidate` under load (`perf` on `aioss bench serve`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// AIOSS: an execution governor for AI actions.
#[derive(Parser, Debug)]
#[command(
    name = "aioss",
    version,
    about,
    long_about = LONG_ABOUT,
    after_help = "Start with: aioss decide --policy policies/warehouse-robot.toml --explain < policies/examples/warehouse.jsonl"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `aioss --help` says AIOSS is.
const LONG_ABOUT: &str = "AIOSS: an execution governor for AI actions.

AIOSS sits between an untrusted generator (an LLM agent's tool calls, a planner, a learned \
controller) and the world. Each proposed action is checked against a policy (TOML: rules, \
typed constraints, budgets, a certified fallback) by a small trusted checker with sound \
interval arithmetic; an unsafe action is repaired to the nearest safe one, held for a \
human, or blocked, and the fallback runs instead. Every decision ends in one of six \
outcomes (ALLOW, ALLOW_AFTER_REPAIR, HOLD_FOR_CONFIRMATION, BLOCK_NO_REPAIR, \
REVIEW_AUDIT, FAILED_GOVERNANCE) and is written to a tamper-evident, replayable audit log.

Capability is not permission: a generator may propose anything; only what the governor \
admits is executed.";

#[derive(Subcommand, Debug)]
enum Command {
    /// Work with policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Decide proposals: JSON lines on stdin (or `--input FILE`), one decision per line on
    /// stdout.
    ///
    /// Exit 0 when every proposal executes as proposed or repaired, 1 when some decision is
    /// held, blocked, sent to review or failed, 2 when some line is not a valid proposal.
    Decide {
        /// The policy file (TOML).
        #[arg(long)]
        policy: std::path::PathBuf,
        /// Read proposals from this file instead of standard input (JSON lines, or one
        /// pretty-printed JSON object).
        #[arg(long, short, value_name = "FILE")]
        input: Option<std::path::PathBuf>,
        /// Print a human-readable account of each decision instead of JSON.
        #[arg(long)]
        explain: bool,
        /// Decide and report, but pass every proposal through (overrides the policy's mode).
        #[arg(long)]
        dry_run: bool,
        /// Where a decision's time (budgets, windows) comes from: `wall`, the system clock
        /// (a proposal's `timestamp` is used only within the policy's `[governor]
        /// max_clock_skew_secs` of it, default 0), or `logical`, the proposal's `timestamp`,
        /// else the latest one seen (reproducible runs of input you trust).
        #[arg(long, default_value = "wall", value_parser = ["wall", "logical"])]
        clock: String,
        /// Treat the input as an agent's, not yours: `prev.` is what this governor executed
        /// for the agent (the fallback before its first action), and a line that claims
        /// another `prev` is refused (`prev_mismatch`).
        #[arg(long)]
        untrusted: bool,
        /// Decide in the critical-rows-only mode that `aioss serve` enters under overload
        /// (a repair keeps every critical row and may relax the others without first
        /// trying to keep them); each decision says `"decision_mode": "critical_only"`.
        #[arg(long)]
        critical_only: bool,
        /// Record every decision in this audit store (an SQLite file, created if missing;
        /// an existing one is continued). A decision is printed only once its record is
        /// durable.
        #[arg(long, value_name = "STORE")]
        audit: Option<String>,
        /// Sign checkpoints over the chain head with this key (from `aioss audit keygen`).
        #[arg(long, value_name = "FILE", requires = "audit")]
        key: Option<std::path::PathBuf>,
        /// Sign a checkpoint every N records (and always at shutdown); 0: only at shutdown.
        #[arg(long, default_value_t = 1000, value_name = "N")]
        checkpoint_every: u64,
        /// Sign over records at the end of the store that no signature of `--key` covers
        /// (by default they are refused: whoever appended them did not hold the key).
        #[arg(long, requires = "key")]
        accept_unsigned_tail: bool,
    },
    /// The tamper-evident audit log: keys, verification, replay, export.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The human-verifiable governance report of an audit store.
    Report {
        /// The audit store.
        store: String,
        /// Output format.
        #[arg(long, default_value = "md", value_parser = ["md", "html", "json"])]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
        /// The policy the records were made under: adds Tier 3's estimates (each row's
        /// observed Lipschitz quotient, each dynamics equation's observed error) against
        /// what it declares.
        #[arg(long, value_name = "FILE")]
        policy: Option<std::path::PathBuf>,
    },
    /// Benchmarks run in one process, with a baseline measured in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The HTTP service for agents and operators (`serve hash-token` hashes a token for
    /// the configuration file).
    Serve(ServeArgs),
    /// The governing MCP gateway: an MCP server on standard input and output in front of
    /// an upstream MCP server; every tool call is decided first (docs/mcp.md).
    Mcp(mcp_cmd::McpArgs),
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct ServeArgs {
    #[command(subcommand)]
    sub: Option<ServeSub>,
    /// The policy file (TOML); `SIGHUP` or `POST /v1/policy/reload` re-reads it.
    #[arg(long)]
    policy: Option<std::path::PathBuf>,
    /// The audit store (an SQLite file, created if missing; an existing one is continued).
    #[arg(long, value_name = "STORE", default_value = "aioss-audit.db")]
    audit: String,
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = aioss_server::serve::DEFAULT_LISTEN)]
    listen: String,
    /// The configuration file (agents, operators, settings). Without it: local-development
    /// mode, no authentication, loopback only.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Sign checkpoints over the chain head with this key (from `aioss audit keygen`).
    #[arg(long, value_name = "FILE")]
    key: Option<std::path::PathBuf>,
    /// Sign over records at the end of the store that no signature of `--key` covers (by
    /// default the server refuses to start: whoever appended them did not hold the key).
    #[arg(long, requires = "key")]
    accept_unsigned_tail: bool,
}

#[derive(Subcommand, Debug)]
enum ServeSub {
    /// Print the SHA-256 of a bearer token, for `token_sha256` in the configuration file
    /// (the token is read from standard input when not given).
    HashToken {
        /// The token.
        token: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Write a new Ed25519 checkpoint key to FILE (mode 0600) and print its public key.
    Keygen {
        /// The key file to create (an existing file is not overwritten).
        file: std::path::PathBuf,
    },
    /// Recompute every hash, check the chain and every checkpoint signature; print the
    /// count and the head, or name the first bad record and exit 1.
    Verify {
        /// The audit store.
        store: String,
        /// The public key every checkpoint must be signed with: 64 hex digits, or a key file.
        /// With it, the last record must be covered by one of its signatures.
        #[arg(long)]
        public_key: Option<String>,
        /// Fail if the store holds fewer records than this (a truncation back to an
        /// earlier signed head is invisible to signatures alone).
        #[arg(long, value_name = "N", default_value_t = 0)]
        min_records: u64,
    },
    /// Re-decide every record from its proposal with the governor state rebuilt from the
    /// log; report every difference; exit 0 only if all agree. Each record is re-decided
    /// under the policy it was made under (the store keeps every policy text its writers
    /// used), across reloads and restarts under other policies.
    Replay {
        /// The audit store.
        store: String,
        /// Re-decide every record under this policy instead: what it would have decided.
        #[arg(long)]
        policy: Option<std::path::PathBuf>,
        /// Print at most this many differences.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Replay as `aioss decide --dry-run` (for a log written with it).
        #[arg(long)]
        dry_run: bool,
    },
    /// Every record as one line of JSON.
    Export {
        /// The audit store.
        store: String,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Throughput of `aioss decide --audit` (SQLite, durable group commit) against the same
    /// run with no store, on a generated stream.
    Audit {
        /// The policy file (TOML).
        #[arg(long)]
        policy: std::path::PathBuf,
        /// Proposals in the stream.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Percent feasible, repairable and blocked proposals.
        #[arg(long, default_value = "70,25,5", value_parser = parse_mix)]
        mix: (usize, usize, usize),
        /// Timed runs; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Records between signed checkpoints.
        #[arg(long, default_value_t = 1000)]
        checkpoint_every: u64,
    },
    /// Throughput and latency of `aioss serve` over loopback: starts the server as a child
    /// process with a fresh durable store, drives it with N keep-alive connections (closed
    /// loop for the peak, then open loop at a fraction of it), and reports decisions/s,
    /// p50/p99 latency and the load generator's own CPU share.
    Serve {
        /// The policy file (TOML).
        #[arg(long)]
        policy: std::path::PathBuf,
        /// Concurrent connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds of each measured phase.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Percent feasible, repairable and blocked proposals.
        #[arg(long, default_value = "100,0,0", value_parser = parse_mix)]
        mix: (usize, usize, usize),
        /// The open-loop rate as a fraction of the measured peak.
        #[arg(long, default_value_t = 0.7)]
        fraction: f64,
    },
    /// Throughput of `aioss decide` (no audit store) on a generated stream, against parsing
    /// and printing the same JSON.
    Decide {
        /// The policy file (TOML).
        #[arg(long)]
        policy: std::path::PathBuf,
        /// Proposals in the stream.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Percent feasible, repairable and blocked proposals.
        #[arg(long, default_value = "70,25,5", value_parser = parse_mix)]
        mix: (usize, usize, usize),
        /// Timed runs; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Also write the generated stream to this file.
        #[arg(long)]
        write: Option<std::path::PathBuf>,
        /// Time this stream (JSON lines, e.g. one written by `--write` with another build)
        /// instead of generating one: the same input for every build compared. `--n`,
        /// `--mix` and `--write` do not apply.
        #[arg(long, conflicts_with_all = ["n", "mix", "write"])]
        stream: Option<std::path::PathBuf>,
    },
}

fn parse_mix(s: &str) -> Result<(usize, usize, usize), String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.trim().parse::<usize>().map_err(|e| format!("`{x}`: {e}")))
        .collect::<Result<_, _>>()?;
    match v.as_slice() {
        [a, b, c] if a + b + c == 100 => Ok((*a, *b, *c)),
        _ => Err(format!(
            "`{s}` must be three percentages that add up to 100, like 70,25,5"
        )),
    }
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Load and verify policies: exit 0 with a summary line per file, or print positioned
    /// errors and exit 2.
    Check {
        /// Policy files (TOML).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Output format: `text`, or `json` (one object for all files, on standard output).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Run a policy's own `[[test]]` cases and print a pass/fail table; exit 1 if any fails.
    Test {
        /// Policy files (TOML).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Show every case, not only failures.
        #[arg(long, short)]
        verbose: bool,
        /// Run only the cases whose name contains PATTERN.
        #[arg(long, value_name = "PATTERN")]
        run: Option<String>,
        /// Output format: `text`, or `json` (one object for all files, on standard output).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Tier 3: from an audit store's decisions and outcomes, each row's observed Lipschitz
    /// quotient and each dynamics equation's observed error, printed against the policy's
    /// `lipschitz` and `error_bound`, and a unified diff of the policy with the values the
    /// records support (for an operator to review; nothing is changed).
    Suggest {
        /// The audit store.
        #[arg(long = "from", value_name = "STORE")]
        from: String,
        /// The policy file the records were made under.
        file: std::path::PathBuf,
    },
}

/// Exit codes of the interface contract.
pub(crate) mod exit {
    /// Bad input or usage.
    pub const BAD_INPUT: u8 = 2;
    /// A verdict the caller asked to fail on (a failing policy test).
    pub const VERDICT: u8 = 1;
    /// Internal failure (I/O).
    pub const INTERNAL: u8 = 3;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Mcp(a) => mcp_cmd::run(a),
        Command::Serve(a) => match a.sub {
            Some(ServeSub::HashToken { token }) => serve_cmd::hash_token(token.as_deref()),
            None => serve_cmd::serve(&serve_cmd::Args {
                policy: a.policy.as_deref(),
                audit: a.audit,
                listen: a.listen,
                config: a.config,
                key: a.key,
                accept_unsigned_tail: a.accept_unsigned_tail,
            }),
        },
        Command::Bench(BenchCommand::Serve {
            policy,
            connections,
            secs,
            mix,
            fraction,
        }) => serve_cmd::bench(&policy, connections.max(1), secs, mix, fraction),
        Command::Policy(PolicyCommand::Check { files, format }) => {
            policy_cmd::check(&files, format == "json")
        }
        Command::Policy(PolicyCommand::Suggest { from, file }) => tier3_cmd::suggest(&file, &from),
        Command::Policy(PolicyCommand::Test {
            files,
            verbose,
            run,
            format,
        }) => policy_cmd::test(&files, verbose, run.as_deref(), format == "json"),
        Command::Bench(BenchCommand::Decide {
            policy,
            n,
            mix,
            runs,
            write,
            stream,
        }) => bench_cmd::decide(&bench_cmd::Options {
            policy: &policy,
            n,
            mix,
            runs: runs.max(1),
            write: write.as_deref(),
            stream: stream.as_deref(),
        }),
        Command::Decide {
            policy,
            input,
            explain,
            dry_run,
            clock,
            untrusted,
            critical_only,
            audit: Some(audit),
            key,
            checkpoint_every,
            accept_unsigned_tail,
        } => audit_cmd::decide(&audit_cmd::DecideOptions {
            policy: &policy,
            input: input.as_deref(),
            audit: &audit,
            key: key.as_deref(),
            checkpoint_every,
            explain,
            dry_run,
            wall_clock: clock == "wall",
            untrusted,
            critical_only,
            accept_unsigned_tail,
        }),
        Command::Audit(AuditCommand::Keygen { file }) => audit_cmd::keygen(&file),
        Command::Audit(AuditCommand::Verify {
            store,
            public_key,
            min_records,
        }) => audit_cmd::verify(&store, public_key.as_deref(), min_records),
        Command::Audit(AuditCommand::Replay {
            store,
            policy,
            limit,
            dry_run,
        }) => audit_cmd::replay_cmd(&store, policy.as_deref(), limit, dry_run),
        Command::Audit(AuditCommand::Export { store }) => audit_cmd::export(&store),
        Command::Report {
            store,
            format,
            output,
            policy,
        } => audit_cmd::report_cmd(&store, &format, output.as_deref(), policy.as_deref()),
        Command::Bench(BenchCommand::Audit {
            policy,
            n,
            mix,
            runs,
            checkpoint_every,
        }) => audit_cmd::bench(&policy, n, mix, runs.max(1), checkpoint_every),
        Command::Decide {
            policy,
            input,
            explain,
            dry_run,
            clock,
            untrusted,
            critical_only,
            ..
        } => decide_cmd::decide(&decide_cmd::Options {
            policy: &policy,
            input: input.as_deref(),
            explain,
            dry_run,
            wall_clock: clock == "wall",
            untrusted,
            critical_only,
        }),
    }
}
