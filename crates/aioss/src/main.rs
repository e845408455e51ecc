//! The `aioss` command: a thin dispatcher over the AIOSS libraries.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

/// Exit codes of the interface contract.
pub(crate) mod exit {
    /// Bad input or usage.
    pub const BAD_INPUT: u8 = 2;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Policy(PolicyCommand::Check { files }) => policy_cmd::check(&files),
    }
}
