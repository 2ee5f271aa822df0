//! Accounts: authenticate by device, custom id or email (creating on first use), refresh,
//! and reading one's own account. Validation messages are Nakama's, word for word.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rand::Rng;
use uuid::Uuid;

use super::error::{Code, CoreError, CoreResult};
use super::notifications::Notifications;
use super::presence::CODE_BANNED;
use super::sessions::{Sessions, Tokens};
use super::store::{NewIdentity, Store, StoreError, UserRecord};
use super::time::now_secs;

/// bcrypt work factor; Nakama uses Go's default cost of 10.
const BCRYPT_COST: u32 = 10;
/// Most users one lookup may ask for.
pub const MAX_LOOKUP: usize = 1000;

/// Options every authenticate call shares.
#[derive(Debug, Clone, Default)]
pub struct AuthOptions {
    /// Create the account if it does not exist (Nakama's default is true).
    pub create: bool,
    /// Username for a new account; empty means a random one.
    pub username: String,
    pub vars: BTreeMap<String, String>,
}

/// Result of an authenticate call.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub tokens: Tokens,
    pub created: bool,
    pub user_id: Uuid,
}

/// A user's own account view.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: UserRecord,
    pub devices: Vec<String>,
}

pub struct Accounts {
    store: Arc<dyn Store>,
    sessions: Arc<Sessions>,
    /// To end a banned user's sockets with -8.
    notifications: Arc<Notifications>,
}

fn has_space_or_control(s: &str) -> bool {
    s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn check_username(username: &str) -> CoreResult<()> {
    if has_space_or_control(username) {
        return Err(CoreError::invalid(
            "Username invalid, no spaces or control characters allowed.",
        ));
    }
    if username.len() > 128 {
        return Err(CoreError::invalid("Username invalid, must be 1-128 bytes."));
    }
    Ok(())
}

fn check_id(id: &str, kind: &str, min: usize) -> CoreResult<()> {
    if id.is_empty() {
        return Err(CoreError::invalid(format!("{kind} is required.")));
    }
    if has_space_or_control(id) {
        return Err(CoreError::invalid(format!(
            "{kind} invalid, no spaces or control characters allowed."
        )));
    }
    if id.len() < min || id.len() > 128 {
        return Err(CoreError::invalid(format!(
            "{kind} invalid, must be {min}-128 bytes."
        )));
    }
    Ok(())
}

fn random_username() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..10)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn looks_like_email(email: &str) -> bool {
    // Nakama's `.+@.+\..+`.
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain
                    .char_indices()
                    .any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len())
        }
        None => false,
    }
}

fn internal(e: StoreError) -> CoreError {
    CoreError::internal("Error finding or creating user account.", e)
}

fn banned() -> CoreError {
    CoreError::new(Code::PermissionDenied, "User account banned.")
}

fn not_found() -> CoreError {
    CoreError::not_found("User account not found.")
}

async fn bcrypt_hash(password: String) -> CoreResult<String> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, BCRYPT_COST))
        .await
        .map_err(|e| CoreError::internal("Error creating user account.", e))?
        .map_err(|e| CoreError::internal("Error creating user account.", e))
}

async fn bcrypt_verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false)
}

impl Accounts {
    pub fn new(
        store: Arc<dyn Store>,
        sessions: Arc<Sessions>,
        notifications: Arc<Notifications>,
    ) -> Self {
        Accounts {
            store,
            sessions,
            notifications,
        }
    }

    /// Bans users (Nakama's BanUsers): they cannot authenticate again (403 "User account
    /// banned."), every token they hold stops working, and each open socket gets the -8
    /// notification and closes. Unknown ids are ignored.
    pub async fn ban(&self, ids: &[Uuid]) -> CoreResult<()> {
        self.check_lookup(ids)?;
        self.store
            .set_disable_time(ids.to_vec(), now_secs().max(1))
            .await
            .map_err(|e| {
                CoreError::internal("An error occurred while trying to ban the user.", e)
            })?;
        for id in ids {
            self.sessions.invalidate_user(*id).await?;
            self.notifications
                .disconnect(*id, CODE_BANNED, "banned", None);
        }
        Ok(())
    }

