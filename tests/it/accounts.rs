use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::support::{jwt_claims, keys, next_json, Server};

#[tokio::test]
async fn device_auth_creates_then_logs_in() {
    let s = Server::start().await;
    let body = json!({"id": "device-abcdefghij"}).to_string();
    let (status, first) = s
        .post_key(
            "/v2/account/authenticate/device?create=true&username=alice&",
            &body,
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["created"], true);
    let claims = jwt_claims(first["token"].as_str().unwrap());
    assert_eq!(claims["usn"], "alice");
    // Claims in Nakama's order, and the header byte for byte as Nakama's JWT library writes it.
    assert_eq!(keys(&claims), ["tid", "uid", "usn", "exp", "iat"]);
    for token in [&first["token"], &first["refresh_token"]] {
        use base64::Engine;
        let header = token.as_str().unwrap().split('.').next().unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap();
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT"}"#);
    }
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 60);
    let refresh = jwt_claims(first["refresh_token"].as_str().unwrap());
    assert_eq!(refresh["exp"].as_i64().unwrap() - iat, 3600);
    assert_eq!(refresh["tid"], claims["tid"]);

    // Again: same user, `created` omitted, the username parameter ignored.
    let (status, second) = s
        .post_key("/v2/account/authenticate/device?username=bob", &body)
        .await;
    assert_eq!(status, 200);
    assert!(second.get("created").is_none(), "{second}");
    let again = jwt_claims(second["token"].as_str().unwrap());
    assert_eq!(again["uid"], claims["uid"]);
    assert_eq!(again["usn"], "alice");

    let (status, account) = s
        .get("/v2/account", second["token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
    assert_eq!(account["user"]["id"], claims["uid"]);
    assert_eq!(account["user"]["username"], "alice");
    assert_eq!(account["user"]["lang_tag"], "en");
    assert_eq!(account["user"]["metadata"], "{}");
    assert_eq!(account["wallet"], "{}");
    assert_eq!(account["devices"], json!([{"id": "device-abcdefghij"}]));
    assert!(account.get("email").is_none());
}

#[tokio::test]
async fn authenticate_errors_match_nakama() {
    let s = Server::start().await;
    let check = |path: &'static str, body: serde_json::Value, status: u16, msg: &'static str| {
        let s = &s;
        async move {
            let (got, resp) = s.post_key(path, &body.to_string()).await;
            assert_eq!(
                (got, resp.clone()),
                (status, json!({"code": code_for(status), "message": msg})),
                "{path} {body}"
            );
        }
    };
    check(
        "/v2/account/authenticate/device",
        json!({}),
        400,
        "Device ID is required.",
    )
    .await;
    check(
        "/v2/account/authenticate/device",
        json!({"id": "short"}),
        400,
        "Device ID invalid, must be 10-128 bytes.",
    )
    .await;
    check(
        "/v2/account/authenticate/device",
        json!({"id": "has a space in it"}),
        400,
        "Device ID invalid, no spaces or control characters allowed.",
    )
    .await;
    check(
        "/v2/account/authenticate/device?create=false",
        json!({"id": "device-unknown-1"}),
        404,
        "User account not found.",
    )
    .await;
    check(
        "/v2/account/authenticate/custom",
        json!({"id": "abc"}),
        400,
        "Custom ID invalid, must be 6-128 bytes.",
    )
    .await;
    check(
        "/v2/account/authenticate/email",
        json!({"email": "nope", "password": "password1"}),
        400,
        "Invalid email address format.",
    )
    .await;
    check(
        "/v2/account/authenticate/email",
        json!({"email": "someone@example.com", "password": "short"}),
        400,
        "Password must be at least 8 characters long.",
    )
    .await;
    check(
        "/v2/account/authenticate/device?create=maybe",
        json!({"id": "device-abcdefghij"}),
        400,
        "parsing field \"create\": strconv.ParseBool: parsing \"maybe\": invalid syntax",
    )
    .await;

    let _ = s.user("taken").await;
    check(
        "/v2/account/authenticate/device?username=taken",
        json!({"id": "device-other-123"}),
        409,
        "Username is already in use.",
    )
    .await;

    // Malformed JSON is a 400 with the parser's message.
    let (status, body) = s
        .post_key("/v2/account/authenticate/device", "{not json")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 3);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("key must be a string"),
        "{body}"
    );

    // Oversized bodies are refused without being read whole.
    let big = format!("{{\"id\":\"{}\"}}", "x".repeat(300_000));
    let (status, body) = s.post_key("/v2/account/authenticate/device", &big).await;
    assert_eq!((status, body["code"].clone()), (400, json!(3)), "{body}");
}

