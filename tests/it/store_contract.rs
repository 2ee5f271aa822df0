//! The `Store` trait's promises, checked the same way on every backend.
//!
//! [`run_contract`] drives one store through every method of `tidings::core::store::Store`;
//! each helper pins one group of promises and says which in its doc comment. The SQLite store
//! is the reference behaviour. Every name the suite creates (usernames, devices, custom ids,
//! emails, group names, providers, rooms) carries a per-run prefix and every user is fresh, so
//! the suite can run against a database other runs share.

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use tidings::core::groups::{MemberOp, ADMIN, BANNED, JOIN_REQUEST, MEMBER, SUPERADMIN};
use tidings::core::notifications::{Notification, NotificationUpdate};
use tidings::core::store::{
    ChannelStream, FriendChange, FriendEdge, FriendPosition, GroupFilter, GroupJoin, GroupLeave,
    GroupMembers, GroupRecord, GroupUpdate, NewIdentity, RevokedToken, Store, StoreError,
    StoreResult, StoredMessage, UserRecord,
};
use tidings::core::time::{now_micros, now_secs};

#[tokio::test]
async fn sqlite_store_honours_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = tidings::store::SqliteStore::open(&dir.path().join("t.db")).expect("open");
    run_contract(Arc::new(store)).await;
}

#[tokio::test]
async fn postgres_store_honours_the_contract() {
    // A fresh schema; the suite itself never assumes an empty database.
    let store = crate::support::postgres_store().await;
    run_contract(store).await;
}

/// Every promise of the trait, in an order where each part sets up only what it needs.
pub async fn run_contract(store: Arc<dyn Store>) {
    let run = Run::new();
    users_are_found_by_every_identity(&store, &run).await;
    revocations_last_until_expiry(&store, &run).await;
    notifications_get_increasing_create_times(&store, &run).await;
    notification_lists_page_by_cursor(&store, &run).await;
    notifications_are_got_deleted_and_updated_by_id(&store, &run).await;
    inbox_state_counts_and_filters(&store, &run).await;
    friends_invite_accept_and_remove(&store, &run).await;
    friends_block_and_unblock(&store, &run).await;
    friends_list_pages_by_state_and_position(&store, &run).await;
    groups_are_created_updated_and_deleted(&store, &run).await;
    groups_are_joined(&store, &run).await;
    groups_are_left(&store, &run).await;
    group_member_operations_follow_the_role_rules(&store, &run).await;
    group_lists_filter_order_and_page(&store, &run).await;
    chat_messages_page_per_stream(&store, &run).await;
    user_exists_unblocked_sees_blocks(&store, &run).await;
    social_imports_make_mutual_friends(&store, &run).await;
    close_succeeds(&store).await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// One run's names: a random prefix keeps them apart from other runs on a shared database.
struct Run {
    prefix: String,
}

impl Run {
    fn new() -> Run {
        let id = Uuid::new_v4().simple().to_string();
        Run {
            prefix: format!("ct{}", &id[..16]),
        }
    }

    fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }
}

/// A fresh device user named `label` in this run.
async fn new_user(store: &Arc<dyn Store>, run: &Run, label: &str) -> UserRecord {
    store
        .create_user(
            Uuid::new_v4(),
            &run.name(label),
            NewIdentity::Device(run.name(&format!("{label}-device"))),
            now_secs(),
        )
        .await
        .expect("setup: create a test user")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("stored JSON text parses")
}

fn assert_conflict<T: std::fmt::Debug>(result: StoreResult<T>, which: &str, promise: &str) {
    match result {
        Err(StoreError::Conflict(got)) => {
            assert_eq!(got, which, "{promise}: the conflict names the wrong key")
        }
        other => panic!("{promise}: expected Conflict({which:?}), got {other:?}"),
    }
}

fn assert_any_conflict<T: std::fmt::Debug>(result: StoreResult<T>, promise: &str) {
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "{promise}: expected a Conflict, got {result:?}"
    );
}

fn strictly_ascending<T: PartialOrd>(items: &[T]) -> bool {
    items.windows(2).all(|w| w[0] < w[1])
}

