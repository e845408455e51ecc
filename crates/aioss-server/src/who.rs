//! Who is asking: the roles a caller can have, and the caller as records name it
//! (`"by": {"id", "role"}`).

use serde_json::{json, Value};

/// A caller's role. A route's row in [`crate::http::ROUTES`] lists the roles that may
/// call it; agents and operators come from the configuration, the other two are the
/// server's own names for callers it does not authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Proposes actions and reports outcomes (an `[[agent]]` of the configuration).
    Agent,
    /// Answers holds and reloads the policy (an `[[operator]]`, or SIGHUP).
    Operator,
    /// Any caller in local-development mode (no configuration): may call every route.
    Local,
    /// The server itself: it denies the holds that expire or cannot be restored.
    Server,
}

impl Role {
    /// The name in records and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Operator => "operator",
            Role::Local => "local",
            Role::Server => "server",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a request (or gave an answer), as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    /// Principal id (`local` in local-development mode, `aioss` for the server).
    pub id: String,
    /// Its role.
    pub role: Role,
}

impl Who {
    /// The caller in local-development mode.
    pub fn local() -> Who {
        Who {
            id: "local".into(),
            role: Role::Local,
        }
    }

    /// The server, ending a hold nobody answered.
    pub fn server() -> Who {
        Who {
            id: "aioss".into(),
            role: Role::Server,
        }
    }

    /// The operator who sent SIGHUP (a reload).
    pub fn signal() -> Who {
        Who {
            id: "SIGHUP".into(),
            role: Role::Operator,
        }
    }

    /// `{"id", "role"}`.
    pub fn json(&self) -> Value {
        json!({"id": self.id, "role": self.role.as_str()})
    }
}
