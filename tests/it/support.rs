//! Shared test support: start the real server in-process on 127.0.0.1:0 with a temporary
//! data dir, and talk to it over real HTTP and WebSocket.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use tidings::config::Config;
use tidings::core::Core;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A Lua fixture directory under tests/modules.
pub fn fixtures(name: &str) -> String {
    format!("{}/tests/modules/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct Server {
    pub addr: std::net::SocketAddr,
    pub core: Arc<Core>,
    pub runtime: Arc<tidings::runtime::Runtime>,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Kept so the directory lives as long as the server.
    pub dir: Arc<tempfile::TempDir>,
}

pub struct User {
    pub id: Uuid,
    pub token: String,
    pub refresh: String,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(&[]).await
    }

    /// Starts with extra `--key value` settings.
    pub async fn start_with(settings: &[(&str, &str)]) -> Server {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::start_in(dir, settings).await
    }

    /// Starts on an existing data dir (for restart tests).
    pub async fn start_in(dir: Arc<tempfile::TempDir>, settings: &[(&str, &str)]) -> Server {
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        // No modules unless a test asks for some, and a small VM pool.
        config.runtime.path = dir.path().join("no-modules");
        config.runtime.lua_min_count = 1;
        config.runtime.lua_max_count = 4;
        // In-process servers run side by side: no fixed side ports (tests that need the
        // metrics or console port set a free one).
        config.metrics.prometheus_port = 0;
        config.console.port = 0;
        for (k, v) in settings {
            config.set(k, v).expect("test setting");
        }
        config.validate().expect("valid test config");
        let core = tidings::build_core(&config).await.expect("core");
        let runtime = tidings::start_runtime(&config, core.clone())
            .await
            .expect("Lua modules load");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(tidings::serve(
            core.clone(),
            runtime.clone(),
            config.clone(),
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            core,
            runtime,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            dir,
        }
    }

    /// Stops the HTTP server and waits for it.
    pub async fn stop(mut self) -> Arc<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(WAIT, task).await;
        }
        self.dir.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POST /v2/account/authenticate/device as a new user; panics unless it succeeds.
    pub async fn user(&self, username: &str) -> User {
        let device = format!("device-{}", Uuid::new_v4());
        let (status, body) = self
            .post_key(
                &format!("/v2/account/authenticate/device?username={username}"),
                &serde_json::json!({ "id": device }).to_string(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let token = body["token"].as_str().expect("token").to_string();
        let claims = jwt_claims(&token);
        User {
            id: Uuid::parse_str(claims["uid"].as_str().expect("uid")).expect("uuid"),
            token,
            refresh: body["refresh_token"].as_str().expect("refresh").to_string(),
        }
    }

    /// POST with the server key as Basic auth.
    pub async fn post_key(&self, path: &str, body: &str) -> (u16, Value) {
        let res = self
            .http
            .post(self.url(path))
            .basic_auth("defaultkey", Some(""))
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        status_json(res).await
    }

    /// A request with a bearer token (or none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.body(body.to_string());
        }
        status_json(req.send().await.expect("request")).await
    }

    /// POST /v2/rpc/{id} with a session token; `payload` is JSON-encoded as a string.
    pub async fn rpc(&self, id: &str, token: &str, payload: &str) -> (u16, Value) {
        let body = serde_json::to_string(payload).expect("encode");
        self.call(
            reqwest::Method::POST,
            &format!("/v2/rpc/{id}"),
            Some(token),
            Some(&body),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// Opens a socket with the token in the query, as nakama-js does.
    pub async fn socket(&self, token: &str) -> Ws {
        self.socket_query(&format!("token={token}"))
            .await
            .expect("socket")
    }

    /// Opens a socket with an arbitrary query; Err carries the HTTP status and body.
    pub async fn socket_query(&self, query: &str) -> Result<Ws, (u16, String)> {
        let req = format!("ws://{}/ws?{query}", self.addr)
            .into_client_request()
            .expect("request");
        connect(req).await
    }

    /// Opens a socket with the token in the Authorization header.
    pub async fn socket_header(&self, token: &str) -> Result<Ws, (u16, String)> {
        let mut req = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        connect(req).await
    }
}

async fn connect(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<Ws, (u16, String)> {
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(res))) => {
            let body = res
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((res.status().as_u16(), body))
        }
        Ok(Err(e)) => panic!("socket connect failed: {e}"),
        Err(_) => panic!("socket connect timed out"),
    }
}

async fn status_json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// The payload of a JWT, unverified.
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("jwt payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("json")
}

/// The next text frame as JSON; fails the test after [`WAIT`].
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("socket ended")
            .expect("socket error");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("frame json"),
            Message::Close(c) => panic!("socket closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Waits for the server to close the socket; returns the close code and reason.
pub async fn closed(ws: &mut Ws) -> (u16, String) {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for close");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return (0, String::new()),
            Some(Ok(_)) => continue,
        }
    }
}

/// True if no text frame arrives within `wait`.
pub async fn silent(ws: &mut Ws, wait: Duration) -> bool {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Err(_) => return true,
            Ok(Some(Ok(Message::Text(t)))) => {
                eprintln!("unexpected frame: {t}");
                return false;
            }
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return true,
        }
    }
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_string()))
        .await
        .expect("send");
}

/// The PostgreSQL server the PostgreSQL tests use: `TIDINGS_TEST_PG_URL`, or the CI machine's
/// `postgres://postgres@127.0.0.1:5432/test` (trust auth). `scripts/test` starts one where it
/// is missing; these tests fail, never skip, when it cannot be reached.
pub fn pg_url() -> String {
    std::env::var("TIDINGS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A new, empty schema for one test, and a `database.url` whose connections use it.
pub async fn fresh_pg_schema() -> (String, String) {
    let schema = format!("t_{}", Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is needed for this test: {e}", pg_url()));
    let driver = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");
    drop(client);
    let _ = driver.await;
    let sep = if pg_url().contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-c%20search_path%3D{schema}", pg_url());
    (schema, url)
}

/// A PostgreSQL store on a fresh schema.
pub async fn postgres_store() -> Arc<dyn tidings::core::store::Store> {
    let (_, url) = fresh_pg_schema().await;
    let store = tidings::store::PgStore::connect(&url, None, "contract")
        .await
        .expect("PostgreSQL store");
    Arc::new(store)
}

/// Waits until something answers HTTP at `base` (a side port the serving task binds).
pub async fn wait_for_http(http: &reqwest::Client, base: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while http.get(base).send().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{base} never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A notification with content `{}` and code 1, as most tests send them.
pub fn plain_notification(
    user_id: Uuid,
    subject: &str,
    persistent: bool,
) -> tidings::core::notifications::NewNotification {
    tidings::core::notifications::NewNotification {
        user_id,
        subject: subject.to_string(),
        content: "{}".into(),
        code: 1,
        sender_id: None,
        persistent,
        expire_time: None,
        keys: Default::default(),
    }
}

/// An object's keys in the order they came on the wire (serde_json keeps it), for checking
/// that replies list fields in proto order as protojson does.
pub fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}
