//! The OpenAPI documents in docs/openapi/ stay true to the code.
//!
//! `till-api.json` describes the routes of `src/lane/api/mod.rs`, and
//! `backend-contract.json` those of `src/salemap/api.rs`. The routes and
//! the error codes are read from the source text, so a route or a code
//! added without documentation fails here; the error tables of the README,
//! docs/till-api.md and docs/backend-contract.md must agree; every example
//! must match its schema; and the real `laned` and `salemap` binaries must
//! answer as documented.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::RealLane;
use serde_json::{Value, json};
use uuid::Uuid;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn document(name: &str) -> Value {
    let path = format!("docs/openapi/{name}.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

fn till() -> Value {
    document("till-api")
}

fn backend() -> Value {
    document("backend-contract")
}

/// Follows `$ref`s (local ones only, `#/…`) until a value that is not one.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return v;
        };
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{r}: only local references"));
        v = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{r} points at nothing"));
    }
    panic!("a chain of $refs that does not end");
}

/// Every operation of a document: `(path, method, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = vec![];
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op));
            }
        }
    }
    out
}

/// The response objects of a document, resolved, with where they are and
/// their status: every operation's, and `x-fallback-responses` (any path
/// or method not listed).
fn responses(doc: &Value) -> Vec<(String, u16, &Value)> {
    let status = |s: &str, at: &str| -> u16 {
        s.parse()
            .unwrap_or_else(|_| panic!("{at}: status {s:?} is not a number"))
    };
    let mut out = vec![];
    for (path, method, op) in operations(doc) {
        let at = format!("{} {path}", method.to_uppercase());
        for (s, r) in op["responses"].as_object().expect("responses") {
            out.push((at.clone(), status(s, &at), resolve(doc, r)));
        }
    }
    if let Some(fallback) = doc.get("x-fallback-responses") {
        for (s, r) in fallback.as_object().expect("x-fallback-responses") {
            out.push(("x-fallback-responses".into(), status(s, s), resolve(doc, r)));
        }
    }
    out
}

/// `(status, code)` of every `x-codes` entry of a document.
fn documented_codes(doc: &Value) -> BTreeSet<(u16, String)> {
    let mut out = BTreeSet::new();
    for (at, status, r) in responses(doc) {
        for c in x_codes(r, &at, status) {
            out.insert((status, c));
        }
    }
    out
}

fn x_codes(r: &Value, at: &str, status: u16) -> Vec<String> {
    match r.get("x-codes") {
        None => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| {
                c.as_str()
                    .unwrap_or_else(|| panic!("{at} {status}: x-codes holds {c}"))
                    .to_owned()
            })
            .collect(),
        Some(other) => panic!("{at} {status}: x-codes is {other}, not an array"),
    }
}

// ---------------------------------------------------------------- source

/// The start of `text` (which follows a `(`) up to the matching `)`,
/// skipping string literals.
fn balanced(text: &str) -> &str {
    let mut depth = 1;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    panic!(
        "unbalanced parentheses after: {}",
        &text[..text.len().min(80)]
    );
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `(path, method)` of every `.route("…", get(…).post(…))` of a router's
/// source.
fn source_routes(file: &str) -> BTreeSet<(String, String)> {
    let src = read(file);
    for other in [".nest(", ".merge(", ".route_service(", ".nest_service("] {
        assert!(
            !src.contains(other),
            "{file} builds its router with {other}: teach tests/openapi.rs to read it"
        );
    }
    let mut out = BTreeSet::new();
    let mut rest = src.as_str();
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        let args = balanced(rest).trim_start();
        let path_and_rest = args
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("{file}: a route whose path is not a literal: {args}"));
        let (path, router) = path_and_rest.split_once('"').expect("closing quote");
        let mut methods = 0;
        for m in METHODS {
            let needle = format!("{m}(");
            for (at, _) in router.match_indices(&needle) {
                let before = router[..at].chars().next_back();
                if before.is_none_or(|c| !is_ident(c) && c != ':') {
                    out.insert((path.to_owned(), m.to_owned()));
                    methods += 1;
                }
            }
        }
        assert!(methods > 0, "{file}: no method found for route {path}");
    }
    assert!(out.len() >= 4, "{file}: only {out:?} found");
    out
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    operations(doc)
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect()
}

