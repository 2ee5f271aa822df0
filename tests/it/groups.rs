//! Groups over REST and from scripts (Nakama's group API): create, join (open and closed),
//! the member operations and their role rules, leave, update, delete, the lists, and the -4
//! and -5 notifications on real sockets.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{next_json, silent, Server, User};

async fn call(
    s: &Server,
    method: Method,
    path: &str,
    who: &User,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    s.call(method, path, Some(&who.token), body.as_deref())
        .await
}

async fn create(s: &Server, owner: &User, name: &str, open: bool, max: i64) -> String {
    let (status, body) = call(
        s,
        Method::POST,
        "/v2/group",
        owner,
        Some(json!({"name": name, "open": open, "max_count": max})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// (username, state) of each member.
async fn members(s: &Server, who: &User, group: &str, query: &str) -> Vec<(String, i64)> {
    let (status, body) = s
        .get(&format!("/v2/group/{group}/user{query}"), &who.token)
        .await;
    assert_eq!(status, 200, "{body}");
    body["group_users"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|m| {
                    (
                        m["user"]["username"].as_str().unwrap().to_string(),
                        m["state"].as_i64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn notice(ws: &mut crate::support::Ws) -> Value {
    next_json(ws).await["notifications"]["notifications"][0].clone()
}

#[tokio::test]
async fn create_join_request_and_add_with_notifications() {
    let s = Server::start().await;
    let owner = s.user("owner").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let mut wo = s.socket(&owner.token).await;
    let mut wc = s.socket(&carol.token).await;

    let (status, g) = call(
        &s,
        Method::POST,
        "/v2/group",
        &owner,
        Some(json!({"name": "Raiders", "description": "We raid", "open": false})),
    )
    .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["creator_id"], owner.id.to_string());
    assert_eq!(
        (
            g["open"].clone(),
            g["edge_count"].clone(),
            g["max_count"].clone()
        ),
        (json!(false), json!(1), json!(100))
    );
    assert_eq!(
        (g["lang_tag"].as_str(), g["metadata"].as_str()),
        (Some("en"), Some("{}"))
    );
    assert!(g.get("avatar_url").is_none());
    let gid = g["id"].as_str().unwrap().to_string();
    let (status, body) = call(
        &s,
        Method::POST,
        "/v2/group",
        &bob,
        Some(json!({"name": "Raiders"})),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (409, Some("Group name is in use."))
    );

    // Carol asks to join the closed group: the superadmin gets -5 from her.
    let (status, _) = call(
        &s,
        Method::POST,
        &format!("/v2/group/{gid}/join"),
        &carol,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let n = notice(&mut wo).await;
    assert_eq!(n["code"], -5);
    assert_eq!(n["subject"], "User carol wants to join your group");
    assert_eq!(
        n["content"],
        format!(r#"{{"group_id":"{gid}","username":"carol"}}"#)
    );
    assert_eq!(n["sender_id"], carol.id.to_string());
    assert_eq!(n["persistent"], true);
    assert_eq!(
        members(&s, &bob, &gid, "").await,
        [("owner".into(), 0), ("carol".into(), 3)]
    );
    // Asking again changes nothing and tells nobody.
    call(
        &s,
        Method::POST,
        &format!("/v2/group/{gid}/join"),
        &carol,
        None,
    )
    .await;
    assert!(silent(&mut wo, Duration::from_millis(150)).await);

    // A member-less outsider cannot add; the owner accepts Carol: she gets -4 from the owner.
    let (status, body) = call(
        &s,
        Method::POST,
        &format!("/v2/group/{gid}/add?user_ids={}", carol.id),
        &bob,
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("Group not found or permission denied."))
    );
    let (status, _) = call(
        &s,
        Method::POST,
        &format!(
            "/v2/group/{gid}/add?user_ids={}&user_ids={}",
            carol.id, bob.id
        ),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let n = notice(&mut wc).await;
    assert_eq!(n["code"], -4);
    assert_eq!(n["subject"], "You've been added to group Raiders");
    assert_eq!(
        n["content"],
        format!(r#"{{"group_id":"{gid}","name":"Raiders"}}"#)
    );
    assert_eq!(n["sender_id"], owner.id.to_string());
    assert_eq!(
        members(&s, &owner, &gid, "").await,
        [("owner".into(), 0), ("carol".into(), 2), ("bob".into(), 2)]
    );
    let (_, inbox) = s.get("/v2/notification?limit=5", &carol.token).await;
    assert_eq!(inbox["notifications"][0]["code"], -4);

    // The user's side.
    let (status, body) = s
        .get(&format!("/v2/user/{}/group", carol.id), &bob.token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["user_groups"][0]["group"]["name"], "Raiders");
    assert_eq!(body["user_groups"][0]["state"], 2);
    assert_eq!(body["user_groups"][0]["group"]["edge_count"], 3);
}

#[tokio::test]
async fn roles_limits_and_leaving() {
    let s = Server::start().await;
    let sa = s.user("sa").await;
    let admin = s.user("admin").await;
    let m1 = s.user("m1").await;
    let m2 = s.user("m2").await;
    let late = s.user("late").await;
    let gid = create(&s, &sa, "Small", true, 4).await;
    for u in [&admin, &m1, &m2] {
        let (status, body) =
            call(&s, Method::POST, &format!("/v2/group/{gid}/join"), u, None).await;
        assert_eq!(status, 200, "{body}");
    }
    // Full: a fifth cannot join.
    let (status, body) = call(
        &s,
        Method::POST,
        &format!("/v2/group/{gid}/join"),
        &late,
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Group is full."))
    );

    let op = |what: &str, target: &User| format!("/v2/group/{gid}/{what}?user_ids={}", target.id);
    // Promote admin; a member cannot promote; an admin cannot promote another admin to superadmin.
    assert_eq!(
        call(&s, Method::POST, &op("promote", &admin), &sa, None)
            .await
            .0,
        200
    );
    let (status, _) = call(&s, Method::POST, &op("promote", &m2), &m1, None).await;
    assert_eq!(status, 404);
    call(&s, Method::POST, &op("promote", &m1), &admin, None).await; // m1 -> admin
    call(&s, Method::POST, &op("promote", &m1), &admin, None).await; // not beyond admin
    assert_eq!(
        members(&s, &sa, &gid, "").await,
        [
            ("sa".into(), 0),
            ("admin".into(), 1),
            ("m1".into(), 1),
            ("m2".into(), 2)
        ]
    );
    // An admin cannot kick an admin, only members; kick frees a place.
    call(&s, Method::POST, &op("kick", &m1), &admin, None).await;
    assert_eq!(members(&s, &sa, &gid, "?state=1").await.len(), 2);
    call(&s, Method::POST, &op("kick", &m2), &admin, None).await;
    assert_eq!(members(&s, &sa, &gid, "?state=2").await, []);
    // Ban: the banned member is listed only under state 4 and cannot come back by joining.
    call(
        &s,
        Method::POST,
        &format!("/v2/group/{gid}/join"),
        &m2,
        None,
    )
    .await;
    call(&s, Method::POST, &op("ban", &m2), &sa, None).await;
    assert_eq!(members(&s, &sa, &gid, "?state=4").await, [("m2".into(), 4)]);
    call(
        &s,
        Method::POST,
        &format!("/v2/group/{gid}/join"),
        &m2,
        None,
    )
    .await;
    assert_eq!(members(&s, &sa, &gid, "?state=4").await, [("m2".into(), 4)]);
    assert_eq!(
        members(&s, &sa, &gid, "").await.len(),
        3,
        "bans are not listed by default"
    );
    // Demote needs user ids; the last superadmin cannot demote or leave.
    let (status, body) = call(
        &s,
        Method::POST,
        &format!("/v2/group/{gid}/demote"),
        &sa,
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("User IDs must be set."))
    );
    call(&s, Method::POST, &op("demote", &m1), &sa, None).await; // admin -> member
    assert_eq!(members(&s, &sa, &gid, "?state=2").await, [("m1".into(), 2)]);
    let (status, body) = call(
        &s,
        Method::POST,
        &format!("/v2/group/{gid}/leave"),
        &sa,
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            400,
            Some("Cannot leave group when you are the last superadmin.")
        )
    );
    assert_eq!(
        call(
            &s,
            Method::POST,
            &format!("/v2/group/{gid}/leave"),
            &m1,
            None
        )
        .await
        .0,
        200
    );

    // Update and delete rights.
    let (status, body) = call(
        &s,
        Method::PUT,
        &format!("/v2/group/{gid}"),
        &m2,
        Some(json!({"name": "X"})),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            404,
            Some("Group not found or you're not allowed to update.")
        )
    );
    let (status, body) = call(
        &s,
        Method::PUT,
        &format!("/v2/group/{gid}"),
        &admin,
        Some(json!({"name": ""})),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Group name cannot be empty."))
    );
    let (status, body) = call(
        &s,
        Method::PUT,
        &format!("/v2/group/{gid}"),
        &admin,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Specify at least one field to update."))
    );
    assert_eq!(
        call(
            &s,
            Method::PUT,
            &format!("/v2/group/{gid}"),
            &admin,
            Some(json!({"description": "tiny", "open": false}))
        )
        .await
        .0,
        200
    );
    let (status, body) = call(
        &s,
        Method::DELETE,
        &format!("/v2/group/{gid}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            400,
            Some("Group not found or you're not allowed to delete.")
        )
    );
    let (_, list) = s.get("/v2/group?name=small&limit=10", &late.token).await;
    assert_eq!(list["groups"][0]["description"], "tiny");
    assert_eq!(list["groups"][0]["open"], false);
    assert_eq!(
        call(&s, Method::DELETE, &format!("/v2/group/{gid}"), &sa, None)
            .await
            .0,
        200
    );
    let (status, body) = call(
        &s,
        Method::POST,
        &format!("/v2/group/{gid}/join"),
        &late,
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("Group not found."))
    );

    // Bad ids and limits.
    let (status, body) = call(&s, Method::POST, "/v2/group/nope/join", &late, None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Group ID must be a valid ID."))
    );
    let (status, body) = s.get("/v2/group?limit=101", &late.token).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            400,
            Some("Invalid limit - limit must be between 1 and 100.")
        )
    );
    let (status, body) = s
        .get(
            &format!("/v2/group/{}/user?state=5", Uuid::new_v4()),
            &late.token,
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Invalid state - state must be between 0 and 4."))
    );
    let (status, body) = call(
        &s,
        Method::POST,
        "/v2/group",
        &late,
        Some(json!({"name": "Neg", "max_count": -1})),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Group max count must be >= 1 when set."))
    );
}

#[tokio::test]
async fn scripts_create_and_fill_groups() {
    let path = crate::support::fixtures("good");
    let s = Server::start_with(&[("runtime.path", path.as_str())]).await;
    let lead = s.user("lead").await;
    let joiner = s.user("joiner").await;
    let mut wj = s.socket(&joiner.token).await;
    let code = format!(
        r#"local g = nk.group_create("{lead}", "Scripted", nil, "de", "made by a script", "", true, {{tier = 2}}, 10)
           nk.group_users_add(g.id, {{"{joiner}"}})
           local users = nk.group_users_list(g.id)
           local mine = nk.user_groups_list("{joiner}")
           local ok, err = pcall(nk.group_create, "{lead}", "Scripted")
           return table.concat({{g.name, g.lang_tag, tostring(g.open), tostring(g.metadata.tier), g.creator_id,
             tostring(#users), users[2].user.username, tostring(users[2].state), mine[1].group.name, tostring(err)}}, "|")"#,
        lead = lead.id,
        joiner = joiner.id
    );
    let (status, body) = s.rpc("test.eval", &lead.token, &code).await;
    assert_eq!(status, 200, "{body}");
    let nil = Uuid::nil();
    assert_eq!(
        body["payload"],
        format!("Scripted|de|true|2|{nil}|2|joiner|2|Scripted|eval:5: error while trying to create group: group name in use")
    );
    let n = notice(&mut wj).await;
    assert_eq!(n["code"], -4);
    assert_eq!(
        n["sender_id"],
        nil.to_string(),
        "the server adds with the nil sender"
    );
}