/// A notification for `user` from `sender`; the store assigns `create_time`.
fn notification(user: Uuid, sender: Uuid, subject: &str) -> Notification {
    Notification {
        id: Uuid::new_v4(),
        user_id: user,
        subject: subject.to_string(),
        content: format!(r#"{{"subject":"{subject}"}}"#),
        code: 101,
        sender_id: Some(sender),
        create_time: 0,
        persistent: true,
        expire_time: None,
    }
}

fn ids_of(rows: &[Notification]) -> Vec<Uuid> {
    rows.iter().map(|n| n.id).collect()
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

/// (other user, state) of each edge, in list order.
fn edges(list: &[FriendEdge]) -> Vec<(Uuid, i32)> {
    list.iter().map(|e| (e.user.id, e.state)).collect()
}

async fn friends(store: &Arc<dyn Store>, user: Uuid) -> Vec<FriendEdge> {
    store
        .friends_list(user, None, None, 100)
        .await
        .expect("friends_list")
}

/// A group record as core builds one; `create_group` sets `edge_count` itself.
fn group(
    run: &Run,
    label: &str,
    owner: Uuid,
    open: bool,
    max_count: i64,
    lang: &str,
) -> GroupRecord {
    let now = now_secs();
    GroupRecord {
        id: Uuid::new_v4(),
        creator_id: owner,
        name: run.name(&format!("group-{label}")),
        description: format!("{label} description"),
        avatar_url: format!("https://example.com/{label}.png"),
        lang_tag: lang.to_string(),
        metadata: r#"{"k":"v"}"#.to_string(),
        open,
        edge_count: 1,
        max_count,
        create_time: now,
        update_time: now,
    }
}

async fn create_group(store: &Arc<dyn Store>, g: &GroupRecord, owner: Uuid, now: i64) {
    store
        .create_group(g.clone(), owner, now)
        .await
        .expect("setup: create_group");
}

/// The group with exactly this name, read back through `list_groups`.
async fn group_named(store: &Arc<dyn Store>, name: &str) -> Option<GroupRecord> {
    let filter = GroupFilter {
        name: Some(name.to_string()),
        ..Default::default()
    };
    store
        .list_groups(filter, None, 100)
        .await
        .expect("list_groups by name")
        .into_iter()
        .map(|(g, _)| g)
        .find(|g| g.name == name)
}

async fn edge_count(store: &Arc<dyn Store>, g: &GroupRecord) -> i64 {
    group_named(store, &g.name)
        .await
        .expect("the group still exists")
        .edge_count
}

async fn state_in(store: &Arc<dyn Store>, group: Uuid, user: Uuid) -> Option<i32> {
    store
        .group_edge_state(group, user)
        .await
        .expect("group_edge_state")
}

async fn members(
    store: &Arc<dyn Store>,
    group: Uuid,
    caller: Option<Uuid>,
    op: MemberOp,
    targets: Vec<Uuid>,
) -> GroupMembers {
    store
        .group_members(group, caller, op, targets, now_micros())
        .await
        .expect("group_members")
}

/// The group and the added users of a `Done`; anything else fails `what`.
fn done(outcome: GroupMembers, what: &str) -> (GroupRecord, Vec<Uuid>) {
    match outcome {
        GroupMembers::Done { group, added } => (*group, added),
        other => panic!("{what}: expected Done, got {other:?}"),
    }
}

fn group_filter(pattern: &str) -> GroupFilter {
    GroupFilter {
        name: Some(pattern.to_string()),
        ..Default::default()
    }
}

async fn group_ids(
    store: &Arc<dyn Store>,
    filter: GroupFilter,
    after: Option<(i64, i64)>,
    limit: usize,
) -> Vec<Uuid> {
    store
        .list_groups(filter, after, limit)
        .await
        .expect("list_groups")
        .into_iter()
        .map(|(g, _)| g.id)
        .collect()
}

/// Every field of a chat message, comparable.
type MessageFields = (Uuid, i32, Uuid, String, String, i64, i64);

fn fields(m: &StoredMessage) -> MessageFields {
    (
        m.id,
        m.code,
        m.sender_id,
        m.username.clone(),
        m.content.clone(),
        m.create_time,
        m.update_time,
    )
}

fn message(sender: &UserRecord, create_time: i64, id: Uuid, text: &str) -> StoredMessage {
    StoredMessage {
        id,
        code: 0,
        sender_id: sender.id,
        username: sender.username.clone(),
        content: format!(r#"{{"text":"{text}"}}"#),
        create_time,
        update_time: create_time,
    }
}

async fn message_ids(
    store: &Arc<dyn Store>,
    stream: &ChannelStream,
    after: Option<(i64, Uuid)>,
    ascending: bool,
    limit: usize,
) -> Vec<Uuid> {
    store
        .list_messages(stream.clone(), after, ascending, limit)
        .await
        .expect("list_messages")
        .iter()
        .map(|m| m.id)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// Pins `create_user` and the lookups: each identity kind is stored and found by id, by its
/// identity and by username; unknown keys find nothing; a clash is `Conflict` naming the key
/// ("username", "device", "custom_id", "email") and leaves no account behind; `devices_of`
/// lists a user's devices; `set_disable_time` shows in `disable_time` and 0 lifts it.
async fn users_are_found_by_every_identity(store: &Arc<dyn Store>, run: &Run) {
    let now = now_secs();
    let device = run.name("device");
    let custom = run.name("custom");
    let email = format!("{}@example.com", run.name("mail"));
    let hash = "$2b$04$abcdefghijklmnopqrstuuJ0yC6V2vEJc3xWzBqL6tZb3QXy1rXmG".to_string();

    let by_device = store
        .create_user(
            Uuid::new_v4(),
            &run.name("by-device"),
            NewIdentity::Device(device.clone()),
            now,
        )
        .await
        .expect("create_user with a device");
    let by_custom = store
        .create_user(
            Uuid::new_v4(),
            &run.name("by-custom"),
            NewIdentity::Custom(custom.clone()),
            now,
        )
        .await
        .expect("create_user with a custom id");
    let by_email = store
        .create_user(
            Uuid::new_v4(),
            &run.name("by-email"),
            NewIdentity::Email {
                email: email.clone(),
                password_hash: hash.clone(),
            },
            now,
        )
        .await
        .expect("create_user with an email");

    // What a new account looks like.
    assert_eq!(
        by_device.username,
        run.name("by-device"),
        "create_user keeps the username"
    );
    assert_eq!(by_device.create_time, now, "create_time is the `now` given");
    assert_eq!(
        by_device.update_time, now,
        "update_time starts at the `now` given"
    );
    assert_eq!(by_device.disable_time, 0, "a new account is not banned");
    assert_eq!(by_device.display_name, "", "no display name by default");
    assert_eq!(by_device.lang_tag, "en", "lang_tag defaults to en");
    assert_eq!(
        json(&by_device.metadata),
        json("{}"),
        "metadata defaults to {{}}"
    );
    assert_eq!(by_device.email, None, "a device account has no email");
    assert_eq!(
        by_device.password_hash, None,
        "a device account has no password"
    );
    assert_eq!(
        by_device.custom_id, None,
        "a device account has no custom id"
    );
    assert_eq!(
        by_custom.custom_id.as_deref(),
        Some(custom.as_str()),
        "custom id is stored"
    );
    assert_eq!(by_custom.email, None, "a custom-id account has no email");
    assert_eq!(
        by_email.email.as_deref(),
        Some(email.as_str()),
        "email is stored"
    );
    assert_eq!(
        by_email.password_hash.as_deref(),
        Some(hash.as_str()),
        "hash is stored"
    );

    // Every lookup finds the same record create_user returned.
    for user in [&by_device, &by_custom, &by_email] {
        let found = store.user_by_id(user.id).await.expect("user_by_id");
        assert_eq!(
            found.as_ref(),
            Some(user),
            "user_by_id finds the created account"
        );
        let found = store
            .user_by_username(&user.username)
            .await
            .expect("user_by_username");
        assert_eq!(
            found.as_ref(),
            Some(user),
            "user_by_username finds the account"
        );
    }
    let found = store.user_by_device(&device).await.expect("user_by_device");
    assert_eq!(
        found.as_ref(),
        Some(&by_device),
        "user_by_device finds the account"
    );
    let found = store
        .user_by_custom_id(&custom)
        .await
        .expect("user_by_custom_id");
    assert_eq!(
        found.as_ref(),
        Some(&by_custom),
        "user_by_custom_id finds the account"
    );
    let found = store.user_by_email(&email).await.expect("user_by_email");
    assert_eq!(
        found.as_ref(),
        Some(&by_email),
        "user_by_email finds the account"
    );

    // Unknown keys find nothing.
    let unknown = run.name("nobody");
    let none = store
        .user_by_id(Uuid::new_v4())
        .await
        .expect("user_by_id unknown");
    assert!(none.is_none(), "user_by_id of an unknown id is None");
    let none = store
        .user_by_device(&unknown)
        .await
        .expect("user_by_device unknown");
    assert!(
        none.is_none(),
        "user_by_device of an unknown device is None"
    );
    let none = store
        .user_by_custom_id(&unknown)
        .await
        .expect("user_by_custom_id unknown");
    assert!(none.is_none(), "user_by_custom_id of an unknown id is None");
    let none = store
        .user_by_email(&format!("{unknown}@example.com"))
        .await
        .expect("user_by_email unknown");
    assert!(none.is_none(), "user_by_email of an unknown email is None");
    let none = store
        .user_by_username(&unknown)
        .await
        .expect("user_by_username unknown");
    assert!(
        none.is_none(),
        "user_by_username of an unknown name is None"
    );
    let none = store
        .user_by_device(&custom)
        .await
        .expect("user_by_device of a custom id");
    assert!(none.is_none(), "a custom id is not a device id");

    // Clashes name the key and leave nothing behind.
    let clash = store
        .create_user(
            Uuid::new_v4(),
            &by_device.username,
            NewIdentity::Device(run.name("other-device")),
            now,
        )
        .await;
    assert_conflict(clash, "username", "a taken username");
    let clash_id = Uuid::new_v4();
    let clash_name = run.name("device-clash");
    let clash = store
        .create_user(
            clash_id,
            &clash_name,
            NewIdentity::Device(device.clone()),
            now,
        )
        .await;
    assert_conflict(clash, "device", "a taken device id");
    let left = store
        .user_by_id(clash_id)
        .await
        .expect("user_by_id after a clash");
    assert!(
        left.is_none(),
        "a create_user that clashed on its device leaves no account"
    );
    let left = store
        .user_by_username(&clash_name)
        .await
        .expect("user_by_username");
    assert!(
        left.is_none(),
        "a create_user that clashed leaves its username free"
    );
    let clash = store
        .create_user(
            Uuid::new_v4(),
            &run.name("custom-clash"),
            NewIdentity::Custom(custom.clone()),
            now,
        )
        .await;
    assert_conflict(clash, "custom_id", "a taken custom id");
    let clash = store
        .create_user(
            Uuid::new_v4(),
            &run.name("email-clash"),
            NewIdentity::Email {
                email: email.clone(),
                password_hash: hash.clone(),
            },
            now,
        )
        .await;
    assert_conflict(clash, "email", "a taken email");

    // devices_of.
    let devices = store.devices_of(by_device.id).await.expect("devices_of");
    assert_eq!(
        devices,
        vec![device.clone()],
        "devices_of lists the user's device"
    );
    let devices = store.devices_of(by_custom.id).await.expect("devices_of");
    assert!(devices.is_empty(), "a custom-id account has no devices");
    let devices = store
        .devices_of(Uuid::new_v4())
        .await
        .expect("devices_of unknown");
    assert!(devices.is_empty(), "an unknown user has no devices");

    // set_disable_time: the users that exist get it; unknown ids are ignored.
    let banned_at = now.max(1);
    store
        .set_disable_time(vec![by_device.id, Uuid::new_v4()], banned_at)
        .await
        .expect("set_disable_time with an unknown id among the targets");
    let banned = store
        .user_by_id(by_device.id)
        .await
        .expect("user_by_id")
        .expect("the banned user exists");
    assert_eq!(
        banned.disable_time, banned_at,
        "set_disable_time shows in disable_time"
    );
    let other = store
        .user_by_id(by_custom.id)
        .await
        .expect("user_by_id")
        .expect("the other user exists");
    assert_eq!(
        other.disable_time, 0,
        "set_disable_time touches only the named users"
    );
    store
        .set_disable_time(vec![by_device.id], 0)
        .await
        .expect("set_disable_time 0");
    let lifted = store
        .user_by_id(by_device.id)
        .await
        .expect("user_by_id")
        .expect("the user exists");
    assert_eq!(lifted.disable_time, 0, "disable_time 0 lifts a ban");
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// Pins `revoke_tokens`, `invalidate_user_sessions` and `load_revocations`: a revoked token id
/// comes back per (id, kind) until it expires (revoking again keeps one entry, the latest
/// expiry winning); an already expired one does not; a user's cutoff comes back once, with the
/// latest `at`.
async fn revocations_last_until_expiry(store: &Arc<dyn Store>, run: &Run) {
    let now = now_secs();
    let token = Uuid::new_v4();
    let expired = Uuid::new_v4();
    store
        .revoke_tokens(vec![
            RevokedToken {
                token_id: token,
                refresh: false,
                expires_at: now + 3600,
            },
            RevokedToken {
                token_id: token,
                refresh: true,
                expires_at: now + 7200,
            },
            RevokedToken {
                token_id: expired,
                refresh: false,
                expires_at: now - 60,
            },
        ])
        .await
        .expect("revoke_tokens");
    store
        .revoke_tokens(vec![RevokedToken {
            token_id: token,
            refresh: false,
            expires_at: now + 3601,
        }])
        .await
        .expect("revoking the same token again is not an error");

    let user = new_user(store, run, "sessions").await;
    store
        .invalidate_user_sessions(user.id, now)
        .await
        .expect("invalidate_user_sessions");
    store
        .invalidate_user_sessions(user.id, now + 1)
        .await
        .expect("invalidate_user_sessions again");

    let (tokens, cutoffs) = store.load_revocations(now).await.expect("load_revocations");
    let mut mine: Vec<RevokedToken> = tokens
        .iter()
        .copied()
        .filter(|t| t.token_id == token)
        .collect();
    mine.sort_by_key(|t| t.refresh);
    assert_eq!(
        mine,
        vec![
            RevokedToken {
                token_id: token,
                refresh: false,
                expires_at: now + 3601,
            },
            RevokedToken {
                token_id: token,
                refresh: true,
                expires_at: now + 7200,
            },
        ],
        "one revocation per token id and kind, the latest expiry winning"
    );
    assert!(
        !tokens.iter().any(|t| t.token_id == expired),
        "load_revocations leaves out revocations that expired before `now`"
    );
    let cut: Vec<i64> = cutoffs
        .iter()
        .filter(|(u, _)| *u == user.id)
        .map(|(_, at)| *at)
        .collect();
    assert_eq!(
        cut,
        vec![now + 1],
        "one cutoff per user, the latest `at` winning"
    );
}

// ---------------------------------------------------------------------------------------------
// Notifications

/// Pins `insert_notifications`: rows come back as given with a `create_time` strictly
/// increasing in input order and after every row stored before (also across concurrent
/// calls); the batch is all or nothing, and a row for a missing user fails it with
/// `MissingReference`.
async fn notifications_get_increasing_create_times(store: &Arc<dyn Store>, run: &Run) {
    let alice = new_user(store, run, "n1-alice").await;
    let bob = new_user(store, run, "n1-bob").await;

    let sent = vec![
        notification(alice.id, bob.id, "one"),
        notification(bob.id, alice.id, "two"),
        notification(alice.id, Uuid::nil(), "three"),
    ];
    let first = store
        .insert_notifications(sent.clone())
        .await
        .expect("insert_notifications");
    assert_eq!(
        ids_of(&first),
        ids_of(&sent),
        "rows come back in the order given"
    );
    for (given, stored) in sent.iter().zip(&first) {
        let expected = Notification {
            create_time: stored.create_time,
            ..given.clone()
        };
        assert_eq!(
            stored, &expected,
            "a stored row keeps every field but create_time"
        );
    }
    let times: Vec<i64> = first.iter().map(|n| n.create_time).collect();
    assert!(
        strictly_ascending(&times),
        "create_times increase in input order: {times:?}"
    );

    let second = store
        .insert_notifications(vec![notification(alice.id, bob.id, "four")])
        .await
        .expect("insert_notifications again");
    assert!(
        second[0].create_time > times[2],
        "a later insert's create_time is after every earlier row"
    );

    // Concurrent inserts never share a create_time and all precede the next insert.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let rows = vec![
            notification(alice.id, bob.id, &format!("c{i}a")),
            notification(bob.id, alice.id, &format!("c{i}b")),
        ];
        tasks.push(tokio::spawn(async move {
            store.insert_notifications(rows).await
        }));
    }
    let mut concurrent = Vec::new();
    for task in tasks {
        let rows = task
            .await
            .expect("insert task ran")
            .expect("concurrent insert_notifications");
        assert!(
            rows[0].create_time < rows[1].create_time,
            "each concurrent batch is increasing in its own order"
        );
        assert!(
            rows[0].create_time > second[0].create_time,
            "concurrent inserts come after an insert that finished before them"
        );
        concurrent.extend(rows.iter().map(|n| n.create_time));
    }
    let mut distinct = concurrent.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        concurrent.len(),
        "concurrent inserts never share a create_time"
    );
    let latest = *distinct.last().expect("concurrent rows exist");

    // A missing user fails the whole batch.
    let lost = notification(alice.id, bob.id, "lost");
    let failed = store
        .insert_notifications(vec![
            lost.clone(),
            notification(Uuid::new_v4(), bob.id, "nobody"),
        ])
        .await;
    assert!(
        matches!(failed, Err(StoreError::MissingReference(_))),
        "a row for a missing user is MissingReference, got {failed:?}"
    );
    let kept = store
        .get_notifications(vec![lost.id], None)
        .await
        .expect("get_notifications after a failed batch");
    assert!(kept.is_empty(), "a failed batch stores none of its rows");

    let after = store
        .insert_notifications(vec![notification(alice.id, bob.id, "after")])
        .await
        .expect("insert_notifications after a failed batch");
    assert!(
        after[0].create_time > latest,
        "create_time keeps increasing after a failed batch"
    );

    // A bad batch among concurrent good ones fails alone: a store that commits waiting
    // batches together must not fail or lose its neighbours.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let owner = if i == 3 { Uuid::new_v4() } else { alice.id };
        let row = notification(owner, bob.id, &format!("mixed{i}"));
        tasks.push(tokio::spawn(async move {
            (i, row.id, store.insert_notifications(vec![row]).await)
        }));
    }
    for task in tasks {
        let (i, id, result) = task.await.expect("insert task ran");
        let stored = store
            .get_notifications(vec![id], None)
            .await
            .expect("get_notifications after mixed batches");
        if i == 3 {
            assert!(
                matches!(result, Err(StoreError::MissingReference(_))),
                "the bad batch fails, got {result:?}"
            );
            assert!(stored.is_empty(), "the bad batch stores nothing");
        } else {
            assert!(
                result.is_ok(),
                "good batch {i} succeeds beside a bad one: {result:?}"
            );
            assert_eq!(stored.len(), 1, "good batch {i} is stored");
        }
    }
}

/// Pins `list_notifications`: one user's rows only, by (create_time, id), strictly after the
/// `(create_time, id)` cursor, at most `limit`.
async fn notification_lists_page_by_cursor(store: &Arc<dyn Store>, run: &Run) {
    let alice = new_user(store, run, "n2-alice").await;
    let bob = new_user(store, run, "n2-bob").await;
    let rows = store
        .insert_notifications(vec![
            notification(alice.id, bob.id, "a1"),
            notification(bob.id, alice.id, "b1"),
            notification(alice.id, bob.id, "a2"),
            notification(alice.id, bob.id, "a3"),
        ])
        .await
        .expect("setup: insert_notifications");
    let alices: Vec<Notification> = rows
        .iter()
        .filter(|n| n.user_id == alice.id)
        .cloned()
        .collect();
    let list = |after: Option<(i64, Uuid)>, limit: usize| {
        let store = store.clone();
        let user = alice.id;
        async move {
            store
                .list_notifications(user, after, limit)
                .await
                .expect("list_notifications")
        }
    };
    let cursor = |n: &Notification| Some((n.create_time, n.id));

    assert_eq!(
        list(None, 10).await,
        alices,
        "a list is the user's rows, oldest first"
    );
    assert_eq!(list(None, 2).await, alices[..2], "a list stops at `limit`");
    assert_eq!(
        list(cursor(&alices[0]), 10).await,
        alices[1..],
        "the cursor's own row is excluded"
    );
    assert!(
        list(cursor(&alices[2]), 10).await.is_empty(),
        "nothing after the last row"
    );
    assert_eq!(
        list(Some((alices[1].create_time, Uuid::nil())), 10).await,
        alices[1..],
        "a row with the cursor's create_time and a larger id is after it"
    );
    assert_eq!(
        list(
            Some((alices[1].create_time, Uuid::from_u128(u128::MAX))),
            10
        )
        .await,
        alices[2..],
        "a row with the cursor's create_time and a smaller id is not after it"
    );
    let bobs = store
        .list_notifications(bob.id, None, 10)
        .await
        .expect("list_notifications of bob");
    assert_eq!(
        ids_of(&bobs),
        vec![rows[1].id],
        "a list holds only that user's rows"
    );
}

/// Pins `get_notifications`, `delete_notifications` and `update_notifications`: get finds rows
/// by id (only the named user's when one is given) and skips unknown ids; delete with a user
/// leaves other users' rows and counts what went; update changes only the given fields and
/// counts the rows it changed.
/// A user's (unread, unseen, unread by code), so each state is one assertion.
async fn counts_of(store: &Arc<dyn Store>, user: Uuid) -> (i64, i64, Vec<(i32, i64)>) {
    let c = store.inbox_counts(user).await.expect("inbox_counts");
    (c.unread, c.unseen, c.unread_by_code.into_iter().collect())
}

async fn inbox_state_counts_and_filters(store: &Arc<dyn Store>, run: &Run) {
    use tidings::core::store::{InboxFilter, InboxMark};
    let alice = new_user(store, run, "ib-alice").await;
    let bob = new_user(store, run, "ib-bob").await;
    let mut five = notification(alice.id, bob.id, "a3");
    five.code = 5;
    let rows = store
        .insert_notifications(vec![
            notification(alice.id, bob.id, "a1"),
            notification(alice.id, bob.id, "a2"),
            five,
            notification(bob.id, alice.id, "b1"),
        ])
        .await
        .expect("setup: insert_notifications");
    let (a1, a2, a3, b1) = (rows[0].id, rows[1].id, rows[2].id, rows[3].id);
    assert_eq!(
        counts_of(store, alice.id).await,
        (3, 3, vec![(5, 1), (101, 2)]),
        "everything starts unread and unseen"
    );

    let now = now_micros();
    let mark =
        |ids: Option<Vec<Uuid>>, m: InboxMark| store.mark_notifications(alice.id, ids, m, now);
    assert_eq!(
        mark(Some(vec![a1, b1]), InboxMark::Read)
            .await
            .expect("mark"),
        1,
        "not bob's row"
    );
    assert_eq!(
        mark(Some(vec![a1]), InboxMark::Read).await.expect("mark"),
        0,
        "already read"
    );
    let counts = store.inbox_counts(alice.id).await.expect("inbox_counts");
    assert_eq!((counts.unread, counts.unseen), (2, 2), "reading also sees");
    assert_eq!(store.inbox_counts(bob.id).await.expect("bob").unread, 1);

    let list = |filter: InboxFilter| store.list_inbox(alice.id, filter, None, 10);
    let unread = list(InboxFilter {
        read: Some(false),
        ..Default::default()
    })
    .await
    .expect("list");
    assert_eq!(
        unread.iter().map(|i| i.notification.id).collect::<Vec<_>>(),
        vec![a2, a3]
    );
    let read = list(InboxFilter {
        read: Some(true),
        ..Default::default()
    })
    .await
    .expect("list");
    assert_eq!(read.len(), 1);
    assert_eq!(
        (
            read[0].notification.id,
            read[0].read_time,
            read[0].seen_time
        ),
        (a1, Some(now), Some(now))
    );
    let code = list(InboxFilter {
        code: Some(5),
        ..Default::default()
    })
    .await
    .expect("list");
    assert_eq!(
        code.iter().map(|i| i.notification.id).collect::<Vec<_>>(),
        vec![a3]
    );
    let all = list(InboxFilter::default()).await.expect("list");
    assert_eq!(all.len(), 3);
    let after = store
        .list_inbox(
            alice.id,
            InboxFilter::default(),
            Some((all[0].notification.create_time, a1)),
            10,
        )
        .await
        .expect("list after");
    assert_eq!(
        after.iter().map(|i| i.notification.id).collect::<Vec<_>>(),
        vec![a2, a3]
    );

    assert_eq!(mark(None, InboxMark::Seen).await.expect("seen all"), 2);
    assert_eq!(
        counts_of(store, alice.id).await,
        (2, 0, vec![(5, 1), (101, 1)]),
        "seen but still unread"
    );
    let unseen = list(InboxFilter {
        seen: Some(false),
        ..Default::default()
    })
    .await
    .expect("list");
    assert!(unseen.is_empty());
    assert_eq!(
        mark(Some(vec![a1]), InboxMark::Unread)
            .await
            .expect("unread"),
        1
    );
    let counts = store.inbox_counts(alice.id).await.expect("counts");
    assert_eq!(
        (counts.unread, counts.unseen),
        (3, 0),
        "marked unread again, still seen"
    );
    assert_eq!(mark(None, InboxMark::Read).await.expect("read all"), 3);
    let counts = store.inbox_counts(alice.id).await.expect("counts");
    assert_eq!((counts.unread, counts.unread_by_code.len()), (0, 0));
    assert_eq!(
        store.inbox_counts(bob.id).await.expect("bob").unread,
        1,
        "bob untouched"
    );

    // Expired rows are neither listed, got nor counted, and they are purge candidates; so are
    // rows older than a retention and a user's oldest beyond a cap.
    let carol = new_user(store, run, "ib-carol").await;
    let now = now_micros();
    let mut gone = notification(carol.id, bob.id, "gone");
    gone.expire_time = Some(now + 200_000);
    let mut later = notification(carol.id, bob.id, "later");
    later.expire_time = Some(now + 3_600_000_000);
    let rows = store
        .insert_notifications(vec![gone, later, notification(carol.id, bob.id, "kept")])
        .await
        .expect("insert expiring");
    let (gone, later, kept) = (rows[0].id, rows[1].id, rows[2].id);
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let listed = store
        .list_notifications(carol.id, None, 10)
        .await
        .expect("list");
    assert_eq!(
        ids_of(&listed),
        vec![later, kept],
        "expired rows are not listed"
    );
    assert!(store
        .get_notifications(vec![gone], None)
        .await
        .expect("get")
        .is_empty());
    assert_eq!(
        store.inbox_counts(carol.id).await.expect("counts").unread,
        2
    );
    let now = now_micros();
    let expired = store
        .purge_candidates(now, None, None, 100)
        .await
        .expect("candidates");
    assert!(expired.contains(&gone) && !expired.contains(&later) && !expired.contains(&kept));
    let capped = store
        .purge_candidates(now, None, Some(1), 10_000)
        .await
        .expect("capped");
    assert!(
        capped.contains(&later) && !capped.contains(&kept),
        "oldest beyond the cap"
    );
    let old = store
        .purge_candidates(now, Some(now + 1), None, 10_000)
        .await
        .expect("old");
    assert!(old.contains(&kept) && old.contains(&later));
    assert_eq!(
        store
            .delete_notifications(vec![gone], None)
            .await
            .expect("purge"),
        1
    );
    keyed_inserts(store, run, bob.id).await;
    inbox_changes_follow_every_change(store, run).await;
    broadcasts_have_state_per_user(store, run).await;
}

/// A broadcast is one row every existing user lists in create_time order among their own
/// rows, with their own read state and delete; an update through one user's copy changes
/// that copy only (as Nakama's row per user would), a delete without a user removes it for
/// everyone; sync reports each.
async fn broadcasts_have_state_per_user(store: &Arc<dyn Store>, run: &Run) {
    use tidings::core::store::{broadcast_copy_id, InboxFilter, InboxMark};
    let gil = new_user(store, run, "bc-gil").await;
    let hal = new_user(store, run, "bc-hal").await;
    let joy = new_user(store, run, "bc-joy").await;
    let own = store
        .insert_notifications(vec![notification(gil.id, gil.id, "own")])
        .await
        .expect("insert own");
    let hal_since = store
        .inbox_changes(hal.id, 0, 10)
        .await
        .expect("changes")
        .high_water;
    let mut row = notification(Uuid::nil(), Uuid::nil(), "to all");
    row.code = 9;
    let b = store.insert_broadcast(row).await.expect("insert_broadcast");
    assert!(b.create_time > own[0].create_time, "from the same clock");
    let (gil_copy, hal_copy) = (
        broadcast_copy_id(b.id, gil.id),
        broadcast_copy_id(b.id, hal.id),
    );
    let listed = store
        .list_notifications(gil.id, None, 10)
        .await
        .expect("list");
    let mine: Vec<(Uuid, Uuid)> = listed
        .iter()
        .filter(|n| n.id == own[0].id || n.id == gil_copy)
        .map(|n| (n.id, n.user_id))
        .collect();
    assert_eq!(
        mine,
        vec![(own[0].id, gil.id), (gil_copy, gil.id)],
        "in list order, as gil's copy"
    );
    let after_own = store
        .list_notifications(gil.id, Some((own[0].create_time, own[0].id)), 10)
        .await
        .expect("list after cursor");
    assert!(
        after_own.iter().any(|n| n.id == gil_copy),
        "the cursor reaches it"
    );
    let after_copy = store
        .list_notifications(gil.id, Some((b.create_time, gil_copy)), 10)
        .await
        .expect("list after the copy");
    assert!(
        !after_copy.iter().any(|n| n.id == gil_copy),
        "and then passes it"
    );

    let unread = |user: Uuid| async move {
        store
            .inbox_counts(user)
            .await
            .expect("counts")
            .unread_by_code
            .get(&9)
            .copied()
    };
    assert_eq!(unread(gil.id).await, Some(1));
    assert_eq!(
        store
            .mark_notifications(gil.id, Some(vec![hal_copy]), InboxMark::Read, now_micros())
            .await
            .expect("mark another's copy"),
        0
    );
    assert_eq!(
        store
            .mark_notifications(gil.id, Some(vec![gil_copy]), InboxMark::Read, now_micros())
            .await
            .expect("mark"),
        1
    );
    assert_eq!(unread(gil.id).await, None, "read by gil");
    assert_eq!(unread(hal.id).await, Some(1), "still unread for hal");
    let read_only = InboxFilter {
        read: Some(true),
        ..Default::default()
    };
    let read_list = store
        .list_inbox(gil.id, read_only, None, 10)
        .await
        .expect("list read");
    assert!(read_list
        .iter()
        .any(|i| i.notification.id == gil_copy && i.read_time.is_some()));
    let got = store
        .get_notifications(vec![hal_copy], None)
        .await
        .expect("get");
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].id, got[0].user_id),
        (hal_copy, hal.id),
        "a copy id names its user"
    );
    assert!(store
        .get_notifications(vec![hal_copy], Some(gil.id))
        .await
        .expect("get as gil")
        .is_empty());

    // Hal hides his copy.
    assert_eq!(
        store
            .delete_notifications(vec![hal_copy], Some(gil.id))
            .await
            .expect("not gil's"),
        0
    );
    assert_eq!(
        store
            .delete_notifications(vec![hal_copy], None)
            .await
            .expect("hide"),
        1
    );
    assert!(store
        .get_notifications(vec![hal_copy], Some(hal.id))
        .await
        .expect("get hidden")
        .is_empty());
    let hal_changes = store
        .inbox_changes(hal.id, hal_since, 10)
        .await
        .expect("hal changes");
    assert_eq!(hal_changes.broadcasts.len(), 1);
    assert_eq!(hal_changes.broadcasts[0].0.notification.id, hal_copy);
    assert!(hal_changes.broadcasts[0].1, "reported as gone for hal");

    // An update through gil's copy changes gil's copy only: it becomes gil's own row (same
    // id, place and read state), and sync reports the broadcast gone for gil, then the row.
    assert_eq!(
        store
            .update_notifications(vec![NotificationUpdate {
                id: gil_copy,
                subject: Some("to all, edited".into()),
                content: None,
                sender_id: None,
            }])
            .await
            .expect("update"),
        1
    );
    let gil_changes = store
        .inbox_changes(gil.id, 0, 100)
        .await
        .expect("gil changes");
    let gone = gil_changes
        .broadcasts
        .iter()
        .find(|(i, _)| i.notification.id == gil_copy)
        .expect("the broadcast, reported gone");
    assert!(gone.1, "hidden for gil");
    let own_row = gil_changes
        .changed
        .iter()
        .find(|i| i.notification.id == gil_copy)
        .expect("gil's own row");
    assert_eq!(
        (
            own_row.notification.subject.as_str(),
            own_row.notification.create_time,
            own_row.notification.code,
            own_row.read_time.is_some(),
        ),
        ("to all, edited", b.create_time, 9, true)
    );
    assert!(own_row.seq > gone.0.seq, "the row after the hide");
    let listed: Vec<String> = store
        .list_notifications(gil.id, None, 10)
        .await
        .expect("list")
        .into_iter()
        .filter(|n| n.id == gil_copy)
        .map(|n| n.subject)
        .collect();
    assert_eq!(listed, ["to all, edited"], "listed once, edited");
    let joy_copy = broadcast_copy_id(b.id, joy.id);
    let joys = store
        .get_notifications(vec![joy_copy], None)
        .await
        .expect("joy's copy");
    assert_eq!(joys.len(), 1);
    assert_eq!(
        joys[0].subject, "to all",
        "another player's copy is unchanged"
    );

    // A user created after it does not see it.
    let mut row = notification(Uuid::nil(), Uuid::nil(), "before ivy");
    row.code = 9;
    let early = store.insert_broadcast(row).await.expect("broadcast");
    let ivy = store
        .create_user(
            Uuid::new_v4(),
            &run.name("bc-ivy"),
            NewIdentity::Device(run.name("bc-ivy-device")),
            now_secs() + 2,
        )
        .await
        .expect("ivy");
    assert!(store
        .list_notifications(ivy.id, None, 10)
        .await
        .expect("ivy list")
        .iter()
        .all(|n| n.code != 9));
    // Purging a broadcast raises the floor every user shares.
    assert_eq!(
        store
            .purge_notifications(vec![early.id], now_micros())
            .await
            .expect("purge broadcast"),
        1
    );
    let floor = store
        .inbox_changes(hal.id, 0, 10)
        .await
        .expect("hal after purge")
        .floor;
    assert!(floor.is_some_and(|f| f > early.create_time), "{floor:?}");
}

