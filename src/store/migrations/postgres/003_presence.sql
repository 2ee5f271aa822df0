-- Who is online where. Each node heartbeats its row in cluster_node and keeps its own
-- presences in cluster_presence: one row per socket (stream '') and per chat channel
-- membership (stream = the channel id). Readers count only nodes whose heartbeat is recent,
-- and any node deletes the rows of nodes silent for longer than the timeout (the cascade
-- takes their presences), so a crashed node's players do not stay online.
CREATE TABLE cluster_node (
    node         VARCHAR(128) PRIMARY KEY,
    name         VARCHAR(128) NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE cluster_presence (
    stream      VARCHAR(512) NOT NULL,
    session_id  UUID NOT NULL,
    node        VARCHAR(128) NOT NULL REFERENCES cluster_node (node) ON DELETE CASCADE,
    user_id     UUID NOT NULL,
    username    VARCHAR(128) NOT NULL,
    persistence BOOLEAN NOT NULL DEFAULT FALSE,
    hidden      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (stream, session_id)
);
CREATE INDEX cluster_presence_online ON cluster_presence (user_id) WHERE stream = '';
CREATE INDEX cluster_presence_node ON cluster_presence (node);
