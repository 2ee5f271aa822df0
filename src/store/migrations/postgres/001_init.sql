-- The whole schema for the PostgreSQL store, in Nakama's shape where it fits (NAKAMA-SPEC §8:
-- users, user_device, notification, user_edge, groups, group_edge, message) and with the
-- SQLite store's units, so both backends answer alike: times are Unix microseconds
-- (notification create_time, positions) or seconds (accounts, edges, groups), content and
-- metadata are JSON text exactly as sent.

CREATE TABLE users (
    id           UUID PRIMARY KEY,
    username     VARCHAR(128) NOT NULL UNIQUE,
    display_name VARCHAR(255) NOT NULL DEFAULT '',
    avatar_url   VARCHAR(512) NOT NULL DEFAULT '',
    lang_tag     VARCHAR(18) NOT NULL DEFAULT 'en',
    location     VARCHAR(255) NOT NULL DEFAULT '',
    timezone     VARCHAR(255) NOT NULL DEFAULT '',
    metadata     TEXT NOT NULL DEFAULT '{}',
    email        VARCHAR(255) UNIQUE,
    password     TEXT,
    custom_id    VARCHAR(128) UNIQUE,
    create_time  BIGINT NOT NULL,
    update_time  BIGINT NOT NULL,
    disable_time BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE user_device (
    id      VARCHAR(128) PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX user_device_user_id ON user_device (user_id);

CREATE TABLE session_revoked (
    token_id   UUID NOT NULL,
    refresh    BOOLEAN NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (token_id, refresh)
);

CREATE TABLE user_session_cutoff (
    user_id        UUID PRIMARY KEY,
    invalidated_at BIGINT NOT NULL
);

CREATE TABLE notification (
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    create_time BIGINT NOT NULL,
    id          UUID NOT NULL UNIQUE,
    subject     VARCHAR(255) NOT NULL,
    content     TEXT NOT NULL DEFAULT '{}',
    code        SMALLINT NOT NULL,
    sender_id   UUID NOT NULL,
    PRIMARY KEY (user_id, create_time, id)
);

-- The largest notification create_time handed out, shared by every node: an insert takes
-- the next values under this row's lock, so create_time is strictly increasing cluster-wide.
CREATE TABLE notification_clock (
    one  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    last BIGINT NOT NULL
);
INSERT INTO notification_clock (last) VALUES (0);

CREATE TABLE user_edge (
    source_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    destination_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state          SMALLINT NOT NULL,
    position       BIGINT NOT NULL,
    update_time    BIGINT NOT NULL,
    metadata       TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (source_id, destination_id)
);
CREATE INDEX user_edge_list ON user_edge (source_id, state, position, destination_id);

CREATE TABLE message (
    stream_mode       SMALLINT NOT NULL,
    stream_subject    UUID NOT NULL,
    stream_descriptor UUID NOT NULL,
    stream_label      VARCHAR(128) NOT NULL,
    create_time       BIGINT NOT NULL,
    id                UUID NOT NULL UNIQUE,
    code              SMALLINT NOT NULL DEFAULT 0,
    sender_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    username          VARCHAR(128) NOT NULL,
    content           TEXT NOT NULL,
    update_time       BIGINT NOT NULL,
    PRIMARY KEY (stream_mode, stream_subject, stream_descriptor, stream_label, create_time, id)
);

CREATE TABLE groups (
    id          UUID PRIMARY KEY,
    creator_id  UUID NOT NULL,
    name        VARCHAR(255) NOT NULL UNIQUE,
    description VARCHAR(255) NOT NULL DEFAULT '',
    avatar_url  VARCHAR(512) NOT NULL DEFAULT '',
    lang_tag    VARCHAR(18) NOT NULL DEFAULT 'en',
    metadata    TEXT NOT NULL DEFAULT '{}',
    open        BOOLEAN NOT NULL,
    edge_count  BIGINT NOT NULL CHECK (edge_count >= 0 AND edge_count <= max_count),
    max_count   BIGINT NOT NULL CHECK (max_count >= 1),
    position    BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);
CREATE UNIQUE INDEX groups_position ON groups (position, id);

CREATE TABLE group_edge (
    group_id UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state    SMALLINT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_edge_members ON group_edge (group_id, state, position);
CREATE INDEX group_edge_user ON group_edge (user_id, state, position);

CREATE TABLE user_social (
    provider  VARCHAR(64) NOT NULL,
    social_id VARCHAR(128) NOT NULL,
    user_id   UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, social_id)
);
CREATE UNIQUE INDEX user_social_user ON user_social (user_id, provider);
