//! Every kind of policy error, each with its reported line, column and message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aioss_core::{load, ErrorKind};

/// A small valid policy; each test breaks one line of it.
const BASE: &str = r#"[policy]
name = "t"
version = "1"
[action.vx]
type = "real"
min = -2.0
max = 2.0
[action.mode]
type = "enum"
values = ["move", "stop"]
[state.px]
noise = 0.1
min = 0
max = 10
[state.zone]
type = "enum"
values = ["aisle", "dock"]
[state.ok]
type = "bool"
[param]
dt = 0.1
[fallback]
vx = 0.0
mode = "stop"
[[constraint]]
id = "speed"
expr = "vx^2 <= 2.25"
"#;

/// Load `src`, expect exactly one error, return (kind, line, column, message, help).
fn one_error(src: &str) -> (ErrorKind, usize, usize, String, String) {
    let errs = match load("p.toml", src) {
        Ok(_) => panic!("expected an error, the policy loaded:\n{src}"),
        Err(e) => e,
    };
    assert_eq!(errs.errors.len(), 1, "expected one error, got:\n{errs}");
    let e = &errs.errors[0];
    let (line, col) = errs.position(e);
    (
        e.kind,
        line,
        col,
        e.message.clone(),
        e.help.clone().unwrap_or_default(),
    )
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

const BASE_LINES: usize = 27;

#[test]
fn base_policy_loads() {
    let p = load("p.toml", BASE).unwrap();
    assert_eq!(p.lattice.rows.len(), 1);
    assert_eq!(BASE.lines().count(), BASE_LINES);
}

#[test]
fn invalid_toml_is_positioned() {
    let (k, line, col, msg, _) = one_error("[policy]\nname = \"t\nversion = 1\n");
    assert_eq!(k, ErrorKind::Toml);
    assert_eq!(line, 2);
    assert!(col >= 8, "{col}");
    assert!(msg.starts_with("invalid TOML"), "{msg}");
}

#[test]
fn syntax_error_points_into_the_expression() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"vx + * 2 <= 1\"\n");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::Syntax);
    assert_eq!((line, col), (BASE_LINES + 3, 14));
    assert_eq!(msg, "expected a value, found `*`");
}

#[test]
fn single_equals_is_a_syntax_error_with_help() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"vx = 1\"\n");
    let (k, line, col, msg, help) = one_error(&src);
    assert_eq!(k, ErrorKind::Syntax);
    assert_eq!((line, col), (BASE_LINES + 3, 12));
    assert_eq!(msg, "expected `==`, found `=`");
    assert!(help.contains("=="));
}

#[test]
fn unknown_name_suggests_the_closest() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"vz <= 1\"\n");
    let (k, line, col, msg, help) = one_error(&src);
    assert_eq!(k, ErrorKind::UnknownName);
    assert_eq!((line, col), (BASE_LINES + 3, 9));
    assert_eq!(msg, "unknown name `vz`");
    assert_eq!(help, "did you mean `vx`?");
}

#[test]
fn unknown_function() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"cube(vx) <= 1\"\n");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::UnknownName);
    assert_eq!((line, col), (BASE_LINES + 3, 9));
    assert_eq!(msg, "unknown function `cube`");
}

#[test]
fn enum_compared_with_a_value_it_lacks() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"zone != 'dok'\"\n");
    let (k, line, col, msg, help) = one_error(&src);
    assert_eq!(k, ErrorKind::UnknownEnumValue);
    assert_eq!((line, col), (BASE_LINES + 3, 17));
    assert_eq!(msg, "`zone` has no value `'dok'`");
    assert_eq!(help, "its values are 'aisle', 'dock'");
}

#[test]
fn enum_in_list_with_a_value_it_lacks() {
    let src =
        with("[[rule]]\nid = \"r\"\nwhen = \"mode in ['move', 'jump']\"\nverdict = \"HOLD\"\n");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::UnknownEnumValue);
    assert_eq!((line, col), (BASE_LINES + 3, 26));
    assert_eq!(msg, "`mode` has no value `'jump'`");
}

#[test]
fn real_used_as_a_boolean() {
    let src = with("[[rule]]\nid = \"r\"\nwhen = \"vx * 2\"\nverdict = \"HOLD\"\n");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::NotBoolean);
    assert_eq!((line, col), (BASE_LINES + 3, 9));
    assert_eq!(msg, "expected a boolean condition, found a number");
}

#[test]
fn real_operand_of_and() {
    let src = with("[[rule]]\nid = \"r\"\nwhen = \"ok and px\"\nverdict = \"HOLD\"\n");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::NotBoolean);
    assert_eq!((line, col), (BASE_LINES + 3, 16));
    assert_eq!(msg, "`and` needs a boolean, found a number");
}

