//! Storage backends implementing `core::store::Store`. The only place that writes SQL.

pub mod sqlite;

pub use sqlite::SqliteStore;
