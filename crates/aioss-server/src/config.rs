//! The server's configuration file (TOML): one settings struct with stated defaults, and
//! the agents and operators who may call it.
//!
//! Why a hand-written reader: every unknown or mistyped field must be an error that names
//! it (a typo in `rate_limit` must not silently leave an agent unlimited), and the toml
//! crate's table API does that without a derive macro in the build.
//!
//! ```toml
//! [server]
//! queue_bound = 4096          # proposals waiting for the governor; past it: 503
//! critical_only_depth = 1024  # jobs waiting at which decisions turn critical-rows-only (0: never)
//! hold_expiry_secs = 300      # a pending hold not answered by then is a denial
//! max_pending_holds = 10000   # past it, a new hold is denied at once (recorded)
//! decision_cache = 10000      # decisions kept in memory; older ones are read from the store
//! max_tracked_agents = 10000  # agents whose latest state is kept
//! long_poll_max_secs = 30     # the longest `?wait=` honoured
//! checkpoint_every = 1000     # records between signed checkpoints (with a key)
//! snapshot_every = 10000      # records between snapshots of the governor state
//! max_connections = 1024      # connections served at once (then reserved ones, then the backlog)
//! max_connections_per_address = 256  # connections one address may hold open at once
//! reserved_connections = 16   # past max_connections: answer only /healthz and /metrics
//! header_read_timeout_secs = 10  # a request's head, from its first byte
//! body_read_timeout_secs = 10    # a request's body, after its head (then 408)
//! keep_alive_timeout_secs = 30   # an idle connection (no request in progress) is closed
//! refusal_record_rate = 5.0   # refusals recorded per second per principal (the rest counted)
//! refusal_record_burst = 20   # refusals recorded at once above that rate
//! refusal_body_bytes = 1024   # bytes of a refused request's body kept in its record
//!
//! [[agent]]
//! id = "planner-1"
//! token_sha256 = "…"          # `aioss serve hash-token TOKEN`
//! attributes = { role = "picker", trust = 0.9 }
//! rate_limit = 200.0          # requests per second, every route (0: unlimited)
//! burst = 50                  # proposals allowed at once above the rate
//!
//! [[operator]]
//! id = "alice"
//! token_sha256 = "…"
//! attributes = { role = "supervisor" }
//! ```

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::who::Role;
use crate::Error;