fn status_number(name: &str) -> u16 {
    match name {
        "OK" => 200,
        "CREATED" => 201,
        "ACCEPTED" => 202,
        "BAD_REQUEST" => 400,
        "UNAUTHORIZED" => 401,
        "FORBIDDEN" => 403,
        "NOT_FOUND" => 404,
        "METHOD_NOT_ALLOWED" => 405,
        "REQUEST_TIMEOUT" => 408,
        "CONFLICT" => 409,
        "PAYLOAD_TOO_LARGE" => 413,
        "UNSUPPORTED_MEDIA_TYPE" => 415,
        "UNPROCESSABLE_ENTITY" => 422,
        "TOO_MANY_REQUESTS" => 429,
        "INTERNAL_SERVER_ERROR" => 500,
        "SERVICE_UNAVAILABLE" => 503,
        "INSUFFICIENT_STORAGE" => 507,
        other => panic!("StatusCode::{other}: add it to status_number in tests/openapi.rs"),
    }
}

/// The constants of `pub mod codes` in src/contract/mod.rs: name → code.
fn contract_codes() -> BTreeMap<String, String> {
    let src = read("src/contract/mod.rs");
    let start = src
        .find("pub mod codes {")
        .expect("pub mod codes in src/contract/mod.rs");
    let body = &src[start..];
    let body = &body[..body.find("\n}").expect("end of mod codes")];
    let mut out = BTreeMap::new();
    for line in body.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let (name, value) = rest
            .split_once(": &str = \"")
            .expect("pub const X: &str = \"…\"");
        out.insert(name.to_owned(), value.trim_end_matches("\";").to_owned());
    }
    assert!(out.len() >= 4, "{out:?}");
    out
}

/// `(status, code)` of every error an `HttpError::new(StatusCode::X,
/// "code", …)` (or `Self::new`, or a `codes::NAME` constant) in `files`
/// builds. Every constructor call must be read, so a new form of it fails
/// here rather than hiding a code.
fn source_codes(files: &[&str]) -> BTreeSet<(u16, String)> {
    let src: String = files.iter().map(|f| read(f)).collect::<Vec<_>>().join("\n");
    let file = files.join(" and ");
    let consts = contract_codes();
    let mut out = BTreeSet::new();
    let mut found = 0;
    for (at, _) in src.match_indices("StatusCode::") {
        let rest = &src[at + "StatusCode::".len()..];
        let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
        let Some(after) = rest[name.len()..].trim_start().strip_prefix(',') else {
            continue;
        };
        let after = after.trim_start();
        let code = if let Some(lit) = after.strip_prefix('"') {
            lit.split('"').next().unwrap_or_default().to_owned()
        } else if let Some(c) = after.strip_prefix("codes::") {
            let c: String = c.chars().take_while(|c| is_ident(*c)).collect();
            consts
                .get(&c)
                .unwrap_or_else(|| panic!("{file}: codes::{c} is not in src/contract/mod.rs"))
                .clone()
        } else {
            continue;
        };
        found += 1;
        out.insert((status_number(&name), code));
    }
    let calls = src.matches("Self::new(").count()
        + src.matches("ApiError::new(").count()
        + src.matches("HttpError::new(").count();
    assert_eq!(
        found, calls,
        "{file}: {calls} error constructor calls but {found} read as (StatusCode::X, code): \
         write each as new(StatusCode::X, \"code\", …) or teach tests/openapi.rs the new form"
    );
    assert!(out.len() >= 10, "{file}: only {out:?}");
    out
}

/// `(status, code)` of every `| \`code\` | status | …` row between the
/// line starting with `from` and the next line starting with `to`.
fn table_codes(file: &str, from: &str, to: Option<&str>) -> BTreeSet<(u16, String)> {
    let md = read(file);
    let mut lines = md.lines().skip_while(|l| !l.starts_with(from));
    assert!(lines.next().is_some(), "{file}: no section {from:?}");
    let mut out = BTreeSet::new();
    for line in lines.take_while(|l| to.is_none_or(|t| !l.starts_with(t))) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[0].is_empty() {
            continue;
        }
        let Some(code) = cells[1]
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
            .filter(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        else {
            continue;
        };
        if let Ok(status) = cells[2].parse::<u16>() {
            out.insert((status, code.to_owned()));
        }
    }
    assert!(!out.is_empty(), "{file}: no error table in {from:?}");
    out
}

// ---------------------------------------------------------------- schemas

/// A validator for `schema`, a schema of `doc` (its `$ref`s to
/// `#/components/schemas/…` resolve against the document's components).
/// Formats (`date`, `date-time`, …) are checked.
fn validator(doc: &Value, schema: &Value, strict: bool) -> jsonschema::Validator {
    let mut components = json!({"schemas": doc["components"]["schemas"]});
    let mut schema = schema.clone();
    if strict {
        tighten(&mut components);
        tighten(&mut schema);
    }
    let wrapped = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": components,
    });
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&wrapped)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}\n{schema:#}"))
}

