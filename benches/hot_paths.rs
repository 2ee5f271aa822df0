//! Micro-benchmarks of the hot inner pieces of the notification path, each measured alone:
//!
//! - `cursor`: encoding and decoding the Nakama gob-compatible list cursor (`core::cursor`).
//! - `lua`: a script's notification content table to JSON (`runtime::convert::content_to_json`),
//!   the call context of a REST RPC (`runtime::context::to_table`), and JSON text to Lua values
//!   (`runtime::convert::decode`, what `nk.json_decode` does) for an RPC payload and a content.
//! - `frame`: a notifications event to the socket's JSON text frame (`api::wire::encode_event`,
//!   the encoder the socket hands to `Outbound::encoded`), for 1 and for 100 notifications.
//! - `store`: the SQLite store (`store::SqliteStore`) in a temporary directory: one 100-row page
//!   from the middle of a 10,000-row inbox, and inserts of 1 and of 100 notifications, each
//!   insert being one committed transaction; the inbox extension's unread count over those
//!   10,000 unread rows; a keyed insert with a new dedupe key and with a repeated one.
//! - `sync`: gap-free sync (`core::sync`): the page of 1,000 changes a device missed (400 new
//!   notifications, 300 read, 200 updated, 100 deleted) in a 10,000-row inbox; and "mark all
//!   read" over 10,000 unread rows, which numbers every row it changes.
//! - `gzip`: compressing a REST answer for a client that accepts gzip (`api::compression`, what
//!   nakama-js's fetch asks for): a short answer (an auth reply's size) and a 100-row list page,
//!   each as Tidings does it (`tidings`: stored blocks below 1,400 bytes, the thread's level-1
//!   compressor above) and, for comparison, a fresh level-6 `GzEncoder` per answer
//!   (`fresh_level6`, what Nakama's handler does).
//! - `broadcast`: a persistent send_all to 100,000 users: stored once as a broadcast (what
//!   Tidings does), against one row per user in pages of 10,000 (what Nakama does). Both are
//!   visible to every user once the call returns, so the time is also the time to visible.
//!
//! Run all of them (about a minute on 2 cores, plus about three for `broadcast`, whose
//! row-per-user side writes 100,000 rows per sample) with
//!
//! ```sh
//! cargo bench --bench hot_paths
//! ```
//!
//! or one group with, for example, `cargo bench --bench hot_paths -- store`.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use mlua::{Lua, Table};
use tokio::runtime::Runtime;
use uuid::Uuid;

use tidings::api::wire::encode_event;
use tidings::core::cursor::{self, Position};
use tidings::core::notifications::Notification;
use tidings::core::presence::Event;
use tidings::core::store::{NewIdentity, Store};
use tidings::core::time::{now_micros, now_secs};
use tidings::runtime::context::{to_table, Mode, NodeInfo};
use tidings::runtime::convert::{content_to_json, decode};
use tidings::runtime::CallContext;
use tidings::store::SqliteStore;

/// The server runs on mimalloc (see `src/main.rs`); measure with the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A typical notification content table, as a script passes it to `nk.notification_send`.
const CONTENT_LUA: &str = r#"return {
    reward = "gold",
    amount = 100,
    items = {"a", "b", "c"},
    nested = {x = 1.5, y = true},
}"#;
/// `CONTENT_LUA` as `content_to_json` writes it: the content every sample notification carries.
const CONTENT_JSON: &str =
    r#"{"amount":100,"items":["a","b","c"],"nested":{"x":1.5,"y":true},"reward":"gold"}"#;

/// Notifications in the inbox the list benchmark reads.
const INBOX_ROWS: usize = 10_000;
/// Rows per transaction while filling that inbox.
const SEED_BATCH: usize = 1_000;
/// Rows per listed page (the REST maximum).
const PAGE: usize = 100;

/// A group with modest settings, so the whole file runs in about a minute.
fn configured_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    measurement: Duration,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(measurement);
    group
}

/// A persistent notification from the system to `user_id`, with fresh id and typical content.
fn notification(user_id: Uuid) -> Notification {
    Notification {
        id: Uuid::new_v4(),
        user_id,
        subject: "You received a reward".into(),
        content: CONTENT_JSON.into(),
        code: 101,
        sender_id: Some(Uuid::nil()),
        create_time: now_micros(),
        persistent: true,
        expire_time: None,
    }
}

fn notifications(user_id: Uuid, count: usize) -> Vec<Notification> {
    (0..count).map(|_| notification(user_id)).collect()
}