#[test]
fn constraint_expr_that_is_a_number() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"vx + 1\"\n");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::NotBoolean);
    assert_eq!((line, col), (BASE_LINES + 3, 9));
    assert_eq!(
        msg,
        "`expr` of constraint `c` must be a comparison, found a number"
    );
}

#[test]
fn enum_ordering_is_a_type_error() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"zone < 'dock'\"\n");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::TypeMismatch);
    assert_eq!((line, col), (BASE_LINES + 3, 9));
    assert!(msg.starts_with("`<` needs numbers"), "{msg}");
}

#[test]
fn number_compared_with_enum() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"zone == 1\"\n");
    let (k, _, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::TypeMismatch);
    assert_eq!(col, 9);
    assert_eq!(msg, "cannot compare an enum value with a number");
}

#[test]
fn arithmetic_on_a_boolean() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"ok + 1 <= 2\"\n");
    let (k, _, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::TypeMismatch);
    assert_eq!(col, 9);
    assert_eq!(msg, "`+` needs a number, found a boolean");
}

#[test]
fn duplicate_constraint_id() {
    let src = with("[[constraint]]\nid = \"speed\"\nexpr = \"vx <= 1\"\n");
    let (k, line, col, msg, help) = one_error(&src);
    assert_eq!(k, ErrorKind::DuplicateId);
    assert_eq!((line, col), (BASE_LINES + 2, 6));
    assert_eq!(msg, "constraint id `speed` is used twice");
    assert_eq!(
        help,
        "the first use is on line 26; constraint ids must be unique"
    );
}

#[test]
fn duplicate_rule_id() {
    let src = with("[[rule]]\nid = \"r\"\nwhen = \"ok\"\nverdict = \"HOLD\"\n[[rule]]\nid = \"r\"\nwhen = \"ok\"\nverdict = \"GO\"\n");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::DuplicateId);
    assert_eq!((line, col), (BASE_LINES + 6, 6));
    assert_eq!(msg, "rule id `r` is used twice");
}

#[test]
fn metric_not_positive_definite() {
    let src = BASE.replace(
        "[action.vx]",
        "[governor]\nmetric_matrix = [[1.0]]\n[action.vy]\ntype = \"real\"\nmin = -1\nmax = 1\n[action.vx]",
    )
    .replace("vx = 0.0", "vx = 0.0\nvy = 0.0");
    let (k, _, _, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::InvalidValue, "{msg}");
    let src = BASE.replace(
        "[action.vx]",
        "[governor]\nmetric_matrix = [[1.0, 2.0], [2.0, 1.0]]\n[action.vy]\ntype = \"real\"\nmin = -1\nmax = 1\n[action.vx]",
    )
    .replace("vx = 0.0", "vx = 0.0\nvy = 0.0");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::MetricNotPositiveDefinite);
    assert_eq!((line, col), (5, 17));
    assert!(
        msg.starts_with("`metric_matrix` is not positive definite"),
        "{msg}"
    );
    let src = BASE.replace(
        "[action.vx]",
        "[governor]\nmetric = { vx = -1.0 }\n[action.vx]",
    );
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::MetricNotPositiveDefinite);
    assert_eq!((line, col), (5, 17));
    assert_eq!(
        msg,
        "the metric weight of `vx` is -1; the metric must be positive definite"
    );
}

#[test]
fn enforce_deadline_must_be_a_boolean() {
    let src = BASE.replace(
        "[action.vx]",
        "[governor]\nenforce_deadline = 1\n[action.vx]",
    );
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::InvalidValue);
    assert_eq!((line, col), (5, 20));
    assert_eq!(
        msg,
        "`enforce_deadline` in [governor] must be true or false, found integer"
    );
    let on = BASE.replace(
        "[action.vx]",
        "[governor]\nenforce_deadline = true\n[action.vx]",
    );
    assert!(load("p.toml", &on).unwrap().governor.enforce_deadline);
    assert!(!load("p.toml", BASE).unwrap().governor.enforce_deadline);
}

#[test]
fn critical_constraint_with_tolerance() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"vx <= 1\"\ntolerance = 0.5\n");
    let (k, line, col, msg, help) = one_error(&src);
    assert_eq!(k, ErrorKind::CriticalTolerance);
    assert_eq!((line, col), (BASE_LINES + 4, 13));
    assert_eq!(msg, "critical constraint `c` has a tolerance");
    assert!(help.contains("never relaxed"));
}

#[test]
fn barrier_without_dynamics() {
    let src = with(
        "[[constraint]]\nid = \"wall\"\nkind = \"barrier\"\nbarrier = \"px - 1\"\ngamma = 0.5\n",
    );
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::NeedsDynamics);
    assert_eq!((line, col), (BASE_LINES + 2, 6));
    assert_eq!(msg, "barrier constraint `wall` needs a [dynamics] section");
}