/// Closes every object schema that lists its properties and says nothing
/// of others: a live answer must not carry a field the document does not
/// name. (The documents leave answers open, so that clients built from
/// them accept fields added later.)
fn tighten(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let object = match m.get("type") {
                Some(Value::String(t)) => t == "object",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
                _ => false,
            };
            if object && m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (k, child) in m.iter_mut() {
                if k != "examples" && k != "example" {
                    tighten(child);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(tighten),
        _ => {}
    }
}

fn problems(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Subschemas of a schema, for the walk that finds schema `examples`.
fn subschemas(s: &Value) -> Vec<&Value> {
    let mut out = vec![];
    let Some(m) = s.as_object() else {
        return out;
    };
    for key in [
        "items",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "additionalProperties",
        "unevaluatedProperties",
        "unevaluatedItems",
    ] {
        if let Some(v) = m.get(key).filter(|v| v.is_object()) {
            out.push(v);
        }
    }
    for key in ["allOf", "anyOf", "oneOf", "prefixItems"] {
        if let Some(a) = m.get(key).and_then(Value::as_array) {
            out.extend(a);
        }
    }
    for key in [
        "properties",
        "patternProperties",
        "$defs",
        "dependentSchemas",
    ] {
        if let Some(o) = m.get(key).and_then(Value::as_object) {
            out.extend(o.values());
        }
    }
    out
}

/// A place with a `schema` beside `example` or `examples` (a map of
/// Example Objects): a media type, a parameter or a header.
struct Exemplified<'a> {
    at: String,
    schema: &'a Value,
    examples: Vec<(String, &'a Value)>,
}

/// Where a document has schemas and examples: fills `found` with the
/// places that show examples and `schemas` with every schema (a component
/// or one beside an example), by location.
fn walk<'a>(
    doc: &'a Value,
    v: &'a Value,
    at: String,
    found: &mut Vec<Exemplified<'a>>,
    schemas: &mut Vec<(String, &'a Value)>,
) {
    match v {
        Value::Object(m) => {
            if let Some(schema) = m.get("schema") {
                let mut examples = vec![];
                if let Some(e) = m.get("example") {
                    examples.push(("example".to_owned(), e));
                }
                if let Some(map) = m.get("examples") {
                    for (k, e) in map.as_object().expect("examples is a map") {
                        let value = resolve(doc, e)
                            .get("value")
                            .unwrap_or_else(|| panic!("{at}/examples/{k} has no value"));
                        examples.push((format!("examples/{k}"), value));
                    }
                }
                schemas.push((format!("{at}/schema"), schema));
                found.push(Exemplified {
                    at: at.clone(),
                    schema,
                    examples,
                });
            }
            for (k, child) in m {
                match k.as_str() {
                    "schema" | "example" | "examples" => {}
                    "schemas" if at.ends_with("/components") => {
                        for (n, s) in child.as_object().expect("schemas") {
                            schemas.push((format!("{at}/schemas/{n}"), s));
                        }
                    }
                    _ => walk(doc, child, format!("{at}/{k}"), found, schemas),
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                walk(doc, child, format!("{at}/{i}"), found, schemas);
            }
        }
        _ => {}
    }
}

/// Checks every example of a document against its schema; returns how
/// many were checked.
fn check_examples(name: &str, doc: &Value) -> usize {
    let mut checked = 0;
    let mut failures = vec![];
    let mut schemas: Vec<(String, &Value)> = vec![];
    let mut found = vec![];
    walk(doc, doc, String::new(), &mut found, &mut schemas);
    for Exemplified {
        at,
        schema,
        examples,
    } in &found
    {
        assert!(
            !examples.is_empty() || !at.contains("/content/"),
            "{name}: {at} has a schema but no example"
        );
        let v = validator(doc, schema, false);
        for (which, e) in examples {
            checked += 1;
            let p = problems(&v, e);
            if !p.is_empty() {
                failures.push(format!("{at}/{which}: {p:?}"));
            }
        }
    }
    // JSON Schema `examples` (arrays) inside the schemas themselves; and
    // every schema must be a valid 2020-12 schema.
    while let Some((at, s)) = schemas.pop() {
        if let Err(e) = jsonschema::draft202012::meta::validate(s) {
            failures.push(format!("{at} is not a valid JSON Schema: {e}"));
        }
        if let Some(a) = s.get("examples").and_then(Value::as_array) {
            let v = validator(doc, s, false);
            for (i, e) in a.iter().enumerate() {
                checked += 1;
                let p = problems(&v, e);
                if !p.is_empty() {
                    failures.push(format!("{at}/examples/{i}: {p:?}"));
                }
            }
        }
        for (i, sub) in subschemas(s).into_iter().enumerate() {
            schemas.push((format!("{at}/~{i}"), sub));
        }
    }
    assert!(failures.is_empty(), "{name}: {failures:#?}");
    checked
}

// ---------------------------------------------------------------- tests

#[test]
fn both_documents_are_openapi_3_1_at_the_crate_version() {
    for doc in [till(), backend()] {
        let title = doc["info"]["title"].as_str().expect("info.title");
        let v = doc["openapi"].as_str().expect("openapi");
        assert!(v.starts_with("3.1"), "{title}: openapi {v}");
        assert_eq!(
            doc["info"]["version"],
            env!("CARGO_PKG_VERSION"),
            "{title}: info.version is the crate's version"
        );
        let text = doc.to_string();
        for outside in ["../shared", "DESIGN"] {
            assert!(!text.contains(outside), "{title} cites {outside}");
        }
    }
}

#[test]
fn every_route_is_documented_with_its_methods() {
    for (file, doc) in [
        ("src/lane/api/mod.rs", till()),
        ("src/salemap/api.rs", backend()),
    ] {
        let served = source_routes(file);
        let documented = documented_routes(&doc);
        let missing: Vec<_> = served.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{file}: served but not documented {missing:?}; documented but not served {extra:?}"
        );
    }
}

#[test]
fn every_error_code_is_documented_with_its_status() {
    let till_src = source_codes(&["src/lane/api/error.rs"]);
    // The admission gate builds the back-pressure answer.
    let salemap_src = source_codes(&["src/salemap/api.rs", "src/salemap/admission.rs"]);
    for (file, src, doc) in [
        ("src/lane/api/error.rs", till_src, till()),
        ("src/salemap/api.rs", salemap_src.clone(), backend()),
    ] {
        let documented = documented_codes(&doc);
        let missing: Vec<_> = src.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&src).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{file}: built but not in any x-codes {missing:?}; in x-codes but never built {extra:?}"
        );
    }
    // Every code of the contract is one salemap answers.
    let answered: BTreeSet<&String> = salemap_src.iter().map(|(_, c)| c).collect();
    for (name, code) in contract_codes() {
        assert!(
            answered.contains(&code),
            "codes::{name} ({code}) is never answered"
        );
    }
}