/// Gap-free sync: every insert, state change, update and delete of a user's rows takes a
/// distinct sequence above every earlier one, `inbox_changes` finds each by kind after a
/// sequence, and purges and pruned tombstones raise the user's floor.
async fn inbox_changes_follow_every_change(store: &Arc<dyn Store>, run: &Run) {
    use tidings::core::store::{InboxMark, KeyedInsert, SendKeys};
    let erin = new_user(store, run, "sync-erin").await;
    let changes = |since: i64| store.inbox_changes(erin.id, since, 100);
    let start = changes(0).await.expect("changes of an empty inbox");
    assert!(start.created.is_empty() && start.changed.is_empty() && start.deleted.is_empty());
    assert_eq!(start.floor, None);
    let h0 = start.high_water;

    let rows = store
        .insert_notifications(
            (0..6)
                .map(|i| notification(erin.id, erin.id, &format!("s{i}")))
                .collect(),
        )
        .await
        .expect("insert");
    let ids = ids_of(&rows);
    let after_insert = changes(h0).await.expect("changes after inserts");
    let created: Vec<(Uuid, i64)> = after_insert
        .created
        .iter()
        .map(|i| (i.notification.id, i.seq))
        .collect();
    let expected: Vec<(Uuid, i64)> = rows.iter().map(|n| (n.id, n.create_time)).collect();
    assert_eq!(created, expected, "an insert's sequence is its create_time");
    assert!(after_insert.high_water >= rows[5].create_time);
    let h1 = after_insert.high_water;
    assert!(changes(h1).await.expect("nothing new").created.is_empty());

    // A read, an update and a delete, each later than the one before.
    store
        .mark_notifications(erin.id, Some(vec![ids[0]]), InboxMark::Read, now_micros())
        .await
        .expect("mark read");
    store
        .update_notifications(vec![NotificationUpdate {
            id: ids[1],
            subject: Some("s1 updated".into()),
            content: None,
            sender_id: None,
        }])
        .await
        .expect("update");
    store
        .delete_notifications(vec![ids[2]], Some(erin.id))
        .await
        .expect("delete");
    let c = changes(h1)
        .await
        .expect("changes after read, update, delete");
    assert!(c.created.is_empty(), "nothing created after h1");
    let changed: Vec<Uuid> = c.changed.iter().map(|i| i.notification.id).collect();
    assert_eq!(changed, vec![ids[0], ids[1]], "in change order");
    assert!(c.changed[0].read_time.is_some(), "the row's state now");
    assert_eq!(c.changed[1].notification.subject, "s1 updated");
    assert_eq!(c.deleted.len(), 1);
    assert_eq!(c.deleted[0].1, ids[2]);
    let seqs = [c.changed[0].seq, c.changed[1].seq, c.deleted[0].0];
    assert!(
        seqs[0] > h1 && strictly_ascending(&seqs) && c.high_water >= seqs[2],
        "{seqs:?} after {h1}, high water {}",
        c.high_water
    );
    // From a sequence between two changes, only the later ones.
    let mid = changes(seqs[0]).await.expect("changes from the middle");
    assert_eq!(mid.changed.len(), 1);
    assert_eq!(mid.changed[0].notification.id, ids[1]);
    let h2 = c.high_water;

    // "Mark all" numbers every row it changes.
    let marked = store
        .mark_notifications(erin.id, None, InboxMark::Seen, now_micros())
        .await
        .expect("mark all seen");
    assert_eq!(marked, 4, "the three unseen rows left and the updated one");
    let all = changes(h2).await.expect("changes after mark all");
    let all_seqs: Vec<i64> = all.changed.iter().map(|i| i.seq).collect();
    assert_eq!(all_seqs.len(), 4);
    assert!(
        all_seqs[0] > h2 && strictly_ascending(&all_seqs),
        "{all_seqs:?}"
    );
    assert!(all.high_water >= all_seqs[3]);
    let limited = store.inbox_changes(erin.id, h2, 2).await.expect("limited");
    assert_eq!(limited.changed.len(), 2, "each range stops at the limit");

    // A collapse key's replaced row leaves a tombstone too.
    let collapse = SendKeys {
        dedupe_key: None,
        collapse_key: Some("energy".into()),
    };
    let mut replaced_id = None;
    for i in 0..2 {
        match store
            .insert_keyed(
                notification(erin.id, erin.id, &format!("energy {i}")),
                collapse.clone(),
                0,
            )
            .await
            .expect("collapse")
        {
            KeyedInsert::Stored { row, .. } if i == 0 => replaced_id = Some(row.id),
            KeyedInsert::Stored { .. } => {}
            other => panic!("not stored: {other:?}"),
        }
    }
    let h3 = all.high_water;
    let collapsed = changes(h3).await.expect("changes after collapse");
    assert_eq!(
        collapsed.deleted.iter().map(|d| d.1).collect::<Vec<_>>(),
        vec![replaced_id.expect("first energy stored")]
    );
    assert_eq!(collapsed.created.len(), 1, "only the replacement is live");

    // A purge of a live row raises the floor past everything so far; an expired row's does not.
    let before_purge = collapsed.high_water;
    assert_eq!(
        store
            .purge_notifications(vec![ids[3]], now_micros())
            .await
            .expect("purge"),
        1
    );
    let floor = changes(before_purge)
        .await
        .expect("after purge")
        .floor
        .expect("a purge raises the floor");
    assert!(floor > before_purge, "{floor} > {before_purge}");
    assert!(
        !changes(before_purge)
            .await
            .expect("again")
            .deleted
            .iter()
            .any(|d| d.1 == ids[3]),
        "a purge leaves no tombstone"
    );
    let fay = new_user(store, run, "sync-fay").await;
    let mut short = notification(fay.id, fay.id, "short");
    short.expire_time = Some(now_micros() + 100_000);
    let short = store
        .insert_notifications(vec![short])
        .await
        .expect("insert short");
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    store
        .purge_notifications(ids_of(&short), now_micros())
        .await
        .expect("purge expired");
    assert_eq!(
        store.inbox_changes(fay.id, 0, 10).await.expect("fay").floor,
        None,
        "an expired row's purge needs no resync"
    );

    // Pruned tombstones raise the floor to the newest of them.
    let newest_tombstone = collapsed.deleted[0].0;
    let pruned = store
        .prune_tombstones(newest_tombstone + 1, 100_000)
        .await
        .expect("prune");
    assert!(pruned >= 2, "erin's two tombstones went ({pruned})");
    let after_prune = changes(h1).await.expect("after prune");
    assert!(after_prune.deleted.is_empty());
    assert!(after_prune.floor.is_some_and(|f| f >= newest_tombstone));
}

