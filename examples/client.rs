//! A minimal Tidings client in Rust, speaking only the public Nakama protocol.
//!
//! It authenticates with a device id, lists the inbox page by page with the cacheable
//! cursor, then prints every notification pushed to its socket.
//!
//! ```text
//! cargo run --example client -- --url http://127.0.0.1:7350 --device my-device-0001 --seconds 30
//! ```

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

struct Args {
    url: String,
    device: String,
    server_key: String,
    seconds: u64,
}

fn args() -> Args {
    let mut a = Args {
        url: "http://127.0.0.1:7350".into(),
        device: "example-device-0001".into(),
        server_key: "defaultkey".into(),
        seconds: 60,
    };
    let list: Vec<String> = std::env::args().skip(1).collect();
    for pair in list.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--url" => a.url = value,
            "--device" => a.device = value,
            "--server-key" => a.server_key = value,
            "--seconds" => a.seconds = value.parse().unwrap_or(60),
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    a
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args();
    let http = reqwest::Client::new();

    // 1. Authenticate (creates the account on first use).
    let session: Value = http
        .post(format!(
            "{}/v2/account/authenticate/device?create=true",
            args.url
        ))
        .basic_auth(&args.server_key, Some(""))
        .body(serde_json::json!({ "id": args.device }).to_string())
        .send()
        .await?
        .json()
        .await?;
    let token = session["token"]
        .as_str()
        .ok_or_else(|| format!("authenticate failed: {session}"))?
        .to_string();
    println!("authenticated (created: {})", session["created"] == true);

    // 2. List the inbox, oldest first, 10 at a time, following the cursor.
    let mut cursor = String::new();
    loop {
        let page: Value = http
            .get(format!(
                "{}/v2/notification?limit=10&cacheable_cursor={cursor}",
                args.url
            ))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let items = page["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for n in &items {
            println!("stored: [{}] {} {}", n["code"], n["subject"], n["content"]);
        }
        cursor = page["cacheable_cursor"].as_str().unwrap_or("").to_string();
        if items.is_empty() {
            break;
        }
    }
    println!("cursor for next time: {cursor}");

    // 3. Connect the socket and print what is pushed.
    let ws_url = format!("{}/ws?token={token}", args.url.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
    println!(
        "socket connected; waiting {} s for notifications",
        args.seconds
    );
    let deadline = tokio::time::sleep(Duration::from_secs(args.seconds));
    tokio::pin!(deadline);
    let mut ping = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = ping.tick() => ws.send(Message::text(r#"{"cid":"1","ping":{}}"#)).await?,
            msg = ws.next() => {
                let Some(msg) = msg else { break };
                if let Message::Text(text) = msg? {
                    let frame: Value = serde_json::from_str(&text)?;
                    if let Some(list) = frame["notifications"]["notifications"].as_array() {
                        for n in list {
                            println!("pushed: [{}] {} {}", n["code"], n["subject"], n["content"]);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
