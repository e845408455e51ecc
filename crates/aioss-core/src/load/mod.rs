//! The policy loader: TOML text → validated [`Policy`].
//!
//! The loader collects every error it can (a policy author fixes them in one pass) and
//! refuses the policy whole if there is any. Validation happens here, once: the decision
//! path relies on everything checked below and never re-checks it. It is part of the
//! trusted base (G1 assumes the compiled rows mean what the policy says), so it is laid
//! out for reading: `load_inner` below is one load on one screen, and each section of a
//! policy has a file of its own, a function from what the earlier sections produced to
//! what it produces.
//!
//! - `reader`: the `Loader` (the source and the errors so far) and its typed readers of
//!   TOML values (`string`, `boolean`, `one_of`, `number_in`, `whole_number`,
//!   `duration`, `required`, `check_keys`, ...), each reporting a bad value where it is
//!   written, so a section validates a key in one line and a new key stays in its section.
//! - `policy`, `actions`, `states`, `params`, `budgets` (declarations, then each `add`),
//!   `dynamics`, `governor`, `monitor`, `fallback`, `rules`, `constraints` and `tests`: the sections,
//!   in the order they are read.
//! - `scope`: name resolution for the type checker, over the declarations (`Names`,
//!   shared by every section with expressions).
//!
//! The order of the sections is part of what a policy means: agent attributes take input
//! slots, and attribute strings symbol ids, in the order the expressions that read them
//! are checked (dynamics, budgets, rules, then constraints).
//!
//! No function here is over 100 lines, and no struct over 11 fields (`scope::Names`). The
//! longest, from 70 to 100 lines, stay whole because each is one list a reviewer checks
//! against the spec or the error messages: `tests::test` (one `[[test]]` case, its keys
//! in order), `constraints::decrease_row` (a barrier or Lyapunov function over `next.`),
//! `load_inner` (this flow), `reader::var_type` (`type` and `values`),
//! `dynamics::equations`, `constraints::comparison_rows` (the rows of a conjunction) and
//! `actions::actions`.

mod actions;
mod budgets;
mod constraints;
mod dynamics;
mod fallback;
mod governor;
mod monitor;
mod params;
mod policy;
mod reader;
mod rules;
mod scope;
mod states;
mod tests;

use toml::de::DeTable;

use crate::error::{ErrorKind, PolicyError, PolicyErrors, Span};
use crate::lattice::Lattice;
use crate::policy::{Layout, Policy};
use reader::Loader;
use scope::{Enums, Names};

/// The stack the loader runs on (see [`load`]).
pub const LOAD_STACK_BYTES: usize = 32 << 20;

/// Load a policy. `file` is used only in error messages; the core does no I/O.
///
/// Loading runs on a thread of its own with a [`LOAD_STACK_BYTES`] stack: type checking,
/// compiling and certifying recurse once per level of an expression's tree (at most
/// [`crate::expr::parse::MAX_HEIGHT`] levels), and the caller's thread may have as little
/// as 2 MiB (a server's reload, a test); a debug build's frames need several times that
/// at the limit. The stack is reserved, not touched, so its size costs nothing until used.
/// If no thread can be started, loading runs on the caller's thread.
pub fn load(file: &str, source: &str) -> Result<Policy, PolicyErrors> {
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("aioss-load".to_string())
            .stack_size(LOAD_STACK_BYTES)
            .spawn_scoped(s, || load_here(file, source));
        match worker.map(std::thread::ScopedJoinHandle::join) {
            Ok(Ok(r)) => r,
            // A panic in the loader is a bug; re-raising it keeps it one.
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => load_here(file, source),
        }
    })
}

/// [`load`] on the caller's thread.
fn load_here(file: &str, source: &str) -> Result<Policy, PolicyErrors> {
    let mut l = Loader {
        src: source,
        errors: Vec::new(),
    };
    let policy = load_inner(&mut l);
    let mut errors = l.errors;
    match policy {
        Some(p) if errors.is_empty() => Ok(p),
        _ => {
            errors.sort_by_key(|e| e.span.start);
            if errors.is_empty() {
                errors.push(PolicyError::new(
                    ErrorKind::InvalidValue,
                    Span::default(),
                    "the policy could not be loaded",
                ));
            }
            Err(PolicyErrors {
                file: file.to_string(),
                text: source.to_string(),
                errors,
            })
        }
    }
}