#[test]
fn lyapunov_without_dynamics() {
    let src = with("[[constraint]]\nid = \"v\"\nkind = \"lyapunov\"\ncriticality = \"low\"\nlyapunov = \"px^2\"\nalpha = 0.1\n");
    let (k, _, _, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::NeedsDynamics);
    assert_eq!(msg, "lyapunov constraint `v` needs a [dynamics] section");
}

#[test]
fn next_without_dynamics() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"next.px <= 9\"\n");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::NeedsDynamics);
    assert_eq!((line, col), (BASE_LINES + 3, 9));
    assert_eq!(msg, "`next.px` needs a [dynamics] section");
}

#[test]
fn next_of_a_state_without_an_equation() {
    let src = with("[dynamics]\npx = \"px + dt * vx\"\n[[constraint]]\nid = \"c\"\nexpr = \"next.zone == 'dock'\"\n");
    let (k, _, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::NeedsDynamics);
    assert_eq!(col, 9);
    assert_eq!(msg, "[dynamics] has no equation for `zone`");
}

#[test]
fn fallback_not_certified_names_the_constraint() {
    let src = BASE.replace("vx = 0.0", "vx = 1.9");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::FallbackNotCertified);
    assert_eq!((line, col), (27, 9));
    assert!(
        msg.starts_with("the fallback violates critical constraint `speed`"),
        "{msg}"
    );
}

#[test]
fn fallback_that_some_state_breaks_is_refused() {
    // Holds at px = 5 but not at px = 10, which the declared range allows.
    let src = with("[[constraint]]\nid = \"reach\"\nexpr = \"px + vx <= 8\"\n");
    let (k, _, _, msg, help) = one_error(&src);
    assert_eq!(k, ErrorKind::FallbackNotCertified);
    assert!(msg.contains("`reach`"), "{msg}");
    assert!(help.contains("`px`"), "{help}");
}

#[test]
fn unknown_key_suggests() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"vx <= 1\"\ncritcality = \"low\"\n");
    let (k, line, col, msg, help) = one_error(&src);
    assert_eq!(k, ErrorKind::UnknownKey);
    assert_eq!((line, col), (BASE_LINES + 4, 1));
    assert_eq!(msg, "unknown key `critcality` in [[constraint]] 2");
    assert_eq!(help, "did you mean `criticality`?");
}

#[test]
fn missing_required_field() {
    let src = with("[[constraint]]\nid = \"c\"\n");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::MissingField);
    assert_eq!((line, col), (BASE_LINES + 2, 6));
    assert_eq!(msg, "constraint `c` has no `expr`");
}

#[test]
fn bad_enum_value_in_fallback() {
    let src = BASE.replace("mode = \"stop\"", "mode = \"halt\"");
    let (k, line, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::UnknownEnumValue);
    assert_eq!((line, col), (24, 8));
    assert_eq!(msg, "`mode` has no value `'halt'`");
}

#[test]
fn bad_verdict_lists_the_choices() {
    let src = with("[[rule]]\nid = \"r\"\nwhen = \"ok\"\nverdict = \"STOP\"\n");
    let (k, line, col, msg, help) = one_error(&src);
    assert_eq!(k, ErrorKind::InvalidValue);
    assert_eq!((line, col), (BASE_LINES + 4, 11));
    assert_eq!(msg, "`verdict` in rule `r` cannot be `STOP`");
    assert_eq!(help, "use one of: GO, REPAIR, HOLD, BLOCK");
}

#[test]
fn text_state_cannot_be_computed_with() {
    let src = BASE.replace("[state.ok]", "[state.note]\ntype = \"text\"\n[state.ok]")
        + "[[rule]]\nid = \"r\"\nwhen = \"note == 'x'\"\nverdict = \"HOLD\"\n";
    let (k, _, col, msg, _) = one_error(&src);
    assert_eq!(k, ErrorKind::TypeMismatch);
    assert_eq!(col, 9);
    assert_eq!(
        msg,
        "the text variable `note` cannot be used in an expression"
    );
}

#[test]
fn every_error_is_reported_at_once_and_the_policy_is_refused_whole() {
    let src = with(
        "[[constraint]]\nid = \"a\"\nexpr = \"vz <= 1\"\n[[constraint]]\nid = \"b\"\nexpr = \"zone == 'x'\"\n[[constraint]]\nid = \"a\"\nexpr = \"vx <= 1\"\n",
    );
    let errs = load("p.toml", &src).err().unwrap();
    let kinds: Vec<ErrorKind> = errs.errors.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ErrorKind::UnknownName,
            ErrorKind::UnknownEnumValue,
            ErrorKind::DuplicateId
        ]
    );
    let text = errs.to_string();
    assert!(text.contains("--> p.toml:30:9"), "{text}");
    assert!(
        text.ends_with("p.toml: 3 errors; the policy was not loaded"),
        "{text}"
    );
}