/// Every setting of the server, with its default.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Proposals (and other governor work) waiting at once; past it, a fast 503. Default 4096.
    pub queue_bound: usize,
    /// Seconds a hold waits for an answer before it expires (a denial). Default 300.
    pub hold_expiry_secs: f64,
    /// Pending holds at once; a hold past it is denied at once. Default 10,000.
    pub max_pending_holds: usize,
    /// Decisions kept in memory for `GET /v1/decisions/{id}` and outcomes. Default 10,000.
    pub decision_cache: usize,
    /// Agents whose latest reported state is kept (for re-checking approvals). Default 10,000.
    pub max_tracked_agents: usize,
    /// The longest long-poll (`?wait=`) in seconds. Default 30.
    pub long_poll_max_secs: f64,
    /// Records between signed checkpoints (with a key); 0: only at shutdown. Default 1000.
    pub checkpoint_every: u64,
    /// Records between `snapshot` records of the governor state (also written at start
    /// and at shutdown); a restart re-decides only the records after the last one. 0:
    /// only at start and shutdown. Default 10,000.
    pub snapshot_every: u64,
    /// Connections served at once; past it, `reserved_connections` more answer health and
    /// metrics only, and further ones wait in the kernel's backlog. Default 1024.
    pub max_connections: usize,
    /// Connections one address (IPv4-mapped IPv6 counted as IPv4) may hold open at once;
    /// more are closed at accept. Default 256 (load tools on loopback open many).
    pub max_connections_per_address: usize,
    /// Connections accepted past `max_connections`, each for one request, that answer
    /// only `GET /healthz` and `GET /metrics` (anything else: 503 `too_many_connections`),
    /// so health stays answerable while the cap is reached. Default 16.
    pub reserved_connections: usize,
    /// Seconds from the first byte of a request to its complete head (request line and
    /// headers); past it the connection is closed. Default 10.
    pub header_read_timeout_secs: f64,
    /// Seconds to read a request's body once its head is in; past it the answer is 408
    /// `body_timeout` and the connection is closed. Default 10.
    pub body_read_timeout_secs: f64,
    /// Seconds a connection may stay silent while no request is in progress (between
    /// keep-alive requests, or before the first), and a response's write may stall;
    /// past it the connection is closed. Default 30.
    pub keep_alive_timeout_secs: f64,
    /// Refusals recorded per second for one principal (a token bucket); past it a refusal
    /// is still answered, but counted (`aioss_refusals_unrecorded_total`) instead of
    /// recorded, so that a caller with a valid token cannot grow the log at will.
    /// Unauthenticated refusals are never recorded. Default 5.
    pub refusal_record_rate: f64,
    /// Refusals recorded at once above `refusal_record_rate`. Default 20.
    pub refusal_record_burst: f64,
    /// Bytes of a refused request's body kept in its record (with the whole body's length
    /// and SHA-256); a bad proposal longer than this is recorded as `refused`, not as a
    /// replayable `input_error`. Default 1024.
    pub refusal_body_bytes: usize,
    /// Jobs waiting for the governor at which it decides in its critical-rows-only mode
    /// (`Governor::set_critical_only`: a repair keeps every critical row and may relax the
    /// others without first trying to keep them), until the queue is below it again; 0
    /// turns the mode off. Default 1024 (a quarter of the default `queue_bound`).
    pub critical_only_depth: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            queue_bound: 4096,
            hold_expiry_secs: 300.0,
            max_pending_holds: 10_000,
            decision_cache: 10_000,
            max_tracked_agents: 10_000,
            long_poll_max_secs: 30.0,
            checkpoint_every: 1000,
            snapshot_every: 10_000,
            max_connections: 1024,
            max_connections_per_address: 256,
            reserved_connections: 16,
            header_read_timeout_secs: 10.0,
            body_read_timeout_secs: 10.0,
            keep_alive_timeout_secs: 30.0,
            refusal_record_rate: 5.0,
            refusal_record_burst: 20.0,
            refusal_body_bytes: 1024,
            critical_only_depth: 1024,
        }
    }
}

/// An agent or an operator of the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// The id (an agent's id is the `agent` of its proposals).
    pub id: String,
    /// [`Role::Agent`] or [`Role::Operator`].
    pub role: Role,
    /// Attributes (`role`, `trust`, …) as JSON values, in the order given.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Requests per second, every route (0: unlimited).
    pub rate_limit: f64,
    /// Burst above the rate.
    pub burst: f64,
}

/// A loaded configuration: settings and the principals by token hash.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The settings.
    pub settings: Settings,
    /// Principals by the hex SHA-256 of their bearer token.
    pub principals: HashMap<String, Principal>,
}

/// The hex SHA-256 of a bearer token, as stored in `token_sha256`.
pub fn hash_token(token: &str) -> String {
    aioss_audit::record::hex(&Sha256::digest(token.as_bytes()))
}

fn bad(field: &str, msg: &str) -> Error {
    Error::Config(format!("`{field}`: {msg}"))
}

fn positive_int(v: &toml::Value, field: &str) -> Result<u64, Error> {
    match v {
        toml::Value::Integer(i) if *i >= 0 => {
            u64::try_from(*i).map_err(|_| bad(field, "must be a non-negative integer"))
        }
        _ => Err(bad(field, "must be a non-negative integer")),
    }
}

fn number(v: &toml::Value, field: &str) -> Result<f64, Error> {
    #[expect(
        clippy::cast_precision_loss,
        reason = "a TOML integer setting means its nearest double"
    )]
    let x = match v {
        toml::Value::Integer(i) => *i as f64,
        toml::Value::Float(f) => *f,
        _ => return Err(bad(field, "must be a number")),
    };
    if x.is_finite() && x >= 0.0 {
        Ok(x)
    } else {
        Err(bad(field, "must be a finite non-negative number"))
    }
}

