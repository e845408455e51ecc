//! `[policy]`: the policy's name, version, mode and default verdict.

use toml::de::DeTable;

use super::reader::{span_of, Loader, VERDICTS};
use crate::error::{ErrorKind, PolicyError, Span};
use crate::policy::{Mode, Verdict};

const KEYS: &[&str] = &["name", "version", "mode", "default", "description"];
const SECTION: &str = "[policy]";

/// What `[policy]` says.
pub(super) struct Header {
    pub(super) name: String,
    pub(super) version: String,
    pub(super) mode: Mode,
    pub(super) default_verdict: Verdict,
}

/// `[policy]`, which every policy has.
pub(super) fn header(l: &mut Loader<'_>, root: &DeTable<'_>) -> Header {
    let mut h = Header {
        name: String::new(),
        version: String::from("0"),
        mode: Mode::Enforce,
        default_verdict: Verdict::Go,
    };
    let Some(v) = root.get("policy") else {
        l.err(
            PolicyError::new(
                ErrorKind::MissingField,
                Span::new(0, 0),
                "the policy has no [policy] section",
            )
            .help("add [policy] with `name = \"...\"`"),
        );
        return h;
    };
    let Some(t) = l.table(v, "policy") else {
        return h;
    };
    l.check_keys(t, KEYS, SECTION);
    if l.required(t, "name", SECTION, span_of(v)) {
        h.name = l
            .string(t, "name", SECTION)
            .map(|x| x.0)
            .unwrap_or_default();
    }
    if let Some((s, _)) = l.string(t, "version", SECTION) {
        h.version = s;
    }
    let modes = [("enforce", Mode::Enforce), ("dry-run", Mode::DryRun)];
    h.mode = l
        .one_of(t, "mode", SECTION, &modes)
        .unwrap_or(Mode::Enforce);
    h.default_verdict = l
        .one_of(t, "default", SECTION, &VERDICTS)
        .unwrap_or(Verdict::Go);
    let _ = l.string(t, "description", SECTION);
    h
}