#[test]
fn the_error_tables_of_the_docs_agree_with_the_documents() {
    let till_doc = till();
    let documented = documented_codes(&till_doc);
    let reference = table_codes("docs/till-api.md", "## Errors", None);
    let readme = table_codes("README.md", "### Errors", Some("## "));
    for (file, table) in [("docs/till-api.md", &reference), ("README.md", &readme)] {
        let missing: Vec<_> = table.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "{file}: rows not in till-api.json's x-codes with that status: {missing:?}"
        );
    }
    // Codes the till sees (not only the operator routes) are in the tables.
    let mut operator_only: BTreeMap<(u16, String), bool> = BTreeMap::new();
    for (_, _, op) in operations(&till_doc) {
        let operator = op["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "operator"));
        for (s, r) in op["responses"].as_object().expect("responses") {
            let status: u16 = s.parse().expect("status");
            for c in x_codes(resolve(&till_doc, r), "", status) {
                let e = operator_only.entry((status, c)).or_insert(true);
                *e &= operator;
            }
        }
    }
    for pair in &documented {
        if operator_only.get(pair) == Some(&true) {
            continue;
        }
        for (file, table) in [("docs/till-api.md", &reference), ("README.md", &readme)] {
            assert!(
                table.contains(pair),
                "{file}: the error table lacks {pair:?} (in till-api.json)"
            );
        }
    }
    // The contract's own table (docs/backend-contract.md §4.1).
    let contract = table_codes("docs/backend-contract.md", "### 4.1", Some("### 4.2"));
    let documented = documented_codes(&backend());
    let missing: Vec<_> = contract.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "docs/backend-contract.md §4.1: rows not in backend-contract.json: {missing:?}"
    );
    let table: BTreeSet<&String> = contract.iter().map(|(_, c)| c).collect();
    for (name, code) in contract_codes() {
        assert!(
            table.contains(&code),
            "codes::{name} ({code}) is not in docs/backend-contract.md §4.1"
        );
    }
}

