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
    "id, user_id, subject, content, code, sender_id, create_time";
pub(crate) const GROUP_COLS: &str =
    "g.id, g.creator_id, g.name, g.description, g.avatar_url, g.lang_tag, \
    g.metadata, g.open, g.edge_count, g.max_count, g.create_time, g.update_time, g.position";
