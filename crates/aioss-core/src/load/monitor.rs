//! `[monitor]`: the runtime monitors' thresholds and windows (docs/monitors.md), each
//! with its documented default. A policy may make a failure mode stricter (`review`),
//! never laxer: no key turns a detector off or keeps a mode from suspending what it
//! suspends.

use toml::de::{DeTable, DeValue};

use super::reader::{span_of, Loader};
use crate::error::{ErrorKind, PolicyError};
use crate::failure::FailureMode;
use crate::policy::{FallbackMode, MonitorSettings};

const KEYS: &[&str] = &[
    "recover_after",
    "fallback_mode",
    "dt",
    "dt_tolerance",
    "uncertain_share",
    "min_active_rows",
    "rate_window",
    "non_convergence_rate",
    "degenerate_cos",
    "max_metric_condition",
    "rate_limit",
    "rate_window_secs",
    "review",
];
const SECTION: &str = "[monitor]";

/// The settings: the defaults for the policy's `[param]`s, overridden by `[monitor]`.
pub(super) fn settings(
    l: &mut Loader<'_>,
    root: &DeTable<'_>,
    params: &[(String, f64)],
) -> MonitorSettings {
    let mut m = MonitorSettings::defaults_for(params);
    let Some(t) = root.get("monitor").and_then(|v| l.table(v, "monitor")) else {
        return m;
    };
    l.check_keys(t, KEYS, SECTION);
    let whole = "a whole number from 1 to 1000000";
    if let Some(n) = l.whole_number(t, "recover_after", SECTION, 1..=1_000_000, whole) {
        m.recover_after = u32::try_from(n).unwrap_or(u32::MAX);
    }
    let modes = [
        ("fallback", FallbackMode::Fallback),
        ("freeze", FallbackMode::Freeze),
    ];
    if let Some(f) = l.one_of(t, "fallback_mode", SECTION, &modes) {
        m.fallback_mode = f;
    }
    if let Some(dt) = l.number_in(
        t,
        "dt",
        SECTION,
        f64::MIN_POSITIVE..=86_400.0,
        "a positive number of seconds, at most 86400",
    ) {
        m.dt = Some(dt);
        if !t.contains_key("dt_tolerance") {
            m.dt_tolerance = dt / 10.0;
        }
    }
    if let Some(x) = l.number_in(
        t,
        "dt_tolerance",
        SECTION,
        0.0..=86_400.0,
        "from 0 to 86400 seconds",
    ) {
        m.dt_tolerance = x;
    }
    let share = "a share from 0 to 1";
    if let Some(x) = l.number_in(t, "uncertain_share", SECTION, 0.0..=1.0, share) {
        m.uncertain_share = x;
    }
    if let Some(n) = l.whole_number(t, "min_active_rows", SECTION, 1..=1_000_000, whole) {
        m.min_active_rows = u32::try_from(n).unwrap_or(u32::MAX);
    }
    let window = "a whole number from 1 to 10000";
    if let Some(n) = l.whole_number(t, "rate_window", SECTION, 1..=10_000, window) {
        m.rate_window = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(x) = l.number_in(t, "non_convergence_rate", SECTION, 0.0..=1.0, share) {
        m.non_convergence_rate = x;
    }
    if let Some(x) = l.number_in(t, "degenerate_cos", SECTION, 0.0..=1.0, "from 0 to 1") {
        m.degenerate_cos = x;
    }
    if let Some(x) = l.number_in(t, "max_metric_condition", SECTION, 1.0.., "1 or more") {
        m.max_metric_condition = x;
    }
    if let Some(n) = l.whole_number(
        t,
        "rate_limit",
        SECTION,
        1..=1_000_000_000,
        "a whole number from 1 to 1000000000",
    ) {
        m.rate_limit = Some(u32::try_from(n).unwrap_or(u32::MAX));
    }
    if let Some(x) = l.number_in(
        t,
        "rate_window_secs",
        SECTION,
        f64::MIN_POSITIVE..=86_400.0,
        "a positive number of seconds, at most 86400",
    ) {
        m.rate_window_secs = x;
    }
    if let Some(v) = t.get("review") {
        m.review = review(l, v);
    }
    m
}

/// `review = ["mode", ...]`: failure modes that, beyond what they do by default, send the
/// decision for review (audit QUESTIONABLE, the fallback executes) and move the agent to
/// the fallback mode of operation.
fn review(l: &mut Loader<'_>, v: &super::reader::Val<'_>) -> Vec<FailureMode> {
    let DeValue::Array(arr) = v.get_ref() else {
        l.err(PolicyError::new(
            ErrorKind::InvalidValue,
            span_of(v),
            "`review` in [monitor] must be an array of failure mode names",
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in arr.iter() {
        let mode = match item.get_ref() {
            DeValue::String(s) => FailureMode::parse(s).filter(|m| m.name() == s.as_ref()),
            _ => None,
        };
        match mode {
            Some(m) if !out.contains(&m) => out.push(m),
            Some(m) => l.err(PolicyError::new(
                ErrorKind::DuplicateId,
                span_of(item),
                format!("`{m}` is listed twice in `review`"),
            )),
            None => {
                let names: Vec<&str> = FailureMode::ALL.iter().map(|m| m.name()).collect();
                l.err(
                    PolicyError::new(
                        ErrorKind::InvalidValue,
                        span_of(item),
                        "`review` in [monitor] holds failure mode names".to_string(),
                    )
                    .help(format!("use any of: {}", names.join(", "))),
                );
            }
        }
    }
    out
}
