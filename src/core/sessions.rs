//! Session and refresh tokens (HS256 JWTs with Nakama's claims) and their revocation.
//!
//! Tokens are stateless; revocation is a deny list kept in memory for the per-request check and
//! written through to the store so it survives restarts. Two kinds, as in Nakama: a revoked
//! token id (logout), and a per-user "invalidated at" time (logout of every session) that kills
//! every token issued before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::cluster::{tell, Bus, ClusterEvent};
use super::error::{CoreError, CoreResult};
use super::store::{RevokedToken, Store};
use super::time::now_secs;

pub const TOKEN_INVALID: &str = "Auth token invalid";
pub const REFRESH_INVALID: &str = "Refresh token invalid or expired.";

/// Session settings core needs (a slice of `config::SessionConfig`).
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub encryption_key: String,
    pub refresh_encryption_key: String,
    pub token_expiry_sec: i64,
    pub refresh_token_expiry_sec: i64,
}

/// The JWT payload, field order and omission as Nakama writes it (NAKAMA-SPEC §7.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    tid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    usn: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    vrs: BTreeMap<String, String>,
    exp: i64,
    #[serde(default)]
    iat: i64,
}

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user_id: Uuid,
    pub username: String,
    pub vars: BTreeMap<String, String>,
    pub token_id: Uuid,
    /// Unix seconds.
    pub expires_at: i64,
    pub issued_at: i64,
}

/// A session token and its refresh token.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub token: String,
    pub refresh_token: String,
}

pub struct Sessions {
    settings: SessionSettings,
    store: Arc<dyn Store>,
    /// (token id, is refresh) -> expiry. std Mutex: lookups only, never across an await.
    revoked: Mutex<HashMap<(Uuid, bool), i64>>,
    /// user -> unix seconds before which every token of theirs is invalid.
    invalidated: Mutex<HashMap<Uuid, i64>>,
    /// Tells other nodes to reload revocations after a logout or ban.
    bus: Arc<dyn Bus>,
    /// Tokens already verified ([`Verified`]).
    verified: Verified,
}

/// Tokens whose signature and claims were verified, by their exact text (and whether they
/// are refresh tokens), so a client's every request does not redo the HMAC, base64 and JSON
/// of its token: 6 % of the server's CPU in an online send over REST (BENCHMARKS.md, eighth
/// session). Expiry is still checked at each use, and revocations after it, as before. At
/// most [`Verified::MAX`] entries; a full map is emptied (sessions re-verify once).
/// Index 0 holds session tokens, 1 refresh tokens.
#[derive(Default)]
struct Verified([Mutex<HashMap<String, SessionUser>>; 2]);

impl Verified {
    const MAX: usize = 10_000;

    fn get_or_parse(&self, token: &str, refresh: bool, key: &str) -> Option<SessionUser> {
        let tokens = &self.0[usize::from(refresh)];
        let cached = lock(tokens).get(token).cloned();
        let user = match cached {
            Some(user) => user,
            None => {
                let user = parse_token(token, key)?;
                let mut map = lock(tokens);
                if map.len() >= Self::MAX {
                    map.clear();
                }
                map.insert(token.to_string(), user.clone());
                user
            }
        };
        // As jsonwebtoken's check, with no leeway: valid through the second `exp` names.
        (now_secs() <= user.expires_at).then_some(user)
    }
}

impl Sessions {
    pub async fn load(
        store: Arc<dyn Store>,
        settings: SessionSettings,
        bus: Arc<dyn Bus>,
    ) -> CoreResult<Sessions> {
        let (tokens, users) = store
            .load_revocations(now_secs())
            .await
            .map_err(|e| CoreError::internal("Could not load revoked sessions.", e))?;
        Ok(Sessions {
            settings,
            store,
            revoked: Mutex::new(
                tokens
                    .into_iter()
                    .map(|t| ((t.token_id, t.refresh), t.expires_at))
                    .collect(),
            ),
            invalidated: Mutex::new(users.into_iter().collect()),
            bus,
            verified: Verified::default(),
        })
    }

    /// Reloads the revocations from the store (another node logged someone out or banned).
    pub async fn reload(&self) -> CoreResult<()> {
        let (tokens, users) = self
            .store
            .load_revocations(now_secs())
            .await
            .map_err(|e| CoreError::internal("Could not load revoked sessions.", e))?;
        *lock(&self.revoked) = tokens
            .into_iter()
            .map(|t| ((t.token_id, t.refresh), t.expires_at))
            .collect();
        *lock(&self.invalidated) = users.into_iter().collect();
        Ok(())
    }