/// Error responses list their codes, show an example of each and nothing
/// else, and (in the till API, whose codes are closed) restrict `code` to
/// them; success answers list none.
#[test]
fn error_responses_list_and_show_their_codes() {
    fn enum_of(doc: &Value, s: &Value) -> Option<BTreeSet<String>> {
        let s = resolve(doc, s);
        let code = &s["properties"]["code"];
        if let Some(e) = code.get("enum").and_then(Value::as_array) {
            return Some(
                e.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            );
        }
        if let Some(c) = code.get("const").and_then(Value::as_str) {
            return Some(BTreeSet::from([c.to_owned()]));
        }
        s.get("allOf")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find_map(|b| enum_of(doc, b)))
    }
    for (name, doc, closed) in [
        ("till-api", till(), true),
        ("backend-contract", backend(), false),
    ] {
        let mut errors = 0;
        for (at, status, r) in responses(&doc) {
            let codes: BTreeSet<String> = x_codes(r, &at, status).into_iter().collect();
            if status < 400 {
                assert!(codes.is_empty(), "{name}: {at} {status} lists x-codes");
                continue;
            }
            errors += 1;
            assert!(!codes.is_empty(), "{name}: {at} {status} has no x-codes");
            let media = &r["content"]["application/json"];
            let shown: BTreeSet<String> = media["examples"]
                .as_object()
                .unwrap_or_else(|| panic!("{name}: {at} {status} has no examples"))
                .values()
                .map(|e| {
                    resolve(&doc, e)["value"]["code"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned()
                })
                .collect();
            assert_eq!(shown, codes, "{name}: {at} {status}: examples vs x-codes");
            match enum_of(&doc, &media["schema"]) {
                Some(e) => assert_eq!(e, codes, "{name}: {at} {status}: code enum vs x-codes"),
                None => assert!(
                    !closed,
                    "{name}: {at} {status}: the schema does not restrict code"
                ),
            }
        }
        assert!(errors >= 20, "{name}: only {errors} error responses");
    }
}

#[test]
fn every_example_matches_its_schema() {
    let till_checked = check_examples("till-api", &till());
    let backend_checked = check_examples("backend-contract", &backend());
    eprintln!("examples checked: till API {till_checked}, back-end contract {backend_checked}");
    assert!(till_checked >= 60, "{till_checked}");
    assert!(backend_checked >= 30, "{backend_checked}");
}

#[test]
fn path_parameters_are_declared_and_operation_ids_unique() {
    for doc in [till(), backend()] {
        let title = doc["info"]["title"].as_str().unwrap_or_default().to_owned();
        let mut ids = BTreeSet::new();
        for (path, method, op) in operations(&doc) {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_owned()), "{title}: operationId {id} twice");
            let declared: Vec<&Value> = doc["paths"][&path]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(op["parameters"].as_array().into_iter().flatten())
                .map(|p| resolve(&doc, p))
                .collect();
            for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
                assert!(
                    declared
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{title}: {method} {path} does not declare the path parameter {name}"
                );
            }
        }
    }
}

#[test]
fn the_sale_is_the_same_in_both_documents() {
    let (t, b) = (till(), backend());
    for name in ["Sale", "Line", "Payment", "Till"] {
        assert!(
            t["components"]["schemas"][name] == b["components"]["schemas"][name],
            "components.schemas.{name} differs between the two documents"
        );
    }
    // A sale read back has every field of a listed one.
    let schemas = &t["components"]["schemas"];
    for (k, v) in schemas["SaleSummary"]["properties"]
        .as_object()
        .expect("summary")
    {
        assert_eq!(&schemas["SaleDetail"]["properties"][k], v, "SaleDetail.{k}");
    }
}

// ---------------------------------------------------------------- live

/// A server and the document that describes it.
struct Live {
    doc: Value,
    base: String,
    http: reqwest::Client,
    checked: std::cell::Cell<usize>,
}

impl Live {
    fn operation(&self, method: &str, template: &str) -> &Value {
        let op = &self.doc["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not documented");
        op
    }

