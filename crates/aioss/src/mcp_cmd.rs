//! `aioss mcp`: the governing MCP gateway (the `aioss-mcp` crate), on standard input and
//! output, or over streamable HTTP with `--listen`.

use std::process::ExitCode;
use std::time::Duration;

use crate::exit;

/// `aioss mcp` arguments.
#[derive(clap::Args, Debug)]
pub struct McpArgs {
    /// The policy file (TOML).
    #[arg(long)]
    policy: std::path::PathBuf,
    /// The mapping from MCP tools and their arguments to the policy's action variables,
    /// with the session and the state source (docs/mcp.md).
    #[arg(long, value_name = "FILE")]
    tools: std::path::PathBuf,
    /// The audit store (an SQLite file, created if missing; an existing one is continued).
    #[arg(long, value_name = "STORE")]
    audit: String,
    /// Sign checkpoints over the chain head with this key (from `aioss audit keygen`).
    #[arg(long, value_name = "FILE")]
    key: Option<std::path::PathBuf>,
    /// Sign a checkpoint every N records (and always at shutdown); 0: only at shutdown.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    checkpoint_every: u64,
    /// How long a held call waits for a human (MCP elicitation, or the operators of
    /// `--server`) before it is denied.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    hold_wait: u64,
    /// A running `aioss serve` whose operators answer holds for clients without MCP
    /// elicitation (http://HOST:PORT; the agent's bearer token in `AIOSS_SERVER_TOKEN`).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Serve MCP over streamable HTTP at http://HOST:PORT/mcp instead of standard input
    /// and output, each request authenticated by an agent's bearer token of `--config`.
    #[arg(long, value_name = "HOST:PORT", requires = "config")]
    listen: Option<String>,
    /// With `--listen`: an `aioss serve` configuration file; its `[[agent]]` tokens admit
    /// requests, and a token's agent id and attributes are those of the calls it makes.
    #[arg(long, value_name = "FILE", requires = "listen")]
    config: Option<std::path::PathBuf>,
    /// Another upstream MCP server: a running server's streamable HTTP endpoint
    /// (`http://HOST:PORT/mcp` or `https://…`), or one word-split command line
    /// (`"python3 more.py"`; no quoting). Repeat for more; their tools are offered together.
    #[arg(long, value_name = "COMMAND")]
    upstream: Vec<String>,
    /// The upstream MCP server's command and its arguments (after `--`); it inherits this
    /// process's environment, and its standard input and output carry MCP. One
    /// `http://` or `https://` URL instead: a running server's streamable HTTP endpoint.
    /// May be left out when `--upstream` names one.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Run the gateway until the client closes standard input (with `--listen`: until
/// Ctrl-C or SIGTERM).
pub fn run(a: McpArgs) -> ExitCode {
    let upstream: Vec<aioss_mcp::Endpoint> = aioss_mcp::Endpoint::parse(a.command)
        .into_iter()
        .chain(a.upstream.iter().filter_map(|line| {
            aioss_mcp::Endpoint::parse(line.split_whitespace().map(String::from).collect())
        }))
        .collect();
    if upstream.is_empty() {
        eprintln!(
            "error: no upstream MCP server: give its command after `--`, or `--upstream URL`"
        );
        return ExitCode::from(exit::BAD_INPUT);
    }
    let o = aioss_mcp::Options {
        policy: a.policy,
        tools: a.tools,
        audit: a.audit,
        key: a.key,
        checkpoint_every: a.checkpoint_every,
        hold_wait: Duration::from_secs(a.hold_wait),
        server: a
            .server
            .map(|u| (u, std::env::var("AIOSS_SERVER_TOKEN").ok())),
        upstream,
        listen: a
            .listen
            .zip(a.config)
            .map(|(addr, config)| aioss_mcp::Listen { addr, config }),
    };
    match aioss_mcp::run(&o, &mut |line| eprintln!("{line}")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(match e {
                aioss_mcp::Error::Policy(_)
                | aioss_mcp::Error::Mapping(_)
                | aioss_mcp::Error::Read { .. }
                | aioss_mcp::Error::Config(_)
                | aioss_mcp::Error::Server(_) => exit::BAD_INPUT,
                _ => exit::INTERNAL,
            })
        }
    }
}