/// The sections of a policy file.
const TOP: &[&str] = &[
    "policy",
    "governor",
    "monitor",
    "action",
    "state",
    "param",
    "dynamics",
    "fallback",
    "rule",
    "constraint",
    "budget",
    "test",
];

/// One load: read the TOML, each section in order, compile, certify the fallback, and
/// read the policy's own tests (which need the compiled policy).
fn load_inner(l: &mut Loader<'_>) -> Option<Policy> {
    let doc = document(l)?;
    let root = doc.get_ref();
    l.check_keys(root, TOP, "the policy file");
    let header = policy::header(l, root);

    // The declarations, then their input slots: actions, states, `prev.<action>`,
    // budgets (agent attributes follow as expressions read them).
    let mut enums = Enums::default();
    let (mut actions, enum_of_action) = actions::actions(l, root, &mut enums);
    let (mut states, enum_of_state) = states::states(l, root, &actions, &mut enums);
    let params = params::params(l, root, &actions, &states);
    let mut next_slot = scope::assign_slots(&mut actions, &mut states);
    let declared = budgets::declare(l, root, &mut next_slot);
    let mut names = Names {
        actions,
        states,
        params,
        enum_of_action,
        enum_of_state,
        enums,
        budgets: declared.iter().map(|b| (b.name.clone(), b.slot)).collect(),
        next: None,
        next_slot,
        attrs: Vec::new(),
        symbols: Vec::new(),
    };

    // The sections with expressions, in the order that numbers attributes and symbols.
    let (dynamics, next) = dynamics::dynamics(l, root, &mut names);
    names.next = next;
    let budgets = budgets::budgets(l, declared, &mut names);
    let governor = governor::settings(l, root, &names.actions);
    let monitor = monitor::settings(l, root, &names.params);
    let fallback = fallback::fallback(l, root, &names.actions);
    let (rules, rule_ids) = rules::rules(l, root, &mut names);
    let constraints = constraints::constraints(l, root, &mut names, &rule_ids);
    if !l.errors.is_empty() {
        return None;
    }

    let policy = Policy {
        name: header.name,
        version: header.version,
        mode: header.mode,
        default_verdict: header.default_verdict,
        governor,
        monitor,
        actions: names.actions,
        states: names.states,
        params: names.params,
        dynamics,
        fallback,
        rules,
        constraints,
        budgets,
        layout: Layout {
            len: names.next_slot,
            attrs: names.attrs,
        },
        symbols: names.symbols,
        lattice: Lattice::default(),
        hash: source_hash(l.src),
        source: l.src.into(),
        tests: Vec::new(),
    };
    let lattice = Lattice::compile(&policy);
    let mut policy = Policy { lattice, ..policy };
    for e in crate::tier1::certify_fallback(&policy) {
        l.err(e);
    }
    policy.lattice.shrink();
    if let Some(v) = root.get("test") {
        policy.tests = tests::tests(l, &policy, v);
    }
    Some(policy)
}

/// The policy file as TOML, or the error that it is not.
fn document<'s>(l: &mut Loader<'s>) -> Option<toml::Spanned<DeTable<'s>>> {
    match DeTable::parse(l.src) {
        Ok(d) => Some(d),
        Err(e) => {
            let sp = e
                .span()
                .map_or(Span::default(), |r| Span::new(r.start, r.end));
            let msg = e.message().trim().to_string();
            let msg =
                msg.get(..1).map_or(String::new(), str::to_lowercase) + msg.get(1..).unwrap_or("");
            l.err(
                PolicyError::new(ErrorKind::Toml, sp, format!("invalid TOML: {msg}"))
                    .help("fix the TOML syntax at this position"),
            );
            None
        }
    }
}

/// `sha256:` and the hex digest of the policy text: what decisions and records name.
fn source_hash(src: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(src.as_bytes());
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