fn code_for(status: u16) -> i32 {
    match status {
        400 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        409 => 6,
        _ => 13,
    }
}

#[tokio::test]
async fn server_key_is_required_for_authenticate() {
    let s = Server::start().await;
    let body = json!({"id": "device-abcdefghij"}).to_string();
    let url = s.url("/v2/account/authenticate/device");
    let cases: Vec<(Option<&str>, &str)> = vec![
        (None, "Server key required"),
        (Some("Basic !!!notbase64"), "Server key invalid"),
        (Some("Basic d3JvbmdrZXk6"), "Server key invalid"), // "wrongkey:"
        (Some("Bearer defaultkey"), "Server key invalid"),
    ];
    for (header, msg) in cases {
        let mut req = s.http.post(&url).body(body.clone());
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
        assert_eq!(res.headers()["www-authenticate"], msg);
        assert!(res.headers().get("grpc-metadata-content-type").is_none());
        let v: serde_json::Value = res.json().await.unwrap();
        assert_eq!(v, json!({"code": 16, "message": msg}));
    }
    // Successful answers carry grpc-gateway's header, as Nakama's do.
    let res = s
        .http
        .post(&url)
        .basic_auth("defaultkey", Some(""))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()["grpc-metadata-content-type"],
        "application/grpc"
    );
    assert_eq!(
        res.headers()["cache-control"],
        "no-store, no-cache, must-revalidate"
    );
}

#[tokio::test]
async fn custom_and_email_accounts() {
    let s = Server::start().await;
    let (status, body) = s
        .post_key(
            "/v2/account/authenticate/custom",
            &json!({"id": "custom-42", "vars": {}}).to_string(),
        )
        .await;
    assert_eq!((status, body["created"].clone()), (200, json!(true)));

    let creds = json!({"email": "Player@Example.com", "password": "correct horse"}).to_string();
    let (status, body) = s
        .post_key("/v2/account/authenticate/email?username=player", &creds)
        .await;
    assert_eq!(
        (status, body["created"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let token = body["token"].as_str().unwrap().to_string();
    let (_, account) = s.get("/v2/account", &token).await;
    assert_eq!(account["email"], "player@example.com");
    // Fields in proto order, as protojson writes them (NAKAMA-SPEC's GET /v2/account).
    assert_eq!(keys(&account), ["user", "wallet", "email"]);
    assert_eq!(
        keys(&account["user"]),
        [
            "id",
            "username",
            "lang_tag",
            "metadata",
            "create_time",
            "update_time"
        ]
    );

    let (status, body) = s.post_key("/v2/account/authenticate/email", &creds).await;
    assert_eq!(status, 200);
    assert!(body.get("created").is_none());

    let wrong = json!({"email": "player@example.com", "password": "wrong horse"}).to_string();
    let (status, body) = s.post_key("/v2/account/authenticate/email", &wrong).await;
    assert_eq!(
        (status, body),
        (401, json!({"code": 16, "message": "Invalid credentials."}))
    );

    // No email: log in by username and password.
    let by_name = json!({"password": "correct horse"}).to_string();
    let (status, _) = s
        .post_key("/v2/account/authenticate/email?username=player", &by_name)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn refresh_keeps_token_id_and_issue_time() {
    let s = Server::start().await;
    let u = s.user("refresher").await;
    let before = jwt_claims(&u.token);
    let (status, body) = s
        .post_key(
            "/v2/account/session/refresh",
            &json!({"token": u.refresh, "vars": {"k": "v"}}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let after = jwt_claims(body["token"].as_str().unwrap());
    assert_eq!(after["tid"], before["tid"]);
    assert_eq!(after["iat"], before["iat"]);
    assert_eq!(after["uid"], before["uid"]);
    assert_eq!(after["vrs"], json!({"k": "v"}));

    let (status, body) = s
        .post_key(
            "/v2/account/session/refresh",
            &json!({"token": ""}).to_string(),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": 3, "message": "Refresh token is required."})
        )
    );
    // A session token is not a refresh token.
    let (status, body) = s
        .post_key(
            "/v2/account/session/refresh",
            &json!({"token": u.token}).to_string(),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"code": 16, "message": "Refresh token invalid or expired."})
        )
    );
}

#[tokio::test]
async fn logout_revokes_tokens_on_rest_refresh_and_socket() {
    let s = Server::start().await;
    let u = s.user("leaver").await;
    let (status, _) = s
        .call(
            Method::POST,
            "/v2/session/logout",
            Some(&u.token),
            Some(&json!({"token": u.token, "refresh_token": u.refresh}).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = s.get("/v2/account", &u.token).await;
    assert_eq!(
        (status, body),
        (401, json!({"code": 16, "message": "Auth token invalid"}))
    );
    let (status, _) = s
        .post_key(
            "/v2/account/session/refresh",
            &json!({"token": u.refresh}).to_string(),
        )
        .await;
    assert_eq!(status, 401);
    // Unlike Nakama, a logged-out token cannot open a socket (deviation 3).
    let err = s.socket_query(&format!("token={}", u.token)).await.err();
    assert_eq!(err, Some((401, "Missing or invalid token".to_string())));

    // Someone else's token is refused.
    let other = s.user("other").await;
    let mine = s.user("mine").await;
    let (status, body) = s
        .call(
            Method::POST,
            "/v2/session/logout",
            Some(&mine.token),
            Some(&json!({"token": other.token}).to_string()),
        )
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"code": 3, "message": "Session token invalid."}))
    );
}