    /// Lifts bans: the users may authenticate again. Tokens from before the ban stay dead.
    pub async fn unban(&self, ids: &[Uuid]) -> CoreResult<()> {
        self.check_lookup(ids)?;
        self.store
            .set_disable_time(ids.to_vec(), 0)
            .await
            .map_err(|e| {
                CoreError::internal("An error occurred while trying to unban the user.", e)
            })
    }

    fn check_lookup(&self, ids: &[Uuid]) -> CoreResult<()> {
        if ids.len() > MAX_LOOKUP {
            return Err(CoreError::invalid(format!("at most {MAX_LOOKUP} user ids")));
        }
        Ok(())
    }

    pub async fn authenticate_device(
        &self,
        device_id: &str,
        opts: AuthOptions,
    ) -> CoreResult<Authenticated> {
        check_id(device_id, "Device ID", 10)?;
        let existing = self
            .store
            .user_by_device(device_id)
            .await
            .map_err(internal)?;
        self.finish(existing, NewIdentity::Device(device_id.to_string()), opts)
            .await
    }

    pub async fn authenticate_custom(
        &self,
        custom_id: &str,
        opts: AuthOptions,
    ) -> CoreResult<Authenticated> {
        check_id(custom_id, "Custom ID", 6)?;
        let existing = self
            .store
            .user_by_custom_id(custom_id)
            .await
            .map_err(internal)?;
        self.finish(existing, NewIdentity::Custom(custom_id.to_string()), opts)
            .await
    }

    /// Email and password; with no email, logs in by username and password instead.
    pub async fn authenticate_email(
        &self,
        email: &str,
        password: &str,
        opts: AuthOptions,
    ) -> CoreResult<Authenticated> {
        let by_username = email.is_empty();
        if !by_username {
            if has_space_or_control(email) {
                return Err(CoreError::invalid(
                    "Invalid email address, no spaces or control characters allowed.",
                ));
            }
            if !looks_like_email(email) {
                return Err(CoreError::invalid("Invalid email address format."));
            }
            if email.len() < 10 || email.len() > 255 {
                return Err(CoreError::invalid(
                    "Invalid email address, must be 10-255 bytes.",
                ));
            }
        }
        if password.chars().count() < 8 {
            return Err(CoreError::invalid(
                "Password must be at least 8 characters long.",
            ));
        }
        if by_username {
            if opts.username.is_empty() {
                return Err(CoreError::invalid(
                    "Username is required when email address is not supplied.",
                ));
            }
            check_username(&opts.username)?;
            let user = self
                .store
                .user_by_username(&opts.username)
                .await
                .map_err(internal)?
                .ok_or_else(not_found)?;
            return self.login_with_password(user, password, opts.vars).await;
        }
        let email = email.to_lowercase();
        if let Some(user) = self.store.user_by_email(&email).await.map_err(internal)? {
            return self.login_with_password(user, password, opts.vars).await;
        }
        let hash = bcrypt_hash(password.to_string()).await?;
        self.finish(
            None,
            NewIdentity::Email {
                email,
                password_hash: hash,
            },
            opts,
        )
        .await
    }

    async fn login_with_password(
        &self,
        user: UserRecord,
        password: &str,
        vars: BTreeMap<String, String>,
    ) -> CoreResult<Authenticated> {
        let Some(hash) = user.password_hash.clone() else {
            return Err(CoreError::unauthenticated("Invalid credentials."));
        };
        if !bcrypt_verify(password.to_string(), hash).await {
            return Err(CoreError::unauthenticated("Invalid credentials."));
        }
        if user.disable_time > 0 {
            return Err(banned());
        }
        Ok(Authenticated {
            tokens: self.sessions.issue(user.id, &user.username, vars)?,
            created: false,
            user_id: user.id,
        })
    }

