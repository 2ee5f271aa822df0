//! Storage backends implementing `core::store::Store`. The only place that writes SQL.
//! SQLite (embedded, the default) for one node; PostgreSQL for several nodes sharing one
//! database.

pub mod pg_bus;
pub mod postgres;
pub mod sqlite;

pub use pg_bus::PgBus;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
