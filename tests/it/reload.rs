//! Hot reload: edit, rename, delete and break modules in a temporary directory while the
//! server runs. Tests wait on the reload attempt counter, never on a fixed sleep.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{fixtures, Server, WAIT};

struct Dev {
    s: Server,
    dir: PathBuf,
    token: String,
    _tmp: tempfile::TempDir,
}

fn version_module(v: &str) -> String {
    format!(
        "local nk = require(\"nakama\")\nnk.register_rpc(function() return \"{v}\" end, \"ver\")\n"
    )
}

async fn dev(extra: &[(&str, &str)]) -> Dev {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("modules");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ver.lua"), version_module("1")).unwrap();
    let path = dir.to_str().unwrap().to_string();
    let mut settings = vec![("runtime.path", path.as_str())];
    settings.extend_from_slice(extra);
    let s = Server::start_with(&settings).await;
    let token = s.user("designer").await.token;
    Dev {
        s,
        dir,
        token,
        _tmp: tmp,
    }
}

impl Dev {
    /// Runs `change`, then waits until the runtime has finished a reload attempt after it.
    async fn change(&self, change: impl FnOnce(&Path)) {
        let mut attempts = self.s.runtime.attempts();
        let before = *attempts.borrow_and_update();
        change(&self.dir);
        tokio::time::timeout(WAIT, attempts.wait_for(|n| *n > before))
            .await
            .expect("no reload attempt after the change")
            .expect("runtime gone");
    }

    async fn ver(&self) -> (u16, Value) {
        self.s.rpc("ver", &self.token, "").await
    }

    /// POST /v2/tidings/runtime/reload with the http key.
    async fn reload_now(&self) -> (u16, Value) {
        self.s
            .call(
                reqwest::Method::POST,
                "/v2/tidings/runtime/reload?http_key=defaulthttpkey",
                None,
                None,
            )
            .await
    }

