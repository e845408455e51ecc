//! The mapping file: positioned errors at start (against the policy, then against the
//! upstream tools' schemas), proposals from calls, repairs written back, and which tools
//! `tools/list` hides.
#![allow(clippy::panic, clippy::indexing_slicing, reason = "tests")]

use aioss_mcp::mapping::{MappingErrorKind, Source};
use aioss_mcp::Mapping;
use serde_json::{json, Map, Value};

const POLICY: &str = include_str!("../../../policies/agent-tools.toml");
const EXAMPLE: &str = include_str!("../../../examples/mcp/agent-tools.tools.toml");

fn policy() -> aioss_core::Policy {
    match aioss_core::load("policies/agent-tools.toml", POLICY) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The upstream tools of examples/mcp/tools_server.py, with the schemas the Python SDK
/// gives them.
fn upstream() -> Vec<(String, Value)> {
    let s = |props: Value, required: Value| json!({"type": "object", "properties": props, "required": required});
    vec![
        (
            "read_file".into(),
            s(json!({"path": {"type": "string"}}), json!(["path"])),
        ),
        (
            "delete_file".into(),
            s(json!({"path": {"type": "string"}}), json!(["path"])),
        ),
        (
            "transfer".into(),
            s(
                json!({"amount": {"type": "number"}, "to": {"type": "string"}}),
                json!(["amount", "to"]),
            ),
        ),
        (
            "send_email".into(),
            s(
                json!({
                    "to": {"type": "array", "items": {"type": "string"}},
                    "subject": {"type": "string"},
                    "body": {"type": "string"},
                    "preview": {"type": "boolean", "default": false}
                }),
                json!(["to", "subject", "body"]),
            ),
        ),
    ]
}

fn load(text: &str) -> Result<Mapping, aioss_mcp::MappingErrors> {
    Mapping::load("t.tools.toml", text, None, &policy())
}

fn bound(text: &str) -> Result<Mapping, aioss_mcp::MappingErrors> {
    let p = policy();
    let mut m = Mapping::load("t.tools.toml", text, None, &p)?;
    m.bind(&p, &upstream())?;
    Ok(m)
}

/// The one error of `r`, with its line and column and the rendered text.
fn one_error<T: std::fmt::Debug>(
    r: Result<T, aioss_mcp::MappingErrors>,
) -> (MappingErrorKind, (usize, usize), String) {
    let e = match r {
        Ok(m) => panic!("expected an error, got {m:?}"),
        Err(e) => e,
    };
    assert_eq!(e.errors.len(), 1, "{e}");
    let first = &e.errors[0];
    (first.kind, e.position(first), e.to_string())
}

#[test]
fn the_example_mapping_loads_and_binds() {
    let m = match bound(EXAMPLE) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(m.agent, "demo-agent");
    assert_eq!(m.tools.len(), 4);
    let email = m
        .tool("send_email")
        .map(|t| t.vars.clone())
        .unwrap_or_default();
    // `preview` takes its default from the schema.
    assert!(email.iter().any(|v| v.name == "preview"
        && matches!(
            &v.source,
            Source::Arg {
                default: Some(Value::Bool(false)),
                ..
            }
        )));
}

#[test]
fn an_argument_path_that_does_not_exist_is_positioned() {
    let text = EXAMPLE.replace(
        r#"amount = { arg = "amount" }"#,
        r#"amount = { arg = "amout" }"#,
    );
    let line = text
        .lines()
        .position(|l| l.contains("\"amout\""))
        .map(|i| i + 1);
    let (kind, (l, c), shown) = one_error(bound(&text));
    assert_eq!(kind, MappingErrorKind::UnknownArgument);
    assert_eq!(Some(l), line);
    assert_eq!(c, 18, "the column of the path's string");
    assert!(
        shown.contains("error: the tool `transfer` has no argument `amout`"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("--> t.tools.toml:{l}:18")),
        "{shown}"
    );
    assert!(shown.contains("help: did you mean `amount`?"), "{shown}");
    assert!(
        shown.ends_with("t.tools.toml: 1 error; the mapping was not loaded"),
        "{shown}"
    );
}

#[test]
fn a_type_that_does_not_fit_is_positioned() {
    // `to` is an array of strings: its value cannot be the int `recipients`.
    let text = EXAMPLE.replace(
        r#"recipients = { arg = "to", len = true }"#,
        r#"recipients = { arg = "to" }"#,
    );
    let (kind, _, shown) = one_error(bound(&text));
    assert_eq!(kind, MappingErrorKind::TypeMismatch);
    assert!(
        shown.contains("argument `to` of `send_email` has type `array`, which does not fit the int variable `recipients`"),
        "{shown}"
    );
    // A `number` argument does not fit an `int` variable either.
    let text = EXAMPLE.replace("[tools.transfer]\namount", "[tools.transfer]\nrecipients");
    let (kind, _, shown) = one_error(bound(&text));
    assert_eq!(kind, MappingErrorKind::TypeMismatch, "{shown}");
}

#[test]
fn errors_against_the_policy_are_found_before_any_upstream() {
    let cases = [
        // a tool that is not a value of the enum
        (
            EXAMPLE.replace("[tools.read_file]", "[tools.read_files]"),
            MappingErrorKind::UnknownName,
            "`read_files` is not a value of the tool variable `tool`",
            Some("did you mean `read_file`?"),
        ),
        // a variable the policy does not have
        (
            EXAMPLE.replace(
                "file_count = 1\n\n[tools.delete_file]",
                "file_cnt = 1\n\n[tools.delete_file]",
            ),
            MappingErrorKind::UnknownName,
            "the policy `agent-tools` has no action variable `file_cnt`",
            Some("did you mean `file_count`?"),
        ),
        // a constant out of range
        (
            EXAMPLE.replace(
                "file_count = 1\n\n[tools.delete_file]",
                "file_count = -1\n\n[tools.delete_file]",
            ),
            MappingErrorKind::TypeMismatch,
            "the constant for `file_count`: `-1` is outside its range",
            None,
        ),
        // a state value of the wrong type
        (
            EXAMPLE.replace("sandboxed = true", "sandboxed = \"yes\""),
            MappingErrorKind::TypeMismatch,
            "state `sandboxed`: a string does not fit a variable of type `bool`",
            None,
        ),
        // an unknown state
        (
            EXAMPLE.replace("balance = 10000", "balanse = 10000"),
            MappingErrorKind::UnknownName,
            "no state variable `balanse`",
            Some("did you mean `balance`?"),
        ),
        // the tool variable is not an enum
        (
            EXAMPLE.replace("tool = \"tool\"", "tool = \"amount\""),
            MappingErrorKind::TypeMismatch,
            "the tool variable must be an enum",
            None,
        ),
        // an unknown key
        (
            EXAMPLE.replace("disclosure = \"reasons\"", "disclosur = \"reasons\""),
            MappingErrorKind::UnknownKey,
            "unknown key `disclosur` in [gateway]",
            Some("did you mean `disclosure`?"),
        ),
        // a bad disclosure
        (
            EXAMPLE.replace("disclosure = \"reasons\"", "disclosure = \"all\""),
            MappingErrorKind::InvalidValue,
            "`disclosure` in [gateway] cannot be `all`",
            None,
        ),
        // a length into a bool
        (
            EXAMPLE.replace(
                r#"preview = { arg = "preview" }"#,
                r#"preview = { arg = "to", len = true }"#,
            ),
            MappingErrorKind::TypeMismatch,
            "a length does not fit the bool variable `preview`",
            None,
        ),
    ];
    for (text, kind, message, help) in cases {
        let (k, (line, _), shown) = one_error(load(&text));
        assert_eq!(k, kind, "{shown}");
        assert!(shown.contains(message), "{message}\n{shown}");
        if let Some(h) = help {
            assert!(shown.contains(h), "{h}\n{shown}");
        }
        assert!(line > 1, "{shown}");
    }
}

#[test]
fn invalid_toml_and_an_optional_argument_without_default() {
    let (kind, (line, _), _) = one_error(load("[gateway]\ntool = \n"));
    assert_eq!((kind, line), (MappingErrorKind::Toml, 2));
    // An upstream whose `preview` has no default, and a mapping that gives none.
    let p = policy();
    let mut up = upstream();
    if let Some((_, s)) = up.iter_mut().find(|(n, _)| n == "send_email") {
        if let Some(pr) = s
            .pointer_mut("/properties/preview")
            .and_then(Value::as_object_mut)
        {
            pr.remove("default");
        }
    }
    let mut m = match Mapping::load("t.tools.toml", EXAMPLE, None, &p) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let (kind, _, shown) = one_error(m.bind(&p, &up));
    assert_eq!(kind, MappingErrorKind::MissingField, "{shown}");
    assert!(shown.contains("help: add `default = ...`"), "{shown}");
    // An upstream without the tool.
    let mut m = match Mapping::load("t.tools.toml", EXAMPLE, None, &p) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let mut up = upstream();
    up.retain(|(n, _)| n != "transfer");
    let (kind, _, shown) = one_error(m.bind(&p, &up));
    assert_eq!(kind, MappingErrorKind::UnknownTool, "{shown}");
}

fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

#[test]
fn a_call_becomes_a_proposal_and_a_repair_becomes_arguments() {
    let p = policy();
    let m = match bound(EXAMPLE) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let to: Vec<String> = (0..12).map(|i| format!("p{i}@x")).collect();
    let call = args(json!({"to": to, "subject": "s", "body": "b"}));
    let line = match m.proposal(&p, &m.session(), "c1", "send_email", &call) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    assert_eq!(v["action"]["tool"], "send_email");
    assert_eq!(v["action"]["recipients"], 12);
    assert_eq!(v["action"]["preview"], false);
    assert_eq!(
        v["action"]["amount"], 0.0,
        "what the tool does not map is the fallback's"
    );
    assert_eq!(v["agent_attributes"]["role"], "admin");
    assert_eq!(v["state"]["balance"], 10000);

    let mut g = aioss_core::Governor::new(p.clone());
    let d = match g.decide_line(&line) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(d.final_outcome, aioss_core::Outcome::AllowAfterRepair);
    let (repaired, changes) = match m.write_back(&p, "send_email", &call, &d.proposed, &d.action) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(repaired["preview"], true);
    assert_eq!(repaired["to"], call["to"]);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].from.clone(), changes[0].to.clone()),
        (json!(false), json!(true))
    );

    // A repair of a derived variable cannot be written back: 501 paths read is trimmed to
    // 500 by the policy, but the count is the list's length.
    let text = EXAMPLE.replace(
        "[tools.read_file]\nfile_count = 1",
        "[tools.read_file]\nfile_count = { arg = \"paths\", len = true }",
    );
    let p2 = policy();
    let mut m2 = match Mapping::load("t.tools.toml", &text, None, &p2) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let mut up = upstream();
    up[0].1 = json!({"type": "object", "properties": {"paths": {"type": "array"}}, "required": ["paths"]});
    if let Err(e) = m2.bind(&p2, &up) {
        panic!("{e}");
    }
    let paths: Vec<String> = (0..501).map(|i| format!("/f{i}")).collect();
    let call = args(json!({"paths": paths}));
    let line = m2
        .proposal(&p2, &m.session(), "c2", "read_file", &call)
        .unwrap_or_default();
    let d = match g.decide_line(&line) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(d.final_outcome, aioss_core::Outcome::AllowAfterRepair);
    let e = m2.write_back(&p2, "read_file", &call, &d.proposed, &d.action);
    assert!(matches!(&e, Err(n) if n.variable == "file_count"), "{e:?}");

    // Calls that are not proposals.
    assert!(m
        .proposal(&p, &m.session(), "c3", "shell", &Map::new())
        .is_err());
    let bad = m.proposal(
        &p,
        &m.session(),
        "c4",
        "transfer",
        &args(json!({"amount": "lots", "to": "x"})),
    );
    assert!(
        matches!(&bad, Err(aioss_mcp::mapping::CallError::Argument { path, .. }) if path == "amount"),
        "{bad:?}"
    );
    let neg = m.proposal(
        &p,
        &m.session(),
        "c5",
        "transfer",
        &args(json!({"amount": -5.0, "to": "x"})),
    );
    assert!(
        neg.is_err(),
        "an amount outside the variable's range is refused: {neg:?}"
    );
}