#[tokio::test]
async fn logout_without_tokens_ends_every_session_but_not_the_next_login() {
    let s = Server::start().await;
    let device = json!({"id": "device-everywhere"}).to_string();
    let (_, a) = s.post_key("/v2/account/authenticate/device", &device).await;
    let (_, b) = s.post_key("/v2/account/authenticate/device", &device).await;
    let a = a["token"].as_str().unwrap().to_string();
    let b = b["token"].as_str().unwrap().to_string();
    let (status, _) = s
        .call(Method::POST, "/v2/session/logout", Some(&a), Some("{}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.get("/v2/account", &a).await.0, 401);
    assert_eq!(s.get("/v2/account", &b).await.0, 401);
    let (_, c) = s.post_key("/v2/account/authenticate/device", &device).await;
    assert_eq!(
        s.get("/v2/account", c["token"].as_str().unwrap()).await.0,
        200
    );
}

/// A ban (admin route or `nk.users_ban_id`): -8 then close on every socket, tokens dead at
/// once, 403 on authenticating again; unban lets the user back in with a new token.
#[tokio::test]
async fn bans_end_sockets_and_tokens_and_unbans_let_users_back() {
    let path = crate::support::fixtures("good");
    let s = Server::start_with(&[("runtime.path", path.as_str())]).await;
    let device = format!("device-{}", Uuid::new_v4());
    let auth_body = json!({ "id": device }).to_string();
    let (_, body) = s
        .post_key(
            "/v2/account/authenticate/device?username=outlaw",
            &auth_body,
        )
        .await;
    let token = body["token"].as_str().unwrap().to_string();
    let id = crate::support::jwt_claims(&token)["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut one = s.socket(&token).await;
    let mut two = s.socket(&token).await;
    let bystander = s.user("bystander").await;
    let mut other = s.socket(&bystander.token).await;

    // Bad requests to the admin route, and the http key it needs.
    let admin = |path: String| {
        let s = &s;
        async move { s.call(reqwest::Method::POST, &path, None, None).await }
    };
    let (status, body) = admin("/v2/console/account/nope/ban?http_key=defaulthttpkey".into()).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Requires a valid user ID."))
    );
    let (status, body) = admin(format!(
        "/v2/console/account/{}/ban?http_key=defaulthttpkey",
        Uuid::nil()
    ))
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Cannot ban the system user."))
    );
    let (status, _) = admin(format!("/v2/console/account/{id}/ban?http_key=wrong")).await;
    assert_eq!(status, 401);
    assert!(crate::support::silent(&mut one, Duration::from_millis(100)).await);

    let (status, body) = admin(format!(
        "/v2/console/account/{id}/ban?http_key=defaulthttpkey"
    ))
    .await;
    assert_eq!((status, body.to_string()), (200, "{}".to_string()));
    for ws in [&mut one, &mut two] {
        let frame = next_json(ws).await;
        let n = &frame["notifications"]["notifications"][0];
        assert_eq!(n["code"], -8);
        assert_eq!(n["subject"], "banned");
        assert_eq!(n["content"], "{}");
        assert!(n.get("sender_id").is_none());
        assert!(n.get("persistent").is_none());
        assert_eq!(
            crate::support::closed(ws).await,
            (1000, "server-side session disconnect".into())
        );
    }
    assert!(crate::support::silent(&mut other, Duration::from_millis(100)).await);
    let (status, body) = s.get("/v2/account", &token).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Auth token invalid"))
    );
    let (status, body) = s
        .post_key("/v2/account/authenticate/device", &auth_body)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body, json!({"code": 7, "message": "User account banned."}));

    // Unban: the old token stays dead, a new login works.
    let (status, _) = admin(format!(
        "/v2/console/account/{id}/unban?http_key=defaulthttpkey"
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(s.get("/v2/account", &token).await.0, 401);
    tokio::time::sleep(Duration::from_millis(1100)).await; // a token from a later second
    let (status, body) = s
        .post_key("/v2/account/authenticate/device", &auth_body)
        .await;
    assert_eq!(status, 200, "{body}");
    let fresh = body["token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/v2/account", &fresh).await.0, 200);

    // The same from a script, with Nakama's argument errors.
    let mut ws = s.socket(&fresh).await;
    let eval = |code: String| {
        let s = &s;
        let token = bystander.token.clone();
        async move {
            let (status, body) = s.rpc("test.eval", &token, &code).await;
            assert_eq!(status, 200, "{code} -> {body}");
            body["payload"].as_str().unwrap_or("").to_string()
        }
    };
    for (call, message) in [
        (
            "nk.users_ban_id(nil)",
            "bad argument #1 to users_ban_id (invalid user id list)",
        ),
        (
            "nk.users_ban_id({x = 1})",
            "bad argument #1 to users_ban_id (invalid user id data)",
        ),
        (
            "nk.users_ban_id({1})",
            "bad argument #1 to users_ban_id (each user id must be a string)",
        ),
        (
            "nk.users_ban_id({'zz'})",
            "bad argument #1 to users_ban_id (each user id must be a valid id string)",
        ),
    ] {
        let code = format!("local ok, err = pcall(function() {call} end) return tostring(err)");
        assert_eq!(eval(code).await, format!("eval:1: {message}"), "{call}");
    }
    assert_eq!(eval("nk.users_ban_id({}) return 'ok'".into()).await, "ok");
    assert!(crate::support::silent(&mut ws, Duration::from_millis(100)).await);
    assert_eq!(
        eval(format!("nk.users_ban_id({{'{id}'}}) return 'ok'")).await,
        "ok"
    );
    assert_eq!(
        next_json(&mut ws).await["notifications"]["notifications"][0]["code"],
        -8
    );
    assert_eq!(
        s.post_key("/v2/account/authenticate/device", &auth_body)
            .await
            .0,
        403
    );
    assert_eq!(
        eval(format!("nk.users_unban_id({{'{id}'}}) return 'ok'")).await,
        "ok"
    );
    assert_eq!(
        s.post_key("/v2/account/authenticate/device", &auth_body)
            .await
            .0,
        200
    );
}

