-- Accounts, revoked sessions and notifications. Ids are 16-byte UUID blobs: half the size of
-- text, and their byte order is the order PostgreSQL gives UUIDs, so cursors compare alike.

CREATE TABLE users (
    id           BLOB PRIMARY KEY NOT NULL,
    username     TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    avatar_url   TEXT NOT NULL DEFAULT '',
    lang_tag     TEXT NOT NULL DEFAULT 'en',
    location     TEXT NOT NULL DEFAULT '',
    timezone     TEXT NOT NULL DEFAULT '',
    metadata     TEXT NOT NULL DEFAULT '{}',
    email        TEXT UNIQUE,
    password     TEXT,
    custom_id    TEXT UNIQUE,
    create_time  INTEGER NOT NULL,
    update_time  INTEGER NOT NULL,
    disable_time INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE user_device (
    id      TEXT PRIMARY KEY NOT NULL,
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX user_device_user_id ON user_device (user_id);

-- Logged-out token ids (refresh = 1 for refresh tokens), kept until the token expires anyway.
CREATE TABLE session_revoked (
    token_id   BLOB NOT NULL,
    refresh    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (token_id, refresh)
) WITHOUT ROWID;

-- "Log out everywhere": tokens of the user issued at or before invalidated_at are dead.
CREATE TABLE user_session_cutoff (
    user_id        BLOB PRIMARY KEY NOT NULL,
    invalidated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- A user's inbox is one contiguous range of the primary key, in list order, so a page is a
-- short sequential read. create_time is unix microseconds, strictly increasing per insert.
CREATE TABLE notification (
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    create_time INTEGER NOT NULL,
    id          BLOB NOT NULL UNIQUE,
    subject     TEXT NOT NULL CHECK (length(subject) <= 255),
    content     TEXT NOT NULL DEFAULT '{}',
    code        INTEGER NOT NULL CHECK (code BETWEEN -32768 AND 32767),
    sender_id   BLOB NOT NULL,
    PRIMARY KEY (user_id, create_time, id)
) WITHOUT ROWID;