    /// Sends `rq` (a request for `template`), checks that the answer has
    /// `want` as status and matches what the document says of it: its
    /// media type, its schema (closed: no undocumented field), its
    /// required headers and, for an error, its code among `x-codes`.
    /// Returns the answer and its headers.
    async fn check(
        &self,
        method: &str,
        template: &str,
        rq: reqwest::RequestBuilder,
        want: u16,
    ) -> (Value, reqwest::header::HeaderMap) {
        let r = rq.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.expect("body");
        let at = format!("{method} {template} → {status}");
        assert_eq!(status, want, "{at}: {body}");
        let doc = &self.doc;
        let declared = if template.is_empty() {
            &doc["x-fallback-responses"][status.to_string()]
        } else {
            &self.operation(method, template)["responses"][status.to_string()]
        };
        assert!(!declared.is_null(), "{at}: the status is not documented");
        let response = resolve(doc, declared);
        for (name, h) in response["headers"].as_object().into_iter().flatten() {
            if resolve(doc, h)["required"] == true {
                assert!(
                    headers.contains_key(name.as_str()),
                    "{at}: no {name} header"
                );
            }
        }
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let essence = |t: &str| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_lowercase()
        };
        let (media, m) = response["content"]
            .as_object()
            .into_iter()
            .flatten()
            .find(|(k, _)| essence(k) == essence(&ct))
            .unwrap_or_else(|| panic!("{at}: content type {ct} is not documented"));
        let value = if essence(media) == "application/json" {
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{at}: not JSON ({e}): {body}"))
        } else {
            Value::String(body)
        };
        let p = problems(&validator(doc, &m["schema"], true), &value);
        assert!(
            p.is_empty(),
            "{at}: the answer does not match the document: {p:#?}\n{value:#}"
        );
        if status >= 400 {
            let code = value["code"].as_str().unwrap_or_default();
            assert!(
                x_codes(response, &at, status).iter().any(|c| c == code),
                "{at}: code {code} is not in x-codes"
            );
        }
        self.checked.set(self.checked.get() + 1);
        (value, headers)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The values of the examples of a request body.
    fn request_examples(&self, method: &str, template: &str) -> Vec<(String, Value)> {
        let media = &self.operation(method, template)["requestBody"]["content"]["application/json"];
        media["examples"]
            .as_object()
            .expect("request examples")
            .iter()
            .map(|(k, e)| (k.clone(), resolve(&self.doc, e)["value"].clone()))
            .collect()
    }
}

