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
/// A user's columns, ending with the given `edge_count` expression.
macro_rules! user_cols {
    ($edge_count:literal) => {
        concat!(
            "u.id, u.username, u.display_name, u.avatar_url, u.lang_tag, u.location, ",
            "u.timezone, u.metadata, u.email, u.password, u.custom_id, u.create_time, ",
            "u.update_time, u.disable_time, ",
            $edge_count
        )
    };
}
/// How many columns [`USER_COLS`] and [`FRIEND_USER_COLS`] select: a query's own columns
/// after them start here.
pub(crate) const USER_COL_COUNT: usize = 15;
pub(crate) const USER_COLS: &str =
    user_cols!("(SELECT count(*) FROM user_edge ue WHERE ue.source_id = u.id)");
/// A friend list's users: Nakama's friend queries never read `edge_count`, so it is 0 there.
pub(crate) const FRIEND_USER_COLS: &str = user_cols!("CAST(0 AS BIGINT)");
pub(crate) const NOTIFICATION_COLS: &str =
    "id, user_id, subject, content, code, sender_id, create_time, expire_time";
/// An inbox item's columns: a notification's, then read_time, seen_time and its sequence.
pub(crate) const INBOX_COLS: &str = "id, user_id, subject, content, code, sender_id, \
    create_time, expire_time, read_time, seen_time, coalesce(change_seq, create_time)";
/// One of a user's inbox ranges after a sequence, ordered by `column`: `create_time` (rows
/// created after it) or `change_seq` (rows changed after it), read from `table` (with an
/// index hint where the backend needs one). Parameters: user 1, since 2, limit 3, now 4, as
/// the backend writes them with `p`.
pub(crate) fn changes_range_sql(table: &str, column: &str, p: impl Fn(usize) -> String) -> String {
    format!(
        "SELECT {INBOX_COLS} FROM {table} WHERE user_id = {} AND {column} > {} AND {} \
         ORDER BY {column} LIMIT {}",
        p(1),
        p(2),
        live_sql(&p(4)),
        p(3)
    )
}

/// The inbox columns of [`broadcast_rows_sql`]'s rows, in `INBOX_COLS` order.
pub(crate) const BROADCAST_INBOX_COLS: &str = "id, user_id, subject, content, code, sender_id, \
    create_time, expire_time, read_time, seen_time, seq";

/// A user's broadcasts as inbox rows: the columns of [`BROADCAST_INBOX_COLS`] plus `gone`
/// (1: hidden by this user, kept for sync); `id` is the broadcast's, not the user's copy's, for a backend whose
/// placeholder for the user is `u` (typed), for the time `now`, and whose n-ary maximum is
/// `greatest`. A user sees the live broadcasts sent since their account was created.
pub(crate) fn broadcast_rows_sql(u: &str, now: &str, greatest: &str) -> String {
    format!(
        "SELECT b.id AS id, {u} AS user_id, b.subject AS subject, b.content AS content, \
         b.code AS code, b.sender_id AS sender_id, b.create_time AS create_time, \
         b.expire_time AS expire_time, s.read_time AS read_time, s.seen_time AS seen_time, \
         {greatest}(coalesce(b.change_seq, b.create_time), coalesce(s.change_seq, 0)) AS seq, \
         CASE WHEN s.hidden = 1 THEN 1 ELSE 0 END AS gone \
         FROM notification_broadcast b LEFT JOIN notification_broadcast_state s \
         ON s.user_id = {u} AND s.broadcast_id = b.id \
         WHERE b.create_time >= (SELECT create_time * 1000000 FROM users WHERE id = {u}) \
         AND (b.expire_time IS NULL OR b.expire_time > {now})"
    )
}

/// The broadcasts a user sees now (not hidden, not deleted, not expired), as a flat query
/// over the inbox columns in `INBOX_COLS` order, open for more `AND` conditions (on `b.` and
/// `s.` columns): the lists' form, which SQLite runs about three times faster than a query
/// over [`broadcast_rows_sql`] as a derived table.
pub(crate) fn visible_broadcasts_sql(u: &str, now: &str, greatest: &str) -> String {
    format!(
        "SELECT b.id, {u}, b.subject, b.content, b.code, b.sender_id, b.create_time, \
         b.expire_time, s.read_time, s.seen_time, \
         {greatest}(coalesce(b.change_seq, b.create_time), coalesce(s.change_seq, 0)) \
         FROM notification_broadcast b LEFT JOIN notification_broadcast_state s \
         ON s.user_id = {u} AND s.broadcast_id = b.id \
         WHERE coalesce(s.hidden, 0) = 0 AND b.create_time >= (SELECT create_time * 1000000 FROM users WHERE id = {u}) \
         AND (b.expire_time IS NULL OR b.expire_time > {now})"
    )
}

/// The read and seen values a mark gives a broadcast row `bx` (with `NOW` for the time
/// parameter), matching [`mark_sql`].
pub(crate) fn broadcast_mark_values(
    mark: crate::core::store::InboxMark,
) -> (&'static str, &'static str) {
    use crate::core::store::InboxMark;
    match mark {
        InboxMark::Read => ("NOW", "coalesce(bx.seen_time, NOW)"),
        InboxMark::Unread => ("CAST(NULL AS BIGINT)", "bx.seen_time"),
        InboxMark::Seen => ("bx.read_time", "NOW"),
    }
}

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
