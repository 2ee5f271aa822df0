//! The admin console's routes on their own port: login, search, one player's inbox with read
//! state, send (one player, everyone), delete, the live view; and who is refused.

use reqwest::Method;
use serde_json::{json, Value};

use crate::crash::free_port;
use crate::support::{fixtures, next_json, Server};

struct Console {
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Console {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.body(body.to_string());
        }
        let res = req.send().await.expect("console request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

async fn login(base: &str, http: &reqwest::Client, user: &str, pass: &str) -> (u16, Value) {
    let res = http
        .post(format!("{base}/v2/console/authenticate"))
        .body(json!({ "username": user, "password": pass }).to_string())
        .send()
        .await
        .expect("login");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_operator_finds_a_player_sends_reads_state_and_deletes() {
    let port = free_port().to_string();
    let path = fixtures("good");
    let s = Server::start_with(&[
        ("console.port", port.as_str()),
        ("console.address", "127.0.0.1"),
        ("console.password", "s3cret"),
        ("runtime.path", path.as_str()),
    ])
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    // The console port is bound by the serving task: wait for it.
    crate::support::wait_for_http(&http, &base).await;
    // The page itself, embedded in the binary.
    let page = http.get(&base).send().await.expect("page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("Tidings console"));
    let js = http
        .get(format!("{base}/console.js"))
        .send()
        .await
        .expect("js");
    assert_eq!(js.status(), 200);

    // Refused: a wrong password, no token, a player's session token.
    let (status, body) = login(&base, &http, "admin", "wrong").await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], 16);
    assert_eq!(body["message"], "Invalid credentials.");
    let ann = s.user("console_ann").await;
    let bob = s.user("console_bob").await;
    for token in ["", ann.token.as_str()] {
        let res = http
            .get(format!("{base}/v2/console/account"))
            .bearer_auth(token)
            .send()
            .await
            .expect("refused");
        assert_eq!(res.status(), 401);
    }
    // The console login as HTTP Basic works for scripts.
    let res = http
        .get(format!("{base}/v2/console/status"))
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .expect("basic");
    assert_eq!(res.status(), 200);

    let (status, body) = login(&base, &http, "admin", "s3cret").await;
    assert_eq!(status, 200, "{body}");
    let console = Console {
        base: base.clone(),
        http: http.clone(),
        token: body["token"].as_str().expect("token").to_string(),
    };

    // Search by username prefix and by exact id.
    let mut ws = s.socket(&ann.token).await;
    let (status, found) = console
        .call(Method::GET, "/v2/console/account?filter=console_", None)
        .await;
    assert_eq!(status, 200, "{found}");
    let names: Vec<&str> = found["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["username"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["console_ann", "console_bob"]);
    assert_eq!(found["users"][0]["online"], true);
    assert_eq!(found["users"][1]["online"], false);
    let (_, by_id) = console
        .call(
            Method::GET,
            &format!("/v2/console/account?filter={}", bob.id),
            None,
        )
        .await;
    assert_eq!(by_id["users"][0]["username"], "console_bob");
    let (status, _) = console
        .call(Method::GET, "/v2/console/account?limit=0", None)
        .await;
    assert_eq!(status, 400);

    // Send a stored notification to ann: her socket gets it, her inbox lists it unread.
    let (status, sent) = console
        .call(
            Method::POST,
            "/v2/console/notification",
            Some(
                json!({"user_id": ann.id.to_string(), "subject": "Maintenance",
                        "content": {"at": "22:00"}, "code": 7, "persistent": true}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    let frame = next_json(&mut ws).await;
    let pushed = &frame["notifications"]["notifications"][0];
    assert_eq!(pushed["subject"], "Maintenance");
    assert_eq!(pushed["code"], 7);
    assert_eq!(pushed["content"], "{\"at\":\"22:00\"}");
    let id = sent["id"].as_str().expect("id").to_string();
    let inbox_path = format!("/v2/console/account/{}/inbox", ann.id);
    let (_, inbox) = console.call(Method::GET, &inbox_path, None).await;
    assert_eq!(inbox["unread"], 1);
    let (status, missing) = console
        .call(
            Method::GET,
            &format!("/v2/console/account/{}/inbox", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(
        (status, missing["code"].clone()),
        (404, json!(5)),
        "{missing}"
    );
    assert_eq!(inbox["notifications"][0]["id"], id.as_str());
    assert_eq!(inbox["notifications"][0]["read"], false);

    // The player reads it; the console shows the read state.
    let (status, _) = s
        .call(
            Method::POST,
            "/v2/tidings/inbox/read",
            Some(&ann.token),
            Some(&json!({ "ids": [id] }).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    let (_, inbox) = console.call(Method::GET, &inbox_path, None).await;
    assert_eq!(inbox["notifications"][0]["read"], true);
    assert_eq!(inbox["unread"], 0);

    // Bad sends are refused in Nakama's error shape; nothing is sent.
    for bad in [
        json!({"user_id": "nope", "subject": "x"}),
        json!({"user_id": ann.id.to_string(), "subject": ""}),
        json!({"user_id": ann.id.to_string(), "all": true, "subject": "x"}),
        json!({"user_id": uuid::Uuid::new_v4().to_string(), "subject": "x", "persistent": true}),
    ] {
        let (status, body) = console
            .call(Method::POST, "/v2/console/notification", Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad} -> {body}");
        assert!(body["message"].is_string());
    }

    // Everyone, not stored: every socket gets it.
    let (status, _) = console
        .call(
            Method::POST,
            "/v2/console/notification",
            Some(json!({"all": true, "subject": "Hello all", "code": 2})),
        )
        .await;
    assert_eq!(status, 200);
    let frame = next_json(&mut ws).await;
    assert_eq!(
        frame["notifications"]["notifications"][0]["subject"],
        "Hello all"
    );

    // Delete, then the inbox is empty.
    let (status, deleted) = console
        .call(
            Method::DELETE,
            &format!("/v2/console/account/{}/notification?ids={id}", ann.id),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(deleted["deleted"], 1);
    let (_, inbox) = console.call(Method::GET, &inbox_path, None).await;
    assert_eq!(inbox["notifications"], json!([]));

    // Everyone, stored: one broadcast, pushed to ann and listed in every player's inbox
    // (bob has no socket), and each player's copy deletes on its own.
    let (status, sent) = console
        .call(
            Method::POST,
            "/v2/console/notification",
            Some(json!({"all": true, "subject": "Season 4", "code": 3, "persistent": true})),
        )
        .await;
    assert_eq!((status, sent["stored"].clone()), (200, json!(1)), "{sent}");
    let frame = next_json(&mut ws).await;
    assert_eq!(
        frame["notifications"]["notifications"][0]["subject"],
        "Season 4"
    );
    let bob_path = format!("/v2/console/account/{}/inbox", bob.id);
    let (_, bobs) = console.call(Method::GET, &bob_path, None).await;
    assert_eq!(bobs["notifications"][0]["subject"], "Season 4");
    assert_eq!(bobs["unread"], 1);
    let copy = bobs["notifications"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (_, deleted) = console
        .call(
            Method::DELETE,
            &format!("/v2/console/account/{}/notification?ids={copy}", bob.id),
            None,
        )
        .await;
    assert_eq!(deleted["deleted"], 1);
    let (_, bobs) = console.call(Method::GET, &bob_path, None).await;
    assert_eq!(bobs["notifications"], json!([]));
    let (_, anns) = console.call(Method::GET, &inbox_path, None).await;
    assert_eq!(anns["notifications"][0]["subject"], "Season 4");

    // The live view: ann's socket, this node, the runtime's modules and generation.
    let (_, live) = console.call(Method::GET, "/v2/console/status", None).await;
    assert_eq!(live["socket_count"], 1);
    assert_eq!(live["sockets"][0]["username"], "console_ann");
    assert_eq!(live["runtime"]["generation"], 1);
    assert!(live["runtime"]["modules"]
        .as_array()
        .expect("modules")
        .iter()
        .any(|m| m == "rpc"));
    assert_eq!(live["runtime"]["last_error"], Value::Null);
    assert_eq!(live["nodes"].as_array().expect("nodes").len(), 1);

    let (status, _) = console.call(Method::GET, "/v2/console/nothing", None).await;
    assert_eq!(status, 404);
}