fn bench_cursor(c: &mut Criterion) {
    let position = Position {
        create_time: 1_795_906_487_123_456,
        id: Uuid::parse_str("27788cfc-04dc-4e66-a64f-aaec460a1df2").expect("a valid UUID"),
    };
    let text = cursor::encode(Some(position));
    assert_eq!(
        cursor::decode(&text),
        Ok(Some(position)),
        "cursor round trip"
    );

    let mut group = configured_group(c, "cursor", Duration::from_secs(2));
    group.bench_function("encode", |b| {
        b.iter(|| cursor::encode(black_box(Some(position))))
    });
    group.bench_function("decode", |b| b.iter(|| cursor::decode(black_box(&text))));
    group.finish();
}

fn bench_lua_content(c: &mut Criterion) {
    let lua = Lua::new();
    let table: Table = lua
        .load(CONTENT_LUA)
        .eval()
        .expect("the content table evaluates");
    assert_eq!(
        content_to_json(&table).expect("the content table encodes"),
        CONTENT_JSON
    );

    // The context of an RPC over REST as nakama-js makes it: a session, its headers, the
    // peer address. Every RPC builds one.
    let call = CallContext {
        user_id: Some(Uuid::new_v4()),
        username: Some("player_one".into()),
        session_exp: Some(now_secs() + 7200),
        headers: [
            ("accept", "application/json"),
            ("accept-encoding", "gzip, deflate"),
            (
                "authorization",
                "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.x",
            ),
            ("connection", "keep-alive"),
            ("content-length", "42"),
            ("content-type", "application/json"),
            ("host", "127.0.0.1:7350"),
            ("user-agent", "nakama-js/2.8"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect(),
        client_ip: Some("127.0.0.1".into()),
        client_port: Some("51234".into()),
        ..CallContext::default()
    };
    let node = NodeInfo {
        node: "tidings".into(),
        version: "bench".into(),
    };

    let mut group = configured_group(c, "lua", Duration::from_secs(2));
    group.bench_function("content_to_json", |b| {
        b.iter(|| content_to_json(black_box(&table)))
    });
    group.bench_function("context_table_rest_rpc", |b| {
        b.iter(|| to_table(&lua, black_box(&call), Mode::Rpc, &node))
    });
    // What a script's `nk.json_decode(payload)` converts: the load generator's send payload,
    // and the content table above as JSON. Under the VMs' default memory limit, as in the
    // server (mlua guards writes differently with a limit set).
    lua.set_memory_limit(64 * 1024 * 1024)
        .expect("a memory limit can be set");
    let payload = r#"{"user_id":"0b6a1f5e-2a43-4b1e-9d55-6f1c2e0a9b7d","seq":123456,"persistent":true,"t":98765432}"#;
    group.bench_function("json_decode_rpc_payload", |b| {
        b.iter(|| decode(&lua, black_box(payload)))
    });
    group.bench_function("json_decode_content", |b| {
        b.iter(|| decode(&lua, black_box(CONTENT_JSON)))
    });
    group.finish();
}

fn bench_frames(c: &mut Criterion) {
    let user_id = Uuid::new_v4();
    let mut group = configured_group(c, "frame", Duration::from_secs(2));
    for count in [1, 100] {
        let event = Event::Notifications(notifications(user_id, count));
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(
            BenchmarkId::new("encode_event", count),
            &event,
            |b, event| b.iter(|| encode_event(black_box(event))),
        );
        // A protobuf socket's frame: the JSON envelope transcoded (api::protobuf).
        group.bench_with_input(
            BenchmarkId::new("encode_event_protobuf", count),
            &event,
            |b, event| {
                b.iter(|| tidings::api::protobuf::encode_envelope(&encode_event(black_box(event))))
            },
        );
    }
    group.finish();
}

fn bench_gzip(c: &mut Criterion) {
    use std::io::Write;
    use tidings::api::compression::{compress, Encoding};
    let user_id = Uuid::new_v4();
    let short = format!(
        "{{\"token\":\"{}\",\"refresh_token\":\"{}\"}}",
        "e".repeat(140),
        "r".repeat(140)
    );
    let page = encode_event(&Event::Notifications(notifications(user_id, 100)));
    let mut group = configured_group(c, "gzip", Duration::from_secs(2));
    for (name, body) in [("short", short.as_bytes()), ("page_100", page.as_bytes())] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("tidings", name), body, |b, body| {
            b.iter(|| compress(Encoding::Gzip, black_box(body)))
        });
        group.bench_with_input(BenchmarkId::new("fresh_level6", name), body, |b, body| {
            b.iter(|| {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                e.write_all(black_box(body)).expect("write");
                e.finish().expect("finish")
            })
        });
    }
    group.finish();
}