/// A timeout: a number of seconds above 0 and at most a day.
fn timeout(v: &toml::Value, field: &str) -> Result<f64, Error> {
    let x = number(v, field)?;
    if x > 0.0 && x <= 86_400.0 {
        Ok(x)
    } else {
        Err(bad(
            field,
            "must be a number of seconds above 0 and at most 86400",
        ))
    }
}

fn to_usize(x: u64, field: &str) -> Result<usize, Error> {
    usize::try_from(x).map_err(|_| bad(field, "is too large"))
}

fn string(v: &toml::Value, field: &str) -> Result<String, Error> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        _ => Err(bad(field, "must be a string")),
    }
}

fn json_of(v: &toml::Value, field: &str) -> Result<serde_json::Value, Error> {
    match v {
        toml::Value::String(s) => Ok(serde_json::Value::String(s.clone())),
        toml::Value::Integer(i) => Ok(serde_json::Value::from(*i)),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| bad(field, "must be a finite number")),
        toml::Value::Boolean(b) => Ok(serde_json::Value::Bool(*b)),
        _ => Err(bad(field, "must be a string, a number or a boolean")),
    }
}

impl Config {
    /// Parse the text of a configuration file.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let t: toml::Table = text
            .parse()
            .map_err(|e| Error::Config(format!("not valid TOML: {e}")))?;
        let mut c = Config::default();
        for (k, v) in &t {
            match k.as_str() {
                "server" => c.settings = Self::settings(v)?,
                "agent" | "operator" => {
                    let role = if k == "agent" {
                        Role::Agent
                    } else {
                        Role::Operator
                    };
                    let toml::Value::Array(items) = v else {
                        return Err(bad(k, &format!("must be an array of tables (`[[{k}]]`)")));
                    };
                    for (i, item) in items.iter().enumerate() {
                        let (hash, p) = Self::principal(item, role, &format!("{k}[{i}]"))?;
                        if c.principals
                            .values()
                            .any(|q| q.id == p.id && q.role == p.role)
                        {
                            return Err(bad(
                                &format!("{k}[{i}].id"),
                                &format!("`{}` is listed twice", p.id),
                            ));
                        }
                        if c.principals.insert(hash, p).is_some() {
                            return Err(bad(
                                &format!("{k}[{i}].token_sha256"),
                                "another principal has the same token",
                            ));
                        }
                    }
                }
                other => {
                    return Err(Error::Config(format!(
                        "unknown section `{other}` (expected `server`, `agent` or `operator`)"
                    )))
                }
            }
        }
        Ok(c)
    }

    /// Read and parse a configuration file.
    pub fn read(path: &std::path::Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    fn settings(v: &toml::Value) -> Result<Settings, Error> {
        let toml::Value::Table(t) = v else {
            return Err(bad("server", "must be a table"));
        };
        let mut s = Settings::default();
        for (k, v) in t {
            let f = format!("server.{k}");
            match k.as_str() {
                "queue_bound" => s.queue_bound = to_usize(positive_int(v, &f)?, &f)?.max(1),
                "critical_only_depth" => {
                    s.critical_only_depth = to_usize(positive_int(v, &f)?, &f)?
                }
                "hold_expiry_secs" => s.hold_expiry_secs = number(v, &f)?,
                "max_pending_holds" => s.max_pending_holds = to_usize(positive_int(v, &f)?, &f)?,
                "decision_cache" => s.decision_cache = to_usize(positive_int(v, &f)?, &f)?,
                "max_tracked_agents" => {
                    s.max_tracked_agents = to_usize(positive_int(v, &f)?, &f)?;
                }
                "long_poll_max_secs" => s.long_poll_max_secs = number(v, &f)?,
                "checkpoint_every" => s.checkpoint_every = positive_int(v, &f)?,
                "snapshot_every" => s.snapshot_every = positive_int(v, &f)?,
                "max_connections" => s.max_connections = to_usize(positive_int(v, &f)?, &f)?,
                "max_connections_per_address" => {
                    s.max_connections_per_address = to_usize(positive_int(v, &f)?, &f)?;
                }
                "reserved_connections" => {
                    s.reserved_connections = to_usize(positive_int(v, &f)?, &f)?;
                }
                "header_read_timeout_secs" => s.header_read_timeout_secs = timeout(v, &f)?,
                "body_read_timeout_secs" => s.body_read_timeout_secs = timeout(v, &f)?,
                "keep_alive_timeout_secs" => s.keep_alive_timeout_secs = timeout(v, &f)?,
                "refusal_record_rate" => s.refusal_record_rate = number(v, &f)?,
                "refusal_record_burst" => s.refusal_record_burst = number(v, &f)?.max(1.0),
                "refusal_body_bytes" => {
                    s.refusal_body_bytes = to_usize(positive_int(v, &f)?, &f)?;
                }
                _ => return Err(Error::Config(format!("unknown setting `{f}`"))),
            }
        }
        Ok(s)
    }

    fn principal(v: &toml::Value, role: Role, at: &str) -> Result<(String, Principal), Error> {
        let toml::Value::Table(t) = v else {
            return Err(bad(at, "must be a table"));
        };
        let mut id = None;
        let mut hash = None;
        let mut p = Principal {
            id: String::new(),
            role,
            attributes: serde_json::Map::new(),
            rate_limit: 0.0,
            burst: 0.0,
        };
        let mut burst = None;
        for (k, v) in t {
            let f = format!("{at}.{k}");
            match (k.as_str(), role) {
                ("id", _) => id = Some(string(v, &f)?),
                ("token_sha256", _) => {
                    let h = string(v, &f)?.to_ascii_lowercase();
                    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad(
                            &f,
                            "must be 64 hex digits (`aioss serve hash-token TOKEN` prints it)",
                        ));
                    }
                    hash = Some(h);
                }
                ("attributes", _) => {
                    let toml::Value::Table(a) = v else {
                        return Err(bad(&f, "must be a table like `{ role = \"picker\" }`"));
                    };
                    for (ak, av) in a {
                        p.attributes
                            .insert(ak.clone(), json_of(av, &format!("{f}.{ak}"))?);
                    }
                }
                ("rate_limit", Role::Agent) => p.rate_limit = number(v, &f)?,
                ("burst", Role::Agent) => burst = Some(number(v, &f)?),
                _ => return Err(Error::Config(format!("unknown field `{f}`"))),
            }
        }
        p.id = id.ok_or_else(|| bad(&format!("{at}.id"), "is missing"))?;
        if p.id.is_empty() {
            return Err(bad(&format!("{at}.id"), "must not be empty"));
        }
        let hash = hash.ok_or_else(|| bad(&format!("{at}.token_sha256"), "is missing"))?;
        p.burst = burst.unwrap_or(p.rate_limit).max(1.0);
        Ok((hash, p))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_field() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.settings, Settings::default());
        let h = hash_token("secret");
        let text = format!(
            "[server]\nqueue_bound = 8\n[[agent]]\nid = \"a\"\ntoken_sha256 = \"{h}\"\nattributes = {{ role = \"picker\", trust = 0.9 }}\nrate_limit = 5\n"
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.settings.queue_bound, 8);
        let p = c.principals.get(&h).unwrap();
        assert_eq!(p.id, "a");
        assert_eq!(p.attributes.get("trust"), Some(&serde_json::json!(0.9)));
        let e = Config::parse("[server]\nqueue_bund = 8\n").unwrap_err();
        assert!(e.to_string().contains("`server.queue_bund`"), "{e}");
        let e = Config::parse("[server]\nqueue_bound = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("`server.queue_bound`"), "{e}");
        let e = Config::parse(&text.replace("rate_limit", "rate_limt")).unwrap_err();
        assert!(e.to_string().contains("`agent[0].rate_limt`"), "{e}");
        let e = Config::parse("[[operator]]\nid = \"o\"\ntoken_sha256 = \"zz\"\n").unwrap_err();
        assert!(e.to_string().contains("`operator[0].token_sha256`"), "{e}");
    }
}
