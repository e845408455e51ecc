//! AIOSS MCP gateway (`aioss mcp`): a governing proxy for the Model Context Protocol,
//! built on the official Rust SDK (`rmcp`).
//!
//! The agent's MCP client talks to the gateway; the gateway talks to one or more upstream
//! MCP servers. Every `tools/call` becomes a proposal (through the [`mapping`] file), is
//! decided by the real governor and recorded in the audit store ([`govern`]), and is then
//! forwarded, forwarded repaired, held for a human, or refused ([`gateway`]). `tools/list`
//! hides what no rule or constraint could ever allow for the agent ([`reach`]).
//!
//! Downstream the gateway speaks MCP on standard input and output (one agent: the
//! mapping's `[session]`), or over streamable HTTP to agents each known by its bearer
//! token ([`listen`]). Upstream servers are commands it starts or URLs it reaches
//! ([`Endpoint`]).
//!
//! The format of the mapping file and the behaviour on each outcome are documented in
//! `docs/mcp.md`.
#![deny(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;

pub mod gateway;
pub mod govern;
pub mod listen;
pub mod mapping;
pub mod operator;
pub mod reach;
mod toml_tree;

pub use gateway::{Caller, Callers, Gateway, Hidden, Holds, Offered, Upstream};
pub use govern::Governance;
pub use mapping::{Mapping, MappingErrors};

/// What can stop the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy does not load.
    #[error("{0}")]
    Policy(aioss_core::PolicyErrors),
    /// The mapping does not load, or does not fit the upstream tools.
    #[error("{0}")]
    Mapping(MappingErrors),
    /// A file could not be read.
    #[error("cannot read `{path}`: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// An upstream server could not be started or answered wrongly.
    #[error("upstream: {0}")]
    Upstream(String),
    /// The downstream connection failed.
    #[error("downstream: {0}")]
    Downstream(String),
    /// The `--listen` configuration file is bad (the message names the field).
    #[error("{0}")]
    Config(String),
    /// The `--server` could not be used.
    #[error("server: {0}")]
    Server(String),
    /// The audit store.
    #[error(transparent)]
    Audit(#[from] aioss_audit::Error),
    /// A bug.
    #[error("internal: {0}")]
    Internal(String),
}

/// An upstream MCP server started as a command (its standard input and output carry MCP;
/// it inherits the gateway's environment and standard error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
}

/// Where an upstream MCP server is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A command the gateway starts (MCP on its standard input and output).
    Command(Command),
    /// A running server's streamable HTTP endpoint (`http://` or `https://`).
    Url(String),
}

impl Endpoint {
    /// A command line's words: one `http://` or `https://` word is a URL, anything else a
    /// command. `None` for no words.
    pub fn parse(words: Vec<String>) -> Option<Endpoint> {
        let mut w = words.into_iter();
        let program = w.next()?;
        let args: Vec<String> = w.collect();
        let is_url = program.starts_with("http://") || program.starts_with("https://");
        Some(if is_url && args.is_empty() {
            Endpoint::Url(program)
        } else {
            Endpoint::Command(Command { program, args })
        })
    }

    fn name(&self) -> String {
        match self {
            Endpoint::Command(c) => std::iter::once(c.program.as_str())
                .chain(c.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            Endpoint::Url(u) => u.clone(),
        }
    }
}

/// Everything `aioss mcp` needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The policy file.
    pub policy: PathBuf,
    /// The mapping file.
    pub tools: PathBuf,
    /// The audit store.
    pub audit: String,
    /// A checkpoint signing key file.
    pub key: Option<PathBuf>,
    /// Records between signed checkpoints.
    pub checkpoint_every: u64,
    /// How long a held call waits for a human.
    pub hold_wait: Duration,
    /// A running `aioss serve` whose operators answer holds, and the agent's token there.
    pub server: Option<(String, Option<String>)>,
    /// The upstream servers.
    pub upstream: Vec<Endpoint>,
    /// Serve MCP over streamable HTTP instead of standard input and output.
    pub listen: Option<Listen>,
}

