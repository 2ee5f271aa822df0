-- Gap-free sync (inbox extension). Every change to a user's inbox takes a sequence number
-- from the same strictly increasing clock as create_time: an insert's is its create_time, a
-- later update or read/seen change sets change_seq, a delete leaves a tombstone. "What changed
-- after S" is then three short index ranges: rows created after S (primary key), rows changed
-- after S (the partial index, which holds only changed rows, so inserts pay nothing for it),
-- and tombstones after S.
ALTER TABLE notification ADD COLUMN change_seq BIGINT;
CREATE INDEX notification_changed ON notification (user_id, change_seq) WHERE change_seq IS NOT NULL;
CREATE TABLE notification_tombstone (
    user_id UUID NOT NULL,
    seq     BIGINT NOT NULL,
    id      UUID NOT NULL,
    PRIMARY KEY (user_id, seq, id)
);
CREATE INDEX notification_tombstone_seq ON notification_tombstone (seq);
-- A client whose last sequence is below its user's floor may have missed something that left
-- no tombstone (a retention purge, or tombstones pruned after the sync window): it must resync.
CREATE TABLE inbox_sync_floor (
    user_id UUID PRIMARY KEY NOT NULL,
    seq     BIGINT NOT NULL
);
