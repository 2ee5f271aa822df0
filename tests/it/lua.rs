//! The Lua runtime through its doors: RPC over HTTP and the socket, the `nk` argument rules
//! and error text (NAKAMA-SPEC §5), the sandbox, limits, hooks and module loading.
//! Fixtures live in tests/modules/.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{fixtures, next_json, send_text, Server};

async fn lua_server(extra: &[(&str, &str)]) -> Server {
    let path = fixtures("good");
    let mut settings = vec![("runtime.path", path.as_str())];
    settings.extend_from_slice(extra);
    Server::start_with(&settings).await
}

/// Runs `code` through the `test.eval` RPC and returns its result.
async fn eval(s: &Server, token: &str, code: &str) -> String {
    let (status, body) = s.rpc("test.eval", token, code).await;
    assert_eq!(status, 200, "{code}\n-> {body}");
    body["payload"].as_str().unwrap_or("").to_string()
}

/// The message a call raises, caught inside the script so its position is `eval:1:`.
fn raised(call: &str) -> String {
    format!("local ok, err = pcall(function() {call} end) if ok then return 'no error' end return tostring(err)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argument_rules_and_error_text_match_nakama() {
    let s = lua_server(&[]).await;
    let u = s.user("scripted").await;
    let uid = u.id.to_string();
    let cases: Vec<(String, String)> = vec![
        (r#"nk.notification_send("x", "s", {}, 1)"#.to_string(), "bad argument #1 to notification_send (expects user_id to be a valid UUID)".into()),
        (format!(r#"nk.notification_send("{uid}", "", {{}}, 1)"#), "bad argument #2 to notification_send (expects subject to be a non-empty string)".into()),
        (format!(r#"nk.notification_send("{uid}", "s", nil, 1)"#), "bad argument #3 to notification_send (table expected, got nil)".into()),
        (format!(r#"nk.notification_send("{uid}", "s", "text", 1)"#), "bad argument #3 to notification_send (table expected, got string)".into()),
        (format!(r#"nk.notification_send("{uid}", "s", {{n = 0/0}}, 1)"#), "bad argument #3 to notification_send (failed to convert content: json: unsupported value: NaN)".into()),
        (format!(r#"nk.notification_send("{uid}", "s", {{}}, 0)"#), "bad argument #4 to notification_send (expects code number to be a positive integer)".into()),
        (format!(r#"nk.notification_send("{uid}", "s", {{}}, -999)"#), "bad argument #4 to notification_send (expects code number to be a positive integer)".into()),
        (format!(r#"nk.notification_send("{uid}", "s", {{}}, 1, "zz")"#), "bad argument #5 to notification_send (expects sender_id to either be not set, empty string or a valid UUID)".into()),
        (format!(r#"nk.notification_send("{uid}", "s", {{}}, 1, nil, "yes")"#), "bad argument #6 to notification_send (boolean expected, got string)".into()),
        (format!(r#"nk.notification_send("{}", "s", {{}}, 1, nil, true)"#, Uuid::new_v4()), "failed to send notifications: ERROR: insert or update on table \"notification\" violates foreign key constraint \"notification_user_id_fkey\" (SQLSTATE 23503)".into()),
        (format!(r#"nk.notification_send("{uid}", string.rep("x", 256), {{}}, 1, nil, true)"#), "failed to send notifications: ERROR: value too long for type character varying(255) (SQLSTATE 22001)".into()),
        (format!(r#"nk.notification_send("{uid}", "s", {{}}, 40000, nil, true)"#), "failed to send notifications: failed to encode args[4]: unable to encode []int32{40000} into binary format for _int2 (OID 1005): 40000 is greater than maximum value for int2".into()),
        (format!(r#"nk.notifications_send({{{{user_id="{uid}", subject="s", content={{}}, code=7, persistent=true}}, {{user_id="{uid}", subject="s", content={{}}, code=1, persistent=false}}, {{user_id="{uid}", subject="s", content={{}}, code=70000, persistent=true}}}})"#), "failed to send notifications: failed to encode args[4]: unable to encode []int32{7, 70000} into binary format for _int2 (OID 1005): 70000 is greater than maximum value for int2".into()),
        (r#"nk.notifications_send({"x"})"#.into(), "bad argument #1 to notifications_send (expects a valid set of notifications)".into()),
        (format!(r#"nk.notifications_send({{{{user_id="{uid}", subject="s", content={{}}, code=1, sender_id=""}}}})"#), "bad argument #1 to notifications_send (expects sender_id to be a valid UUID)".into()),
        (format!(r#"nk.notifications_send({{{{user_id="{uid}", subject="", content={{}}, code=1}}}})"#), "bad argument #1 to notifications_send (expects subject to be provided and to be non-empty)".into()),
        (format!(r#"nk.notifications_send({{{{user_id="{uid}", subject="s", code=1}}}})"#), "bad argument #1 to notifications_send (expects content to be provided and be valid JSON)".into()),
        (r#"nk.notifications_send({{subject="s", content={}, code=1}})"#.into(), "bad argument #1 to notifications_send (expects user_id to be provided and be a valid UUID)".into()),
        (format!(r#"nk.notifications_send({{{{user_id="{uid}", subject="s", content={{}}, code=-1500}}}})"#), "bad argument #1 to notifications_send (expects code to number above 0)".into()),
        (format!(r#"nk.notifications_send({{{{user_id="{uid}", subject="s", content={{}}}}}})"#), "bad argument #1 to notifications_send (expects code to be provided and be a number above 0)".into()),
        (format!(r#"nk.notifications_send({{{{user_id="{uid}", subject="s", content={{}}, code=1, persistent="y"}}}})"#), "bad argument #1 to notifications_send (expects persistent to be boolean)".into()),
        (r#"nk.notifications_send({{user_id={}, subject="s", content={}, code=1}})"#.to_string(), "bad argument #1 to notifications_send (expects user_id to be string)".into()),
        (r#"nk.notification_send_all("", {}, 1)"#.into(), "bad argument #1 to notification_send_all (expects subject to be a non-empty string)".into()),
        (r#"nk.notification_send_all("s", {}, 0)"#.into(), "bad argument #3 to notification_send_all (expects code number to be a positive integer)".into()),
        (r#"nk.notifications_list(nil)"#.into(), "bad argument #1 to notifications_list (string expected, got nil)".into()),
        (r#"nk.notifications_list("x")"#.into(), "bad argument #1 to notifications_list (expects user_id to be a valid uuid)".into()),
        (format!(r#"nk.notifications_list("{uid}", 0)"#), "bad argument #2 to notifications_list (expects limit to be value between 1 and 1000)".into()),
        (format!(r#"nk.notifications_list("{uid}", 1001)"#), "bad argument #2 to notifications_list (expects limit to be value between 1 and 1000)".into()),
        (format!(r#"nk.notifications_list("{uid}", 10, "bad")"#), "failed to list notifications: rpc error: code = InvalidArgument desc = Malformed cursor was used.".into()),
        (r#"nk.notifications_get_id(nil)"#.into(), "bad argument #1 to notifications_get_id (table expected, got nil)".into()),
        (r#"nk.notifications_get_id({a = 1})"#.into(), "bad argument #1 to notifications_get_id (invalid user ids list)".into()),
        (r#"nk.notifications_get_id({1})"#.into(), "bad argument #1 to notifications_get_id (each notification id must be a string)".into()),
        (r#"nk.notifications_get_id({"nope"})"#.into(), "bad argument #1 to notifications_get_id (each notification id must be a valid id)".into()),
        (r#"nk.notifications_delete_id(nil)"#.into(), "bad argument #1 to notifications_delete_id (table expected, got nil)".into()),
        (r#"nk.notifications_delete({"x"})"#.into(), "bad argument #1 to notifications_delete (expects a valid set of notifications)".into()),
        (format!(r#"nk.notifications_delete({{{{user_id="{uid}"}}}})"#), "failed to delete notifications: ERROR: invalid input syntax for type uuid: \"\" (SQLSTATE 22P02)".into()),
        (format!(r#"nk.notifications_delete({{{{user_id="{uid}", notification_id="x"}}}})"#), "bad argument #1 to notifications_delete (expects notification_id to be a valid UUID)".into()),
        (r#"nk.notifications_delete({{user_id=5}})"#.into(), "bad argument #1 to notifications_delete (expects user_id to be string)".into()),
        (r#"nk.notifications_update({"x"})"#.into(), "bad argument #1 to notifications_update (expects a valid set of data)".into()),
        (r#"nk.notifications_update({{id="x"}})"#.into(), "bad argument #1 to notifications_update (expects user_id to be a valid ID)".into()),
        (format!(r#"nk.notifications_update({{{{id="{uid}", subject=""}}}})"#), "bad argument #1 to notifications_update (expects subject to be a non-empty string)".into()),
        (format!(r#"nk.notifications_update({{{{id="{uid}", sender=""}}}})"#), "bad argument #1 to notifications_update (expects sender to be a non-empty string)".into()),
        (format!(r#"nk.notifications_update({{{{id="{uid}", sender="zz"}}}})"#), "failed to update notifications: failed to update notifications: ERROR: invalid input syntax for type uuid: \"zz\" (SQLSTATE 22P02)".into()),
        (format!(r#"nk.notifications_update({{{{id="{uid}", content="x"}}}})"#), "bad argument #1 to notifications_update (expects content to be table)".into()),
        (r#"nk.logger_info("")"#.into(), "bad argument #1 to logger_info (expects message string)".into()),
        (r#"nk.json_decode("")"#.into(), "bad argument #1 to json_decode (expects JSON string)".into()),
        (r#"nk.json_encode({n = 1/0})"#.into(), "error encoding to JSON: json: unsupported value: +Inf".into()),
        (r#"nk.register_rpc(function() end, "")"#.into(), "bad argument #2 to register_rpc (expects rpc id)".into()),
        (r#"nk.users_get_id({"x"})"#.into(), "bad argument #1 to users_get_id (each user id must be a valid id string)".into()),
        (r#"nk.run_once(function() error("no") end)"#.into(), "no error".into()),
        // The name is the one the script called the function by, as gopher-lua reports it.
        (format!(r#"local s = nk.notification_send s("{uid}", "", {{}}, 1)"#), "bad argument #2 to s (expects subject to be a non-empty string)".into()),
        (format!(r#"local ok, e = pcall(nk.notification_send, "{uid}", "", {{}}, 1) error(e, 0)"#), "bad argument #2 to (anonymous) (expects subject to be a non-empty string)".into()),
        (format!(r#"return (function() return nk.notification_send("{uid}", "", {{}}, 1) end)()"#), "bad argument #2 to notification_send (expects subject to be a non-empty string)".into()),
    ];
    for (call, want) in cases {
        let got = eval(&s, &u.token, &raised(&call)).await;
        let want = if want == "no error" {
            want
        } else {
            format!("eval:1: {want}")
        };
        assert_eq!(got, want, "{call}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nk_helpers_behave_like_nakama() {
    let s = lua_server(&[]).await;
    let u = s.user("helper").await;
    let cases: &[(&str, &str)] = &[
        ("return nk.json_encode({})", "{}"),
        ("return nk.json_encode({1,2,3})", "[1,2,3]"),
        ("return nk.json_encode({1,2,x=3})", "[1,2]"),
        ("return nk.json_encode({h='<&>'})", r#"{"h":"\u003c\u0026\u003e"}"#),
        ("return nk.json_encode(1e20)", "100000000000000000000"),
        ("local t = nk.json_decode('{\"a\":1,\"b\":null,\"c\":[1,2]}') return tostring(t.a) .. tostring(t.b) .. #t.c", "1nil2"),
        // Raised under pcall, the error still carries the script's line (gopher-lua's `where`
        // skips Go frames).
        ("local ok, e = pcall(nk.json_decode, '{') return e:sub(1, 28)", "eval:1: not a valid JSON str"),
        ("return nk.logger_info('hello')", "hello"),
        ("return tostring(#nk.uuid_v4())", "36"),
        ("return nk.sha256_hash('abc')", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("return nk.base64_decode(nk.base64_encode('hi there'))", "hi there"),
        ("return nk.base64_encode('a', false)", "YQ"),
        ("return tostring(nk.time({year=2026, month=11, day=28, hour=22, min=54, sec=47}))", "1795906487000"),
        ("return tostring(math.abs(nk.time() - os.time() * 1000) < 5000)", "true"),
        ("return nk.get_context().execution_mode", "rpc"),
        ("return ctx.user_id == nk.get_context().user_id and 'same' or 'different'", "same"),
        ("return tostring(bit32.band(0xff, 0x0f))", "15"),
    ];
    for (code, want) in cases {
        assert_eq!(eval(&s, &u.token, code).await, *want, "{code}");
    }
    let got = eval(
        &s,
        &u.token,
        &format!("return nk.users_get_id({{'{}'}})[1].username", u.id),
    )
    .await;
    assert_eq!(got, "helper");
    let got = eval(
        &s,
        &u.token,
        "return nk.users_get_username({'helper', 'nobody'})[1].user_id",
    )
    .await;
    assert_eq!(got, u.id.to_string());
    let got = eval(
        &s,
        &u.token,
        &format!(
            "local a = nk.account_get_id('{}') return a.user.username .. ' ' .. #a.devices",
            u.id
        ),
    )
    .await;
    assert_eq!(got, "helper 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_has_no_way_out() {
    let s = lua_server(&[]).await;
    let u = s.user("prisoner").await;
    let code = r#"
        local open = {}
        for _, name in ipairs({"io", "debug", "coroutine", "channel"}) do
          if _G[name] ~= nil then open[#open + 1] = name end
        end
        -- Nakama's globals include dofile and loadfile; here they exist but read no file.
        local ok, err = pcall(dofile, "tests/modules/good/durability.lua")
        if ok or not tostring(err):find("not available", 1, true) then open[#open + 1] = "dofile" end
        if loadfile("tests/modules/good/durability.lua") ~= nil then open[#open + 1] = "loadfile" end
        for _, name in ipairs({"execute", "exit", "getenv", "remove", "rename", "tmpname"}) do
          if os[name] ~= nil then open[#open + 1] = "os." .. name end
        end
        if package.loadlib ~= nil then open[#open + 1] = "package.loadlib" end
        if string.dump ~= nil then open[#open + 1] = "string.dump" end
        if pcall(require, "io") then open[#open + 1] = "require io" end
        if require("os").execute ~= nil then open[#open + 1] = "require os" end
        if loadstring("\27LuaQ") ~= nil then open[#open + 1] = "bytecode" end
        return table.concat(open, ",")
    "#;
    assert_eq!(eval(&s, &u.token, code).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_notifications_reach_sockets_and_the_inbox() {
    let s = lua_server(&[]).await;
    let u = s.user("player").await;
    let friend = s.user("friend").await;
    let mut ws = s.socket(&u.token).await;
    let uid = u.id;
    let code = format!(
        r#"nk.notification_send("{uid}", "reward", {{coins = 10, item = "<sword>"}}, 101, nil, true)
           nk.notification_send("{uid}", "typing", {{}}, 102, "{}", false)
           nk.notification_send("{uid}", "list", {{1, 2, 3}}, 103, "", true)
           return "sent""#,
        friend.id
    );
    assert_eq!(eval(&s, &u.token, &code).await, "sent");
    let mut pushed = Vec::new();
    for _ in 0..3 {
        let frame = next_json(&mut ws).await;
        pushed.extend(
            frame["notifications"]["notifications"]
                .as_array()
                .unwrap()
                .clone(),
        );
    }
    assert_eq!(
        pushed[0]["content"],
        r#"{"coins":10,"item":"\u003csword\u003e"}"#
    );
    assert_eq!(
        pushed[0]["sender_id"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(pushed[0]["persistent"], true);
    assert_eq!(pushed[1]["sender_id"], friend.id.to_string());
    assert!(pushed[1].get("persistent").is_none());
    assert_eq!(pushed[2]["content"], "null");

    let (_, body) = s.get("/v2/notification?limit=10", &u.token).await;
    let listed: Vec<&str> = body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["subject"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["reward", "list"]);

    // notifications_list: camelCase, string content, cursor only when more remain.
    let code = format!(
        r#"local list, cursor = nk.notifications_list("{uid}", 1)
           local rest, last = nk.notifications_list("{uid}", 10, cursor)
           local n = list[1]
           return table.concat({{n.subject, n.content, tostring(n.code), n.senderId == "" and "system" or n.senderId,
             tostring(n.persistent), type(n.createTime), tostring(cursor ~= nil), tostring(#rest), tostring(last)}}, "|")"#
    );
    assert_eq!(
        eval(&s, &u.token, &code).await,
        r#"reward|{"coins":10,"item":"\u003csword\u003e"}|101|system|true|number|true|1|nil"#
    );

    // get_id: snake_case, content as a table, no id; update; delete scoped to the user.
    let id = body["notifications"][0]["id"].as_str().unwrap().to_string();
    let code = format!(
        r#"nk.notifications_update({{{{id = "{id}", subject = "renamed", content = {{coins = 20}}}}}})
           local got = nk.notifications_get_id({{"{id}"}}, "{uid}")[1]
           local other = nk.notifications_get_id({{"{id}"}}, "{fid}")
           nk.notifications_delete({{{{user_id = "{fid}", notification_id = "{id}"}}}})
           local still = #nk.notifications_get_id({{"{id}"}})
           nk.notifications_delete_id({{"{id}"}}, "{uid}")
           local gone = #nk.notifications_get_id({{"{id}"}})
           return table.concat({{got.subject, tostring(got.content.coins), tostring(got.id), got.user_id == "{uid}" and "mine" or "?",
             tostring(got.sender_id), tostring(#other), tostring(still), tostring(gone)}}, "|")"#,
        fid = friend.id
    );
    assert_eq!(
        eval(&s, &u.token, &code).await,
        "renamed|20|nil|mine|nil|0|1|0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_send_and_send_all_from_scripts() {
    let s = lua_server(&[]).await;
    let a = s.user("a").await;
    let b = s.user("b").await;
    let mut wa = s.socket(&a.token).await;
    let mut wb = s.socket(&b.token).await;
    let code = format!(
        r#"nk.notifications_send({{
             {{user_id = "{a}", subject = "one", content = {{}}, code = 1, persistent = true}},
             {{user_id = "{b}", subject = "two", content = {{}}, code = 2}},
             {{user_id = "{a}", subject = "three", content = {{}}, code = 3, sender_id = "{b}"}},
           }})
           return "ok""#,
        a = a.id,
        b = b.id
    );
    assert_eq!(eval(&s, &a.token, &code).await, "ok");
    let fa = next_json(&mut wa).await;
    let subjects: Vec<&str> = fa["notifications"]["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["one", "three"],
        "one frame per recipient, in order"
    );
    let fb = next_json(&mut wb).await;
    assert_eq!(fb["notifications"]["notifications"][0]["subject"], "two");

    assert_eq!(
        eval(
            &s,
            &a.token,
            r#"nk.notification_send_all("hello", {x = 1}, 5) return "ok""#
        )
        .await,
        "ok"
    );
    for ws in [&mut wa, &mut wb] {
        let f = next_json(ws).await;
        assert_eq!(f["notifications"]["notifications"][0]["subject"], "hello");
    }
}

/// An RPC's sends are committed together when it returns, before it answers: the frames
/// still come one per call in call order, errors are still raised by the call that caused
/// them, and sends made before a script error are kept (they were accepted when made).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpcs_sends_commit_together_before_it_answers() {
    let s = lua_server(&[]).await;
    let u = s.user("batcher").await;
    let mut ws = s.socket(&u.token).await;
    let uid = u.id;
    let nobody = Uuid::new_v4();
    let code = format!(
        r#"nk.notification_send("{uid}", "p1", {{}}, 1, nil, true)
           nk.notification_send("{uid}", "o1", {{}}, 2, nil, false)
           local ok, err = pcall(nk.notification_send, "{nobody}", "lost", {{}}, 3, nil, true)
           nk.notifications_send({{
             {{user_id = "{uid}", subject = "p2", content = {{}}, code = 4, persistent = true}},
             {{user_id = "{uid}", subject = "p3", content = {{}}, code = 5, persistent = true}},
           }})
           error(tostring(ok) .. " " .. err)"#
    );
    let (status, body) = s.rpc("test.eval", &u.token, &code).await;
    assert_eq!(status, 500, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.ends_with("false eval:3: failed to send notifications: ERROR: insert or update on table \"notification\" violates foreign key constraint \"notification_user_id_fkey\" (SQLSTATE 23503)"),
        "the unknown recipient fails its own call: {message}"
    );
    let mut frames = Vec::new();
    for _ in 0..3 {
        let frame = next_json(&mut ws).await;
        let subjects: Vec<String> = frame["notifications"]["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["subject"].as_str().unwrap().to_string())
            .collect();
        frames.push(subjects.join(","));
    }
    assert_eq!(frames, ["p1", "o1", "p2,p3"]);
    let (_, listed) = s.get("/v2/notification?limit=10", &u.token).await;
    let subjects: Vec<&str> = listed["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["p1", "p2", "p3"],
        "stored although the RPC failed"
    );

    // 3,000 sends in one RPC, then a list in the same RPC sees every one of them.
    let code = format!(
        r#"for i = 1, 3000 do nk.notification_send("{uid}", "bulk", {{i = i}}, 7, nil, true) end
           local seen, cursor = 0, nil
           repeat
             local page
             page, cursor = nk.notifications_list("{uid}", 1000, cursor)
             seen = seen + #page
           until cursor == nil
           return tostring(seen)"#
    );
    assert_eq!(eval(&s, &u.token, &code).await, "3003");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_over_http_matches_nakama() {
    let s = lua_server(&[]).await;
    let u = s.user("caller").await;
    let url = |id: &str| s.url(&format!("/v2/rpc/{id}"));
    let post = |id: &str, body: &str| {
        s.http
            .post(url(id))
            .bearer_auth(&u.token)
            .body(body.to_string())
    };
    async fn go(req: reqwest::RequestBuilder) -> (u16, String) {
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }
    assert_eq!(
        go(post("test.echo", r#""Hello World""#)).await,
        (200, r#"{"payload":"Hello World"}"#.into())
    );
    assert_eq!(
        go(post("TEST.ECHO", r#""x""#)).await,
        (200, r#"{"payload":"x"}"#.into())
    );
    assert_eq!(
        go(post("test.echo", "")).await,
        (200, r#"{"payload":""}"#.into())
    );
    assert_eq!(
        go(post("test.nil", "")).await,
        (200, r#"{"payload":""}"#.into())
    );
    assert_eq!(
        go(post("test.echo", r#"{"a":1}"#)).await,
        (400, r#"{"error":"json: cannot unmarshal object into Go value of type string","message":"json: cannot unmarshal object into Go value of type string","code":3}"#.into())
    );
    assert_eq!(
        go(post("test.number", "")).await,
        (500, r#"{"code":13,"error":{},"message":"Runtime function returned invalid data - only allowed one return value of type String/Byte."}"#.into())
    );
    assert_eq!(
        go(post("test.error", "")).await,
        (
            500,
            r#"{"code":13,"error":{},"message":"boom plain"}"#.into()
        )
    );
    assert_eq!(
        go(post("test.error_code", "")).await,
        (
            400,
            r#"{"code":3,"error":{},"message":"custom message"}"#.into()
        )
    );
    assert_eq!(
        go(post("test.error_bad_code", "")).await,
        (500, r#"{"code":13,"error":{},"message":"odd code"}"#.into())
    );
    let (status, body) = go(post("test.runtime_error", "")).await;
    assert_eq!(
        (
            status,
            body.contains(r#""message":"attempt to index local 't' (a nil value)""#)
        ),
        (500, true),
        "{body}"
    );
    let (_, body) = go(post("test.error_elsewhere", "")).await;
    assert!(
        body.contains(r#"lib/util.lua:11: failed in util""#),
        "another file keeps its position: {body}"
    );
    assert_eq!(
        go(post("nope", "")).await,
        (
            404,
            r#"{"error":"RPC function not found","message":"RPC function not found","code":5}"#
                .into()
        )
    );
    assert_eq!(
        go(post("test.echo?unwrap", "raw {body}")).await,
        (200, "raw {body}".into())
    );
    assert_eq!(
        go(post("Test.Require", "")).await,
        (200, r#"{"payload":"42 1"}"#.into())
    );

    // Auth.
    let plain = |id: &str| s.http.post(url(id)).body(r#""x""#);
    assert_eq!(
        go(plain("test.echo")).await,
        (401, r#"{"error":"Auth token or HTTP key required","message":"Auth token or HTTP key required","code":16}"#.into())
    );
    assert_eq!(
        go(plain("test.echo?http_key=wrong")).await,
        (
            401,
            r#"{"error":"HTTP key invalid","message":"HTTP key invalid","code":16}"#.into()
        )
    );
    assert_eq!(
        go(plain("test.echo").bearer_auth("garbage")).await,
        (
            401,
            r#"{"error":"Auth token invalid","message":"Auth token invalid","code":16}"#.into()
        )
    );
    assert_eq!(
        go(plain("test.echo?http_key=defaulthttpkey")).await,
        (200, r#"{"payload":"x"}"#.into())
    );
    assert_eq!(
        go(plain("test.echo").basic_auth("defaulthttpkey", Some(""))).await,
        (200, r#"{"payload":"x"}"#.into())
    );

    // Context: with a session there is a user; with the http key there is none.
    let (_, body) = go(post("test.context", "")).await;
    let payload: Value = serde_json::from_str(&body).unwrap();
    let ctx: Value = serde_json::from_str(payload["payload"].as_str().unwrap()).unwrap();
    assert_eq!(ctx["user_id"], u.id.to_string());
    assert_eq!(ctx["username"], "caller");
    assert_eq!(ctx["execution_mode"], "rpc");
    assert!(ctx["headers"]["Authorization"][0]
        .as_str()
        .unwrap()
        .starts_with("Bearer "));
    // NAKAMA-SPEC §5.4 [obs]: exactly these keys for a bearer call over HTTP.
    let mut keys: Vec<&str> = ctx
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "client_ip",
            "client_port",
            "env",
            "execution_mode",
            "headers",
            "node",
            "query_params",
            "trace_id",
            "user_id",
            "user_session_exp",
            "username",
            "version"
        ]
    );
    assert_eq!(ctx["client_ip"], "127.0.0.1");
    assert!(ctx["client_port"]
        .as_str()
        .is_some_and(|p| p.parse::<u16>().is_ok()));
    assert_eq!(ctx["trace_id"].as_str().map(str::len), Some(32));
    let res = s
        .http
        .get(url("test.context?http_key=defaulthttpkey&payload=ignored"))
        .send()
        .await
        .unwrap();
    let payload: Value = res.json().await.unwrap();
    let ctx: Value = serde_json::from_str(payload["payload"].as_str().unwrap()).unwrap();
    assert!(ctx.get("user_id").is_none());
    assert_eq!(ctx["query_params"], json!({"payload": ["ignored"]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_over_the_socket() {
    let s = lua_server(&[]).await;
    let u = s.user("sock").await;
    let mut ws = s.socket(&u.token).await;
    let cases: &[(&str, Value)] = &[
        (
            r#"{"cid":"1","rpc":{"id":"test.echo","payload":"hi"}}"#,
            json!({"cid":"1","rpc":{"id":"test.echo","payload":"hi"}}),
        ),
        (
            r#"{"cid":"2","rpc":{"id":"TEST.ECHO","payload":"hi"}}"#,
            json!({"cid":"2","rpc":{"id":"TEST.ECHO","payload":"hi"}}),
        ),
        (
            r#"{"cid":"3","rpc":{"id":"test.nil"}}"#,
            json!({"cid":"3","rpc":{"id":"test.nil"}}),
        ),
        (
            r#"{"cid":"4","rpc":{"id":"test.error_code"}}"#,
            json!({"cid":"4","error":{"code":7,"message":"custom message"}}),
        ),
        (
            r#"{"cid":"5","rpc":{"id":"nope"}}"#,
            json!({"cid":"5","error":{"code":6,"message":"RPC function not found"}}),
        ),
        (
            r#"{"cid":"6","rpc":{"id":""}}"#,
            json!({"cid":"6","error":{"code":3,"message":"RPC ID must be set"}}),
        ),
    ];
    for (frame, want) in cases {
        send_text(&mut ws, frame).await;
        assert_eq!(&next_json(&mut ws).await, want, "{frame}");
    }
    // The socket context carries the session id and lang.
    send_text(&mut ws, r#"{"cid":"7","rpc":{"id":"test.context"}}"#).await;
    let reply = next_json(&mut ws).await;
    let ctx: Value = serde_json::from_str(reply["rpc"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(ctx["lang"], "en");
    assert_eq!(ctx["user_id"], u.id.to_string());
    assert!(ctx["session_id"].as_str().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_scripts_and_memory_hogs_are_stopped_and_the_server_keeps_serving() {
    // The runaway budget is long enough (1 s) that a loaded CI machine still answers the echo
    // well inside it; the property checked is that the echo does not wait for the runaway.
    let s = lua_server(&[("runtime.lua_call_timeout_ms", "1000")]).await;
    let u = s.user("victim").await;
    // Runaway calls do not hold up others, not even more of them than the runtime has
    // worker threads (this test runs on 2): calls run inline on a worker hand its other
    // tasks away once they run long (runtime::inline), and pool calls run on other VMs.
    let runaways = futures_util::future::join_all((0..4).map(|_| async {
        let r = s.rpc("test.runaway", &u.token, "").await;
        (r, Instant::now())
    }));
    let (runaways, echo) = tokio::join!(runaways, async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = s.rpc("test.echo", &u.token, "alive").await;
        (r, Instant::now())
    });
    assert_eq!(echo.0 .1["payload"], "alive");
    for ((status, body), runaway_done) in runaways {
        assert_eq!((status, body["code"].clone()), (504, json!(4)), "{body}");
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("lua_call_timeout_ms"));
        assert!(echo.1 < runaway_done, "the echo waited for a runaway");
    }

    let (status, body) = s.rpc("test.runaway_pcall", &u.token, "").await;
    assert_eq!((status, body["code"].clone()), (504, json!(4)), "{body}");
    // Every VM still answers.
    for _ in 0..8 {
        assert_eq!(s.rpc("test.echo", &u.token, "ok").await.1["payload"], "ok");
    }

    // Memory hogs, with a time budget so generous that only the memory limit can stop them.
    let s = lua_server(&[
        ("runtime.lua_call_timeout_ms", "60000"),
        ("runtime.lua_memory_limit_bytes", "16777216"),
    ])
    .await;
    let u = s.user("victim").await;
    for id in ["test.memory", "test.big_string"] {
        let (status, body) = s.rpc(id, &u.token, "").await;
        assert_eq!(
            (status, body["code"].clone()),
            (429, json!(8)),
            "{id}: {body}"
        );
    }
    for _ in 0..8 {
        assert_eq!(s.rpc("test.echo", &u.token, "ok").await.1["payload"], "ok");
    }
}

/// Past `lua_max_count` calls running inline, the next call goes to the pool: with a cap of
/// one, two slow calls at once run one on a worker thread's VM and one on the pool's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_calls_past_the_cap_go_to_the_pool() {
    let s = lua_server(&[
        ("runtime.lua_min_count", "1"),
        ("runtime.lua_max_count", "1"),
    ])
    .await;
    let u = s.user("capped").await;
    let slow = |seq: u32| {
        let (s, token) = (&s, u.token.clone());
        async move {
            s.rpc("test.slow_store", &token, &format!("{seq} 1500"))
                .await
        }
    };
    let watch = async {
        for _ in 0..150 {
            let generation = s.runtime.current();
            let (threads, idle, _) = generation.pool_usage();
            let seen = (generation.inline_calls(), threads - idle);
            if seen == (1, 1) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let generation = s.runtime.current();
        let (threads, idle, _) = generation.pool_usage();
        (generation.inline_calls(), threads - idle)
    };
    let (a, b, seen) = tokio::join!(slow(1), slow(2), watch);
    assert_eq!(seen, (1, 1), "(inline calls, busy pool VMs) while both ran");
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    assert_eq!(s.runtime.current().inline_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_hooks_rewrite_reject_and_observe() {
    let s = lua_server(&[]).await;
    let u = s.user("hooked").await;
    let mut ws = s.socket(&u.token).await;
    let uid = u.id;
    let code = format!(
        r#"for i = 1, 3 do nk.notification_send("{uid}", "n" .. i, {{}}, i, nil, true) end return "ok""#
    );
    assert_eq!(eval(&s, &u.token, &code).await, "ok");
    for _ in 0..3 {
        next_json(&mut ws).await;
    }
    assert_eq!(
        s.get("/v2/notification?limit=42", &u.token).await,
        (
            404,
            json!({"code": 5, "message": "Requested resource was not found."})
        )
    );
    let (status, body) = s.get("/v2/notification?limit=7", &u.token).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["notifications"].as_array().unwrap().len(),
        2,
        "the hook rewrote 7 to 2"
    );
    let after = next_json(&mut ws).await;
    let n = &after["notifications"]["notifications"][0];
    assert_eq!(n["subject"], "after list");
    assert_eq!(n["content"], r#"{"count":2,"limit":2}"#);

    let (status, body) = s
        .post_key(
            "/v2/account/authenticate/device",
            r#"{"id":"blocked-device-0001"}"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (403, json!({"code": 7, "message": "this device is blocked"}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_runs_once_and_modules_load_once_per_vm() {
    // One VM for every call (no inline VMs on the worker threads): what one call leaves in
    // its VM is what the next call sees.
    let s = lua_server(&[
        ("runtime.lua_min_count", "1"),
        ("runtime.lua_max_count", "1"),
        ("runtime.lua_inline_calls", "false"),
    ])
    .await;
    let u = s.user("once").await;
    assert_eq!(
        eval(
            &s,
            &u.token,
            "return run_once_mode .. ' ' .. run_once_calls"
        )
        .await,
        "run_once 1"
    );
    assert_eq!(eval(&s, &u.token, "return tostring(util_loads)").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_modules_refuse_start_up_with_file_and_line() {
    for (dir, want) in [
        ("bad_syntax", "broken.lua:5:"),
        ("bad_runtime", "boom.lua:3: module failed at load"),
    ] {
        let mut config = tidings::config::Config::default();
        let tmp = tempfile::tempdir().unwrap();
        config.data_dir = tmp.path().to_path_buf();
        config.runtime.path = fixtures(dir).into();
        config.runtime.lua_min_count = 1;
        let core = tidings::build_core(&config).await.unwrap();
        let err = match tidings::start_runtime(&config, core).await {
            Ok(_) => panic!("{dir} loaded"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{dir}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_stacktrace_keeps_the_position_and_adds_the_stack() {
    let s = lua_server(&[("runtime.lua_api_stacktrace", "true")]).await;
    let u = s.user("tracer").await;
    let (status, body) = s.rpc("test.error_elsewhere", &u.token, "").await;
    assert_eq!(status, 500);
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("lib/util.lua:11: failed in util"), "{msg}");
    assert!(msg.contains("stack traceback:"), "{msg}");
    assert!(msg.contains("util.lua:11: in function"), "{msg}");
    let (_, body) = s.rpc("test.runtime_error", &u.token, "").await;
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("rpc.lua:11: attempt to index local 't' (a nil value)"),
        "{msg}"
    );
    assert!(
        msg.contains("rpc.lua:11: in function"),
        "the RPC's own frame: {msg}"
    );
    // error({msg, code}) keeps its code with stack traces on.
    let (status, body) = s.rpc("test.error_code", &u.token, "").await;
    assert_eq!(
        (status, body["message"].clone()),
        (400, json!("custom message"))
    );
}

/// Hostile scripts on a single VM, so anything one call poisoned would show in the next:
/// shared tables cannot be rewritten (directly, through `rawset`, or through the string
/// metatable), `require` reaches no file, deep recursion and C-stack recursion are clean
/// errors, a huge result is returned whole, and afterwards the VM still behaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_scripts_get_clean_errors_and_cannot_poison_later_calls() {
    // One VM for every call (no inline VMs on the worker threads): what one call leaves in
    // its VM is what the next call sees.
    let s = lua_server(&[
        ("runtime.lua_min_count", "1"),
        ("runtime.lua_max_count", "1"),
        ("runtime.lua_inline_calls", "false"),
    ])
    .await;
    let u = s.user("poisoner").await;
    let rows: &[(&str, &str)] = &[
        (
            "string.upper = function() return 'pwned' end",
            "read-only table 'string'",
        ),
        (
            "rawset(string, 'upper', function() return 'pwned' end)",
            "read-only table 'string'",
        ),
        ("nk.notification_send = nil", "read-only table 'nk'"),
        (
            "rawset(nk, 'notification_send', print)",
            "read-only table 'nk'",
        ),
        ("math.floor = nil", "read-only table 'math'"),
        ("table.insert = nil", "read-only table 'table'"),
        ("os.time = function() return 0 end", "read-only table 'os'"),
        (
            "getmetatable('').__index = {}",
            "attempt to index a boolean value",
        ),
        (
            "setmetatable(string, {})",
            "cannot change a protected metatable",
        ),
        (
            "require('../../../../etc/passwd')",
            "module '../../../../etc/passwd' not found",
        ),
        ("require('/etc/passwd')", "module '/etc/passwd' not found"),
        (
            "local function f() return 1 + f() end return f()",
            "stack overflow",
        ),
        (
            "local function f() return pcall(f) end local r = { f() } error(r[#r])",
            "stack overflow",
        ),
        (
            "local t = {} for i = 1, 7000 do t[i] = i end error(select('#', pcall(unpack, t)))",
            "7001",
        ),
        (
            "local function f(s) return (s:gsub('.', f)) end return f('ab')",
            "stack overflow",
        ),
    ];
    for (code, expected) in rows {
        let got = eval(&s, &u.token, &raised(code)).await;
        assert!(got.contains(expected), "{code}\n-> {got}");
    }
    // As on Nakama, a script may add its own keys to nk (NAKAMA-SPEC §9.3: `nk.foo = 1`
    // succeeded); they stay in that VM. Its functions stay read-only (the rows above).
    assert_eq!(
        eval(&s, &u.token, "nk.foo = 1 return tostring(nk.foo)").await,
        "1"
    );
    assert_eq!(
        eval(
            &s,
            &u.token,
            "rawset(nk, 'bar', 2) return tostring(nk.foo + rawget(nk, 'bar'))"
        )
        .await,
        "3",
        "the same (only) VM keeps them"
    );
    // A crafted environment for a loaded chunk reaches nothing the sandbox removed.
    let code = "local f = loadstring('return io, debug, getfenv(0).io') \
                setfenv(f, setmetatable({}, { __index = _G })) \
                local a, b, c = f() return tostring(a) .. tostring(b) .. tostring(c)";
    assert_eq!(eval(&s, &u.token, code).await, "nilnilnil");
    // Iterating a read-only library still lists it (Lua 5.1's pairs has no __pairs).
    let code = "local n = 0 for k, v in pairs(os) do n = n + 1 end \
                local m = 0 for k in next, nk do m = m + 1 end \
                return n .. ' ' .. tostring(m > 10) .. ' ' .. type(rawget(string, 'format'))";
    assert_eq!(eval(&s, &u.token, code).await, "4 true function");
    // Nothing stuck: the one VM still has the real functions, and load-time extensions work.
    let code = "return ('abc'):upper() .. type(nk.notification_send) .. math.floor(2.5) \
                .. string.tidings_trim('  x') .. ('  y'):tidings_trim()";
    assert_eq!(eval(&s, &u.token, code).await, "ABCfunction2xy");
    // A huge result is returned whole (it is bounded by lua_memory_limit_bytes).
    let big = eval(&s, &u.token, "return string.rep('x', 8 * 1024 * 1024)").await;
    assert_eq!(big.len(), 8 * 1024 * 1024);
}

/// The encodings, hashes, local cache and session functions, with Nakama's results and
/// messages (NAKAMA-SPEC §5.5, §9.4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codecs_local_cache_and_sessions_work_as_in_nakama() {
    let s = lua_server(&[]).await;
    let u = s.user("codec").await;
    let cases: &[(&str, &str)] = &[
        ("return nk.md5_hash('abc')", "900150983cd24fb0d6963f7d28e17f72"),
        (
            "return nk.base16_encode(nk.hmac_sha256_hash('The quick brown fox jumps over the lazy dog', 'key'))",
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
        ),
        ("return tostring(#nk.hmac_sha256_hash('a', 'b'))", "32"),
        ("return nk.base16_decode('4869') .. nk.base16_decode('4A')", "HiJ"),
        ("return nk.base64url_encode(nk.base16_decode('fffe'))", "__4="),
        ("return nk.base64url_encode(nk.base16_decode('fffe'), false)", "__4"),
        ("return nk.base16_encode(nk.base64url_decode('__4'))", "fffe"),
        ("return nk.base16_encode(nk.base64url_decode('__4=', true))", "fffe"),
        ("return tostring(pcall(nk.base64url_decode, '__4', true))", "false"),
        ("return nk.base64_decode('aGk=', false) .. tostring(pcall(nk.base64_decode, 'aGk', false))", "hifalse"),
        ("return nk.sha256_hash(nk.base16_decode('00ff'))", "06eb7d6a69ee19e5fbdf749018d3d2abfa04bcbd1365db312eb86dc7169389b8"),
        (
            "return nk.uuid_bytes_to_string(nk.uuid_string_to_bytes('{6BA7B810-9DAD-11D1-80B4-00C04FD430C8}'))",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        ),
        ("return tostring(#nk.uuid_string_to_bytes('6ba7b8109dad11d180b400c04fd430c8'))", "16"),
        ("return tostring(#nk.secure_random_bytes(1000))", "1000"),
        (
            "local h = nk.bcrypt_hash('pw') return h:sub(1, 7) .. tostring(nk.bcrypt_compare(h, 'pw')) .. tostring(nk.bcrypt_compare(h, 'nope')) .. tostring(nk.bcrypt_compare('short', 'pw'))",
            "$2a$13$truefalsefalse",
        ),
        // The cache is shared by every VM and copies values in and out.
        ("nk.localcache_put('t', {a = {1, 2}, s = 'x'}) local t = nk.localcache_get('t') t.a = nil return tostring(#nk.localcache_get('t').a)", "2"),
        ("return tostring(nk.localcache_get('missing', 7)) .. tostring(nk.localcache_get('missing'))", "7nil"),
        ("nk.localcache_put('gone', 1) nk.localcache_delete('gone') return tostring(nk.localcache_get('gone'))", "nil"),
    ];
    for (code, want) in cases {
        assert_eq!(eval(&s, &u.token, code).await, *want, "{code}");
    }
    let errors: &[(&str, &str)] = &[
        ("nk.md5_hash('')", "bad argument #1 to md5_hash (expects input string)"),
        ("nk.hmac_sha256_hash('a', '')", "bad argument #2 to hmac_sha256_hash (expects key string)"),
        ("nk.base16_decode('abc')", "not a valid base16 string: encoding/hex: odd length hex string"),
        ("nk.base16_decode('zz')", "not a valid base16 string: encoding/hex: invalid byte: U+007A 'z'"),
        ("nk.bcrypt_hash(string.rep('x', 73))", "error hashing input: bcrypt: password length exceeds 72 bytes"),
        ("nk.uuid_bytes_to_string('short')", "bad argument #1 to uuid_bytes_to_string (not a valid UUID byte string)"),
        ("nk.uuid_string_to_bytes('nope')", "bad argument #1 to uuid_string_to_bytes (not a valid UUID string)"),
        ("nk.secure_random_bytes(0)", "bad argument #1 to secure_random_bytes (count must be 1-1000)"),
        ("nk.localcache_put('', 1)", "bad argument #1 to localcache_put (expects key string)"),
        ("nk.localcache_put('k', 1, -1)", "bad argument #3 to localcache_put (ttl must be 0 or more)"),
        ("nk.localcache_put('k', print)", "bad argument #2 to localcache_put (expects a value VMs can share: nil, boolean, number, string or a table of those)"),
        ("nk.session_disconnect('x')", "bad argument #1 to session_disconnect (expects valid session id)"),
        ("nk.session_disconnect('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 5)", "bad argument #2 to session_disconnect (invalid disconnect reason, must be a value 0-4)"),
        ("nk.session_logout('')", "bad argument #1 to session_logout (expects user id)"),
    ];
    for (call, want) in errors {
        assert_eq!(
            eval(&s, &u.token, &raised(call)).await,
            format!("eval:1: {want}"),
            "{call}"
        );
    }
    // Accounts by user id and by device id, each once; unknown ids are skipped.
    let other = s.user("codec-other").await;
    let code = format!(
        "local a = nk.accounts_get_id({{'{}', '{}', '{}'}}, {{'no-such-device'}}) \
         local names = {{}} for i, x in ipairs(a) do names[i] = x.username .. ':' .. tostring(#x.devices) end \
         return table.concat(names, ',') .. '|' .. tostring(#nk.accounts_get_id({{}}))",
        u.id,
        other.id,
        Uuid::new_v4()
    );
    assert_eq!(eval(&s, &u.token, &code).await, "codec:1,codec-other:1|0");
    let (status, _) = s
        .post_key(
            "/v2/account/authenticate/device?username=codec-device",
            r#"{"id":"codec-device-0001"}"#,
        )
        .await;
    assert_eq!(status, 200);
    let code = format!(
        "local a = nk.accounts_get_id({{'{}'}}, {{'codec-device-0001', 'codec-device-0001'}}) \
         return a[1].username .. ',' .. a[2].username .. ',' .. tostring(#a)",
        u.id
    );
    assert_eq!(eval(&s, &u.token, &code).await, "codec,codec-device,2");
    for (call, want) in [
        (
            "nk.accounts_get_id({1})",
            "bad argument #1 to accounts_get_id (user id must be a string)",
        ),
        (
            "nk.accounts_get_id({'x'})",
            "bad argument #1 to accounts_get_id (user id must be a valid identifier string)",
        ),
        (
            "nk.accounts_get_id(nil, {true})",
            "bad argument #2 to accounts_get_id (device id must be a string)",
        ),
    ] {
        assert_eq!(
            eval(&s, &u.token, &raised(call)).await,
            format!("eval:1: {want}"),
            "{call}"
        );
    }

    // A value put by one call is there for the next (whichever VM runs it); a TTL expires.
    eval(
        &s,
        &u.token,
        "nk.localcache_put('kept', 'v') nk.localcache_put('brief', 'v', 1) return ''",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        eval(
            &s,
            &u.token,
            "return tostring(nk.localcache_get('kept')) .. tostring(nk.localcache_get('brief'))"
        )
        .await,
        "vnil"
    );

    // A script closes a socket by its session id (an unknown one is not an error) ...
    let mut ws = s.socket(&u.token).await;
    send_text(&mut ws, r#"{"cid":"1","rpc":{"id":"test.context"}}"#).await;
    let reply = next_json(&mut ws).await;
    let ctx: Value = serde_json::from_str(reply["rpc"]["payload"].as_str().unwrap()).unwrap();
    let sid = ctx["session_id"].as_str().expect("session id").to_string();
    let code = format!(
        "nk.session_disconnect('{}') nk.session_disconnect('{sid}', 4) return 'ok'",
        Uuid::new_v4()
    );
    assert_eq!(eval(&s, &u.token, &code).await, "ok");
    assert_eq!(
        crate::support::closed(&mut ws).await,
        (1000, "server-side session disconnect".into())
    );
    // ... and logs a user out everywhere: the token stops working.
    let other = s.user("codec-out").await;
    let code = format!("nk.session_logout('{}') return 'ok'", other.id);
    assert_eq!(eval(&s, &u.token, &code).await, "ok");
    let (status, _) = s.get("/v2/account", &other.token).await;
    assert_eq!(status, 401, "logged out");
    let code = format!("nk.session_logout('{}', '{}')", other.id, u.token);
    assert_eq!(
        eval(&s, &u.token, &raised(&code)).await,
        "eval:1: failed to logout: session token invalid"
    );
    let code = format!("nk.session_logout('{}', nil, '{}')", u.id, u.token);
    assert_eq!(
        eval(&s, &u.token, &raised(&code)).await,
        "eval:1: failed to logout: refresh token invalid",
        "a session token is not a refresh token"
    );
}

/// The globals a script sees, at load and in a call, are Nakama's list (NAKAMA-SPEC §9.2
/// [obs]), and a call may assign globals, as on Nakama (§9.3 [obs]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn globals_are_nakamas_and_calls_may_assign_them() {
    let s = lua_server(&[]).await;
    let u = s.user("globals").await;
    let nakama = "_G _GOPHER_LUA_VERSION _VERSION _printregs assert bit32 collectgarbage dofile \
                  error getfenv getmetatable ipairs load loadfile loadstring math module newproxy \
                  next os package pairs pcall print rawequal rawget rawset require select setfenv \
                  setmetatable string table tonumber tostring type unpack xpcall";
    let (status, body) = s.rpc("test.globals", &u.token, "").await;
    assert_eq!(status, 200, "{body}");
    // The fixture modules' own globals (`counter` in globals.lua, `util_loads` in lib/util.lua)
    // are left out: the rest must be Nakama's list exactly.
    let fixtures = ["counter", "util_loads"];
    let payload = body["payload"].as_str().unwrap_or_default();
    let lines: Vec<&str> = payload.lines().collect();
    assert_eq!(lines.len(), 2, "{payload}");
    for (when, line) in ["at load", "in a call"].iter().zip(lines) {
        let seen: Vec<&str> = line
            .split_whitespace()
            .filter(|n| !fixtures.contains(n))
            .collect();
        assert_eq!(
            seen.join(" "),
            nakama.split_whitespace().collect::<Vec<_>>().join(" "),
            "{when}"
        );
    }
    for _ in 0..3 {
        let (status, body) = s.rpc("test.set_global", &u.token, "").await;
        assert_eq!(
            (status, body["payload"].clone()),
            (200, json!("true")),
            "{body}"
        );
    }
}
