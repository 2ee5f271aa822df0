//! `GET /openapi.json` describes every REST route, and each route answers as described: every
//! operation is called with the document's own examples (placeholder ids swapped for real
//! ones) and its answer must have a documented status and match that status's schema.

use std::collections::HashMap;

use crate::support::Server;
use serde_json::Value;

/// Placeholders the document's examples use for "some user" and "some group".
const USER: &str = "00000000-0000-0000-0000-000000000001";
const GROUP: &str = "00000000-0000-0000-0000-000000000002";

/// Operations whose examples change the caller's session or remove the group the others
/// use: they run last, in this order.
const LAST: &[&str] = &["leaveGroup", "deleteGroup", "banAccount", "sessionLogout"];

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Checks `value` against the subset of JSON Schema the document uses; returns what is wrong.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let fits = options.iter().any(|o| {
            let mut e = Vec::new();
            check(doc, o, value, at, &mut e);
            e.is_empty()
        });
        if !fits {
            errors.push(format!("{at}: {value} matches none of oneOf"));
        }
        return;
    }
    let ok = match schema["type"].as_str() {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => {
            errors.push(format!("{at}: unknown type {other}"));
            return;
        }
    };
    if !ok {
        errors.push(format!("{at}: {value} is not a {}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} not in {allowed:?}"));
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            check(doc, &schema["items"], item, &format!("{at}[{i}]"), errors);
        }
    }
    let Some(object) = value.as_object() else {
        return;
    };
    let empty = serde_json::Map::new();
    let properties = schema["properties"].as_object().unwrap_or(&empty);
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        if !object.contains_key(name) {
            errors.push(format!("{at}: required {name} missing"));
        }
    }
    for (key, field) in object {
        let path = format!("{at}.{key}");
        match properties.get(key) {
            Some(s) => check(doc, s, field, &path, errors),
            None => match &schema["additionalProperties"] {
                Value::Bool(false) => errors.push(format!("{path}: not described")),
                Value::Object(_) => {
                    check(doc, &schema["additionalProperties"], field, &path, errors)
                }
                _ => {}
            },
        }
    }
}

fn swap(text: &str, ids: &HashMap<&str, String>) -> String {
    ids.iter()
        .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
}