#[test]
fn tools_list_hides_only_what_can_never_be_allowed_for_the_agent() {
    let p = policy();
    let hidden = |text: &str| -> Vec<String> {
        let m = match bound(text) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        m.tools
            .iter()
            .filter(|t| aioss_mcp::reach::reachable(&p, &m, &m.session(), &t.name).is_err())
            .map(|t| t.name.clone())
            .collect()
    };
    // The admin agent of the example may call all four (some only after a hold).
    assert_eq!(hidden(EXAMPLE), Vec::<String>::new());
    // A support agent may not transfer (`transfer-authority` blocks). `write-authority`
    // fails for it too, but that row calls for a repair, not a block: delete_file stays
    // listed and each of its calls is decided.
    let support = EXAMPLE.replace("role = \"admin\"", "role = \"support\"");
    assert_eq!(hidden(&support), vec!["transfer".to_string()]);
    // A guest may only search: every tool of the example is hidden.
    let guest = EXAMPLE.replace("role = \"admin\"", "role = \"guest\"");
    assert_eq!(hidden(&guest).len(), 4);
    // A suspended agent: the first rule blocks everything.
    let suspended = EXAMPLE.replace("status = \"active\"", "status = \"suspended\"");
    let m = bound(&suspended).unwrap_or_else(|e| panic!("{e}"));
    let why = aioss_mcp::reach::reachable(&p, &m, &m.session(), "read_file");
    assert!(
        matches!(&why, Err(u) if u.by == "rule-agent-suspended"),
        "{why:?}"
    );
    // With a protected directory in the static state, delete_file is blocked everywhere.
    let protected = EXAMPLE.replace("protected_dir = false", "protected_dir = true");
    assert_eq!(hidden(&protected), vec!["delete_file".to_string()]);
}