    /// Logs in an existing user, or creates one with `identity` when allowed.
    async fn finish(
        &self,
        existing: Option<UserRecord>,
        identity: NewIdentity,
        opts: AuthOptions,
    ) -> CoreResult<Authenticated> {
        if let Some(user) = existing {
            if user.disable_time > 0 {
                return Err(banned());
            }
            return Ok(Authenticated {
                tokens: self.sessions.issue(user.id, &user.username, opts.vars)?,
                created: false,
                user_id: user.id,
            });
        }
        if !opts.create {
            return Err(not_found());
        }
        let username = if opts.username.is_empty() {
            random_username()
        } else {
            check_username(&opts.username)?;
            opts.username.clone()
        };
        let created = self
            .store
            .create_user(Uuid::new_v4(), &username, identity.clone(), now_secs())
            .await;
        match created {
            Ok(user) => Ok(Authenticated {
                tokens: self.sessions.issue(user.id, &user.username, opts.vars)?,
                created: true,
                user_id: user.id,
            }),
            Err(StoreError::Conflict("username")) => Err(CoreError::new(
                Code::AlreadyExists,
                "Username is already in use.",
            )),
            Err(StoreError::Conflict(_)) => {
                // Someone created the same identity concurrently: log in as that account.
                let found = match &identity {
                    NewIdentity::Device(id) => self.store.user_by_device(id).await,
                    NewIdentity::Custom(id) => self.store.user_by_custom_id(id).await,
                    NewIdentity::Email { email, .. } => self.store.user_by_email(email).await,
                }
                .map_err(internal)?
                .ok_or_else(not_found)?;
                if found.disable_time > 0 {
                    return Err(banned());
                }
                Ok(Authenticated {
                    tokens: self.sessions.issue(found.id, &found.username, opts.vars)?,
                    created: false,
                    user_id: found.id,
                })
            }
            Err(e) => Err(internal(e)),
        }
    }