#[tokio::test]
async fn laned_answers_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lane = RealLane::spawn(dir.path(), "L03", &[]).expect("laned starts");
    let admin = std::fs::read_to_string(dir.path().join("admin-token"))
        .expect("admin-token")
        .trim()
        .to_owned();
    let live = Live {
        doc: till(),
        base: lane.base.clone(),
        http: common::client(),
        checked: Default::default(),
    };
    let http = live.http.clone();
    let one = "/v1/sales/{id}";

    let (minted, _) = live
        .check(
            "POST",
            "/v1/transactions",
            http.post(live.url("/v1/transactions")),
            200,
        )
        .await;
    assert!(common::laned_uuid_is_v4(
        minted["transaction_id"].as_str().unwrap_or("")
    ));

    // Every documented sale is accepted, under its own id; a repeat is 200.
    let mut first = None;
    for (name, sale) in live.request_examples("PUT", one) {
        let id = Uuid::new_v4().to_string();
        let put = || http.put(live.url(&format!("/v1/sales/{id}"))).json(&sale);
        let (created, h) = live.check("PUT", one, put(), 201).await;
        assert_eq!(h["location"], format!("/v1/sales/{id}").as_str(), "{name}");
        let (again, _) = live.check("PUT", one, put(), 200).await;
        assert_eq!(
            created, again,
            "{name}: a repeat answers the original answer"
        );
        let (stored, _) = live
            .check(
                "GET",
                one,
                http.get(live.url(&format!("/v1/sales/{id}"))),
                200,
            )
            .await;
        assert_eq!(stored["transaction_id"], id.as_str(), "{name}");
        first.get_or_insert((id, sale));
    }
    let (id, sale) = first.expect("a PUT example");

    for (name, sale) in live.request_examples("POST", "/v1/sales") {
        let key = format!("R3-{}", Uuid::new_v4().simple());
        let post = || {
            http.post(live.url("/v1/sales"))
                .header("Idempotency-Key", &key)
                .json(&sale)
        };
        let (a, _) = live.check("POST", "/v1/sales", post(), 201).await;
        let (b, _) = live.check("POST", "/v1/sales", post(), 200).await;
        assert_eq!(a, b, "{name}");
    }
    live.check(
        "GET",
        "/v1/sales",
        http.get(live.url("/v1/sales?state=pending&limit=2")),
        200,
    )
    .await;
    let (status, _) = live
        .check("GET", "/v1/status", http.get(live.url("/v1/status")), 200)
        .await;
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    live.check("GET", "/metrics", http.get(live.url("/metrics")), 200)
        .await;
    live.check("GET", "/", http.get(live.url("/")), 200).await;

    // Error answers.
    let fresh = Uuid::new_v4().to_string();
    let at = |p: &str| live.url(p);
    let cases: Vec<(&str, &str, reqwest::RequestBuilder, u16)> = vec![
        (
            "PUT",
            one,
            http.put(at(&format!("/v1/sales/{fresh}")))
                .header("content-type", "application/json")
                .body(r#"{"kind": "sale", "#),
            400,
        ),
        (
            "PUT",
            one,
            http.put(at("/v1/sales/not-a-uuid")).json(&sale),
            400,
        ),
        (
            "PUT",
            one,
            http.put(at(&format!("/v1/sales/{fresh}")))
                .header("content-type", "text/plain")
                .body(sale.to_string()),
            415,
        ),
        (
            "PUT",
            one,
            http.put(at(&format!("/v1/sales/{fresh}")))
                .json(&json!({"kind": "sale", "colour": "red"})),
            422,
        ),
        (
            "PUT",
            one,
            http.put(at(&format!("/v1/sales/{id}")))
                .json(&common::sale_with("4006381333931", 3, 12_500)),
            409,
        ),
        ("GET", one, http.get(at(&format!("/v1/sales/{fresh}"))), 404),
        ("GET", one, http.get(at("/v1/sales/42")), 400),
        ("GET", "/v1/sales", http.get(at("/v1/sales?limit=0")), 400),
        (
            "POST",
            "/v1/sales",
            http.post(at("/v1/sales"))
                .header("Idempotency-Key", "two words")
                .json(&sale),
            422,
        ),
        (
            "POST",
            "/v1/status/sync",
            http.post(at("/v1/status/sync")).json(&json!({})),
            409,
        ),
        (
            "POST",
            "/v1/admin/sync",
            http.post(at("/v1/admin/sync")),
            401,
        ),
        (
            "POST",
            "/v1/admin/sync",
            http.post(at("/v1/admin/sync")).bearer_auth(&admin),
            409,
        ),
        // An actor the audit log cannot record as given is refused, not
        // replaced by a default (schemathesis found it accepted).
        (
            "POST",
            "/v1/admin/retry-stuck",
            http.post(at("/v1/admin/retry-stuck"))
                .bearer_auth(&admin)
                .header("X-Laned-Actor", "tab\there")
                .json(&json!({"reason": "checking the documentation"})),
            400,
        ),
        (
            "POST",
            "/v1/admin/acknowledge-restore",
            http.post(at("/v1/admin/acknowledge-restore"))
                .bearer_auth(&admin)
                .json(&json!({"reason": "checking the documentation"})),
            409,
        ),
        (
            "POST",
            "/v1/admin/sales/{id}/retry",
            http.post(at(&format!("/v1/admin/sales/{fresh}/retry")))
                .bearer_auth(&admin)
                .json(&json!({"reason": "checking the documentation"})),
            404,
        ),
        (
            "POST",
            "/v1/admin/sales/{id}/resolve",
            http.post(at(&format!("/v1/admin/sales/{id}/resolve")))
                .bearer_auth(&admin)
                .json(&json!({"doc_no": "BO-1", "reason": "checking the documentation"})),
            409,
        ),
        (
            "POST",
            "/v1/admin/retry-stuck",
            http.post(at("/v1/admin/retry-stuck"))
                .bearer_auth(&admin)
                .json(&json!({"reason": "checking the documentation"})),
            200,
        ),
        (
            "POST",
            "/v1/admin/retry-stuck",
            http.post(at("/v1/admin/retry-stuck"))
                .bearer_auth(&admin)
                .json(&json!({})),
            422,
        ),
        (
            "GET",
            "/v1/status",
            http.get(at("/v1/status")).header("host", "evil.example"),
            403,
        ),
        // Not in the document: x-fallback-responses.
        ("GET", "", http.get(at("/v1/sale")), 404),
        ("DELETE", "", http.delete(at("/v1/status")), 405),
    ];
    for (method, template, rq, want) in cases {
        live.check(method, template, rq, want).await;
    }
    eprintln!(
        "laned: {} answers checked against till-api.json",
        live.checked.get()
    );
}

