-- Several nodes on one database: each notification row names the node that committed it,
-- so a node catching up after a wake-up (or a missed one) reads only other nodes' rows, in
-- create_time order; pushed-only notifications travel through bus_outbox, whose row id is
-- all a NOTIFY payload carries (never near PostgreSQL's 8000-byte limit).
ALTER TABLE notification ADD COLUMN origin VARCHAR(128) NOT NULL DEFAULT '';
CREATE INDEX notification_create_time ON notification (create_time);

CREATE TABLE bus_outbox (
    id      BIGSERIAL PRIMARY KEY,
    payload TEXT NOT NULL,
    created BIGINT NOT NULL
);
