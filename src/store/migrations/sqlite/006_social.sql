-- Social accounts linked to users (Facebook, Steam, ...): one provider id per user and
-- provider, used to find a player's friends among existing users on a friend import.
CREATE TABLE user_social (
    provider  TEXT NOT NULL,
    social_id TEXT NOT NULL,
    user_id   BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, social_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX user_social_user ON user_social (user_id, provider);
