-- Read and seen state (a Tidings extension; Nakama clients never see it). NULL = not yet.
-- The partial indexes hold only a user's unread (unseen) rows, so a count reads those and
-- nothing else, however large the read part of the inbox grows.
ALTER TABLE notification ADD COLUMN read_time BIGINT;
ALTER TABLE notification ADD COLUMN seen_time BIGINT;
CREATE INDEX notification_unread ON notification (user_id, code) WHERE read_time IS NULL;
CREATE INDEX notification_unseen ON notification (user_id) WHERE seen_time IS NULL;