/// Creates a device account; notifications reference their user, so it must exist first.
async fn create_user(store: &SqliteStore, username: &str) -> Uuid {
    let id = Uuid::new_v4();
    store
        .create_user(
            id,
            username,
            NewIdentity::Device(format!("{username}-device")),
            now_secs(),
        )
        .await
        .expect("create the benchmark user");
    id
}

/// Fills `user_id`'s inbox with `rows` notifications and returns the cursor position of the
/// middle one, where the list benchmark starts reading.
async fn seed_inbox(store: &SqliteStore, user_id: Uuid, rows: usize) -> (i64, Uuid) {
    let mut middle = None;
    for batch in 0..rows / SEED_BATCH {
        let stored = store
            .insert_notifications(notifications(user_id, SEED_BATCH))
            .await
            .expect("seed the inbox");
        if batch == rows / SEED_BATCH / 2 {
            middle = stored.first().map(|n| (n.create_time, n.id));
        }
    }
    middle.expect("the inbox has a middle row")
}

fn bench_store(c: &mut Criterion) {
    let rt = Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("bench.sqlite3")).expect("open the store");
    // One user whose inbox is read, another whose inbox takes the inserts, so the page read
    // stays the same however many rows the insert benchmarks add.
    let reader = rt.block_on(create_user(&store, "bench_reader"));
    let writer = rt.block_on(create_user(&store, "bench_writer"));
    let after = rt.block_on(seed_inbox(&store, reader, INBOX_ROWS));
    let page = rt
        .block_on(store.list_notifications(reader, Some(after), PAGE))
        .expect("list a page");
    assert_eq!(page.len(), PAGE, "a full page from the middle of the inbox");

    let mut group = configured_group(c, "store", Duration::from_secs(3));
    group.throughput(Throughput::Elements(PAGE as u64));
    group.bench_function("list_100_of_10000", |b| {
        b.iter(|| {
            rt.block_on(store.list_notifications(reader, black_box(Some(after)), PAGE))
                .expect("list a page")
        })
    });
    // The unread badge (inbox extension): the reader's 10,000 rows are all unread, the worst
    // case for a count that reads the unread rows' index.
    group.throughput(Throughput::Elements(1));
    group.bench_function("inbox_count_10000_unread", |b| {
        b.iter(|| {
            rt.block_on(store.inbox_counts(black_box(reader)))
                .expect("count the inbox")
        })
    });
    // Keyed sends (inbox extension): a new dedupe key (stored), and a repeat (duplicate).
    group.throughput(Throughput::Elements(1));
    let keys = |key: String| tidings::core::store::SendKeys {
        dedupe_key: Some(key),
        collapse_key: None,
    };
    let mut fresh = 0u64;
    group.bench_function("insert_keyed_new", |b| {
        b.iter_batched(
            || {
                fresh += 1;
                (
                    notifications(writer, 1).remove(0),
                    keys(format!("k{fresh}")),
                )
            },
            |(row, k)| {
                rt.block_on(store.insert_keyed(row, k, 0))
                    .expect("keyed insert")
            },
            BatchSize::SmallInput,
        )
    });
    rt.block_on(store.insert_keyed(notifications(writer, 1).remove(0), keys("same".into()), 0))
        .expect("the original");
    group.bench_function("insert_keyed_duplicate", |b| {
        b.iter_batched(
            || notifications(writer, 1).remove(0),
            |row| {
                rt.block_on(store.insert_keyed(row, keys("same".into()), 0))
                    .expect("keyed insert")
            },
            BatchSize::SmallInput,
        )
    });
    for count in [1, 100] {
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(BenchmarkId::new("insert", count), |b| {
            b.iter_batched(
                || notifications(writer, count),
                |rows| {
                    rt.block_on(store.insert_notifications(rows))
                        .expect("insert notifications")
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    rt.block_on(store.close()).expect("close the store");
}

fn bench_sync(c: &mut Criterion) {
    use tidings::core::notifications::NotificationUpdate;
    use tidings::core::store::InboxMark;
    let rt = Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("bench.sqlite3")).expect("open the store");
    let user = rt.block_on(create_user(&store, "bench_sync"));
    let mut ids = Vec::new();
    for _ in 0..INBOX_ROWS / SEED_BATCH {
        let stored = rt
            .block_on(store.insert_notifications(notifications(user, SEED_BATCH)))
            .expect("seed the inbox");
        ids.extend(stored.iter().map(|n| n.id));
    }
    let since = rt
        .block_on(store.inbox_changes(user, 0, 1))
        .expect("the high-water mark")
        .high_water;
    // 1,000 changes after `since`: 400 inserts, 300 reads, 200 updates, 100 deletes.
    rt.block_on(async {
        store
            .insert_notifications(notifications(user, 400))
            .await
            .expect("insert");
        store
            .mark_notifications(
                user,
                Some(ids[..300].to_vec()),
                InboxMark::Read,
                now_micros(),
            )
            .await
            .expect("read");
        let updates = ids[300..500]
            .iter()
            .map(|id| NotificationUpdate {
                id: *id,
                subject: Some("changed".into()),
                content: None,
                sender_id: None,
            })
            .collect();
        store.update_notifications(updates).await.expect("update");
        store
            .delete_notifications(ids[500..600].to_vec(), Some(user))
            .await
            .expect("delete");
    });
    let page = tidings::core::sync::merge(
        since,
        1000,
        rt.block_on(store.inbox_changes(user, since, 1000))
            .expect("changes"),
    );
    assert_eq!(
        page.entries.len(),
        1000,
        "one page holds every missed change"
    );
    assert!(!page.more);

    let mut group = configured_group(c, "sync", Duration::from_secs(3));
    group.throughput(Throughput::Elements(1000));
    group.bench_function("catch_up_1000_changes", |b| {
        b.iter(|| {
            let found = rt
                .block_on(store.inbox_changes(user, black_box(since), 1000))
                .expect("changes");
            tidings::core::sync::merge(since, 1000, found)
        })
    });
    // Mark all read over 10,000 unread rows (timed), then unread again by id (not timed).
    let marker = rt.block_on(create_user(&store, "bench_marker"));
    let mut marker_ids = Vec::new();
    for _ in 0..INBOX_ROWS / SEED_BATCH {
        let stored = rt
            .block_on(store.insert_notifications(notifications(marker, SEED_BATCH)))
            .expect("seed the inbox");
        marker_ids.extend(stored.iter().map(|n| n.id));
    }
    group.throughput(Throughput::Elements(INBOX_ROWS as u64));
    group.sample_size(10);
    group.bench_function("mark_all_read_10000", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = std::time::Instant::now();
                let n = rt
                    .block_on(store.mark_notifications(marker, None, InboxMark::Read, now_micros()))
                    .expect("mark all read");
                spent += start.elapsed();
                assert_eq!(n, INBOX_ROWS as u64);
                for chunk in marker_ids.chunks(1000) {
                    rt.block_on(store.mark_notifications(
                        marker,
                        Some(chunk.to_vec()),
                        InboxMark::Unread,
                        now_micros(),
                    ))
                    .expect("unread again");
                }
            }
            spent
        })
    });
    group.finish();
    rt.block_on(store.close()).expect("close the store");
}