    pub fn token_expiry_sec(&self) -> i64 {
        self.settings.token_expiry_sec
    }

    /// Issues a fresh pair with a new token id.
    pub fn issue(
        &self,
        user_id: Uuid,
        username: &str,
        vars: BTreeMap<String, String>,
    ) -> CoreResult<Tokens> {
        // A token must be issued strictly after the user's last "log out everywhere", which
        // kills tokens issued up to and including that second (see `invalidate_user`).
        let cutoff = lock(&self.invalidated).get(&user_id).copied();
        let iat = cutoff.map_or(now_secs(), |at| now_secs().max(at + 1));
        self.issue_with(Uuid::new_v4(), iat, user_id, username, vars)
    }

    /// Issues a pair for an existing token id and issue time (refresh keeps both).
    fn issue_with(
        &self,
        tid: Uuid,
        iat: i64,
        user_id: Uuid,
        username: &str,
        vars: BTreeMap<String, String>,
    ) -> CoreResult<Tokens> {
        let now = now_secs();
        let mut claims = Claims {
            tid: tid.to_string(),
            uid: user_id.to_string(),
            usn: username.to_string(),
            vrs: vars,
            exp: now + self.settings.token_expiry_sec,
            iat,
        };
        let token = sign(&claims, &self.settings.encryption_key)?;
        claims.exp = now + self.settings.refresh_token_expiry_sec;
        let refresh_token = sign(&claims, &self.settings.refresh_encryption_key)?;
        Ok(Tokens {
            token,
            refresh_token,
        })
    }

    /// Checks a session token: signature, expiry, and that it was not revoked.
    pub fn verify(&self, token: &str) -> CoreResult<SessionUser> {
        self.check(token, false)
            .ok_or_else(|| CoreError::unauthenticated(TOKEN_INVALID))
    }

    /// Checks a refresh token the same way.
    pub fn verify_refresh(&self, token: &str) -> CoreResult<SessionUser> {
        self.check(token, true)
            .ok_or_else(|| CoreError::unauthenticated(REFRESH_INVALID))
    }

    fn check(&self, token: &str, refresh: bool) -> Option<SessionUser> {
        let key = if refresh {
            &self.settings.refresh_encryption_key
        } else {
            &self.settings.encryption_key
        };
        let user = self.verified.get_or_parse(token, refresh, key)?;
        let revoked = lock(&self.revoked).contains_key(&(user.token_id, refresh));
        let cutoff = lock(&self.invalidated).get(&user.user_id).copied();
        if revoked || cutoff.is_some_and(|at| user.issued_at <= at) {
            return None;
        }
        Some(user)
    }

    /// A new pair for a valid refresh token: same token id and issue time, new expiries,
    /// the username as the store has it now, and `vars` replaced when given.
    pub fn refreshed(
        &self,
        old: &SessionUser,
        username: &str,
        vars: Option<BTreeMap<String, String>>,
    ) -> CoreResult<Tokens> {
        let vars = vars.unwrap_or_else(|| old.vars.clone());
        self.issue_with(old.token_id, old.issued_at, old.user_id, username, vars)
    }

    /// Logs out: the given tokens (which must be the caller's), or every session of the user
    /// when neither is given.
    pub async fn logout(
        &self,
        caller: &SessionUser,
        token: Option<&str>,
        refresh_token: Option<&str>,
    ) -> CoreResult<()> {
        self.logout_user(caller.user_id, token, refresh_token).await
    }

