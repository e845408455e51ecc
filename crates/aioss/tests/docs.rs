//! The documentation, checked against the code: Markdown links stay inside the repository
//! and resolve, every complete policy in the language reference loads and passes its own
//! tests, the quickstart's documented output is what the commands print, the JSON Schemas
//! of docs/schemas/ accept real output and reject broken documents, every bundled policy
//! has an example stream that decides without input errors, and ARCHITECTURE.md names only
//! files that exist.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{aioss, repo, tmpdir};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------
// Markdown files and their links
// ---------------------------------------------------------------------------------------

/// Every Markdown file of the repository (not build output, not hidden directories).
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if name.starts_with('.')
                    || name == "target"
                    || name == "node_modules"
                    || name == "__pycache__"
                {
                    continue;
                }
                walk(&p, out);
            } else if name.ends_with(".md") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo(), &mut out);
    out.sort();
    out
}

/// The text outside fenced code blocks, with inline code spans blanked out (a link's text
/// may still contain code: `[`x`](y)` keeps its `](y)`).
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if fenced {
            out.push('\n');
            continue;
        }
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
                out.push(' ');
            } else {
                out.push(if in_code { ' ' } else { c });
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of the inline links `[text](target)` of a Markdown text, with their lines.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose(text).lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(j) = after.find(')') else { break };
            let target = after[..j].trim();
            // `[a](b "title")`: the target is the first word.
            let target = target.split_whitespace().next().unwrap_or("");
            out.push((n + 1, target.trim_matches(['<', '>']).to_string()));
            rest = &after[j..];
        }
    }
    out
}

/// The anchors of a Markdown text's headings, as GitHub makes them: lower case, only
/// letters, digits, `-` and `_` kept, spaces turned into `-`.
fn headings(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if fenced || hashes == 0 || hashes > 6 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let slug: String = line[hashes..]
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        out.push(slug);
    }
    out
}

/// What is wrong with each link of `text` (in `file`): a target outside the repository,
/// or a file that does not exist. External URLs and in-page anchors are not followed.
fn bad_links(file: &Path, text: &str, root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for (line, target) in link_targets(text) {
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
        if path.is_empty() {
            if !headings(text).contains(&anchor.to_string()) {
                bad.push(format!("{}:{line}: no heading `#{anchor}`", file.display()));
            }
            continue;
        }
        let resolved = if let Some(abs) = path.strip_prefix('/') {
            PathBuf::from("/").join(abs)
        } else {
            file.parent().unwrap().join(path)
        };
        let at = format!("{}:{line}: `{target}`", file.display());
        match resolved.canonicalize() {
            Ok(c) if c.starts_with(root) => {
                let is_md = c.extension().is_some_and(|x| x == "md");
                if is_md && !anchor.is_empty() {
                    let there = std::fs::read_to_string(&c).unwrap();
                    if !headings(&there).contains(&anchor.to_string()) {
                        bad.push(format!("{at}: no such heading in {}", c.display()));
                    }
                }
            }
            Ok(_) => bad.push(format!("{at} points outside the repository")),
            Err(_) => bad.push(format!("{at} does not exist")),
        }
    }
    bad
}

#[test]
fn markdown_links_stay_inside_the_repository_and_resolve() {
    let root = repo().canonicalize().unwrap();
    let files = markdown_files();
    assert!(files.len() >= 8, "{files:?}");
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("../shared") || line.contains("/work/shared") {
                bad.push(format!(
                    "{}:{}: mentions the shared contract, which is not in a clone",
                    f.display(),
                    n + 1
                ));
            }
        }
        bad.extend(bad_links(f, &text, &root));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_link_check_catches_what_it_guards() {
    let root = repo().canonicalize().unwrap();
    let readme = root.join("README.md");
    let text = "## Two commands\n[ok](docs/outcomes.md#the-final-outcome-table-first-matching-row-wins) [web](https://example.com)\n\
                [out](../shared/spec/policy.md) [gone](docs/no-such-file.md)\n\
                [anchor](docs/outcomes.md#no-such-heading) [here](#two-commands) [not](#nope)\n\
                ```\n[in a fence](nowhere.md)\n```\n`[in code](nowhere.md)`\n";
    let bad = bad_links(&readme, text, &root);
    assert_eq!(bad.len(), 4, "{bad:?}");
    assert!(bad[0].contains("../shared/spec/policy.md"), "{bad:?}");
    assert!(bad[1].contains("docs/no-such-file.md"), "{bad:?}");
    assert!(bad[2].contains("#no-such-heading"), "{bad:?}");
    assert!(bad[3].contains("#nope"), "{bad:?}");
    assert_eq!(
        headings("# A `b` c\n```\n# not\n```\n### Why: G5 (timing)\n#tag\n"),
        ["a-b-c", "why-g5-timing"]
    );
}

