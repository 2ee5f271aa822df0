//! Operating the real binary: JSON logs where every line of a request carries its id (the
//! script's lines too, logged on a Lua thread), and no token or key ever appears.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::crash::{device_token, free_port, wait_healthy};
use crate::support::fixtures;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids_and_no_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["--data_dir", dir.path().to_str().expect("path")])
        .args([
            "--socket.address",
            "127.0.0.1",
            "--socket.port",
            &port.to_string(),
        ])
        .args([
            "--runtime.path",
            &fixtures("good"),
            "--runtime.hot_reload",
            "false",
        ])
        .args(["--logger.format", "json", "--logger.level", "debug"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tidings");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    wait_healthy(&http, &base).await;
    let token = device_token(&http, &base, "log-test-device").await;
    let res = http
        .post(format!(
            "{base}/v2/rpc/test.log?http_key=defaulthttpkey&unwrap=true"
        ))
        .body("{}")
        .send()
        .await
        .expect("rpc");
    assert_eq!(res.status(), 200);
    let res = http
        .get(format!("{base}/v2/notification?limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 200);
    let res = http
        .get(format!("{base}/v2/account?token={token}"))
        .send()
        .await
        .expect("a token in the query");
    assert_eq!(res.status(), 401);

    let stopped = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = server.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    let mut out = String::new();
    server
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    let mut err = String::new();
    server
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");

    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 3, "{out}{err}");
    for secret in [token.as_str(), "defaulthttpkey", "defaultkey"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} was logged"
        );
    }
    let script = lines
        .iter()
        .find(|l| l["fields"]["message"] == "script line")
        .unwrap_or_else(|| panic!("the script's line: {out}"));
    assert_eq!(script["span"]["name"], "request", "{script}");
    assert_eq!(script["span"]["path"], "/v2/rpc/test.log");
    let id = script["span"]["id"].as_str().expect("a request id");
    let served: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "served")
        .collect();
    assert!(served.len() >= 4, "one line per request: {out}");
    let same: Vec<&&Value> = served.iter().filter(|l| l["span"]["id"] == id).collect();
    assert_eq!(same.len(), 1, "the request's own line carries its id");
    assert_eq!(same[0]["fields"]["status"], 200);
    let ids: std::collections::HashSet<&str> = served
        .iter()
        .filter_map(|l| l["span"]["id"].as_str())
        .collect();
    assert_eq!(ids.len(), served.len(), "each request has its own id");
}
