//! Friends over REST (NAKAMA-SPEC §6): invite, accept, list, remove, block, with the -2/-3/-9
//! notifications on real sockets and Nakama's messages for every rejected request.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use crate::support::{next_json, silent, Server, User};

async fn post(s: &Server, path: &str, who: &User) -> (u16, Value) {
    s.call(Method::POST, path, Some(&who.token), None).await
}

/// The single notification of the next frame.
async fn notice(ws: &mut crate::support::Ws) -> Value {
    let frame = next_json(ws).await;
    let list = frame["notifications"]["notifications"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(list.len(), 1, "{frame}");
    list[0].clone()
}

/// (other user's username, state) of each listed edge, in order.
async fn edges(s: &Server, who: &User, query: &str) -> (Vec<(String, i64)>, Value) {
    let (status, body) = s.get(&format!("/v2/friend{query}"), &who.token).await;
    assert_eq!(status, 200, "{body}");
    let list = body["friends"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|f| {
                    (
                        f["user"]["username"].as_str().unwrap().to_string(),
                        f["state"].as_i64().expect("state is always written"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (list, body)
}

#[tokio::test]
async fn invite_accept_list_and_remove_with_notifications() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let mut wa = s.socket(&alice.token).await;
    let mut wb = s.socket(&bob.token).await;

    // Alice invites Bob by id: Bob gets -2 from Alice, stored.
    let (status, body) = post(&s, &format!("/v2/friend?ids={}", bob.id), &alice).await;
    assert_eq!((status, body.to_string()), (200, "{}".to_string()));
    let n = notice(&mut wb).await;
    assert_eq!(n["code"], -2);
    assert_eq!(n["subject"], "alice wants to add you as a friend");
    assert_eq!(n["content"], r#"{"username":"alice"}"#);
    assert_eq!(n["sender_id"], alice.id.to_string());
    assert_eq!(n["persistent"], true);
    assert_eq!(edges(&s, &alice, "").await.0, [("bob".to_string(), 1)]);
    assert_eq!(edges(&s, &bob, "").await.0, [("alice".to_string(), 2)]);
    // Each side now has one edge of its own: Nakama's edge_count, on the account (a friend
    // list never carries it, below).
    assert_eq!(
        s.get("/v2/account", &alice.token).await.1["user"]["edge_count"],
        1
    );
    assert_eq!(
        s.get("/v2/account", &bob.token).await.1["user"]["edge_count"],
        1
    );

    // Inviting again changes nothing and notifies nobody.
    assert_eq!(
        post(&s, &format!("/v2/friend?ids={}", bob.id), &alice)
            .await
            .0,
        200
    );
    assert!(silent(&mut wb, Duration::from_millis(200)).await);

    // Bob accepts by username: Alice gets -3; both are friends (state 0 is written).
    assert_eq!(post(&s, "/v2/friend?usernames=alice", &bob).await.0, 200);
    let n = notice(&mut wa).await;
    assert_eq!(n["code"], -3);
    assert_eq!(n["subject"], "bob accepted your friend request");
    assert_eq!(n["content"], r#"{"username":"bob"}"#);
    assert_eq!(n["sender_id"], bob.id.to_string());
    let (list, body) = edges(&s, &alice, "").await;
    assert_eq!(list, [("bob".to_string(), 0)]);
    let friend = &body["friends"][0];
    assert_eq!(friend["user"]["id"], bob.id.to_string());
    assert_eq!(friend["user"]["online"], true);
    assert_eq!(friend["metadata"], "{}");
    assert!(friend["update_time"].as_str().unwrap().ends_with('Z'));
    assert!(friend["user"].get("edge_count").is_none());
    assert_eq!(
        edges(&s, &bob, "?state=0").await.0,
        [("alice".to_string(), 0)]
    );
    assert!(edges(&s, &bob, "?state=1").await.0.is_empty());

    // The list is stored for Bob: his inbox has the -2.
    let (_, inbox) = s.get("/v2/notification?limit=10", &bob.token).await;
    assert_eq!(inbox["notifications"][0]["code"], -2);

    // Alice removes Bob: Bob gets -9, both lists are empty.
    let (status, _) = s
        .call(
            Method::DELETE,
            &format!("/v2/friend?ids={}", bob.id),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let n = notice(&mut wb).await;
    assert_eq!(n["code"], -9);
    assert_eq!(n["subject"], "alice removed you as a friend");
    assert!(edges(&s, &alice, "").await.0.is_empty());
    assert!(edges(&s, &bob, "").await.0.is_empty());
    let account = s.get("/v2/account", &bob.token).await.1;
    assert!(
        account["user"].get("edge_count").is_none(),
        "0 is left out: {account}"
    );

    // The content is Go's JSON text: `<`, `>` and `&` in a username are escaped (§4).
    let odd = s.user("a%26b%3Cc%3E").await;
    assert_eq!(
        post(&s, &format!("/v2/friend?ids={}", bob.id), &odd)
            .await
            .0,
        200
    );
    let n = notice(&mut wb).await;
    assert_eq!(n["subject"], "a&b<c> wants to add you as a friend");
    assert_eq!(n["content"], r#"{"username":"a\u0026b\u003cc\u003e"}"#);
}

#[tokio::test]
async fn blocks_stop_invites_and_notifications() {
    let s = Server::start().await;
    let carol = s.user("carol").await;
    let dave = s.user("dave").await;
    let mut wc = s.socket(&carol.token).await;

    // Carol blocks Dave; Dave's invite then does nothing and Carol hears nothing.
    assert_eq!(
        post(&s, &format!("/v2/friend/block?ids={}", dave.id), &carol)
            .await
            .0,
        200
    );
    assert_eq!(
        post(&s, &format!("/v2/friend?ids={}", carol.id), &dave)
            .await
            .0,
        200
    );
    assert!(silent(&mut wc, Duration::from_millis(200)).await);
    assert_eq!(edges(&s, &carol, "").await.0, [("dave".to_string(), 3)]);
    assert!(edges(&s, &dave, "").await.0.is_empty());

    // Dave deleting Carol cannot lift her block; Carol's own delete (unblock) does, silently.
    s.call(
        Method::DELETE,
        &format!("/v2/friend?ids={}", carol.id),
        Some(&dave.token),
        None,
    )
    .await;
    assert_eq!(edges(&s, &carol, "").await.0, [("dave".to_string(), 3)]);
    s.call(
        Method::DELETE,
        &format!("/v2/friend?ids={}", dave.id),
        Some(&carol.token),
        None,
    )
    .await;
    assert!(edges(&s, &carol, "").await.0.is_empty());
    assert!(silent(&mut wc, Duration::from_millis(200)).await);

    // Blocking a friend ends the friendship on the other side too.
    let mut wd = s.socket(&dave.token).await;
    post(&s, &format!("/v2/friend?ids={}", dave.id), &carol).await;
    notice(&mut wd).await;
    post(&s, &format!("/v2/friend?ids={}", carol.id), &dave).await;
    notice(&mut wc).await;
    assert_eq!(
        post(&s, "/v2/friend/block?usernames=dave", &carol).await.0,
        200
    );
    assert_eq!(edges(&s, &carol, "").await.0, [("dave".to_string(), 3)]);
    assert!(edges(&s, &dave, "").await.0.is_empty());
}

#[tokio::test]
async fn rejected_requests_use_nakamas_messages_and_notify_nobody() {
    let s = Server::start().await;
    let erin = s.user("erin").await;
    let frank = s.user("frank").await;
    let mut wf = s.socket(&frank.token).await;
    let me = erin.id;
    let nil_message = format!("Invalid user ID '{}'.", Uuid::nil());
    let cases: Vec<(Method, String, u16, &str)> = vec![
        (
            Method::POST,
            format!("/v2/friend?ids={me}"),
            400,
            "Cannot add self as friend.",
        ),
        (
            Method::POST,
            "/v2/friend?usernames=erin".into(),
            400,
            "Cannot add self as friend.",
        ),
        (
            Method::POST,
            "/v2/friend?ids=nope".into(),
            400,
            "Invalid user ID 'nope'.",
        ),
        (
            Method::POST,
            format!("/v2/friend?ids={}", Uuid::nil()),
            400,
            &nil_message,
        ),
        (
            Method::POST,
            "/v2/friend?usernames=".into(),
            400,
            "Username must not be empty.",
        ),
        (
            Method::POST,
            "/v2/friend?usernames=ghost".into(),
            400,
            "No valid ID or username was provided.",
        ),
        (
            Method::POST,
            format!("/v2/friend/block?ids={me}"),
            400,
            "Cannot block self.",
        ),
        (
            Method::POST,
            "/v2/friend/block?usernames=ghost".into(),
            400,
            "No valid ID or username was provided.",
        ),
        (
            Method::DELETE,
            format!("/v2/friend?ids={me}"),
            400,
            "Cannot delete self.",
        ),
        (
            Method::GET,
            "/v2/friend?limit=0".into(),
            400,
            "Invalid limit - limit must be between 1 and 1000.",
        ),
        (
            Method::GET,
            "/v2/friend?limit=1001".into(),
            400,
            "Invalid limit - limit must be between 1 and 1000.",
        ),
        (
            Method::GET,
            "/v2/friend?state=4".into(),
            400,
            "Invalid state - state must be between 0 and 3.",
        ),
        (
            Method::GET,
            "/v2/friend?cursor=garbage".into(),
            400,
            "Cursor is invalid.",
        ),
    ];
    for (method, path, status, message) in cases {
        let (got, body) = s.call(method.clone(), &path, Some(&erin.token), None).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        assert_eq!(body["message"], message, "{method} {path}");
        assert_eq!(body["code"], 3, "{method} {path}");
    }
    // Accepted no-ops: nothing named, an unknown id, deleting an unknown username.
    for (method, path) in [
        (Method::POST, "/v2/friend".to_string()),
        (Method::POST, format!("/v2/friend?ids={}", Uuid::new_v4())),
        (Method::DELETE, "/v2/friend?usernames=ghost".to_string()),
    ] {
        let (got, body) = s.call(method.clone(), &path, Some(&erin.token), None).await;
        assert_eq!(
            (got, body.to_string()),
            (200, "{}".to_string()),
            "{method} {path}"
        );
    }
    let (status, _) = s.call(Method::GET, "/v2/friend", None, None).await;
    assert_eq!(status, 401);
    assert!(
        silent(&mut wf, Duration::from_millis(200)).await,
        "no notification on rejection"
    );
}

#[tokio::test]
async fn the_list_pages_with_a_cursor() {
    let s = Server::start().await;
    let hub = s.user("hub").await;
    let mut names = Vec::new();
    for i in 0..5 {
        let name = format!("spoke{i}");
        let u = s.user(&name).await;
        post(&s, &format!("/v2/friend?ids={}", u.id), &hub).await;
        names.push(name);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let query = if cursor.is_empty() {
            "?limit=2".to_string()
        } else {
            format!("?limit=2&cursor={cursor}")
        };
        let (page, body) = edges(&s, &hub, &query).await;
        seen.extend(page.into_iter().map(|(n, _)| n));
        match body["cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, names, "every edge once, oldest first");
    // A cursor from the invite list (state 1) does not page another state.
    let (_, first) = edges(&s, &hub, "?limit=2").await;
    let cursor = first["cursor"].as_str().expect("more pages");
    let (status, body) = s
        .get(
            &format!("/v2/friend?limit=2&state=0&cursor={cursor}"),
            &hub.token,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "Cursor is invalid.");
}

/// The `nk.friends_*` functions act as the named user and notify like the REST routes.
#[tokio::test]
async fn scripts_manage_friends_with_nakamas_arguments() {
    let path = crate::support::fixtures("good");
    let s = Server::start_with(&[("runtime.path", path.as_str())]).await;
    let gina = s.user("gina").await;
    let hal = s.user("hal").await;
    let mut wh = s.socket(&hal.token).await;
    let eval = |code: String| {
        let s = &s;
        let token = gina.token.clone();
        async move {
            let (status, body) = s.rpc("test.eval", &token, &code).await;
            assert_eq!(status, 200, "{code} -> {body}");
            body["payload"].as_str().unwrap_or("").to_string()
        }
    };
    let (g, h) = (gina.id, hal.id);
    for (call, message) in [
        (
            "nk.friends_add('x', 'gina', {})".to_string(),
            "bad argument #1 to friends_add (expects user ID to be a valid identifier)".to_string(),
        ),
        (
            format!("nk.friends_add('{g}', '', {{}})"),
            "bad argument #2 to friends_add (expects username string)".into(),
        ),
        (
            format!("nk.friends_add('{g}', 'gina', {{'{g}'}})"),
            "bad argument #3 to friends_add (cannot add self as friend)".into(),
        ),
        (
            format!("nk.friends_add('{g}', 'gina', {{'zz'}})"),
            "bad argument #3 to friends_add (invalid user ID zz)".into(),
        ),
        (
            format!("nk.friends_add('{g}', 'gina', nil, {{'gina'}})"),
            "bad argument #4 to friends_add (cannot add self as friend)".into(),
        ),
        (
            format!("nk.friends_block('{g}', 'gina', nil, {{'ghost'}})"),
            "no valid ID or username was provided".into(),
        ),
        (
            format!("nk.friends_delete('{g}', 'gina', {{'{g}'}})"),
            "bad argument #3 to friends_delete (cannot delete self)".into(),
        ),
        (
            format!("nk.friends_list('{g}', 0)"),
            "bad argument #2 to friends_list (expects limit to be 1-1000)".into(),
        ),
        (
            format!("nk.friends_list('{g}', 10, 7)"),
            "bad argument #3 to friends_list (expects state to be 0-3)".into(),
        ),
        (
            format!("nk.friends_list('{g}', 10, nil, 'bad')"),
            "error while trying to list friends for a user: friend cursor invalid".into(),
        ),
    ] {
        let code = format!("local ok, err = pcall(function() {call} end) return tostring(err)");
        let got = eval(code).await;
        assert!(got.ends_with(&message), "{call}: {got}");
    }
    assert!(
        silent(&mut wh, Duration::from_millis(150)).await,
        "no notification on rejection"
    );

    let code = format!(
        r#"nk.friends_add("{g}", "gina", {{"{h}"}}, nil, {{note = "met in raid"}})
           local list = nk.friends_list("{g}")
           local f = list[1]
           return table.concat({{tostring(#list), tostring(f.state), f.user.username, f.user.user_id,
             f.metadata.note, type(f.update_time), tostring(f.user.online), tostring(f.user.edge_count),
             tostring(nk.users_get_id({{"{h}"}})[1].edge_count)}}, "|")"#
    );
    // edge_count: 0 in a friend list (Nakama's query never reads it), the real count elsewhere.
    assert_eq!(
        eval(code).await,
        format!("1|1|hal|{h}|met in raid|number|true|0|1")
    );
    let n = notice(&mut wh).await;
    assert_eq!(n["code"], -2);
    assert_eq!(n["subject"], "gina wants to add you as a friend");
    assert_eq!(n["sender_id"], g.to_string());
}

/// A social friend import (the admin route standing in for Facebook/Steam) links players who
/// already play as mutual friends and tells each of them with -6.
#[tokio::test]
async fn social_imports_link_friends_and_send_minus_6() {
    let s = Server::start().await;
    let ann = s.user("ann").await;
    let ben = s.user("ben").await;
    let cat = s.user("cat").await;
    let mut wa = s.socket(&ann.token).await;
    let import = |who: Uuid, body: serde_json::Value| {
        let s = &s;
        async move {
            s.call(
                Method::POST,
                &format!("/v2/console/account/{who}/import_friends?http_key=defaulthttpkey"),
                None,
                Some(&body.to_string()),
            )
            .await
        }
    };
    let (status, body) = import(ann.id, serde_json::json!({"provider": "facebook", "social_id": "fb-ann", "friend_ids": ["fb-ben"]})).await;
    assert_eq!(
        (status, body["new_friends"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{body}"
    );

    let (status, body) = import(ben.id, serde_json::json!({"provider": "facebook", "social_id": "fb-ben", "friend_ids": ["fb-ann", "fb-nobody"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["new_friends"], serde_json::json!([ann.id.to_string()]));
    let n = notice(&mut wa).await;
    assert_eq!(n["code"], -6);
    assert_eq!(n["subject"], "Your friend has just joined the game");
    assert_eq!(n["content"], r#"{"username":"ben"}"#);
    assert_eq!(n["sender_id"], ben.id.to_string());
    assert_eq!(n["persistent"], true);
    assert_eq!(edges(&s, &ann, "").await.0, [("ben".to_string(), 0)]);
    assert_eq!(edges(&s, &ben, "").await.0, [("ann".to_string(), 0)]);

    // Importing again links nobody new and tells nobody.
    let (_, body) = import(ben.id, serde_json::json!({"provider": "facebook", "social_id": "fb-ben", "friend_ids": ["fb-ann"]})).await;
    assert_eq!(body["new_friends"], serde_json::json!([]));
    assert!(silent(&mut wa, Duration::from_millis(150)).await);

    // A social id belongs to one player; bad requests are refused.
    let (status, body) = import(
        cat.id,
        serde_json::json!({"provider": "facebook", "social_id": "fb-ann"}),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (409, Some("Social account is already in use."))
    );
    let (status, _) = import(cat.id, serde_json::json!({"social_id": "x"})).await;
    assert_eq!(status, 400);
    let (status, _) = import(
        Uuid::new_v4(),
        serde_json::json!({"provider": "steam", "social_id": "x"}),
    )
    .await;
    assert_eq!(status, 404);
}