    /// Exchanges a refresh token for a new pair (NAKAMA-SPEC §7.3).
    pub async fn refresh(
        &self,
        refresh_token: &str,
        vars: Option<BTreeMap<String, String>>,
    ) -> CoreResult<Tokens> {
        if refresh_token.is_empty() {
            return Err(CoreError::invalid("Refresh token is required."));
        }
        let old = self.sessions.verify_refresh(refresh_token)?;
        let user = self
            .store
            .user_by_id(old.user_id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        if user.disable_time > 0 {
            return Err(banned());
        }
        self.sessions.refreshed(&old, &user.username, vars)
    }

    /// One user's account (the caller's own over REST; any user's from a script).
    pub async fn account(&self, user_id: Uuid) -> CoreResult<Account> {
        let user = self
            .store
            .user_by_id(user_id)
            .await
            .map_err(|e| CoreError::internal("Error retrieving user account.", e))?
            .ok_or_else(not_found)?;
        let devices = self
            .store
            .devices_of(user.id)
            .await
            .map_err(|e| CoreError::internal("Error retrieving user account.", e))?;
        Ok(Account { user, devices })
    }

    /// The admin console's user search: an exact user id, device id, custom id or email
    /// first, then usernames starting with `query`, a page of at most `limit` (1..100) after
    /// the username `cursor`. Returns the users and the cursor of the next page, if any.
    pub async fn search(
        &self,
        query: &str,
        cursor: &str,
        limit: usize,
    ) -> CoreResult<(Vec<UserRecord>, Option<String>)> {
        if !(1..=100).contains(&limit) {
            return Err(CoreError::invalid("limit must be between 1 and 100"));
        }
        let failed = |e| CoreError::internal("Error searching users.", e);
        let query = query.trim();
        let mut found: Vec<UserRecord> = Vec::new();
        if cursor.is_empty() && !query.is_empty() {
            let exact = match Uuid::parse_str(query) {
                Ok(id) => self.store.user_by_id(id).await,
                Err(_) => Ok(None),
            };
            for user in [
                exact,
                self.store.user_by_device(query).await,
                self.store.user_by_custom_id(query).await,
                self.store.user_by_email(query).await,
            ] {
                if let Some(user) = user.map_err(failed)? {
                    if !found.iter().any(|u| u.id == user.id) {
                        found.push(user);
                    }
                }
            }
        }
        let page = self
            .store
            .users_by_username_prefix(query, cursor, limit)
            .await
            .map_err(failed)?;
        let next = (page.len() == limit)
            .then(|| page.last().map(|u| u.username.clone()))
            .flatten();
        for user in page {
            if !found.iter().any(|u| u.id == user.id) {
                found.push(user);
            }
        }
        Ok((found, next))
    }

    /// Users by username; unknown names are skipped.
    pub async fn users_by_username(&self, names: &[String]) -> CoreResult<Vec<UserRecord>> {
        if names.len() > MAX_LOOKUP {
            return Err(CoreError::invalid(format!(
                "at most {MAX_LOOKUP} usernames"
            )));
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(user) = self
                .store
                .user_by_username(name)
                .await
                .map_err(|e| CoreError::internal("Error retrieving users.", e))?
            {
                out.push(user);
            }
        }
        Ok(out)
    }

    /// Users by id, for scripts and later social features. Unknown ids are skipped.
    /// The accounts of `ids` and of the owners of `devices` (`nk.accounts_get_id`), each once,
    /// in that order; unknown ids and devices are skipped.
    pub async fn accounts(&self, ids: &[Uuid], devices: &[String]) -> CoreResult<Vec<Account>> {
        if devices.len() > MAX_LOOKUP {
            return Err(CoreError::invalid(format!(
                "at most {MAX_LOOKUP} device ids"
            )));
        }
        let mut users = self.users(ids).await?;
        for device in devices {
            let owner = self
                .store
                .user_by_device(device)
                .await
                .map_err(|e| CoreError::internal("Error retrieving users.", e))?;
            users.extend(owner);
        }
        let mut seen = HashSet::new();
        users.retain(|u| seen.insert(u.id));
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            let devices = self
                .store
                .devices_of(user.id)
                .await
                .map_err(|e| CoreError::internal("Error retrieving user account.", e))?;
            out.push(Account { user, devices });
        }
        Ok(out)
    }

    pub async fn users(&self, ids: &[Uuid]) -> CoreResult<Vec<UserRecord>> {
        if ids.len() > MAX_LOOKUP {
            return Err(CoreError::invalid(format!("at most {MAX_LOOKUP} user ids")));
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(user) = self
                .store
                .user_by_id(*id)
                .await
                .map_err(|e| CoreError::internal("Error retrieving users.", e))?
            {
                out.push(user);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages() {
        let check = |id: &str, msg: &str| {
            assert_eq!(
                check_id(id, "Device ID", 10).unwrap_err().message,
                msg,
                "{id:?}"
            );
        };
        check("", "Device ID is required.");
        check("short", "Device ID invalid, must be 10-128 bytes.");
        check(&"x".repeat(129), "Device ID invalid, must be 10-128 bytes.");
        check(
            "has space in it",
            "Device ID invalid, no spaces or control characters allowed.",
        );
        assert!(check_id("0123456789", "Device ID", 10).is_ok());
        assert!(looks_like_email("a@b.co"));
        assert!(!looks_like_email("ab.co"));
        assert!(!looks_like_email("a@bco"));
        assert_eq!(random_username().len(), 10);
        assert!(check_username(&"u".repeat(129)).is_err());
        assert!(check_username("a b").is_err());
    }
}
