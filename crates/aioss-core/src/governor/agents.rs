//! Each agent's monitor memory and its mode of operation (issue 20), part of the governor
//! state: deterministic (decision times, never a wall clock), bounded (one record per agent,
//! at most [`super::MAX_AGENTS`] agents, fixed-size windows), hashed into the state digest
//! and written into snapshots, so `audit replay` re-derives it from the log.

use std::collections::VecDeque;

use crate::failure::FailureMode;
use crate::interval::Interval;

/// An agent's mode of operation, latched until enough clean decisions or an operator's
/// reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OperatingMode {
    /// Everything as designed.
    #[default]
    Normal,
    /// Decisions proceed and repairs are still certified, but G3 is not claimed: a
    /// solver, geometry or smoothness mode was named. Never changes what executes.
    Degraded,
    /// Only the certified fallback executes (or, with `fallback_mode = "freeze"`, the
    /// agent's last certified action re-certified at the current state): a trajectory
    /// guarantee (G2, G4) was suspended, or an adversarial escalation asked for it.
    Fallback,
}

impl OperatingMode {
    /// The name in decisions.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatingMode::Normal => "normal",
            OperatingMode::Degraded => "degraded",
            OperatingMode::Fallback => "fallback",
        }
    }

    /// The mode named `s`.
    pub fn parse(s: &str) -> Option<OperatingMode> {
        [
            OperatingMode::Normal,
            OperatingMode::Degraded,
            OperatingMode::Fallback,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// What one decision of an agent leaves for the next one's detectors.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Observation {
    /// The decision's time.
    pub time: f64,
    /// The midpoint of each input slot in `Monitors::watched` (what the rows with a
    /// declared `lipschitz` read), for the Lipschitz quotient.
    pub inputs: Vec<f64>,
    /// The margin's midpoint of each row with a declared `lipschitz` (in the order of
    /// `Monitors::lipschitz`), `None` where inactive or undefined.
    pub margins: Vec<Option<f64>>,
    /// What the `[dynamics]` equations read at this decision (the executed action in
    /// place of the proposal's): `(input slot, value)`, from which the next decision one
    /// `dt` later predicts.
    pub model_inputs: Vec<(u32, Interval)>,
}

/// An agent's monitor memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct AgentMonitor {
    pub mode: OperatingMode,
    /// Clean decisions (no failure mode named) in a row since the mode last changed.
    pub clean: u32,
    /// The failure mode that set the current mode, with the decision's sequence number.
    pub since: Option<(u64, FailureMode)>,
    /// The agent's last certified executed action, for `fallback_mode = "freeze"`.
    pub last_certified: Option<Vec<f64>>,
    /// The last decision's observation.
    pub last: Option<Observation>,
    /// Whether each of the agent's last repairs converged (oldest first, at most
    /// `Monitors::rate_window`).
    pub repairs: VecDeque<bool>,
    /// The times of the agent's decisions within the rate limit's window, oldest first.
    pub recent: VecDeque<f64>,
    /// A finding of the adversarial-defence detectors, named by the agent's next decision
    /// (`adversarial_probing`): the hook of [`super::Governor::flag_adversarial`].
    pub adversarial: Option<String>,
}

impl AgentMonitor {
    /// The share of the last repairs that did not converge, and how many there were.
    pub fn non_convergence(&self) -> (f64, usize) {
        let n = self.repairs.len();
        let bad = self.repairs.iter().filter(|ok| !**ok).count();
        #[expect(clippy::cast_precision_loss, reason = "window sizes are small")]
        let share = if n == 0 { 0.0 } else { bad as f64 / n as f64 };
        (share, n)
    }
}

