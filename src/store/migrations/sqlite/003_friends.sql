-- Friends and blocks, Nakama's user_edge: one row per direction, the source's view of the
-- destination. state: 0 friend, 1 invite sent, 2 invite received, 3 blocked. position (Unix
-- nanoseconds at creation, shared by both rows of a pair) orders a user's list within a state;
-- update_time is Unix seconds; metadata is the edge's JSON object text.
CREATE TABLE user_edge (
    source_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    destination_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state          INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    update_time    INTEGER NOT NULL,
    metadata       TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (source_id, destination_id)
) WITHOUT ROWID;

-- The friend list: a user's edges by state, then age.
CREATE UNIQUE INDEX user_edge_list ON user_edge (source_id, state, position, destination_id);