#[test]
fn rendered_error_shows_the_line_and_a_caret() {
    let src = with("[[constraint]]\nid = \"c\"\nexpr = \"vz <= 1\"\n");
    let text = load("p.toml", &src).err().unwrap().to_string();
    let expected = "error: unknown name `vz`\n  --> p.toml:30:9\n   |\n30 | expr = \"vz <= 1\"\n   |         ^^\n   = help: did you mean `vx`?\n";
    assert!(text.starts_with(expected), "{text}");
}

/// Caught (issue 17, defect 3): a barrier with `criticality = "high"` and a tolerance
/// loaded, the CRE relaxed it, and the decision said ALLOW_AFTER_REPAIR with audit VALID.
/// Forward invariance (G2) rests on every barrier row, so a barrier that is not critical
/// is refused where its criticality is written.
#[test]
fn a_barrier_that_is_not_critical_is_refused() {
    let dynamics = "[dynamics]\npx = \"px + dt * vx\"\nerror_bound = { px = 0.01 }\n";
    let src = with(&format!(
        "{dynamics}[[constraint]]\nid = \"wall\"\nkind = \"barrier\"\ncriticality = \"high\"\nbarrier = \"10 - px\"\ngamma = 0.5\ntolerance = 0.5\n"
    ));
    let (k, line, col, msg, help) = one_error(&src);
    assert_eq!(k, ErrorKind::BarrierNotCritical);
    assert_eq!((line, col), (BASE_LINES + 7, 15));
    assert_eq!(msg, "barrier constraint `wall` must be critical");
    assert!(help.contains("G2"), "{help}");
    // Critical (the default) and no tolerance: it loads.
    let ok = with(&format!(
        "{dynamics}[[constraint]]\nid = \"wall\"\nkind = \"barrier\"\nbarrier = \"10 - px\"\ngamma = 0.5\n"
    ));
    load("p.toml", &ok).unwrap();
}

/// Caught (issue 18, item 8): `policy check` aborted on a sum of 10,000 terms, and
/// reloading a 2,000-term policy that `policy check` accepted aborted the whole server
/// (stack overflow in the recursive passes over the tree). A tree higher than the stated
/// limit is a positioned error; nothing recurses deeper.
#[test]
fn a_long_flat_sum_is_a_positioned_error_not_a_stack_overflow() {
    let sum = vec!["vx"; 10_000].join(" + ");
    let src = with(&format!(
        "[[constraint]]\nid = \"long\"\nexpr = \"{sum} <= 1\"\n"
    ));
    let (k, line, _, msg, help) = one_error(&src);
    assert_eq!(k, ErrorKind::Syntax);
    assert_eq!(line, BASE_LINES + 3);
    assert!(msg.contains("more than 400 operations deep"), "{msg}");
    assert!(help.contains("split"), "{help}");
    // The same through `in` and through `min`: each becomes a chain once typed.
    let list = (0..2_000).map(|_| "'aisle'").collect::<Vec<_>>().join(", ");
    let src = with(&format!(
        "[[rule]]\nid = \"r\"\nwhen = \"zone in [{list}]\"\nverdict = \"HOLD\"\n"
    ));
    assert!(one_error(&src).3.contains("operations deep"));
    let args = vec!["vx"; 2_000].join(", ");
    let src = with(&format!(
        "[[constraint]]\nid = \"m\"\nexpr = \"min({args}) <= 1\"\n"
    ));
    assert!(one_error(&src).3.contains("operations deep"));
}

/// The limit leaves room: a tree as high as allowed loads, compiles, certifies its
/// fallback and is decided from a thread with an eighth of the 2 MiB stack a server's
/// reload runs on, even in a debug build, whose frames are the largest (loading runs on a
/// thread of its own; deciding walks the flat tape).
#[test]
fn a_tree_as_high_as_allowed_loads_on_a_small_stack() {
    let sum = vec!["0.001 * vx"; 398].join(" + ");
    let src = with(&format!(
        "[[constraint]]\nid = \"long\"\nexpr = \"{sum} <= 1\"\n"
    ));
    let run = move || {
        let p = load("p.toml", &src).unwrap();
        let mut g = aioss_core::Governor::new(p);
        let d = g
            .decide_line(
                r#"{"action":{"vx":1.5,"mode":"move"},"state":{"px":1,"zone":"aisle","ok":true}}"#,
            )
            .unwrap();
        d.final_outcome
    };
    let outcome = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(outcome, aioss_core::Outcome::Allow);
}