    async fn status(&self) -> Value {
        let (status, body) = self
            .s
            .call(
                reqwest::Method::GET,
                "/v2/tidings/runtime?http_key=defaulthttpkey",
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_a_module_serves_the_new_code() {
    let d = dev(&[]).await;
    assert_eq!(d.ver().await.1["payload"], "1");
    d.change(|dir| std::fs::write(dir.join("ver.lua"), version_module("2")).unwrap())
        .await;
    assert_eq!(d.ver().await.1["payload"], "2");
    let st = d.status().await;
    assert_eq!(st["generation"], 2);
    assert_eq!(st["modules"], json!(["ver"]));
    assert_eq!(st["rpcs"], json!(["ver"]));
    assert_eq!(st["last_error"], Value::Null);

    // An editor's atomic save: write a temporary file, rename it over the module.
    d.change(|dir| {
        std::fs::write(dir.join(".ver.lua.tmp~"), version_module("3")).unwrap();
        std::fs::rename(dir.join(".ver.lua.tmp~"), dir.join("ver.lua")).unwrap();
    })
    .await;
    assert_eq!(d.ver().await.1["payload"], "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_module_keeps_the_old_code_and_reports_the_error() {
    let d = dev(&[]).await;
    d.change(|dir| {
        std::fs::write(
            dir.join("ver.lua"),
            "local nk = require(\"nakama\")\nlocal x = = 2\n",
        )
        .unwrap()
    })
    .await;
    assert_eq!(
        d.ver().await.1["payload"],
        "1",
        "the old generation keeps serving"
    );
    let st = d.status().await;
    assert_eq!(st["generation"], 1);
    assert_eq!(st["reload_failures"], 1);
    let err = st["last_error"].as_str().unwrap();
    assert!(err.contains("ver.lua:2:"), "{err}");

    // A runtime error at load time is caught the same way.
    d.change(|dir| std::fs::write(dir.join("ver.lua"), "error(\"not today\")\n").unwrap())
        .await;
    let err = d.status().await["last_error"].as_str().unwrap().to_string();
    assert!(err.contains("ver.lua:1: not today"), "{err}");
    assert_eq!(d.ver().await.1["payload"], "1");

    d.change(|dir| std::fs::write(dir.join("ver.lua"), version_module("fixed")).unwrap())
        .await;
    assert_eq!(d.ver().await.1["payload"], "fixed");
    let st = d.status().await;
    assert_eq!(
        (st["generation"].clone(), st["last_error"].clone()),
        (json!(2), Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_and_deleted_modules() {
    let d = dev(&[]).await;
    d.change(|dir| {
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::rename(dir.join("ver.lua"), dir.join("lib").join("moved.lua")).unwrap();
    })
    .await;
    assert_eq!(d.ver().await.1["payload"], "1");
    assert_eq!(d.status().await["modules"], json!(["lib.moved"]));

    d.change(|dir| std::fs::remove_file(dir.join("lib").join("moved.lua")).unwrap())
        .await;
    assert_eq!(
        d.ver().await,
        (
            404,
            json!({"error": "RPC function not found", "message": "RPC function not found", "code": 5})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_finish_on_the_old_generation() {
    let d = dev(&[]).await;
    let slow = "local nk = require(\"nakama\")\n\
                nk.register_rpc(function() local t = os.clock() while os.clock() - t < 1.0 do end return \"old\" end, \"ver\")\n";
    d.change(|dir| std::fs::write(dir.join("ver.lua"), slow).unwrap())
        .await;
    let (in_flight, _) = tokio::join!(d.ver(), async {
        // Well after the slow call has reached its VM, well before it finishes.
        tokio::time::sleep(Duration::from_millis(300)).await;
        d.change(|dir| std::fs::write(dir.join("ver.lua"), version_module("new")).unwrap())
            .await;
    });
    assert_eq!(in_flight, (200, json!({"payload": "old"})));
    assert_eq!(d.ver().await.1["payload"], "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_reload_endpoint_works_without_watching() {
    let d = dev(&[("runtime.hot_reload", "false")]).await;
    std::fs::write(d.dir.join("ver.lua"), version_module("2")).unwrap();
    assert_eq!(d.ver().await.1["payload"], "1", "nothing watches the files");
    let (status, body) = d.reload_now().await;
    assert_eq!(
        (status, body["generation"].clone()),
        (200, json!(2)),
        "{body}"
    );
    assert_eq!(d.ver().await.1["payload"], "2");

    std::fs::write(d.dir.join("ver.lua"), "this is not lua").unwrap();
    let (status, body) = d.reload_now().await;
    assert_eq!(status, 400);
    assert!(
        body["last_error"].as_str().unwrap().contains("ver.lua:1:"),
        "{body}"
    );
    assert_eq!(d.ver().await.1["payload"], "2");

    let (status, body) =
        d.s.call(reqwest::Method::GET, "/v2/tidings/runtime", None, None)
            .await;
    assert_eq!(
        (status, body),
        (401, json!({"code": 16, "message": "HTTP key required"}))
    );
    let (status, _) =
        d.s.call(
            reqwest::Method::GET,
            "/v2/tidings/runtime?http_key=nope",
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_notices_changes() {
    let d = dev(&[("runtime.hot_reload_poll_ms", "50")]).await;
    d.change(|dir| {
        std::fs::write(dir.join("ver.lua"), version_module("polled, or evented")).unwrap()
    })
    .await;
    assert_eq!(d.ver().await.1["payload"], "polled, or evented");
}

#[test]
fn tidings_check_exit_codes() {
    let run = |dir: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["check", &fixtures(dir)])
            .env("TIDINGS_LOGGER_LEVEL", "error")
            .output()
            .expect("run tidings check");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run("good");
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run("bad_syntax");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("broken.lua:5:"), "{out}");
    let (code, out) = run("bad_runtime");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("boom.lua:3: module failed at load"), "{out}");
}