#[tokio::test]
async fn every_route_answers_as_its_openapi_description_says() {
    let modules = format!("{}/modules", env!("CARGO_MANIFEST_DIR"));
    let console_port = crate::crash::free_port().to_string();
    let s = Server::start_with(&[
        ("runtime.path", modules.as_str()),
        ("console.port", console_port.as_str()),
        ("console.address", "127.0.0.1"),
    ])
    .await;
    let console_base = format!("http://127.0.0.1:{console_port}");
    let res = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .expect("doc");
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.expect("JSON");
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(tidings::api::OPENAPI).expect("embedded")
    );

    // The caller, another player standing in for USER, and a group standing in for GROUP.
    let me = s.user("openapi_me").await;
    let other = s.user("openapi_other").await;
    let (status, group) = s
        .call(
            reqwest::Method::POST,
            "/v2/group",
            Some(&me.token),
            Some(r#"{"name":"openapi group","open":true}"#),
        )
        .await;
    assert_eq!(status, 200, "{group}");
    let (_, doomed) = s
        .call(
            reqwest::Method::POST,
            "/v2/group",
            Some(&me.token),
            Some(r#"{"name":"openapi group to delete"}"#),
        )
        .await;
    let ids: HashMap<&str, String> = HashMap::from([
        (USER, other.id.to_string()),
        (GROUP, group["id"].as_str().expect("group id").to_string()),
    ]);
    // deleteGroup removes its own group, so the others keep theirs.
    let delete_ids: HashMap<&str, String> = HashMap::from([
        (USER, other.id.to_string()),
        (GROUP, doomed["id"].as_str().expect("group id").to_string()),
    ]);

    // (method, path, operation, on the console port)
    let mut operations: Vec<(String, String, Value, bool)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let console = item["servers"][0]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(":7351"));
        for (method, op) in item.as_object().expect("path item") {
            if op.get("operationId").is_some() {
                operations.push((method.clone(), path.clone(), op.clone(), console));
            }
        }
    }
    let rank = |op: &Value| {
        let id = op["operationId"].as_str().unwrap_or_default();
        LAST.iter().position(|l| *l == id).map_or(0, |p| p + 1)
    };
    operations.sort_by_key(|(_, _, op, _)| rank(op));
    crate::support::wait_for_http(&s.http, &console_base).await;
    let console_token = {
        let res = s
            .http
            .post(format!("{console_base}/v2/console/authenticate"))
            .body(r#"{"username":"admin","password":"password"}"#)
            .send()
            .await
            .expect("console login");
        let body: Value = res.json().await.expect("token");
        body["token"].as_str().expect("token").to_string()
    };
    assert!(operations.len() >= 40, "{} operations", operations.len());

    let mut problems = Vec::new();
    let mut not_ok = Vec::new();
    for (method, path, op, console) in &operations {
        let base = if *console {
            console_base.clone()
        } else {
            s.url("")
        };
        let id = op["operationId"].as_str().expect("operationId");
        let ids = if id == "deleteGroup" {
            &delete_ids
        } else {
            &ids
        };
        let mut url_path = path.clone();
        let mut query: Vec<(String, String)> = Vec::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().expect("name");
            let values: Vec<String> = match &p["example"] {
                Value::Null if p["required"] == true => {
                    problems.push(format!("{id}: required {name} has no example"));
                    continue;
                }
                Value::Null => continue,
                // A repeated query parameter: `ids=a&ids=b`.
                Value::Array(items) => items
                    .iter()
                    .map(|i| swap(i.as_str().map_or(&i.to_string(), |t| t), ids))
                    .collect(),
                Value::String(text) => vec![swap(text, ids)],
                other => vec![other.to_string()],
            };
            for value in values {
                match p["in"].as_str() {
                    Some("path") => url_path = url_path.replace(&format!("{{{name}}}"), &value),
                    _ => query.push((name.to_string(), value)),
                }
            }
        }
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let scheme = op["security"]
            .as_array()
            .and_then(|alternatives| alternatives.first())
            .and_then(|first| first.as_object())
            .and_then(|first| first.keys().next().cloned());
        if scheme.as_deref() == Some("HttpKey") {
            query.push(("http_key".into(), "defaulthttpkey".into()));
        }
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish();
        let url = match query.is_empty() {
            true => format!("{base}{url_path}"),
            false => format!("{base}{url_path}?{query}"),
        };
        let mut req = s.http.request(method.clone(), url);
        req = match scheme.as_deref() {
            Some("BearerAuth") => req.bearer_auth(&me.token),
            Some("BasicAuth") => req.basic_auth("defaultkey", Some("")),
            Some("HttpKey") | None => req,
            Some("HttpKeyBasic") => req.basic_auth("defaulthttpkey", Some("")),
            Some("ConsoleBearer") => req.bearer_auth(&console_token),
            Some("ConsoleBasic") => req.basic_auth("admin", Some("password")),
            Some(other) => panic!("{id}: unknown security scheme {other}"),
        };
        let body = &op["requestBody"]["content"]["application/json"]["example"];
        if !body.is_null() {
            let text = match body {
                Value::String(text) if id.starts_with("rpcFunc") => {
                    serde_json::to_string(&swap(text, ids)).expect("encode")
                }
                other => swap(&other.to_string(), ids),
            };
            // A refresh needs a real refresh token, not the example's.
            let text = if id == "sessionRefresh" {
                serde_json::json!({ "token": me.refresh }).to_string()
            } else {
                text
            };
            req = req.body(text);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16().to_string();
        let text = res.text().await.expect("body");
        let described = op["responses"]
            .get(&status)
            .or_else(|| op["responses"].get("default"));
        let Some(described) = described else {
            problems.push(format!("{id}: status {status} not described: {text}"));
            continue;
        };
        if status != "200" {
            not_ok.push(format!("{id} {method} {url_path} -> {status} {text}"));
        }
        match described["content"]["application/json"].get("schema") {
            Some(schema) => {
                let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
                    problems.push(format!("{id}: {status} body is not JSON ({e}): {text}"));
                    Value::Null
                });
                if !value.is_null() {
                    check(&doc, schema, &value, id, &mut problems);
                }
            }
            None => {
                if !text.is_empty() {
                    problems.push(format!(
                        "{id}: {status} has a body the document omits: {text}"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        not_ok.is_empty(),
        "examples that do not succeed:\n{}",
        not_ok.join("\n")
    );

    // A path the document does not list is 404 in Nakama's error shape.
    let (status, body) = s.get("/v2/nothing/here", &me.token).await;
    assert_eq!(status, 404);
    let mut errors = Vec::new();
    let error_schema = serde_json::json!({ "$ref": "#/components/schemas/Error" });
    check(&doc, &error_schema, &body, "404", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
}
