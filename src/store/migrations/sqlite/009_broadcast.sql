-- Broadcasts (inbox extension): a persistent notification_send_all is one row here, not one
-- row per user. Every user who existed when it was sent (users.create_time, in seconds, at or
-- before its create_time) sees it in their list, at its place in create_time order, with their
-- own read/seen state and their own delete in notification_broadcast_state (written only when
-- the user acts on it). create_time and change_seq come from the same clock as the
-- notification table's, so lists and sync pages interleave both.
-- As in Nakama, each user's copy has an id of its own: the broadcast's first 8 bytes (key)
-- followed by the user id's first 8 (core::store::broadcast_copy_id), so a copy's id leads
-- back to both without a row per user.
CREATE TABLE notification_broadcast (
    create_time INTEGER PRIMARY KEY NOT NULL,
    id          BLOB NOT NULL UNIQUE,
    key         BLOB NOT NULL UNIQUE,
    subject     TEXT NOT NULL CHECK (length(subject) <= 255),
    content     TEXT NOT NULL DEFAULT '{}',
    code        INTEGER NOT NULL CHECK (code BETWEEN -32768 AND 32767),
    sender_id   BLOB NOT NULL,
    expire_time INTEGER,
    change_seq  INTEGER,
    origin      TEXT NOT NULL DEFAULT ''
);
CREATE TABLE notification_broadcast_state (
    user_id      BLOB NOT NULL,
    broadcast_id BLOB NOT NULL,
    read_time    INTEGER,
    seen_time    INTEGER,
    hidden       INTEGER NOT NULL DEFAULT 0,
    change_seq   INTEGER NOT NULL,
    PRIMARY KEY (user_id, broadcast_id)
) WITHOUT ROWID;