/// Where and to whom `aioss mcp --listen` serves.
#[derive(Clone, Debug)]
pub struct Listen {
    /// `HOST:PORT` to listen on.
    pub addr: String,
    /// The `aioss serve` configuration file whose `[[agent]]` tokens admit requests.
    pub config: PathBuf,
}

/// A gateway ready to serve, and what it needs kept alive.
#[derive(Debug)]
pub struct Started {
    /// The gateway.
    pub gateway: Gateway,
    /// The upstream servers (keep them alive; cancel them at the end).
    pub upstreams: Vec<Upstream>,
    /// Over HTTP: the agents of the configuration.
    pub agents: Option<listen::Agents>,
    /// What the operator should know: the store's state, the hidden tools.
    pub notes: Vec<String>,
}

/// Start (or reach) the upstream servers.
pub async fn connect(endpoints: &[Endpoint]) -> Result<Vec<Upstream>, Error> {
    let mut out = Vec::new();
    for e in endpoints {
        let name = e.name();
        let service = match e {
            Endpoint::Command(c) => {
                let mut cmd = tokio::process::Command::new(&c.program);
                cmd.args(&c.args);
                let transport = rmcp::transport::TokioChildProcess::new(cmd)
                    .map_err(|e| Error::Upstream(format!("cannot start `{name}`: {e}")))?;
                ().serve(transport).await
            }
            Endpoint::Url(url) => ().serve(http_transport(url)?).await,
        }
        .map_err(|e| Error::Upstream(format!("`{name}` did not start an MCP session: {e}")))?;
        out.push(Upstream { name, service });
    }
    Ok(out)
}

/// rmcp's streamable HTTP client transport to `url`, on a reqwest client of our own (TLS
/// by rustls with the ring provider and the platform's roots; no redirects followed).
fn http_transport(
    url: &str,
) -> Result<rmcp::transport::StreamableHttpClientTransport<reqwest::Client>, Error> {
    // Only the first installation counts; another (an embedding program's) is kept.
    #[expect(
        deprecated,
        reason = "ring has no post-quantum key exchange; aws-lc-rs, which has, is a much larger C build"
    )]
    let provider = rustls::crypto::ring::default_provider();
    let _ = provider.install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Upstream(format!("`{url}`: cannot build an HTTP client: {e}")))?;
    let config =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url);
    Ok(rmcp::transport::StreamableHttpClientTransport::with_client(
        client, config,
    ))
}

