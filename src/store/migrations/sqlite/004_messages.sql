-- Chat messages, Nakama's message table: a channel is a stream (mode 2 room: label = name;
-- mode 4 direct: subject and descriptor the two user ids in order). Times are Unix
-- microseconds; content is a JSON object as text.
CREATE TABLE message (
    stream_mode       INTEGER NOT NULL,
    stream_subject    BLOB NOT NULL,
    stream_descriptor BLOB NOT NULL,
    stream_label      TEXT NOT NULL,
    create_time       INTEGER NOT NULL,
    id                BLOB NOT NULL,
    code              INTEGER NOT NULL DEFAULT 0,
    sender_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    username          TEXT NOT NULL,
    content           TEXT NOT NULL,
    update_time       INTEGER NOT NULL,
    PRIMARY KEY (stream_mode, stream_subject, stream_descriptor, stream_label, create_time, id)
) WITHOUT ROWID;
