-- Groups (Nakama's groups and group_edge). A group is open (anyone joins) or closed (joining
-- asks). Edge states: 0 superadmin, 1 admin, 2 member, 3 join request, 4 banned; edge_count
-- counts states 0..2 and never exceeds max_count. position (Unix microseconds at creation)
-- orders lists. Times are Unix seconds.
CREATE TABLE groups (
    id          BLOB PRIMARY KEY NOT NULL,
    creator_id  BLOB NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    avatar_url  TEXT NOT NULL DEFAULT '',
    lang_tag    TEXT NOT NULL DEFAULT 'en',
    metadata    TEXT NOT NULL DEFAULT '{}',
    open        INTEGER NOT NULL,
    edge_count  INTEGER NOT NULL CHECK (edge_count >= 0 AND edge_count <= max_count),
    max_count   INTEGER NOT NULL CHECK (max_count >= 1),
    position    INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX groups_position ON groups (position, id);

CREATE TABLE group_edge (
    group_id BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state    INTEGER NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX group_edge_members ON group_edge (group_id, state, position);
CREATE INDEX group_edge_user ON group_edge (user_id, state, position);
