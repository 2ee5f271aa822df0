//! Storage backends implementing `core::store::Store`. The only place that writes SQL.
//! SQLite (embedded, the default) for one node; PostgreSQL for several nodes sharing one
//! database.

pub mod pg_bus;
pub mod pg_directory;
pub mod postgres;
pub mod sqlite;

pub use pg_bus::PgBus;
pub use pg_directory::PgDirectory;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

// The column lists both backends select, in the order their row readers expect.
pub(crate) const USER_COLS: &str =
    "u.id, u.username, u.display_name, u.avatar_url, u.lang_tag, u.location, \
    u.timezone, u.metadata, u.email, u.password, u.custom_id, u.create_time, u.update_time, \
    u.disable_time";
pub(crate) const NOTIFICATION_COLS: &str =
    "id, user_id, subject, content, code, sender_id, create_time, expire_time";
/// An inbox item's columns: a notification's, then read_time, seen_time and its sequence.
pub(crate) const INBOX_COLS: &str = "id, user_id, subject, content, code, sender_id, \
    create_time, expire_time, read_time, seen_time, coalesce(change_seq, create_time)";
/// The condition that hides expired notifications, for a backend whose placeholder for the
/// current time (Unix microseconds) is `now`.
pub(crate) fn live_sql(now: &str) -> String {
    format!("(expire_time IS NULL OR expire_time > {now})")
}
pub(crate) const GROUP_COLS: &str =
    "g.id, g.creator_id, g.name, g.description, g.avatar_url, g.lang_tag, \
    g.metadata, g.open, g.edge_count, g.max_count, g.create_time, g.update_time, g.position";

/// The SET clause and the row condition of an inbox mark, with `NOW` for the time parameter
/// (each backend substitutes its placeholder). Only rows whose state changes are touched, so
/// the row count is the number of changes.
pub(crate) fn mark_sql(mark: crate::core::store::InboxMark) -> (&'static str, &'static str) {
    use crate::core::store::InboxMark;
    match mark {
        InboxMark::Read => (
            "read_time = NOW, seen_time = coalesce(seen_time, NOW)",
            "read_time IS NULL",
        ),
        InboxMark::Unread => ("read_time = NULL", "read_time IS NOT NULL"),
        InboxMark::Seen => ("seen_time = NOW", "seen_time IS NULL"),
    }
}

/// The inbox list's conditions after user and cursor, for a backend whose placeholder for
/// parameter n of SQL type t is `p(n, t)`: parameters n (read), n+1 (seen) and n+2 (code)
/// may each be NULL for "any".
pub(crate) fn inbox_filter_sql(p: impl Fn(usize, &str) -> String, n: usize) -> String {
    let (r, s, c) = (p(n, "boolean"), p(n + 1, "boolean"), p(n + 2, "integer"));
    format!(
        "({r} IS NULL OR {r} = (read_time IS NOT NULL)) \
         AND ({s} IS NULL OR {s} = (seen_time IS NOT NULL)) \
         AND ({c} IS NULL OR code = {c})"
    )
}