// ---------------------------------------------------------------------------------------
// The policy-language reference
// ---------------------------------------------------------------------------------------

/// The fenced blocks of `text` whose info string is `info`, with their first lines.
fn fenced_blocks(text: &str, info: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_end();
        match &mut current {
            None => {
                if let Some(rest) = t.strip_prefix("```") {
                    if rest.trim() == info {
                        current = Some((n + 2, String::new()));
                    }
                }
            }
            Some((_, body)) => {
                if t == "```" {
                    out.push(current.take().unwrap());
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    out
}

#[test]
fn every_complete_policy_in_the_reference_loads() {
    let doc = repo().join("docs/policy-language.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    let blocks = fenced_blocks(&text, "toml policy");
    assert!(
        blocks.len() >= 3,
        "found {} complete policies",
        blocks.len()
    );
    let dir = tmpdir("docs", "reference");
    for (k, (line, body)) in blocks.iter().enumerate() {
        let file = dir.join(format!("policy-language-{k}.toml"));
        std::fs::write(&file, body).unwrap();
        for cmd in ["check", "test"] {
            let out = aioss().args(["policy", cmd]).arg(&file).output().unwrap();
            assert!(
                out.status.success(),
                "the policy at docs/policy-language.md:{line} fails `aioss policy {cmd}`:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Every key the loader accepts, and every kind of load error, is in the reference (as
/// `` `key` ``), so neither can be added without documenting it. The keys are read from
/// the loader's `KEYS` lists, the kinds from `ErrorKind`.
#[test]
fn the_reference_names_every_key_the_loader_accepts() {
    let text = std::fs::read_to_string(repo().join("docs/policy-language.md")).unwrap();
    let load = repo().join("crates/aioss-core/src/load");
    let mut missing = Vec::new();
    let mut seen = 0;
    for e in std::fs::read_dir(&load).unwrap() {
        let p = e.unwrap().path();
        let src = std::fs::read_to_string(&p).unwrap();
        for (start, _) in src.match_indices("const KEYS: &[&str] = &[") {
            let list = &src[start..start + src[start..].find("];").unwrap()];
            for key in list.split('"').skip(1).step_by(2) {
                seen += 1;
                if !text.contains(&format!("`{key}`")) {
                    missing.push(format!("{}: `{key}`", p.display()));
                }
            }
        }
    }
    assert!(seen >= 40, "read only {seen} keys from {}", load.display());
    // And every kind of load error.
    let error = std::fs::read_to_string(repo().join("crates/aioss-core/src/error.rs")).unwrap();
    let start = error.find("pub enum ErrorKind {").unwrap();
    let body = &error[start..start + error[start..].find("\n}").unwrap()];
    let kinds: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with(',') && l.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|l| l.trim_end_matches(','))
        .collect();
    assert!(kinds.len() >= 15, "{kinds:?}");
    for k in kinds {
        if !text.contains(&format!("`{k}`")) {
            missing.push(format!("ErrorKind::{k}"));
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented keys:\n{}",
        missing.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The quickstart
// ---------------------------------------------------------------------------------------

/// `timing:         49 µs, within …`: the measured part of an explanation, left out.
fn normalise(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("timing:") {
                let i = l.find("timing:").unwrap();
                // Measured: on a loaded machine it may even miss the deadline.
                format!("{}timing: …", &l[..i])
            } else {
                l.trim_end().to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

#[test]
fn the_quickstart_prints_what_it_documents() {
    let text = std::fs::read_to_string(repo().join("docs/quickstart.md")).unwrap();
    let policy = "docs/quickstart/forklift.toml";
    let proposals = std::fs::read(repo().join("docs/quickstart/proposals.jsonl")).unwrap();
    // The policy the page shows is the file the commands run.
    let shown = fenced_blocks(&text, "toml quickstart");
    assert_eq!(
        shown.len(),
        1,
        "docs/quickstart.md shows no `toml quickstart` policy"
    );
    let file = std::fs::read_to_string(repo().join(policy)).unwrap();
    assert_eq!(
        shown[0].1, file,
        "docs/quickstart.md shows another policy than {policy}"
    );
    let steps: [(&str, Vec<&str>, bool); 3] = [
        ("output=check", vec!["policy", "check", policy], false),
        ("output=test", vec!["policy", "test", "-v", policy], false),
        (
            "output=explain",
            vec!["decide", "--explain", "--policy", policy],
            true,
        ),
    ];
    for (tag, args, stdin) in steps {
        let blocks = fenced_blocks(&text, &format!("text {tag}"));
        assert_eq!(
            blocks.len(),
            1,
            "docs/quickstart.md has no `text {tag}` block"
        );
        let (line, expected) = &blocks[0];
        let mut cmd = aioss();
        cmd.current_dir(repo()).args(&args);
        let out = if stdin {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&proposals).unwrap();
            child.wait_with_output().unwrap()
        } else {
            cmd.output().unwrap()
        };
        let actual = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            normalise(&actual),
            normalise(expected),
            "`aioss {}` no longer prints what docs/quickstart.md:{line} shows",
            args.join(" ")
        );
    }
}

// ---------------------------------------------------------------------------------------
// JSON Schemas: a small validator for the keywords docs/schemas/ uses
// ---------------------------------------------------------------------------------------

fn schema(name: &str) -> Value {
    let p = repo().join("docs/schemas").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type `{other}` in a schema"),
    }
}

/// The errors of `v` against `s` (within the schema document `root`), at JSON path `at`.
/// Every keyword it does not implement is a panic, so a schema cannot rely on one that
/// is silently ignored.
fn validate(root: &Value, s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(obj) = s.as_object() else {
        if s == &Value::Bool(false) {
            errs.push(format!("{at}: not allowed"));
        }
        return;
    };
    for (k, kv) in obj {
        match k.as_str() {
            "$schema" | "$id" | "title" | "description" | "$defs" => {}
            "$ref" => {
                let path = kv.as_str().unwrap().strip_prefix("#/").unwrap();
                let mut target = root;
                for part in path.split('/') {
                    target = &target[part];
                }
                assert!(!target.is_null(), "unresolved $ref {kv}");
                validate(root, target, v, at, errs);
            }
            "type" => {
                let ok = match kv {
                    Value::String(t) => type_ok(t, v),
                    Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)),
                    _ => panic!("bad type {kv}"),
                };
                if !ok {
                    errs.push(format!("{at}: {v} is not of type {kv}"));
                }
            }
            "enum" => {
                if !kv.as_array().unwrap().contains(v) {
                    errs.push(format!("{at}: {v} is not one of {kv}"));
                }
            }
            "const" => {
                if kv != v {
                    errs.push(format!("{at}: {v} is not {kv}"));
                }
            }
            "minimum" | "maximum" => {
                if let (Some(x), Some(b)) = (v.as_f64(), kv.as_f64()) {
                    if (k == "minimum" && x < b) || (k == "maximum" && x > b) {
                        errs.push(format!("{at}: {x} breaks {k} {b}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let (Some(x), Some(b)) = (v.as_str(), kv.as_u64()) {
                    let n = x.chars().count() as u64;
                    if (k == "minLength" && n < b) || (k == "maxLength" && n > b) {
                        errs.push(format!("{at}: length {n} breaks {k} {b}"));
                    }
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for r in kv.as_array().unwrap() {
                        if !o.contains_key(r.as_str().unwrap()) {
                            errs.push(format!("{at}: `{}` is required", r.as_str().unwrap()));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (pk, ps) in kv.as_object().unwrap() {
                        if let Some(pv) = o.get(pk) {
                            validate(root, ps, pv, &format!("{at}.{pk}"), errs);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let declared = s.get("properties").and_then(Value::as_object);
                    for (pk, pv) in o {
                        if declared.is_some_and(|d| d.contains_key(pk)) {
                            continue;
                        }
                        if kv == &Value::Bool(false) {
                            errs.push(format!("{at}: unexpected field `{pk}`"));
                        } else {
                            validate(root, kv, pv, &format!("{at}.{pk}"), errs);
                        }
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, x) in a.iter().enumerate() {
                        validate(root, kv, x, &format!("{at}[{i}]"), errs);
                    }
                }
            }
            "anyOf" => {
                let ok = kv.as_array().unwrap().iter().any(|alt| {
                    let mut e = Vec::new();
                    validate(root, alt, v, at, &mut e);
                    e.is_empty()
                });
                if !ok {
                    errs.push(format!("{at}: {v} matches none of anyOf"));
                }
            }
            other => panic!("the test's validator does not implement `{other}`"),
        }
    }
}

fn errors_of(s: &Value, v: &Value) -> Vec<String> {
    let mut e = Vec::new();
    validate(s, s, v, "$", &mut e);
    e
}

fn assert_valid(s: &Value, v: &Value, what: &str) {
    let e = errors_of(s, v);
    assert!(
        e.is_empty(),
        "{what} breaks {}:\n{}\n{v}",
        s["title"],
        e.join("\n")
    );
}

fn assert_invalid(s: &Value, v: &Value, what: &str) {
    assert!(
        !errors_of(s, v).is_empty(),
        "{} accepts a broken document ({what}): {v}",
        s["title"]
    );
}

/// Run `aioss decide` on `input` and return its stdout lines as JSON.
fn decide(policy: &str, input: &[u8], extra: &[&str]) -> Vec<Value> {
    use std::io::Write;
    let mut child = aioss()
        .current_dir(repo())
        .args(["decide", "--policy", policy])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    let code = out.status.code();
    assert!(
        code.is_some_and(|c| c <= 2),
        "decide crashed: {code:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The bundled policies and their example streams. Every policy of policies/ must be here.
const STREAMS: [(&str, &str); 3] = [
    (
        "policies/warehouse-robot.toml",
        "policies/examples/warehouse.jsonl",
    ),
    (
        "policies/agent-tools.toml",
        "policies/examples/agent-tools.jsonl",
    ),
    ("policies/i2os-v2.toml", "policies/examples/i2os.jsonl"),
];

#[test]
fn every_bundled_policy_has_an_example_stream_that_decides_without_input_errors() {
    let mut bundled: Vec<String> = std::fs::read_dir(repo().join("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| format!("policies/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    bundled.sort();
    let mut listed: Vec<String> = STREAMS.iter().map(|(p, _)| p.to_string()).collect();
    listed.sort();
    assert_eq!(
        bundled, listed,
        "a bundled policy without an example stream"
    );
    for (policy, stream) in STREAMS {
        let input = std::fs::read(repo().join(stream)).unwrap();
        let lines = input
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        let out = decide(policy, &input, &[]);
        assert_eq!(out.len(), lines, "{stream}");
        let mut outcomes = std::collections::BTreeSet::new();
        for d in &out {
            assert!(d.get("error").is_none(), "{stream}: input error {d}");
            outcomes.insert(d["final_outcome"].as_str().unwrap().to_string());
        }
        // What policies/README.md says each new stream shows, line by line.
        let (a, r, h, b) = (
            "ALLOW",
            "ALLOW_AFTER_REPAIR",
            "HOLD_FOR_CONFIRMATION",
            "BLOCK_NO_REPAIR",
        );
        let said: &[&str] = match stream {
            "policies/examples/agent-tools.jsonl" => &[a, r, r, r, h, h, h, b, b, b],
            "policies/examples/i2os.jsonl" => &[a, h, r, b, h, h],
            _ => &[],
        };
        if !said.is_empty() {
            let got: Vec<&str> = out
                .iter()
                .map(|d| d["final_outcome"].as_str().unwrap())
                .collect();
            assert_eq!(got, said, "{stream}");
        }
        // Each stream shows more than one kind of answer; the two new ones show all four.
        assert!(outcomes.len() >= 3, "{stream}: only {outcomes:?}");
        if !stream.ends_with("warehouse.jsonl") {
            for o in [
                "ALLOW",
                "ALLOW_AFTER_REPAIR",
                "HOLD_FOR_CONFIRMATION",
                "BLOCK_NO_REPAIR",
            ] {
                assert!(outcomes.contains(o), "{stream}: no {o} in {outcomes:?}");
            }
        }
    }
}

#[test]
fn the_schemas_accept_real_decisions_proposals_errors_and_records() {
    let (proposal, decision) = (schema("proposal.json"), schema("decision.json"));
    let (error, record) = (schema("error.json"), schema("audit-record.json"));
    let dir = tmpdir("docs", "schemas");
    let mut decisions = 0;
    for (policy, stream) in STREAMS {
        let text = std::fs::read_to_string(repo().join(stream)).unwrap();
        for l in text.lines() {
            assert_valid(&proposal, &serde_json::from_str(l).unwrap(), stream);
        }
        let store = dir.join(format!("{}.db", Path::new(stream).display()).replace('/', "-"));
        let mut input = text.into_bytes();
        input.extend_from_slice(b"{\"action\": 1}\nnot json\n");
        let store_arg = store.to_string_lossy().into_owned();
        for d in decide(policy, &input, &["--audit", &store_arg]) {
            if d.get("error").is_some() {
                assert_valid(&error, &d, "an input error of aioss decide");
            } else {
                assert!(d.get("record").is_some(), "{d}");
                assert_valid(&decision, &d, stream);
                decisions += 1;
            }
        }
        let out = aioss()
            .args(["audit", "export"])
            .arg(&store)
            .output()
            .unwrap();
        assert!(out.status.success());
        let mut kinds = std::collections::BTreeSet::new();
        for l in String::from_utf8(out.stdout).unwrap().lines() {
            let r: Value = serde_json::from_str(l).unwrap();
            assert_valid(&record, &r, "a line of aioss audit export");
            let kind = r["kind"].as_str().unwrap().to_string();
            let inner: Value = serde_json::from_str(r["decision"].as_str().unwrap()).unwrap();
            match kind.as_str() {
                "decision" => assert_valid(&decision, &inner, "a recorded decision"),
                "input_error" => assert_valid(&error, &inner, "a recorded input error"),
                _ => {}
            }
            kinds.insert(kind);
        }
        assert!(
            kinds.contains("decision") && kinds.contains("input_error"),
            "{kinds:?}"
        );
    }
    assert!(decisions >= 19, "{decisions}");
    // The quickstart's stream: a decision with a repair (`distance`, `solver`).
    let input = std::fs::read(repo().join("docs/quickstart/proposals.jsonl")).unwrap();
    for d in decide("docs/quickstart/forklift.toml", &input, &[]) {
        assert_valid(&decision, &d, "the quickstart");
    }
}

#[test]
fn the_schemas_reject_broken_documents() {
    let (proposal, decision) = (schema("proposal.json"), schema("decision.json"));
    let (error, record) = (schema("error.json"), schema("audit-record.json"));
    let input = std::fs::read(repo().join("docs/quickstart/proposals.jsonl")).unwrap();
    let good = decide("docs/quickstart/forklift.toml", &input, &[]).remove(1);
    assert_valid(&decision, &good, "the repaired quickstart decision");
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut d = good.clone();
        f(&mut d);
        d
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "no final_outcome",
            broken(&|d| {
                d.as_object_mut().unwrap().remove("final_outcome");
            }),
        ),
        (
            "an unknown outcome",
            broken(&|d| d["final_outcome"] = json!("MAYBE")),
        ),
        (
            "a lower-case classification",
            broken(&|d| d["classification"] = json!("go")),
        ),
        (
            "human_action_required as text",
            broken(&|d| d["human_action_required"] = json!("no")),
        ),
        (
            "an action that is a list",
            broken(&|d| d["action"] = json!([1, 2])),
        ),
        (
            "an action value that is an object",
            broken(&|d| d["action"]["speed"] = json!({"v": 1})),
        ),
        (
            "a negative distance",
            broken(&|d| d["distance"] = json!(-1.0)),
        ),
        (
            "a row without a status",
            broken(&|d| {
                d["constraints"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("status");
            }),
        ),
        (
            "an unknown failure mode",
            broken(&|d| d["failure_modes"] = json!(["gremlins"])),
        ),
        (
            "a guarantee that is not a boolean",
            broken(&|d| d["guarantees"]["pointwise_safety"] = json!("yes")),
        ),
        (
            "an unknown guarantee",
            broken(&|d| d["guarantees"]["luck"] = json!(true)),
        ),
        (
            "latency as a float",
            broken(&|d| d["latency_us"] = json!(1.5)),
        ),
        (
            "a policy without a hash",
            broken(&|d| {
                d["policy"].as_object_mut().unwrap().remove("hash");
            }),
        ),
    ];
    for (what, d) in &cases {
        assert_invalid(&decision, d, what);
    }

    let p: Value = serde_json::from_slice(input.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_valid(&proposal, &p, "the first quickstart proposal");
    assert_valid(
        &proposal,
        &json!({"action": {"x": 1}, "state": {"a": {"value": 1, "noise": 0.1}, "b": {"lo": 0, "hi": 1}}, "timestamp": 5}),
        "boxes",
    );
    for (what, mut bad) in [
        ("a list", json!([])),
        ("an action that is a number", json!({"action": 3})),
        (
            "a state box with a stray key",
            json!({"state": {"x": {"value": 1, "spread": 2}}}),
        ),
        ("an interval without hi", json!({"state": {"x": {"lo": 1}}})),
        (
            "a negative noise",
            json!({"state": {"x": {"value": 1, "noise": -1}}}),
        ),
        ("a timestamp before 1970", json!({"timestamp": -5})),
        (
            "an attribute that is a list",
            json!({"agent_attributes": {"role": ["a"]}}),
        ),
        ("an agent that is a number", json!({"agent": 7})),
    ] {
        if let Some(o) = bad.as_object_mut() {
            o.entry("action").or_insert(json!({}));
        }
        assert_invalid(&proposal, &bad, what);
    }

    let e = json!({"error": {"code": "wrong_type", "message": "m", "field": "action.x"}});
    assert_valid(&error, &e, "an error");
    assert_invalid(
        &error,
        &json!({"code": "wrong_type", "message": "m"}),
        "not under `error`",
    );
    assert_invalid(&error, &json!({"error": {"message": "m"}}), "no code");
    assert_invalid(
        &error,
        &json!({"error": {"code": 4, "message": "m"}}),
        "a numeric code",
    );

    let r = json!({"format": 1, "seq": 0, "kind": "decision", "decision_id": "d", "timestamp": "2026-01-01T00:00:00.000000Z", "time": "1", "policy": {"name": "p", "version": "1", "hash": "sha256:x"}, "proposal": "{}", "decision": "{}", "latency_us": 1, "state_digest": "0".repeat(64), "prev_hash": "0".repeat(64), "hash": "a".repeat(64)});
    assert_valid(&record, &r, "a record");
    for (what, k, v) in [
        ("a short hash", "hash", json!("abc")),
        ("an unknown kind", "kind", json!("gossip")),
        ("a decision that is an object", "decision", json!({})),
        ("a negative seq", "seq", json!(-1)),
        ("format 2", "format", json!(2)),
    ] {
        let mut bad = r.clone();
        bad[k] = v;
        assert_invalid(&record, &bad, what);
    }
}

// ---------------------------------------------------------------------------------------
// ARCHITECTURE.md
// ---------------------------------------------------------------------------------------

/// The repository paths a Markdown text names in code spans (`crates/…`, `docs/…`, …),
/// without a trailing `:line` or `#anchor`.
fn named_paths(text: &str) -> Vec<String> {
    const ROOTS: [&str; 8] = [
        "crates/",
        "docs/",
        "policies/",
        "examples/",
        "fuzz/",
        "clients/",
        "tests/",
        ".ci/",
    ];
    let mut out = Vec::new();
    for span in text.split('`').skip(1).step_by(2) {
        let p = span.split([':', '#', ' ']).next().unwrap_or("");
        if ROOTS.iter().any(|r| p.starts_with(r)) && !p.contains('*') && !p.contains('…') {
            out.push(p.to_string());
        }
    }
    out
}

#[test]
fn architecture_names_only_files_that_exist() {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let paths = named_paths(&text);
    assert!(paths.len() >= 20, "only {} paths: {paths:?}", paths.len());
    let missing: Vec<&String> = paths.iter().filter(|p| !repo().join(p).exists()).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names missing paths: {missing:?}"
    );
    // The check sees a wrong path.
    assert_eq!(
        named_paths("see `crates/aioss-core/src/nothing.rs:12` and `cargo test`"),
        ["crates/aioss-core/src/nothing.rs"]
    );
}

// ---------------------------------------------------------------------------------------
// The server's real output: the quickstart's steps 5 and 6, and its refusals
// ---------------------------------------------------------------------------------------

/// One request (HTTP/1.1, `Connection: close`): the status and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

#[test]
fn the_server_answers_as_the_quickstart_and_the_schemas_say() {
    use std::io::BufRead;
    let (decision, error) = (schema("decision.json"), schema("error.json"));
    let dir = tmpdir("docs", "serve");
    let mut child = aioss()
        .current_dir(repo())
        .args([
            "serve",
            "--policy",
            "docs/quickstart/forklift.toml",
            "--audit",
        ])
        .arg(dir.join("quickstart.db"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut addr = String::new();
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        if let Some(a) = line.split("listening on http://").nth(1) {
            addr = a.trim().to_string();
            break;
        }
        line.clear();
    }
    assert!(!addr.is_empty(), "the server did not start");
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));

    // Step 5: the heavy lift is held.
    let lift = r#"{"id":"q3","agent":"forklift-7","action":{"speed":0.0,"task":"lift"},"state":{"load_kg":600}}"#;
    let (status, body) = http(&addr, "POST", "/v1/decisions", lift);
    let d: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_valid(&decision, &d, "a decision of aioss serve");
    assert_eq!(d["final_outcome"], "HOLD_FOR_CONFIRMATION", "{body}");
    assert_eq!(d["action"], json!({"speed": 0, "task": "stop"}));
    let id = d["decision_id"].as_str().unwrap();
    // The id is the policy's (its hash) and the counter's, so the page's curl works as shown.
    let page = std::fs::read_to_string(repo().join("docs/quickstart.md")).unwrap();
    let approve = format!("localhost:8080/v1/confirmations/{id}/approve");
    assert!(
        page.contains(&approve),
        "docs/quickstart.md does not show {approve}"
    );
    // Step 6: it is pending, and an operator approves it.
    let (_, pending) = http(&addr, "GET", "/v1/confirmations", "");
    let pending: Value = serde_json::from_str(&pending).unwrap();
    assert_eq!(pending["pending"][0]["id"], id, "{pending}");
    assert_eq!(
        pending["pending"][0]["action"],
        json!({"speed": 0, "task": "lift"})
    );
    let path = format!("/v1/confirmations/{id}/approve");
    let (status, body) = http(&addr, "POST", &path, r#"{"reason":"checked the pallet"}"#);
    assert_eq!(status, 200, "{body}");
    let a: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(a["status"], "approved", "{body}");
    let (_, body) = http(&addr, "GET", &format!("/v1/decisions/{id}"), "");
    assert_valid(
        &decision,
        &serde_json::from_str(&body).unwrap(),
        "a past decision",
    );

    // Refusals: each body is the error schema's.
    for (method, path, body) in [
        ("POST", "/v1/decisions", "not json"),
        (
            "POST",
            "/v1/decisions",
            r#"{"action":{"speed":"fast","task":"drive"}}"#,
        ),
        ("GET", "/v1/decisions/no-such-decision", ""),
        ("POST", "/v1/confirmations/no-such-hold/approve", ""),
        ("GET", "/no/such/path", ""),
    ] {
        let (status, text) = http(&addr, method, path, body);
        assert!(
            (400..500).contains(&status),
            "{method} {path}: {status} {text}"
        );
        assert_valid(&error, &serde_json::from_str(&text).unwrap(), path);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

// ---------------------------------------------------------------------------------------
// The Dockerfile (no container engine here: what can be checked without building it)
// ---------------------------------------------------------------------------------------

#[test]
fn the_dockerfile_builds_what_exists_and_runs_as_a_user() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let from = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(from >= 2, "not multi-stage");
    assert!(
        text.contains("cargo build --release --locked -p aioss"),
        "{text}"
    );
    assert!(
        text.contains("\nUSER aioss\n") && text.contains("useradd"),
        "not non-root"
    );
    assert!(text.contains("VOLUME [\"/data\"]") && text.contains("--audit\", \"/data/"));
    // What it copies from the repository and the policy it serves exist.
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let src = line.split_whitespace().nth(1).unwrap();
        assert!(src == "." || repo().join(src).exists(), "{line}");
    }
    let policy = text
        .split("/etc/aioss/policies/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    assert!(repo().join("policies").join(policy).exists(), "{policy}");
    // `--listen 0.0.0.0` is refused without `--config`: the image must give one.
    assert!(text.contains("\"--config\""), "{text}");
}