async fn keyed_inserts(store: &Arc<dyn Store>, run: &Run, sender: Uuid) {
    // Concurrent keyed inserts with one dedupe key store one row; a collapse key replaces the
    // earlier rows; a dedupe key older than the window no longer holds.
    use tidings::core::store::{KeyedInsert, SendKeys};
    let dave = new_user(store, run, "ib-dave").await;
    let dedupe = SendKeys {
        dedupe_key: Some("gift".into()),
        collapse_key: None,
    };
    let racers = (0..8).map(|i| {
        store.insert_keyed(
            notification(dave.id, sender, &format!("gift {i}")),
            dedupe.clone(),
            now_micros() - 60_000_000,
        )
    });
    let outcomes = futures_util::future::join_all(racers).await;
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(KeyedInsert::Stored { .. })))
        .count();
    assert_eq!(
        stored, 1,
        "one of eight concurrent sends stored: {outcomes:?}"
    );
    let originals: std::collections::HashSet<Uuid> = outcomes
        .iter()
        .map(|o| match o {
            Ok(KeyedInsert::Stored { row, .. }) | Ok(KeyedInsert::Duplicate(row)) => row.id,
            Err(e) => panic!("keyed insert failed: {e}"),
        })
        .collect();
    assert_eq!(originals.len(), 1, "every duplicate names the stored row");
    let later = store
        .insert_keyed(
            notification(dave.id, sender, "gift later"),
            dedupe,
            now_micros(),
        )
        .await
        .expect("outside the window");
    assert!(
        matches!(later, KeyedInsert::Stored { .. }),
        "the window has passed"
    );

    let collapse = SendKeys {
        dedupe_key: None,
        collapse_key: Some("energy".into()),
    };
    let first = match store
        .insert_keyed(
            notification(dave.id, sender, "energy 1"),
            collapse.clone(),
            0,
        )
        .await
        .expect("collapse 1")
    {
        KeyedInsert::Stored { row, replaced } => {
            assert!(replaced.is_empty());
            row.id
        }
        other => panic!("not stored: {other:?}"),
    };
    match store
        .insert_keyed(notification(dave.id, sender, "energy 2"), collapse, 0)
        .await
        .expect("collapse 2")
    {
        KeyedInsert::Stored { replaced, .. } => assert_eq!(replaced, vec![first]),
        other => panic!("not stored: {other:?}"),
    }
    let subjects: Vec<String> = store
        .list_notifications(dave.id, None, 100)
        .await
        .expect("list dave")
        .into_iter()
        .map(|n| n.subject)
        .filter(|s| s.starts_with("energy"))
        .collect();
    assert_eq!(subjects, ["energy 2"]);
}