#[tokio::test]
async fn salemap_answers_as_documented() {
    const TOKEN: &str = "openapi-test-token";
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("lanes.toml");
    std::fs::write(
        &tokens,
        format!(
            "[lanes]\nL03 = \"{}\"\n",
            laned::salemap::tokens::hash(TOKEN)
        ),
    )
    .expect("tokens file");
    let mut cmd = std::process::Command::new(common::salemap_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--lane-tokens"])
        .arg(&tokens)
        .arg("--data-dir")
        .arg(dir.path());
    let server = RealLane::spawn_command(cmd).expect("salemap starts");
    let live = Live {
        doc: backend(),
        base: server.base.clone(),
        http: common::client(),
        checked: Default::default(),
    };
    let http = live.http.clone();
    let one = "/v1/sales/{id}";

    let (_, envelope) = live.request_examples("PUT", one).remove(0);
    let id = envelope["transaction_id"].as_str().expect("id").to_owned();
    // The exact bytes, as a lane sends them.
    let bytes = envelope.to_string();
    let put = |body: String| {
        http.put(live.url(&format!("/v1/sales/{id}")))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", &id)
            .header("content-type", "application/json")
            .body(body)
    };
    let (posted, _) = live.check("PUT", one, put(bytes.clone()), 201).await;
    let (replayed, h) = live.check("PUT", one, put(bytes.clone()), 200).await;
    assert_eq!(posted, replayed);
    assert_eq!(h["idempotency-replayed"], "true");
    let mut other = envelope.clone();
    other["recorded_at"] = json!("2026-11-22T11:03:11.483Z");
    live.check("PUT", one, put(other.to_string()), 422).await;
    live.check(
        "GET",
        one,
        http.get(live.url(&format!("/v1/sales/{id}")))
            .bearer_auth(TOKEN),
        200,
    )
    .await;

    for (name, batch) in live.request_examples("POST", "/v1/sales:batch") {
        let (answer, _) = live
            .check(
                "POST",
                "/v1/sales:batch",
                http.post(live.url("/v1/sales:batch"))
                    .bearer_auth(TOKEN)
                    .json(&batch),
                200,
            )
            .await;
        let statuses: Vec<&Value> = answer["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| &r["status"])
            .collect();
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 200),
            "{name}: {answer}"
        );
    }
    let (beat, _) = live
        .check(
            "GET",
            "/v1/heartbeat",
            http.get(live.url("/v1/heartbeat?lane_id=L03"))
                .bearer_auth(TOKEN),
            200,
        )
        .await;
    assert!(
        beat["last_receipt_no"]["L03"].as_i64() >= Some(123),
        "{beat}"
    );
    live.check(
        "GET",
        "/v1/lanes/{lane}/days/{date}",
        http.get(live.url("/v1/lanes/L03/days/2026-11-22"))
            .bearer_auth(TOKEN),
        200,
    )
    .await;

    let fresh = Uuid::new_v4().to_string();
    let at = |p: &str| live.url(p);
    let cases: Vec<(&str, &str, reqwest::RequestBuilder, u16)> = vec![
        (
            "PUT",
            one,
            http.put(at(&format!("/v1/sales/{id}"))).body(bytes.clone()),
            401,
        ),
        (
            "PUT",
            one,
            http.put(at(&format!("/v1/sales/{fresh}")))
                .bearer_auth(TOKEN)
                .body(bytes.clone()),
            400,
        ),
        (
            "PUT",
            one,
            http.put(at(&format!("/v1/sales/{id}")))
                .bearer_auth(TOKEN)
                .body("{"),
            400,
        ),
        (
            "GET",
            one,
            http.get(at(&format!("/v1/sales/{fresh}")))
                .bearer_auth(TOKEN),
            404,
        ),
        (
            "GET",
            "/v1/heartbeat",
            http.get(at("/v1/heartbeat?lane_id=L04")).bearer_auth(TOKEN),
            403,
        ),
        (
            "GET",
            "/v1/heartbeat",
            http.get(at("/v1/heartbeat?lane_id=L%2003"))
                .bearer_auth(TOKEN),
            400,
        ),
        (
            "GET",
            "/v1/lanes/{lane}/days/{date}",
            http.get(at("/v1/lanes/L03/days/2026-13-01"))
                .bearer_auth(TOKEN),
            400,
        ),
        (
            "POST",
            "/v1/sales:batch",
            http.post(at("/v1/sales:batch"))
                .bearer_auth(TOKEN)
                .json(&json!({"lane_id": "L04", "sales": []})),
            403,
        ),
        ("GET", "", http.get(at("/v1/sale")).bearer_auth(TOKEN), 404),
        (
            "DELETE",
            "",
            http.delete(at("/v1/heartbeat")).bearer_auth(TOKEN),
            405,
        ),
    ];
    for (method, template, rq, want) in cases {
        live.check(method, template, rq, want).await;
    }
    eprintln!(
        "salemap: {} answers checked against backend-contract.json",
        live.checked.get()
    );
}