fn bench_broadcast(c: &mut Criterion) {
    const USERS: usize = 100_000;
    let rt = Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("bench.sqlite3")).expect("open the store");
    let users: Vec<Uuid> = rt.block_on(async {
        let mut users = Vec::with_capacity(USERS);
        for i in 0..USERS {
            users.push(create_user(&store, &format!("player{i}")).await);
        }
        users
    });
    let mut group = configured_group(c, "broadcast", Duration::from_secs(3));
    group.sample_size(10);
    group.bench_function("stored_once_100000_users", |b| {
        b.iter(|| {
            rt.block_on(store.insert_broadcast(notification(Uuid::nil())))
                .expect("insert the broadcast")
        })
    });
    // One broadcast whatever the filter let run above, so the check below holds.
    rt.block_on(store.insert_broadcast(notification(Uuid::nil())))
        .expect("insert a broadcast");
    let last = *users.last().expect("users");
    let listed = rt
        .block_on(store.list_notifications(last, None, 1))
        .expect("list");
    assert_eq!(listed.len(), 1, "the last user sees the broadcasts");
    group.bench_function("row_per_user_100000_users", |b| {
        b.iter(|| {
            for page in users.chunks(10_000) {
                let rows = page.iter().map(|u| notification(*u)).collect();
                rt.block_on(store.insert_notifications(rows))
                    .expect("insert a page");
            }
        })
    });
    group.finish();
    rt.block_on(store.close()).expect("close the store");
}

criterion_group!(
    benches,
    bench_cursor,
    bench_lua_content,
    bench_frames,
    bench_gzip,
    bench_store,
    bench_sync,
    bench_broadcast
);
criterion_main!(benches);