async fn notifications_are_got_deleted_and_updated_by_id(store: &Arc<dyn Store>, run: &Run) {
    let alice = new_user(store, run, "n3-alice").await;
    let bob = new_user(store, run, "n3-bob").await;
    let rows = store
        .insert_notifications(vec![
            notification(alice.id, bob.id, "a1"),
            notification(bob.id, alice.id, "b1"),
            notification(alice.id, bob.id, "a2"),
            notification(alice.id, bob.id, "a3"),
        ])
        .await
        .expect("setup: insert_notifications");
    let (a1, b1, a2, a3) = (&rows[0], &rows[1], &rows[2], &rows[3]);
    let ghost = Uuid::new_v4();

    // get.
    let got = store
        .get_notifications(vec![a1.id, b1.id, ghost], None)
        .await
        .expect("get_notifications");
    assert_eq!(
        sorted(ids_of(&got)),
        sorted(vec![a1.id, b1.id]),
        "get finds rows by id"
    );
    let got_a1 = got.iter().find(|n| n.id == a1.id).expect("a1 is found");
    assert_eq!(got_a1, a1, "get returns the row as stored");
    let got = store
        .get_notifications(vec![a1.id, b1.id, ghost], Some(alice.id))
        .await
        .expect("get_notifications for alice");
    assert_eq!(
        ids_of(&got),
        vec![a1.id],
        "get with a user finds only that user's rows"
    );

    // delete.
    let gone = store
        .delete_notifications(vec![a1.id, b1.id, ghost], Some(alice.id))
        .await
        .expect("delete_notifications for alice");
    assert_eq!(gone, 1, "delete with a user counts only that user's rows");
    let left = store
        .get_notifications(vec![a1.id, b1.id], None)
        .await
        .expect("get_notifications after delete");
    assert_eq!(
        ids_of(&left),
        vec![b1.id],
        "delete with a user leaves other users' rows"
    );
    let gone = store
        .delete_notifications(vec![b1.id], None)
        .await
        .expect("delete_notifications without a user");
    assert_eq!(gone, 1, "delete without a user deletes any user's row");
    let gone = store
        .delete_notifications(vec![b1.id, ghost], None)
        .await
        .expect("delete_notifications of missing rows");
    assert_eq!(gone, 0, "deleting rows that are gone counts nothing");

    // update.
    let new_sender = Uuid::new_v4();
    let changed = store
        .update_notifications(vec![
            NotificationUpdate {
                id: a2.id,
                subject: Some("changed".into()),
                content: Some(r#"{"v":2}"#.into()),
                sender_id: Some(new_sender),
            },
            NotificationUpdate {
                id: a3.id,
                subject: Some("subject only".into()),
                content: None,
                sender_id: None,
            },
            NotificationUpdate {
                id: ghost,
                subject: Some("nobody".into()),
                content: None,
                sender_id: None,
            },
        ])
        .await
        .expect("update_notifications");
    assert_eq!(changed, 2, "update counts the rows it changed");
    let after = store
        .get_notifications(vec![a2.id, a3.id], None)
        .await
        .expect("get_notifications after update");
    let new_a2 = after
        .iter()
        .find(|n| n.id == a2.id)
        .expect("a2 still exists");
    let new_a3 = after
        .iter()
        .find(|n| n.id == a3.id)
        .expect("a3 still exists");
    let expected_a2 = Notification {
        subject: "changed".into(),
        content: r#"{"v":2}"#.into(),
        sender_id: Some(new_sender),
        ..a2.clone()
    };
    assert_eq!(
        new_a2, &expected_a2,
        "update sets subject, content and sender, nothing else"
    );
    let expected_a3 = Notification {
        subject: "subject only".into(),
        ..a3.clone()
    };
    assert_eq!(
        new_a3, &expected_a3,
        "update leaves the fields it is not given"
    );
}

// ---------------------------------------------------------------------------------------------
// Friends

/// Pins `friends_add` and `friends_delete`: an add invites (the adder's edge state 1 with the
/// metadata, the target's state 2, one shared position, update_time in seconds); adding again
/// does nothing; the target's add accepts (both state 0); a delete by either side of a
/// friendship or invite removes both edges (`Removed`); unknown targets are skipped.
async fn friends_invite_accept_and_remove(store: &Arc<dyn Store>, run: &Run) {
    let a = new_user(store, run, "f1-a").await;
    let b = new_user(store, run, "f1-b").await;
    let now = now_micros();

    let out = store
        .friends_add(a.id, vec![b.id], r#"{"note":"hi"}"#.into(), now)
        .await
        .expect("friends_add invite");
    assert_eq!(
        out,
        vec![(b.id, FriendChange::Invited)],
        "a first add is an invite"
    );
    let a_list = friends(store, a.id).await;
    let b_list = friends(store, b.id).await;
    assert_eq!(
        edges(&a_list),
        vec![(b.id, 1)],
        "the inviter's edge is state 1"
    );
    assert_eq!(
        edges(&b_list),
        vec![(a.id, 2)],
        "the invitee's edge is state 2"
    );
    assert_eq!(a_list[0].user, b, "an edge carries the other user's record");
    assert_eq!(
        json(&a_list[0].metadata),
        json(r#"{"note":"hi"}"#),
        "the invite keeps metadata"
    );
    assert_eq!(
        a_list[0].position, b_list[0].position,
        "both edges share one position"
    );
    assert_eq!(
        a_list[0].update_time,
        now / 1_000_000,
        "edge update_time is in seconds"
    );

    let out = store
        .friends_add(a.id, vec![b.id], "{}".into(), now + 1)
        .await
        .expect("friends_add repeated");
    assert_eq!(
        out,
        vec![(b.id, FriendChange::Nothing)],
        "inviting again does nothing"
    );

    let out = store
        .friends_add(b.id, vec![a.id], r#"{"x":1}"#.into(), now + 2)
        .await
        .expect("friends_add accept");
    assert_eq!(
        out,
        vec![(a.id, FriendChange::Accepted)],
        "adding back accepts the invite"
    );
    assert_eq!(
        edges(&friends(store, a.id).await),
        vec![(b.id, 0)],
        "accepted: state 0"
    );
    let b_list = friends(store, b.id).await;
    assert_eq!(
        edges(&b_list),
        vec![(a.id, 0)],
        "accepted: state 0 both ways"
    );
    assert_eq!(
        json(&b_list[0].metadata)["x"],
        1,
        "the accepter's edge takes its metadata"
    );

    let out = store
        .friends_add(a.id, vec![b.id], "{}".into(), now + 3)
        .await
        .expect("friends_add between friends");
    assert_eq!(
        out,
        vec![(b.id, FriendChange::Nothing)],
        "adding a friend does nothing"
    );

    let out = store
        .friends_delete(a.id, vec![b.id])
        .await
        .expect("friends_delete");
    assert_eq!(
        out,
        vec![(b.id, FriendChange::Removed)],
        "unfriending removes both edges"
    );
    assert!(
        friends(store, a.id).await.is_empty(),
        "no edge left for the remover"
    );
    assert!(
        friends(store, b.id).await.is_empty(),
        "no edge left for the removed"
    );
    let out = store
        .friends_delete(a.id, vec![b.id])
        .await
        .expect("friends_delete again");
    assert_eq!(
        out,
        vec![(b.id, FriendChange::Nothing)],
        "deleting nothing is Nothing"
    );

    // A rejected invite goes both ways too.
    let out = store
        .friends_add(a.id, vec![b.id], "{}".into(), now + 4)
        .await
        .expect("friends_add invite again");
    assert_eq!(
        out,
        vec![(b.id, FriendChange::Invited)],
        "a new invite after removal"
    );
    let out = store
        .friends_delete(b.id, vec![a.id])
        .await
        .expect("friends_delete reject");
    assert_eq!(
        out,
        vec![(a.id, FriendChange::Removed)],
        "rejecting removes both edges"
    );
    assert!(
        friends(store, a.id).await.is_empty(),
        "a rejected invite leaves no edge"
    );

    // Unknown targets are skipped.
    let ghost = Uuid::new_v4();
    let out = store
        .friends_add(a.id, vec![ghost, b.id], "{}".into(), now + 5)
        .await
        .expect("friends_add with an unknown target");
    assert!(
        out.iter()
            .all(|(t, c)| *t != ghost || *c == FriendChange::Nothing),
        "an unknown target changes nothing: {out:?}"
    );
    assert!(
        out.contains(&(b.id, FriendChange::Invited)),
        "an unknown target does not stop the others: {out:?}"
    );
    assert_eq!(
        edges(&friends(store, a.id).await),
        vec![(b.id, 1)],
        "no edge to an unknown user"
    );
    let out = store
        .friends_delete(a.id, vec![ghost])
        .await
        .expect("friends_delete of an unknown user");
    assert!(
        out.iter().all(|(_, c)| *c == FriendChange::Nothing),
        "deleting an unknown user is Nothing: {out:?}"
    );
}

/// Pins `friends_block`: the blocker's edge becomes (or is created as) state 3 and the other
/// edge goes unless it is a block itself; neither side can add the other while it stands;
/// the blocker's delete lifts it (one edge: `Nothing`); unknown targets are skipped.
async fn friends_block_and_unblock(store: &Arc<dyn Store>, run: &Run) {
    let a = new_user(store, run, "f2-a").await;
    let b = new_user(store, run, "f2-b").await;
    let c = new_user(store, run, "f2-c").await;
    let now = now_micros();
    store
        .friends_add(a.id, vec![b.id], "{}".into(), now)
        .await
        .expect("setup: invite");
    store
        .friends_add(b.id, vec![a.id], "{}".into(), now + 1)
        .await
        .expect("setup: accept");

    store
        .friends_block(a.id, vec![b.id, Uuid::new_v4()], now + 2)
        .await
        .expect("friends_block of a friend and an unknown id");
    assert_eq!(
        edges(&friends(store, a.id).await),
        vec![(b.id, 3)],
        "the blocker's edge is 3"
    );
    assert!(
        friends(store, b.id).await.is_empty(),
        "the blocked user's edge goes"
    );

    let out = store
        .friends_add(b.id, vec![a.id], "{}".into(), now + 3)
        .await
        .expect("friends_add by the blocked user");
    assert_eq!(
        out,
        vec![(a.id, FriendChange::Nothing)],
        "the blocked user cannot add"
    );
    assert!(
        friends(store, b.id).await.is_empty(),
        "a refused add creates no edge"
    );
    let out = store
        .friends_add(a.id, vec![b.id], "{}".into(), now + 4)
        .await
        .expect("friends_add by the blocker");
    assert_eq!(
        out,
        vec![(b.id, FriendChange::Nothing)],
        "the blocker cannot add either"
    );
    assert_eq!(
        edges(&friends(store, a.id).await),
        vec![(b.id, 3)],
        "the block stands"
    );

    // Blocks both ways: each keeps its own.
    store
        .friends_block(b.id, vec![a.id], now + 5)
        .await
        .expect("friends_block back");
    assert_eq!(
        edges(&friends(store, a.id).await),
        vec![(b.id, 3)],
        "a block survives a block"
    );
    assert_eq!(
        edges(&friends(store, b.id).await),
        vec![(a.id, 3)],
        "blocks both ways"
    );
    let out = store
        .friends_delete(b.id, vec![a.id])
        .await
        .expect("friends_delete unblock");
    assert_eq!(
        out,
        vec![(a.id, FriendChange::Nothing)],
        "lifting a block is one edge"
    );
    assert!(
        friends(store, b.id).await.is_empty(),
        "the unblocker's block goes"
    );
    assert_eq!(
        edges(&friends(store, a.id).await),
        vec![(b.id, 3)],
        "a delete never removes the other side's block"
    );

    let out = store
        .friends_delete(a.id, vec![b.id])
        .await
        .expect("friends_delete unblock");
    assert_eq!(
        out,
        vec![(b.id, FriendChange::Nothing)],
        "lifting a block is one edge"
    );
    assert!(friends(store, a.id).await.is_empty(), "the block is lifted");
    let out = store
        .friends_add(b.id, vec![a.id], "{}".into(), now + 6)
        .await
        .expect("friends_add after unblock");
    assert_eq!(
        out,
        vec![(a.id, FriendChange::Invited)],
        "after unblocking, adding invites"
    );

    // Blocking a stranger creates the block.
    store
        .friends_block(a.id, vec![c.id], now + 7)
        .await
        .expect("friends_block of a stranger");
    assert_eq!(
        edges(&friends(store, a.id).await),
        vec![(b.id, 2), (c.id, 3)],
        "a block of a stranger is a new state 3 edge"
    );
    let out = store
        .friends_add(c.id, vec![a.id], "{}".into(), now + 8)
        .await
        .expect("friends_add by the blocked stranger");
    assert_eq!(
        out,
        vec![(a.id, FriendChange::Nothing)],
        "a blocked stranger cannot add"
    );
}

/// Pins `friends_list`: edges by (state, position, other id), from `from` inclusive,
/// optionally of one state, at most `limit`.
async fn friends_list_pages_by_state_and_position(store: &Arc<dyn Store>, run: &Run) {
    let me = new_user(store, run, "f3-me").await;
    let f = new_user(store, run, "f3-friend").await;
    let x = new_user(store, run, "f3-x").await;
    let y = new_user(store, run, "f3-y").await;
    let z = new_user(store, run, "f3-z").await;
    let base = now_micros();
    store
        .friends_add(me.id, vec![f.id], "{}".into(), base)
        .await
        .expect("setup: invite");
    store
        .friends_add(f.id, vec![me.id], "{}".into(), base + 1)
        .await
        .expect("setup: accept");
    for (i, target) in [&x, &y, &z].iter().enumerate() {
        store
            .friends_add(
                me.id,
                vec![target.id],
                "{}".into(),
                base + 10 * (i as i64 + 1),
            )
            .await
            .expect("setup: invite");
    }
    let list = |state: Option<i32>, from: Option<FriendPosition>, limit: usize| {
        let store = store.clone();
        let user = me.id;
        async move {
            edges(
                &store
                    .friends_list(user, state, from, limit)
                    .await
                    .expect("friends_list"),
            )
        }
    };

    let all = store
        .friends_list(me.id, None, None, 10)
        .await
        .expect("friends_list");
    assert_eq!(
        edges(&all),
        vec![(f.id, 0), (x.id, 1), (y.id, 1), (z.id, 1)],
        "edges are ordered by state, then position"
    );
    let positions: Vec<i64> = all[1..].iter().map(|e| e.position).collect();
    assert!(
        strictly_ascending(&positions),
        "later invites have later positions"
    );
    let from_y = FriendPosition {
        state: 1,
        position: all[2].position,
        other: y.id,
    };

    assert_eq!(
        list(Some(1), None, 10).await,
        vec![(x.id, 1), (y.id, 1), (z.id, 1)],
        "a state filter lists only that state"
    );
    assert_eq!(
        list(Some(1), None, 1).await,
        vec![(x.id, 1)],
        "a list stops at `limit`"
    );
    assert_eq!(
        list(Some(1), Some(from_y), 10).await,
        vec![(y.id, 1), (z.id, 1)],
        "`from` is inclusive"
    );
    assert_eq!(
        list(None, Some(from_y), 1).await,
        vec![(y.id, 1)],
        "`from` without a filter"
    );
    let past_y = FriendPosition {
        other: Uuid::from_u128(u128::MAX),
        ..from_y
    };
    assert_eq!(
        list(None, Some(past_y), 10).await,
        vec![(z.id, 1)],
        "ties on position are ordered by the other user's id"
    );
    let from_invites = FriendPosition {
        state: 1,
        position: i64::MIN,
        other: Uuid::nil(),
    };
    assert_eq!(
        list(None, Some(from_invites), 10).await,
        vec![(x.id, 1), (y.id, 1), (z.id, 1)],
        "`from` a later state skips the earlier states"
    );
    assert!(
        list(Some(3), None, 10).await.is_empty(),
        "no edges of an unused state"
    );
}

// ---------------------------------------------------------------------------------------------
// Groups

/// Pins `create_group`, `group_edge_state`, `update_group` and `delete_group`: the group is
/// stored as given with edge_count 1 and its owner as superadmin; a taken name is a
/// `Conflict`, also on rename; an unknown owner is `MissingReference` and leaves no group;
/// update changes only the given fields (update_time in seconds, max_count never below
/// edge_count) and is false for an unknown group; delete removes the group and its edges.
async fn groups_are_created_updated_and_deleted(store: &Arc<dyn Store>, run: &Run) {
    let owner = new_user(store, run, "g1-owner").await;
    let member = new_user(store, run, "g1-member").await;
    let now = now_micros();
    let g = group(run, "crud", owner.id, true, 10, "en");
    create_group(store, &g, owner.id, now).await;

    let stored = group_named(store, &g.name)
        .await
        .expect("a created group is listed");
    assert_eq!(
        stored, g,
        "a created group is stored as given, edge_count 1"
    );
    assert_eq!(
        state_in(store, g.id, owner.id).await,
        Some(SUPERADMIN),
        "the owner is superadmin"
    );
    assert_eq!(
        state_in(store, g.id, member.id).await,
        None,
        "no edge for a non-member"
    );
    assert_eq!(
        state_in(store, Uuid::new_v4(), owner.id).await,
        None,
        "no edge in no group"
    );

    let clash = GroupRecord {
        id: Uuid::new_v4(),
        ..g.clone()
    };
    assert_any_conflict(
        store.create_group(clash, owner.id, now + 1).await,
        "a taken group name",
    );

    let ghost = Uuid::new_v4();
    let orphan = group(run, "orphan", ghost, true, 10, "en");
    let failed = store.create_group(orphan.clone(), ghost, now + 2).await;
    assert!(
        matches!(failed, Err(StoreError::MissingReference(_))),
        "a group owned by an unknown user is MissingReference, got {failed:?}"
    );
    assert!(
        group_named(store, &orphan.name).await.is_none(),
        "a failed create_group leaves no group"
    );

    // Update.
    let update_now = now + 5_000_000;
    let changed = store
        .update_group(
            g.id,
            GroupUpdate {
                description: Some("changed".into()),
                open: Some(false),
                metadata: Some(r#"{"k":"w"}"#.into()),
                ..Default::default()
            },
            update_now,
        )
        .await
        .expect("update_group");
    assert!(changed, "update_group of an existing group is true");
    let updated = group_named(store, &g.name)
        .await
        .expect("the group still exists");
    let expected = GroupRecord {
        description: "changed".into(),
        open: false,
        metadata: r#"{"k":"w"}"#.into(),
        update_time: update_now / 1_000_000,
        ..g.clone()
    };
    assert_eq!(
        updated, expected,
        "update_group changes only the given fields"
    );

    let unknown = store
        .update_group(
            Uuid::new_v4(),
            GroupUpdate {
                description: Some("nobody".into()),
                ..Default::default()
            },
            update_now,
        )
        .await
        .expect("update_group of an unknown group");
    assert!(!unknown, "update_group of an unknown group is false");

    done(
        members(store, g.id, None, MemberOp::Add, vec![member.id]).await,
        "setup: add a member",
    );
    let changed = store
        .update_group(
            g.id,
            GroupUpdate {
                max_count: Some(1),
                ..Default::default()
            },
            update_now,
        )
        .await
        .expect("update_group max_count below edge_count");
    assert!(changed, "update_group with a small max_count still applies");
    let shrunk = group_named(store, &g.name)
        .await
        .expect("the group still exists");
    assert_eq!(shrunk.edge_count, 2, "setup: two members");
    assert_eq!(shrunk.max_count, 2, "max_count never goes below edge_count");

    let other = group(run, "crud-other", owner.id, true, 10, "en");
    create_group(store, &other, owner.id, now + 3).await;
    let rename = store
        .update_group(
            other.id,
            GroupUpdate {
                name: Some(g.name.clone()),
                ..Default::default()
            },
            update_now,
        )
        .await;
    assert_any_conflict(rename, "renaming a group to a taken name");

    // Delete.
    store.delete_group(g.id).await.expect("delete_group");
    assert!(
        group_named(store, &g.name).await.is_none(),
        "a deleted group is not listed"
    );
    assert_eq!(
        state_in(store, g.id, owner.id).await,
        None,
        "a deleted group has no edges"
    );
    assert_eq!(
        state_in(store, g.id, member.id).await,
        None,
        "a deleted group has no edges"
    );
    let mine = store
        .list_user_groups(member.id, None, None, 10)
        .await
        .expect("list_user_groups");
    assert!(mine.is_empty(), "a deleted group is in nobody's list");
    store
        .delete_group(Uuid::new_v4())
        .await
        .expect("deleting an unknown group is not an error");
}

/// Pins `join_group`: an open group makes a member (edge_count follows); a closed one records
/// a join request and names its superadmins and admins; a full group is `Full` and changes
/// nothing; an existing edge (member, request, ban) is `Nothing`; an unknown group is
/// `NotFound`.
async fn groups_are_joined(store: &Arc<dyn Store>, run: &Run) {
    let owner = new_user(store, run, "g2-owner").await;
    let admin = new_user(store, run, "g2-admin").await;
    let m1 = new_user(store, run, "g2-m1").await;
    let m2 = new_user(store, run, "g2-m2").await;
    let m3 = new_user(store, run, "g2-m3").await;
    let now = now_micros();

    let open = group(run, "join-open", owner.id, true, 3, "en");
    create_group(store, &open, owner.id, now).await;
    let join = |group: Uuid, user: Uuid| {
        let store = store.clone();
        async move {
            store
                .join_group(group, user, now_micros())
                .await
                .expect("join_group")
        }
    };
    assert_eq!(
        join(open.id, m1.id).await,
        GroupJoin::Joined,
        "an open group is joined"
    );
    assert_eq!(
        state_in(store, open.id, m1.id).await,
        Some(MEMBER),
        "a joiner is a member"
    );
    assert_eq!(
        edge_count(store, &open).await,
        2,
        "a join counts in edge_count"
    );
    assert_eq!(
        join(open.id, m1.id).await,
        GroupJoin::Nothing,
        "joining twice does nothing"
    );
    assert_eq!(
        join(open.id, m2.id).await,
        GroupJoin::Joined,
        "a second member joins"
    );
    assert_eq!(
        edge_count(store, &open).await,
        3,
        "edge_count reaches max_count"
    );
    assert_eq!(
        join(open.id, m3.id).await,
        GroupJoin::Full,
        "a full group refuses joins"
    );
    assert_eq!(
        state_in(store, open.id, m3.id).await,
        None,
        "a refused join adds no edge"
    );
    assert_eq!(
        edge_count(store, &open).await,
        3,
        "a refused join changes no count"
    );
    assert_eq!(
        join(Uuid::new_v4(), m1.id).await,
        GroupJoin::NotFound,
        "joining an unknown group"
    );

    let closed = group(run, "join-closed", owner.id, false, 10, "en");
    create_group(store, &closed, owner.id, now + 1).await;
    done(
        members(store, closed.id, None, MemberOp::Add, vec![admin.id]).await,
        "setup: add the admin",
    );
    done(
        members(store, closed.id, None, MemberOp::Promote, vec![admin.id]).await,
        "setup: promote the admin",
    );
    assert_eq!(
        state_in(store, closed.id, admin.id).await,
        Some(ADMIN),
        "setup: an admin"
    );

    match join(closed.id, m1.id).await {
        GroupJoin::Requested { admins } => assert_eq!(
            sorted(admins),
            sorted(vec![owner.id, admin.id]),
            "a join request names every superadmin and admin"
        ),
        other => panic!("joining a closed group is Requested, got {other:?}"),
    }
    assert_eq!(
        state_in(store, closed.id, m1.id).await,
        Some(JOIN_REQUEST),
        "a join request is state 3"
    );
    assert_eq!(
        edge_count(store, &closed).await,
        2,
        "a join request is not a member"
    );
    assert_eq!(
        join(closed.id, m1.id).await,
        GroupJoin::Nothing,
        "asking twice does nothing"
    );

    done(
        members(store, closed.id, None, MemberOp::Ban, vec![m1.id]).await,
        "setup: ban the requester",
    );
    assert_eq!(
        state_in(store, closed.id, m1.id).await,
        Some(BANNED),
        "setup: banned"
    );
    assert_eq!(
        join(closed.id, m1.id).await,
        GroupJoin::Nothing,
        "a banned user cannot join"
    );
    assert_eq!(
        state_in(store, closed.id, m1.id).await,
        Some(BANNED),
        "the ban stands"
    );
}

/// Pins `leave_group`: a member leaves (edge_count follows); leaving without an edge is
/// `Done`; the last superadmin gets `LastSuperadmin` while other members remain and may leave
/// once another superadmin exists; a ban stays after a leave; a superadmin alone (join
/// requests and bans aside) deletes the group by leaving.
async fn groups_are_left(store: &Arc<dyn Store>, run: &Run) {
    let owner = new_user(store, run, "g3-owner").await;
    let member = new_user(store, run, "g3-member").await;
    let second = new_user(store, run, "g3-second").await;
    let requester = new_user(store, run, "g3-requester").await;
    let g = group(run, "leave", owner.id, false, 10, "en");
    create_group(store, &g, owner.id, now_micros()).await;
    let leave = |user: Uuid| {
        let store = store.clone();
        let group = g.id;
        async move { store.leave_group(group, user).await.expect("leave_group") }
    };

    done(
        members(store, g.id, None, MemberOp::Add, vec![member.id]).await,
        "setup: add a member",
    );
    let asked = store
        .join_group(g.id, requester.id, now_micros())
        .await
        .expect("setup: join request");
    assert!(
        matches!(asked, GroupJoin::Requested { .. }),
        "setup: a request, got {asked:?}"
    );
    assert_eq!(edge_count(store, &g).await, 2, "setup: owner and member");

    assert_eq!(leave(member.id).await, GroupLeave::Done, "a member leaves");
    assert_eq!(
        state_in(store, g.id, member.id).await,
        None,
        "a leaver has no edge"
    );
    assert_eq!(
        edge_count(store, &g).await,
        1,
        "a leave counts in edge_count"
    );
    assert_eq!(
        leave(member.id).await,
        GroupLeave::Done,
        "leaving without an edge is Done"
    );

    done(
        members(store, g.id, None, MemberOp::Add, vec![member.id]).await,
        "setup: add the member back",
    );
    assert_eq!(
        leave(owner.id).await,
        GroupLeave::LastSuperadmin,
        "the last superadmin cannot leave while members remain"
    );
    assert_eq!(
        state_in(store, g.id, owner.id).await,
        Some(SUPERADMIN),
        "the owner stays"
    );

    done(
        members(store, g.id, None, MemberOp::Add, vec![second.id]).await,
        "setup: add a second user",
    );
    for _ in 0..2 {
        done(
            members(store, g.id, None, MemberOp::Promote, vec![second.id]).await,
            "setup: promote the second user",
        );
    }
    assert_eq!(
        state_in(store, g.id, second.id).await,
        Some(SUPERADMIN),
        "setup: superadmin"
    );
    assert_eq!(
        leave(owner.id).await,
        GroupLeave::Done,
        "a superadmin leaves when another exists"
    );
    assert_eq!(
        state_in(store, g.id, owner.id).await,
        None,
        "the old owner has no edge"
    );
    assert_eq!(
        edge_count(store, &g).await,
        2,
        "member and second superadmin remain"
    );

    done(
        members(store, g.id, None, MemberOp::Ban, vec![member.id]).await,
        "setup: ban the member",
    );
    assert_eq!(
        leave(member.id).await,
        GroupLeave::Done,
        "a banned user's leave is Done"
    );
    assert_eq!(
        state_in(store, g.id, member.id).await,
        Some(BANNED),
        "leaving keeps a ban"
    );

    assert_eq!(
        leave(second.id).await,
        GroupLeave::Done,
        "a superadmin with only requests and bans besides may leave"
    );
    assert!(
        group_named(store, &g.name).await.is_none(),
        "the last member leaving deletes the group"
    );
    assert_eq!(
        state_in(store, g.id, requester.id).await,
        None,
        "a deleted group keeps no join requests"
    );
}

/// Pins `group_members`: each target follows `core::groups::transition` (adds, promotions and
/// demotions one step within the caller's rank, kicks and bans, the last superadmin kept);
/// callers below admin are `Denied`; an unknown group is `NotFound`; `UnknownUser` and `Full`
/// roll back every change of the call; `Done` carries the fresh group and the users added.
async fn group_member_operations_follow_the_role_rules(store: &Arc<dyn Store>, run: &Run) {
    let owner = new_user(store, run, "g4-owner").await;
    let admin = new_user(store, run, "g4-admin").await;
    let member = new_user(store, run, "g4-member").await;
    let other = new_user(store, run, "g4-other").await;
    let late = new_user(store, run, "g4-late").await;
    let stranger = new_user(store, run, "g4-stranger").await;
    let ghost = Uuid::new_v4();
    let g = group(run, "roles", owner.id, true, 4, "en");
    create_group(store, &g, owner.id, now_micros()).await;
    let by_owner = Some(owner.id);
    let by_admin = Some(admin.id);

    // Add.
    let (fresh, added) = done(
        members(
            store,
            g.id,
            by_owner,
            MemberOp::Add,
            vec![admin.id, member.id],
        )
        .await,
        "the superadmin adds two users",
    );
    assert_eq!(
        added,
        vec![admin.id, member.id],
        "Done lists the users added"
    );
    assert_eq!(
        fresh.edge_count, 3,
        "Done carries the group after the change"
    );
    assert_eq!(
        state_in(store, g.id, member.id).await,
        Some(MEMBER),
        "an added user is a member"
    );
    let (_, added) = done(
        members(store, g.id, by_owner, MemberOp::Add, vec![member.id]).await,
        "adding a member again",
    );
    assert!(added.is_empty(), "adding an existing member adds nobody");
    assert_eq!(
        edge_count(store, &g).await,
        3,
        "adding an existing member counts nothing"
    );

    done(
        members(store, g.id, by_owner, MemberOp::Promote, vec![admin.id]).await,
        "the superadmin promotes a member",
    );
    assert_eq!(
        state_in(store, g.id, admin.id).await,
        Some(ADMIN),
        "promotion is one step"
    );

    // Denied and NotFound.
    let denied = members(store, g.id, Some(member.id), MemberOp::Kick, vec![admin.id]).await;
    assert_eq!(denied, GroupMembers::Denied, "a plain member may not act");
    assert_eq!(
        state_in(store, g.id, admin.id).await,
        Some(ADMIN),
        "a denied kick changes nothing"
    );
    let denied = members(
        store,
        g.id,
        Some(stranger.id),
        MemberOp::Add,
        vec![other.id],
    )
    .await;
    assert_eq!(denied, GroupMembers::Denied, "a non-member may not act");
    assert_eq!(
        state_in(store, g.id, other.id).await,
        None,
        "a denied add changes nothing"
    );
    let missing = members(store, Uuid::new_v4(), None, MemberOp::Add, vec![other.id]).await;
    assert_eq!(
        missing,
        GroupMembers::NotFound,
        "an unknown group is NotFound"
    );

    // UnknownUser and Full roll back the whole call.
    let unknown = members(store, g.id, by_owner, MemberOp::Add, vec![other.id, ghost]).await;
    assert_eq!(unknown, GroupMembers::UnknownUser, "adding an unknown user");
    assert_eq!(
        state_in(store, g.id, other.id).await,
        None,
        "UnknownUser rolls back earlier adds"
    );
    assert_eq!(
        edge_count(store, &g).await,
        3,
        "UnknownUser leaves edge_count"
    );
    let full = members(
        store,
        g.id,
        by_owner,
        MemberOp::Add,
        vec![other.id, late.id],
    )
    .await;
    assert_eq!(full, GroupMembers::Full, "adding past max_count");
    assert_eq!(
        state_in(store, g.id, other.id).await,
        None,
        "Full rolls back the adds that fit"
    );
    assert_eq!(
        state_in(store, g.id, late.id).await,
        None,
        "Full adds nobody"
    );
    assert_eq!(edge_count(store, &g).await, 3, "Full leaves edge_count");

    // An admin's reach.
    done(
        members(store, g.id, by_admin, MemberOp::Kick, vec![owner.id]).await,
        "an admin kicks the superadmin",
    );
    assert_eq!(
        state_in(store, g.id, owner.id).await,
        Some(SUPERADMIN),
        "an admin cannot kick a superadmin"
    );
    done(
        members(store, g.id, by_admin, MemberOp::Promote, vec![member.id]).await,
        "an admin promotes a member",
    );
    assert_eq!(
        state_in(store, g.id, member.id).await,
        Some(ADMIN),
        "an admin promotes to admin"
    );
    done(
        members(store, g.id, by_admin, MemberOp::Promote, vec![member.id]).await,
        "an admin promotes an admin",
    );
    assert_eq!(
        state_in(store, g.id, member.id).await,
        Some(ADMIN),
        "nobody is promoted above the caller's rank"
    );
    done(
        members(store, g.id, by_admin, MemberOp::Kick, vec![member.id]).await,
        "an admin kicks an admin",
    );
    assert_eq!(
        state_in(store, g.id, member.id).await,
        Some(ADMIN),
        "an admin cannot kick an admin"
    );
    done(
        members(store, g.id, by_admin, MemberOp::Demote, vec![member.id]).await,
        "an admin demotes an admin",
    );
    assert_eq!(
        state_in(store, g.id, member.id).await,
        Some(MEMBER),
        "demotion is one step"
    );
    done(
        members(store, g.id, by_owner, MemberOp::Demote, vec![member.id]).await,
        "demoting a member",
    );
    assert_eq!(
        state_in(store, g.id, member.id).await,
        Some(MEMBER),
        "a member stays a member"
    );

    // The last superadmin stays, even for the server.
    done(
        members(store, g.id, None, MemberOp::Kick, vec![owner.id]).await,
        "the server kicks the last superadmin",
    );
    assert_eq!(
        state_in(store, g.id, owner.id).await,
        Some(SUPERADMIN),
        "the last superadmin stays"
    );
    done(
        members(store, g.id, None, MemberOp::Demote, vec![owner.id]).await,
        "the server demotes the last superadmin",
    );
    assert_eq!(
        state_in(store, g.id, owner.id).await,
        Some(SUPERADMIN),
        "the last superadmin is not demoted"
    );

    // Ban, kick.
    let (fresh, _) = done(
        members(
            store,
            g.id,
            by_admin,
            MemberOp::Ban,
            vec![member.id, stranger.id],
        )
        .await,
        "an admin bans a member and a non-member",
    );
    assert_eq!(
        state_in(store, g.id, member.id).await,
        Some(BANNED),
        "a ban is state 4"
    );
    assert_eq!(
        state_in(store, g.id, stranger.id).await,
        None,
        "banning a non-member does nothing"
    );
    assert_eq!(fresh.edge_count, 2, "a ban leaves edge_count");
    let (_, added) = done(
        members(store, g.id, by_owner, MemberOp::Add, vec![member.id]).await,
        "adding a banned user",
    );
    assert!(added.is_empty(), "an add does not lift a ban");
    assert_eq!(
        state_in(store, g.id, member.id).await,
        Some(BANNED),
        "the ban stands"
    );
    done(
        members(store, g.id, by_owner, MemberOp::Kick, vec![member.id]).await,
        "kicking a banned user",
    );
    assert_eq!(
        state_in(store, g.id, member.id).await,
        None,
        "kicking a ban removes it"
    );
    let (fresh, _) = done(
        members(store, g.id, by_owner, MemberOp::Kick, vec![admin.id]).await,
        "the superadmin kicks an admin",
    );
    assert_eq!(
        state_in(store, g.id, admin.id).await,
        None,
        "a superadmin kicks an admin"
    );
    assert_eq!(fresh.edge_count, 1, "a kick leaves edge_count");
    assert_eq!(
        edge_count(store, &g).await,
        1,
        "the stored edge_count matches Done's group"
    );
}

/// Pins the group lists: `list_groups` filters by name pattern (case-insensitive, `%`
/// wildcard), language, openness and size, orders by creation position and starts at `after`
/// inclusive; `list_group_users` and `list_user_groups` order by (state, position), filter by
/// state, start at `after` inclusive and stop at `limit`; bans show only in a member list
/// asked for state 4, never in a user's groups.
async fn group_lists_filter_order_and_page(store: &Arc<dyn Store>, run: &Run) {
    let owner = new_user(store, run, "g5-owner").await;
    let admin = new_user(store, run, "g5-admin").await;
    let member = new_user(store, run, "g5-member").await;
    let requester = new_user(store, run, "g5-requester").await;
    let banned = new_user(store, run, "g5-banned").await;
    let base = now_micros();
    let g1 = group(run, "list-a", owner.id, true, 10, "en");
    let g2 = group(run, "list-b", owner.id, false, 10, "fr");
    let g3 = group(run, "list-c", owner.id, true, 10, "fr");
    create_group(store, &g1, owner.id, base).await;
    create_group(store, &g2, owner.id, base + 10).await;
    create_group(store, &g3, owner.id, base + 20).await;

    // list_groups.
    let pattern = run.name("group-list-%");
    let listed = store
        .list_groups(group_filter(&pattern), None, 10)
        .await
        .expect("list_groups");
    let ids: Vec<Uuid> = listed.iter().map(|(g, _)| g.id).collect();
    assert_eq!(
        ids,
        vec![g1.id, g2.id, g3.id],
        "groups are listed in creation order"
    );
    assert_eq!(listed[0].0, g1, "a listed group is the stored record");
    let positions: Vec<i64> = listed.iter().map(|(_, p)| *p).collect();
    assert!(
        strictly_ascending(&positions),
        "positions follow creation: {positions:?}"
    );
    assert_eq!(
        group_ids(store, group_filter(&pattern.to_uppercase()), None, 10).await,
        vec![g1.id, g2.id, g3.id],
        "the name filter ignores case"
    );
    let french = GroupFilter {
        lang_tag: Some("fr".into()),
        ..group_filter(&pattern)
    };
    assert_eq!(
        group_ids(store, french, None, 10).await,
        vec![g2.id, g3.id],
        "lang filter"
    );
    let open = GroupFilter {
        open: Some(true),
        ..group_filter(&pattern)
    };
    assert_eq!(
        group_ids(store, open, None, 10).await,
        vec![g1.id, g3.id],
        "open filter"
    );
    let closed = GroupFilter {
        open: Some(false),
        ..group_filter(&pattern)
    };
    assert_eq!(
        group_ids(store, closed, None, 10).await,
        vec![g2.id],
        "closed filter"
    );
    assert_eq!(
        group_ids(store, group_filter(&pattern), Some((0, positions[1])), 10).await,
        vec![g2.id, g3.id],
        "`after` is inclusive"
    );
    assert_eq!(
        group_ids(store, group_filter(&pattern), None, 1).await,
        vec![g1.id],
        "a list stops at `limit`"
    );
    done(
        members(store, g3.id, None, MemberOp::Add, vec![member.id]).await,
        "setup: a second member in g3",
    );
    let small = GroupFilter {
        members: Some(1),
        ..group_filter(&pattern)
    };
    assert_eq!(
        group_ids(store, small, None, 10).await,
        vec![g1.id, g2.id],
        "the members filter keeps groups with at most that many members"
    );

    // list_group_users: owner 0, admin 1, member 2, requester 3, banned 4.
    let at = |k: i64| base + 100 + k;
    let setup = |op: MemberOp, user: Uuid, now: i64| {
        let store = store.clone();
        let group = g2.id;
        async move {
            let outcome = store
                .group_members(group, None, op, vec![user], now)
                .await
                .expect("setup: group_members");
            done(outcome, "setup: a member operation on g2");
        }
    };
    setup(MemberOp::Add, admin.id, at(1)).await;
    setup(MemberOp::Promote, admin.id, at(2)).await;
    setup(MemberOp::Add, member.id, at(3)).await;
    store
        .join_group(g2.id, requester.id, at(4))
        .await
        .expect("setup: join request");
    setup(MemberOp::Add, banned.id, at(5)).await;
    setup(MemberOp::Ban, banned.id, at(6)).await;
    let users = |state: Option<i32>, after: Option<(i64, i64)>, limit: usize| {
        let store = store.clone();
        let group = g2.id;
        async move {
            store
                .list_group_users(group, state, after, limit)
                .await
                .expect("list_group_users")
        }
    };
    let short = |rows: Vec<(UserRecord, i32, i64)>| -> Vec<(Uuid, i32)> {
        rows.into_iter().map(|(u, s, _)| (u.id, s)).collect()
    };
    let all = users(None, None, 10).await;
    assert_eq!(all[0].0, owner, "a listed member is the stored user record");
    let member_pos = all[2].2;
    let admin_pos = all[1].2;
    assert_eq!(
        short(all),
        vec![
            (owner.id, SUPERADMIN),
            (admin.id, ADMIN),
            (member.id, MEMBER),
            (requester.id, JOIN_REQUEST),
        ],
        "members by state, bans hidden by default"
    );
    assert_eq!(
        short(users(Some(BANNED), None, 10).await),
        vec![(banned.id, BANNED)],
        "bans are listed when asked for"
    );
    assert_eq!(
        short(users(Some(MEMBER), None, 10).await),
        vec![(member.id, MEMBER)],
        "a state filter lists only that state"
    );
    assert_eq!(
        short(users(None, Some((i64::from(MEMBER), member_pos)), 10).await),
        vec![(member.id, MEMBER), (requester.id, JOIN_REQUEST)],
        "`after` is inclusive"
    );
    assert_eq!(
        short(users(None, Some((i64::from(ADMIN), admin_pos)), 2).await),
        vec![(admin.id, ADMIN), (member.id, MEMBER)],
        "a member list stops at `limit`"
    );

    // list_user_groups.
    store
        .join_group(g1.id, requester.id, at(7))
        .await
        .expect("setup: requester joins g1");
    let groups_of = |user: Uuid, state: Option<i32>, after: Option<(i64, i64)>, limit: usize| {
        let store = store.clone();
        async move {
            store
                .list_user_groups(user, state, after, limit)
                .await
                .expect("list_user_groups")
                .into_iter()
                .map(|(g, s, _)| (g.id, s))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        groups_of(requester.id, None, None, 10).await,
        vec![(g1.id, MEMBER), (g2.id, JOIN_REQUEST)],
        "a user's groups by state"
    );
    assert_eq!(
        groups_of(requester.id, Some(JOIN_REQUEST), None, 10).await,
        vec![(g2.id, JOIN_REQUEST)],
        "a state filter on a user's groups"
    );
    assert!(
        groups_of(banned.id, None, None, 10).await.is_empty(),
        "bans are not among a user's groups"
    );
    assert!(
        groups_of(banned.id, Some(BANNED), None, 10)
            .await
            .is_empty(),
        "bans are never among a user's groups"
    );
    let owned = store
        .list_user_groups(owner.id, None, None, 10)
        .await
        .expect("list_user_groups of the owner");
    let owned_ids: Vec<(Uuid, i32)> = owned.iter().map(|(g, s, _)| (g.id, *s)).collect();
    assert_eq!(
        owned_ids,
        vec![
            (g1.id, SUPERADMIN),
            (g2.id, SUPERADMIN),
            (g3.id, SUPERADMIN)
        ],
        "within a state, a user's groups are in edge position order"
    );
    let fresh_g1 = group_named(store, &g1.name).await.expect("g1 exists");
    assert_eq!(owned[0].0, fresh_g1, "a user's group is the stored record");
    assert_eq!(
        groups_of(
            owner.id,
            None,
            Some((i64::from(SUPERADMIN), owned[1].2)),
            10
        )
        .await,
        vec![(g2.id, SUPERADMIN), (g3.id, SUPERADMIN)],
        "`after` is inclusive"
    );
    assert_eq!(
        groups_of(owner.id, None, None, 1).await,
        vec![(g1.id, SUPERADMIN)],
        "a user's groups stop at `limit`"
    );
}

// ---------------------------------------------------------------------------------------------
// Chat

/// Pins `insert_message` and `list_messages`: a stream's messages come back whole, by
/// (create_time, id) ascending or descending, strictly after the cursor in that direction, at
/// most `limit`; streams differing in any column are kept apart.
async fn chat_messages_page_per_stream(store: &Arc<dyn Store>, run: &Run) {
    let alice = new_user(store, run, "c-alice").await;
    let bob = new_user(store, run, "c-bob").await;
    let carol = new_user(store, run, "c-carol").await;
    let direct = ChannelStream {
        mode: 4,
        subject: alice.id,
        descriptor: bob.id,
        label: String::new(),
    };
    let other_direct = ChannelStream {
        subject: carol.id,
        ..direct.clone()
    };
    let room = ChannelStream {
        mode: 2,
        subject: Uuid::nil(),
        descriptor: Uuid::nil(),
        label: run.name("room"),
    };
    let other_room = ChannelStream {
        label: run.name("room2"),
        ..room.clone()
    };

    let t = now_micros();
    let (lo, hi) = {
        let (x, y) = (Uuid::new_v4(), Uuid::new_v4());
        (x.min(y), x.max(y))
    };
    let m0 = message(&alice, t, Uuid::new_v4(), "m0");
    let m1 = message(&bob, t + 1, Uuid::new_v4(), "m1");
    let m_hi = message(&alice, t + 2, hi, "hi");
    let m_lo = message(&bob, t + 2, lo, "lo");
    // Stored out of order: the list order is (create_time, id), not insertion order.
    for m in [&m1, &m_hi, &m0, &m_lo] {
        store
            .insert_message(direct.clone(), m.clone())
            .await
            .expect("insert_message");
    }
    let elsewhere = message(&carol, t + 1, Uuid::new_v4(), "elsewhere");
    store
        .insert_message(other_direct.clone(), elsewhere.clone())
        .await
        .expect("insert_message in another direct stream");
    let in_room = message(&carol, t + 1, Uuid::new_v4(), "room");
    store
        .insert_message(room.clone(), in_room.clone())
        .await
        .expect("insert_message in a room");

    let all = store
        .list_messages(direct.clone(), None, true, 10)
        .await
        .expect("list_messages");
    let got: Vec<MessageFields> = all.iter().map(fields).collect();
    let want: Vec<MessageFields> = [&m0, &m1, &m_lo, &m_hi].into_iter().map(fields).collect();
    assert_eq!(
        got, want,
        "messages come back whole, by (create_time, id) ascending"
    );

    let cursor = |m: &StoredMessage| Some((m.create_time, m.id));
    assert_eq!(
        message_ids(store, &direct, cursor(&m0), true, 10).await,
        vec![m1.id, lo, hi],
        "ascending: the cursor's own message is excluded"
    );
    assert_eq!(
        message_ids(store, &direct, cursor(&m_lo), true, 10).await,
        vec![hi],
        "ascending: a tie on create_time goes by id"
    );
    assert_eq!(
        message_ids(store, &direct, None, true, 2).await,
        vec![m0.id, m1.id],
        "ascending: a page stops at `limit`"
    );
    assert_eq!(
        message_ids(store, &direct, None, false, 10).await,
        vec![hi, lo, m1.id, m0.id],
        "descending: newest first"
    );
    assert_eq!(
        message_ids(store, &direct, cursor(&m_hi), false, 10).await,
        vec![lo, m1.id, m0.id],
        "descending: strictly before the cursor"
    );
    assert_eq!(
        message_ids(store, &direct, cursor(&m1), false, 1).await,
        vec![m0.id],
        "descending: a page stops at `limit`"
    );
    assert!(
        message_ids(store, &direct, cursor(&m_hi), true, 10)
            .await
            .is_empty(),
        "ascending: nothing after the newest"
    );

    assert_eq!(
        message_ids(store, &other_direct, None, true, 10).await,
        vec![elsewhere.id],
        "a stream with another subject is apart"
    );
    assert_eq!(
        message_ids(store, &room, None, true, 10).await,
        vec![in_room.id],
        "a room is apart from direct streams"
    );
    assert!(
        message_ids(store, &other_room, None, true, 10)
            .await
            .is_empty(),
        "a room with another label is apart"
    );
}

// ---------------------------------------------------------------------------------------------
// Direct chat permission

/// Pins `user_exists_unblocked(user, by)`: true for an existing user who has not blocked
/// `by`; false for an unknown user or one who blocked `by` (a block the other way does not
/// count).
async fn user_exists_unblocked_sees_blocks(store: &Arc<dyn Store>, run: &Run) {
    let a = new_user(store, run, "u-a").await;
    let b = new_user(store, run, "u-b").await;
    let check = |user: Uuid, by: Uuid| {
        let store = store.clone();
        async move {
            store
                .user_exists_unblocked(user, by)
                .await
                .expect("user_exists_unblocked")
        }
    };
    assert!(check(a.id, b.id).await, "an existing user with no block");
    assert!(
        !check(Uuid::new_v4(), a.id).await,
        "an unknown user does not exist"
    );
    store
        .friends_block(a.id, vec![b.id], now_micros())
        .await
        .expect("setup: block");
    assert!(!check(a.id, b.id).await, "a user who blocked `by`");
    assert!(
        check(b.id, a.id).await,
        "the blocker may still reach the user it blocked"
    );
}

// ---------------------------------------------------------------------------------------------
// Social imports

/// Pins `import_social_friends`: it links the social id and makes mutual friends (state 0
/// both ways) of the linked users it names that have no edge either way, returning them;
/// unknown ids and the user's own are skipped; a second call finds nothing new; a social id
/// linked to another user is a `Conflict` that changes nothing.
async fn social_imports_make_mutual_friends(store: &Arc<dyn Store>, run: &Run) {
    let provider = run.name("provider");
    let a = new_user(store, run, "s-a").await;
    let b = new_user(store, run, "s-b").await;
    let c = new_user(store, run, "s-c").await;
    let d = new_user(store, run, "s-d").await;
    let e = new_user(store, run, "s-e").await;
    let sid = |u: &UserRecord| format!("social-{}", u.username);
    let now = now_micros();
    let import = |user: Uuid, social_id: String, friend_ids: Vec<String>| {
        let store = store.clone();
        let provider = provider.clone();
        async move {
            store
                .import_social_friends(user, provider, social_id, friend_ids, now)
                .await
        }
    };

    for u in [&b, &c, &d] {
        let linked = import(u.id, sid(u), vec![])
            .await
            .expect("import_social_friends links");
        assert!(
            linked.is_empty(),
            "an import naming nobody makes no friends"
        );
    }
    // d already has an edge with a: the import must leave that pair alone.
    store
        .friends_add(d.id, vec![a.id], "{}".into(), now)
        .await
        .expect("setup: d invites a");

    let named = vec![
        sid(&b),
        sid(&c),
        sid(&d),
        run.name("unknown-social"),
        sid(&a),
    ];
    let linked = import(a.id, sid(&a), named.clone())
        .await
        .expect("import_social_friends");
    assert_eq!(
        sorted(linked),
        sorted(vec![b.id, c.id]),
        "the new friends are the linked users with no edge either way"
    );
    let a_friends = store
        .friends_list(a.id, Some(0), None, 10)
        .await
        .expect("friends_list");
    assert_eq!(
        sorted(a_friends.iter().map(|f| f.user.id).collect()),
        sorted(vec![b.id, c.id]),
        "the importer is friends with them"
    );
    assert_eq!(
        edges(&friends(store, b.id).await),
        vec![(a.id, 0)],
        "friendship is mutual"
    );
    assert_eq!(
        edges(&friends(store, d.id).await),
        vec![(a.id, 1)],
        "an existing edge is left as it was"
    );

    let again = import(a.id, sid(&a), named)
        .await
        .expect("import_social_friends again");
    assert!(again.is_empty(), "a second import finds no new friends");

    let taken = import(e.id, sid(&a), vec![sid(&b)]).await;
    assert_any_conflict(taken, "a social id linked to another user");
    assert!(
        friends(store, e.id).await.is_empty(),
        "a refused import makes no friends"
    );
    assert_eq!(
        edges(&friends(store, b.id).await),
        vec![(a.id, 0)],
        "a refused import changes nothing for others"
    );
}

// ---------------------------------------------------------------------------------------------
// Shutdown

/// Pins `close`: after all the writes above, tidying up at shutdown succeeds.
async fn close_succeeds(store: &Arc<dyn Store>) {
    store.close().await.expect("close after a run of writes");
}
