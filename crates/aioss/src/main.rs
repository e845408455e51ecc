//! The `aioss` command: a thin dispatcher over the AIOSS libraries.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod decide_cmd;
mod policy_cmd;

/// AIOSS: an execution governor for AI actions.
#[derive(Parser, Debug)]
#[command(name = "aioss", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Work with policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Decide proposals: JSON lines on stdin, one decision per line on stdout.
    Decide {
        /// The policy file (TOML).
        #[arg(long)]
        policy: std::path::PathBuf,
        /// Print a human-readable account of each decision instead of JSON.
        #[arg(long)]
        explain: bool,
        /// Decide and report, but pass every proposal through (overrides the policy's mode).
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Load and verify policies: exit 0 with a summary line per file, or print positioned
    /// errors and exit 2.
    Check {
        /// Policy files (TOML).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Run a policy's own `[[test]]` cases and print a pass/fail table; exit 1 if any fails.
    Test {
        /// Policy files (TOML).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Show every case, not only failures.
        #[arg(long, short)]
        verbose: bool,
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
        Command::Policy(PolicyCommand::Check { files }) => policy_cmd::check(&files),
        Command::Policy(PolicyCommand::Test { files, verbose }) => {
            policy_cmd::test(&files, verbose)
        }
        Command::Decide {
            policy,
            explain,
            dry_run,
        } => decide_cmd::decide(&decide_cmd::Options {
            policy: &policy,
            explain,
            dry_run,
        }),
    }
}