    /// [`Sessions::logout`] for `user_id`, whoever asks (`nk.session_logout`).
    pub async fn logout_user(
        &self,
        user_id: Uuid,
        token: Option<&str>,
        refresh_token: Option<&str>,
    ) -> CoreResult<()> {
        let mut revoke = Vec::new();
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            match parse_token(token, &self.settings.encryption_key) {
                Some(u) if u.user_id == user_id => revoke.push(RevokedToken {
                    token_id: u.token_id,
                    refresh: false,
                    expires_at: u.expires_at,
                }),
                _ => return Err(CoreError::invalid("Session token invalid.")),
            }
        }
        if let Some(token) = refresh_token.filter(|t| !t.is_empty()) {
            match parse_token(token, &self.settings.refresh_encryption_key) {
                Some(u) if u.user_id == user_id => revoke.push(RevokedToken {
                    token_id: u.token_id,
                    refresh: true,
                    expires_at: u.expires_at,
                }),
                _ => return Err(CoreError::invalid("Refresh token invalid.")),
            }
        }
        if revoke.is_empty() {
            return self.invalidate_user(user_id).await;
        }
        self.store
            .revoke_tokens(revoke.clone())
            .await
            .map_err(|e| CoreError::internal("Could not log out.", e))?;
        let mut map = lock(&self.revoked);
        for t in revoke {
            map.insert((t.token_id, t.refresh), t.expires_at);
        }
        drop(map);
        tell(&self.bus, ClusterEvent::Revoked);
        Ok(())
    }

    /// Invalidates every token the user holds now (logout everywhere, ban).
    pub async fn invalidate_user(&self, user_id: Uuid) -> CoreResult<()> {
        // Every token issued up to and including this second dies; tokens issued afterwards
        // get an `iat` of at least `at + 1` (see `issue`), so an immediate re-login works.
        let previous = lock(&self.invalidated).get(&user_id).copied();
        let at = previous.map_or(now_secs(), |p| now_secs().max(p + 1));
        self.store
            .invalidate_user_sessions(user_id, at)
            .await
            .map_err(|e| CoreError::internal("Could not log out.", e))?;
        lock(&self.invalidated).insert(user_id, at);
        tell(&self.bus, ClusterEvent::Revoked);
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `{"alg":"HS256","typ":"JWT"}`, the header as Nakama's JWT library writes it (jsonwebtoken
/// would write `typ` first), so a token's first part is byte for byte Nakama's.
const JWT_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

fn sign(claims: &Claims, key: &str) -> CoreResult<String> {
    use base64::Engine;
    let failed =
        |e: &dyn std::fmt::Display| CoreError::internal("Could not create a session token.", e);
    let key = EncodingKey::from_secret(key.as_bytes()).map_err(|e| failed(&e))?;
    let claims = serde_json::to_vec(claims).map_err(|e| failed(&e))?;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
    let message = format!("{JWT_HEADER}.{payload}");
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256)
        .map_err(|e| failed(&e))?;
    Ok(format!("{message}.{signature}"))
}

/// Verifies signature (HS256 only, so `alg: none` and others fail) and expiry; revocations
/// are [`Sessions::verify`]'s business. Public for the fuzz target.
pub fn parse_token(token: &str, key: &str) -> Option<SessionUser> {
    if token.len() > 8192 {
        return None;
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    let key = DecodingKey::from_secret(key.as_bytes()).ok()?;
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).ok()?;
    let c = data.claims;
    Some(SessionUser {
        user_id: Uuid::parse_str(&c.uid).ok()?,
        username: c.usn,
        vars: c.vrs,
        token_id: Uuid::parse_str(&c.tid).unwrap_or_default(),
        expires_at: c.exp,
        issued_at: c.iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(exp: i64, key: &str) -> String {
        let claims = Claims {
            tid: Uuid::new_v4().to_string(),
            uid: Uuid::new_v4().to_string(),
            usn: "cached".into(),
            vrs: BTreeMap::new(),
            exp,
            iat: now_secs(),
        };
        sign(&claims, key).expect("sign")
    }

    /// The cache answers what verifying would: the right key only, the token's kind only,
    /// and nothing once the token has expired, even when it was cached while valid.
    #[test]
    fn verified_tokens_are_cached_but_still_expire_and_keep_their_kind() {
        let verified = Verified::default();
        let good = token(now_secs() + 60, "k1");
        assert!(verified.get_or_parse(&good, false, "wrong").is_none());
        let user = verified.get_or_parse(&good, false, "k1").expect("valid");
        assert_eq!(
            verified.get_or_parse(&good, false, "k1"),
            Some(user.clone())
        );
        assert!(
            verified.get_or_parse(&good, true, "wrong").is_none(),
            "a session token is not a refresh token"
        );
        // Cached while valid, then past its expiry: refused.
        let mut old = user;
        old.expires_at = now_secs() - 1;
        lock(&verified.0[0]).insert(good.clone(), old);
        assert!(verified.get_or_parse(&good, false, "k1").is_none());
        assert!(verified
            .get_or_parse(&token(now_secs() - 1, "k1"), false, "k1")
            .is_none());
    }
}