/// Inflates an answer body in the coding its `Content-Encoding` names.
fn inflate_answer(encoding: &str, bytes: &[u8]) -> serde_json::Value {
    use std::io::Read;
    let mut text = String::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(bytes).read_to_string(&mut text),
        "deflate" => flate2::read::DeflateDecoder::new(bytes).read_to_string(&mut text),
        other => panic!("unexpected content-encoding {other:?}"),
    }
    .expect("inflate");
    serde_json::from_str(&text).expect("json")
}

/// `data` compressed in `encoding` ("gzip", or raw DEFLATE for "deflate").
fn deflated(encoding: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let level = flate2::Compression::default();
    let out = match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(data).and_then(|_| e.finish())
        }
        _ => {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), level);
            e.write_all(data).and_then(|_| e.finish())
        }
    };
    out.expect("compress")
}

/// gzip and deflate as Nakama's gateway speaks them (NAKAMA-SPEC §1.4): a compressed request
/// body is read as if plain; an answer is compressed in the first of gzip / deflate that
/// `Accept-Encoding` names; every gateway answer varies on `Accept-Encoding`; `GET /` is
/// left alone; a broken or over-long compressed body is a clean 400. (This test's HTTP
/// client does not decompress: it sees the bytes as sent.)
#[tokio::test]
async fn the_gateway_reads_and_writes_gzip_and_deflate() {
    let s = Server::start_with(&[("socket.max_request_size_bytes", "4096")]).await;
    let path = "/v2/account/authenticate/device?create=true&username=zipper";
    let body = json!({"id": "device-compressed-01"}).to_string();
    let mut created = Vec::new();
    for (sent, accept, answered) in [
        ("gzip", "br, gzip, deflate", "gzip"),
        ("deflate", "deflate, gzip", "deflate"),
    ] {
        let res = s
            .http
            .post(s.url(path))
            .basic_auth("defaultkey", Some(""))
            .header("content-encoding", sent)
            .header("accept-encoding", accept)
            .body(deflated(sent, body.as_bytes()))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "{sent}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(header("content-encoding"), answered);
        assert_eq!(header("vary"), "Accept-Encoding");
        assert_eq!(header("grpc-metadata-content-type"), "application/grpc");
        let answer = inflate_answer(answered, &res.bytes().await.expect("body"));
        assert!(answer["token"].is_string(), "{answer}");
        created.push(answer["created"].clone());
    }
    // The same device both times: the deflate request logged in to what the gzip one made
    // (protojson leaves `created: false` out).
    assert_eq!(created, [json!(true), serde_json::Value::Null]);

    // Without Accept-Encoding (or with only codings it does not speak) the answer is plain.
    for accept in [None, Some("br, gzip;q=1.0")] {
        let mut req = s.http.get(s.url("/healthcheck"));
        if let Some(a) = accept {
            req = req.header("accept-encoding", a);
        }
        let res = req.send().await.expect("request");
        assert!(
            res.headers().get("content-encoding").is_none(),
            "{accept:?}"
        );
        assert_eq!(res.headers()["vary"], "Accept-Encoding");
        assert_eq!(res.text().await.expect("body"), "{}");
    }
    // Errors are compressed too; `GET /` is not (Nakama serves it outside the handler).
    let get_gzip = |path: &str| {
        s.http
            .get(s.url(path))
            .header("accept-encoding", "gzip")
            .send()
    };
    let res = get_gzip("/v2/account").await.expect("request");
    assert_eq!(res.status(), 401);
    let answer = inflate_answer("gzip", &res.bytes().await.expect("body"));
    assert_eq!(
        answer,
        json!({"code": 16, "message": "Auth token required"})
    );
    let res = get_gzip("/").await.expect("request");
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("content-encoding").is_none());

    // Broken streams, and a small body that inflates past the 4 KiB limit.
    let mut truncated = deflated("gzip", body.as_bytes());
    truncated.truncate(truncated.len() - 10);
    let bomb = deflated("gzip", &vec![b' '; 100_000]);
    assert!(bomb.len() < 4096);
    // Longer than the limit as sent: refused before it is inflated.
    let mut long = deflated("gzip", body.as_bytes());
    long.resize(5000, 0);
    for (sent, bytes, message) in [
        ("gzip", truncated, None),
        ("deflate", b"\xff\xfe\xfd".to_vec(), None),
        ("gzip", bomb, Some("http: request body too large")),
        ("gzip", long, Some("http: request body too large")),
    ] {
        let res = s
            .http
            .post(s.url(path))
            .basic_auth("defaultkey", Some(""))
            .header("content-encoding", sent)
            .body(bytes)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 400, "{sent}");
        let answer: serde_json::Value = res.json().await.expect("json");
        assert_eq!(answer["code"], 3, "{answer}");
        if let Some(m) = message {
            assert_eq!(answer["message"], m);
        }
    }
    // A body sent as gzip that has no gzip header is read as it is, as Nakama does.
    let res = s
        .http
        .post(s.url(path))
        .basic_auth("defaultkey", Some(""))
        .header("content-encoding", "gzip")
        .body(body.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
}