/// Load and check everything, connect the upstream servers, and build the gateway: every
/// error in the policy, the mapping (against the policy, then against the upstream
/// tools) or the `--listen` configuration is reported here, before anything is served.
pub async fn start(o: &Options) -> Result<Started, Error> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| Error::Read {
            path: p.display().to_string(),
            message: e.to_string(),
        })
    };
    let src = read(&o.policy)?;
    let policy = aioss_core::load(&o.policy.display().to_string(), &src).map_err(Error::Policy)?;
    let mut mapping = Mapping::read(&o.tools, &policy).map_err(Error::Mapping)?;
    let config = match &o.listen {
        Some(l) => Some(
            aioss_server::config::Config::read(&l.config)
                .map_err(|e| Error::Config(e.to_string()))?,
        ),
        None => None,
    };
    let server = match &o.server {
        Some((url, token)) => {
            let s = operator::Server::new(url, token.clone())?;
            s.check(&policy.hash).await?;
            Some(s)
        }
        None => None,
    };
    let upstreams = connect(&o.upstream).await?;
    let tools = gateway::upstream_tools(&upstreams).await?;
    let schemas: Vec<(String, serde_json::Value)> = tools
        .iter()
        .map(|(t, _)| {
            (
                t.name.to_string(),
                serde_json::Value::Object((*t.input_schema).clone()),
            )
        })
        .collect();
    mapping.bind(&policy, &schemas).map_err(Error::Mapping)?;
    let key = match &o.key {
        Some(k) => Some(aioss_audit::Key::read(k)?),
        None => None,
    };
    let (gov, mut notes) = Governance::open(policy.clone(), &o.audit, key, o.checkpoint_every)?;
    let (mapped, unmapped) = Gateway::mapped(&mapping, tools);
    for h in &unmapped {
        notes.push(format!("aioss mcp: `{}` is hidden: {}", h.tool, h.why));
    }
    let caller = |session| Caller::new(&policy, &mapping, session, &mapped);
    let (callers, agents) = match &o.listen {
        None => (Callers::One(Arc::new(caller(mapping.session()))), None),
        Some(l) => {
            let Some(cfg) = &config else {
                return Err(Error::Internal("the configuration was not read".into()));
            };
            let agents = listen::Agents::new(cfg, caller);
            if agents.callers().is_empty() {
                return Err(Error::Config(format!(
                    "`{}` has no `[[agent]]`: nobody could call",
                    l.config.display()
                )));
            }
            (Callers::Bearer, Some(agents))
        }
    };
    let who: Vec<Arc<Caller>> = match (&callers, &agents) {
        (Callers::One(c), _) => vec![Arc::clone(c)],
        (_, Some(a)) => a.callers(),
        _ => Vec::new(),
    };
    for c in who {
        for h in &c.hidden {
            notes.push(format!("aioss mcp: `{}` is hidden: {}", h.tool, h.why));
        }
    }
    let holds = Holds {
        wait: o.hold_wait,
        server,
    };
    Ok(Started {
        gateway: Gateway::new(policy, mapping, gov, mapped, callers, holds),
        upstreams,
        agents,
        notes,
    })
}

/// Serve MCP until the client closes standard input (or, with `--listen`, until Ctrl-C
/// or SIGTERM), then sign and commit the store's head and stop the upstream servers.
/// `log` receives what the operator should know (on standard error: standard output
/// carries MCP only).
pub async fn serve(o: &Options, log: &mut dyn FnMut(&str)) -> Result<(), Error> {
    let Started {
        gateway,
        upstreams,
        agents,
        notes,
    } = start(o).await?;
    for n in notes {
        log(&n);
    }
    let ended = match (&o.listen, agents) {
        (Some(l), Some(agents)) => listen::serve(gateway.clone(), agents, &l.addr, log).await,
        _ => match gateway.clone().serve(rmcp::transport::stdio()).await {
            Ok(running) => running
                .waiting()
                .await
                .map(|_| ())
                .map_err(|e| Error::Downstream(e.to_string())),
            Err(e) => Err(Error::Downstream(e.to_string())),
        },
    };
    let finished = gateway.finish().await;
    for u in upstreams {
        let _ = u.service.cancel().await;
    }
    ended?;
    finished
}

/// [`serve`] on a runtime of its own (what `aioss mcp` runs).
pub fn run(o: &Options, log: &mut dyn FnMut(&str)) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    let r = rt.block_on(serve(o, log));
    // Upstream children and pending requests go with the runtime.
    rt.shutdown_timeout(Duration::from_secs(2));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn an_upstream_is_a_url_only_as_one_http_word() {
        assert_eq!(
            Endpoint::parse(words("https://tools.example/mcp")),
            Some(Endpoint::Url("https://tools.example/mcp".into()))
        );
        assert_eq!(
            Endpoint::parse(words("http://127.0.0.1:8091/mcp")),
            Some(Endpoint::Url("http://127.0.0.1:8091/mcp".into()))
        );
        // A command whose first word looks like a URL but has arguments stays a command.
        assert_eq!(
            Endpoint::parse(words("http://x y")),
            Some(Endpoint::Command(Command {
                program: "http://x".into(),
                args: vec!["y".into()]
            }))
        );
        assert_eq!(
            Endpoint::parse(words("python3 examples/mcp/tools_server.py")),
            Some(Endpoint::Command(Command {
                program: "python3".into(),
                args: vec!["examples/mcp/tools_server.py".into()]
            }))
        );
        assert_eq!(Endpoint::parse(Vec::new()), None);
    }
}