impl AgentMonitor {
    /// Feed everything this record holds to `h` (the governor's state digest).
    pub fn hash_into(&self, h: &mut impl FnMut(&[u8])) {
        let f = |h: &mut dyn FnMut(&[u8]), x: f64| h(&x.to_bits().to_le_bytes());
        h(self.mode.as_str().as_bytes());
        h(&self.clean.to_le_bytes());
        if let Some((seq, m)) = self.since {
            h(&seq.to_le_bytes());
            h(m.name().as_bytes());
        }
        if let Some(a) = &self.last_certified {
            h(b"certified");
            for x in a {
                f(h, *x);
            }
        }
        if let Some(o) = &self.last {
            h(b"last");
            f(h, o.time);
            for x in &o.inputs {
                f(h, *x);
            }
            for m in &o.margins {
                f(h, m.unwrap_or(f64::NAN));
            }
            for (slot, x) in &o.model_inputs {
                h(&u64::from(*slot).to_le_bytes());
                f(h, x.lo);
                f(h, x.hi);
            }
        }
        h(b"repairs");
        for ok in &self.repairs {
            h(&[u8::from(*ok)]);
        }
        h(b"recent");
        for t in &self.recent {
            f(h, *t);
        }
        if let Some(e) = &self.adversarial {
            h(b"adversarial");
            h(e.as_bytes());
        }
    }

    /// This record as JSON (doubles as the shortest decimal text that reads back exactly).
    pub fn to_json(&self) -> serde_json::Value {
        let f = |x: f64| serde_json::Value::from(format!("{x:?}"));
        let fs = |xs: &[f64]| serde_json::Value::from(xs.iter().map(|x| f(*x)).collect::<Vec<_>>());
        serde_json::json!({
            "mode": self.mode.as_str(),
            "clean": self.clean,
            "since": self.since.map(|(s, m)| serde_json::json!([s, m.name()])),
            "last_certified": self.last_certified.as_deref().map(fs),
            "last": self.last.as_ref().map(|o| serde_json::json!({
                "time": f(o.time),
                "inputs": fs(&o.inputs),
                "margins": o.margins.iter().map(|m| m.map(f)).collect::<Vec<_>>(),
                "model_inputs": o.model_inputs.iter().map(|(slot, x)| serde_json::json!([slot, f(x.lo), f(x.hi)])).collect::<Vec<_>>(),
            })),
            "repairs": self.repairs.iter().collect::<Vec<_>>(),
            "recent": self.recent.iter().map(|t| f(*t)).collect::<Vec<_>>(),
            "adversarial": self.adversarial,
        })
    }

    /// A record from [`AgentMonitor::to_json`]'s output.
    pub fn from_json(v: &serde_json::Value) -> Option<AgentMonitor> {
        use serde_json::Value;
        let num = |x: &Value| x.as_str()?.parse::<f64>().ok();
        let nums = |x: &Value| -> Option<Vec<f64>> { x.as_array()?.iter().map(num).collect() };
        let since = match v.get("since")? {
            Value::Null => None,
            s => {
                let a = s.as_array()?;
                Some((
                    a.first()?.as_u64()?,
                    FailureMode::parse(a.get(1)?.as_str()?)?,
                ))
            }
        };
        let last_certified = match v.get("last_certified")? {
            Value::Null => None,
            x => Some(nums(x)?),
        };
        let last = match v.get("last")? {
            Value::Null => None,
            o => Some(Observation {
                time: num(o.get("time")?)?,
                inputs: nums(o.get("inputs")?)?,
                margins: o
                    .get("margins")?
                    .as_array()?
                    .iter()
                    .map(|m| {
                        if m.is_null() {
                            Some(None)
                        } else {
                            num(m).map(Some)
                        }
                    })
                    .collect::<Option<Vec<_>>>()?,
                model_inputs: o
                    .get("model_inputs")?
                    .as_array()?
                    .iter()
                    .map(|p| {
                        let a = p.as_array()?;
                        let slot = u32::try_from(a.first()?.as_u64()?).ok()?;
                        Some((slot, Interval::new(num(a.get(1)?)?, num(a.get(2)?)?)))
                    })
                    .collect::<Option<Vec<_>>>()?,
            }),
        };
        Some(AgentMonitor {
            mode: OperatingMode::parse(v.get("mode")?.as_str()?)?,
            clean: u32::try_from(v.get("clean")?.as_u64()?).ok()?,
            since,
            last_certified,
            last,
            repairs: v
                .get("repairs")?
                .as_array()?
                .iter()
                .map(Value::as_bool)
                .collect::<Option<VecDeque<_>>>()?,
            recent: v
                .get("recent")?
                .as_array()?
                .iter()
                .map(num)
                .collect::<Option<VecDeque<_>>>()?,
            adversarial: v
                .get("adversarial")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}
