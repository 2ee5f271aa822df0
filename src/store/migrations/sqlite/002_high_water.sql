-- The largest notification create_time handed out, so a restarted writer continues strictly
-- above it without scanning the notification table (max(create_time) is not a key prefix:
-- a full scan took ~100 ms at 1M rows and delayed start-up).
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO store_meta (key, value)
SELECT 'last_create_time', coalesce(max(create_time), 0) FROM notification;
