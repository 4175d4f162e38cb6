//! Sessions behind bearer tokens: opening one at login, renewing its access token with its
//! refresh token, ending it, and the check every authenticated request makes that its session
//! is still live, with the account's current role.
//!
//! The check reads PostgreSQL at most once per session every few seconds: what it read is
//! remembered, and forgotten at once on every API process when the account changes (a
//! logout, a new password or role, a disabled account), through the account events on Redis.
//! A lost event is covered by the short memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use shared::db::sessions::{self, Rotation, SessionState};
use shared::db::users::User;
use shared::events::Subscriber;
use shared::keyspace::RedisTarget;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a session's state read from PostgreSQL is trusted without an account event.
const REMEMBER_FOR: Duration = Duration::from_secs(10);
/// Sessions remembered at most; past it, memory starts over (a cost, not a fault).
const MOST_REMEMBERED: usize = 100_000;

/// The sessions' states this process remembers, kept current by account events. Cheap to
/// clone: clones share the memory.
#[derive(Clone)]
pub struct Sessions {
    known: Arc<Known>,
}

#[derive(Default)]
struct Known {
    entries: Mutex<HashMap<Uuid, (SessionState, Instant)>>,
    /// Bumped by every forgetting: a read of PostgreSQL that raced one is not remembered, so a
    /// state read before a change cannot outlive the change's event.
    forgettings: AtomicU64,
}

impl Known {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, (SessionState, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget_user(&self, user: Uuid) {
        self.forgettings.fetch_add(1, Ordering::SeqCst);
        self.lock().retain(|_, (state, _)| state.user_id != user);
    }

    fn forget_all(&self) {
        self.forgettings.fetch_add(1, Ordering::SeqCst);
        self.lock().clear();
    }
}

/// Account events: each message is a user id whose sessions must be read again.
struct Forget(Arc<Known>);

impl Subscriber for Forget {
    fn message(&mut self, payload: String) {
        match payload.parse::<Uuid>() {
            Ok(user) => self.0.forget_user(user),
            Err(_) => tracing::warn!("ignoring an account event that is not a user id"),
        }
    }

    /// Events published while the subscription was down are lost: any account may have changed.
    fn resubscribed(&mut self) {
        self.0.forget_all();
    }
}

impl Sessions {
    /// Subscribes to the account events on `channel` until `stop`; waits for the first
    /// subscription as long as `first_wait`.
    pub async fn start(
        target: RedisTarget,
        channel: String,
        stop: CancellationToken,
        first_wait: Duration,
    ) -> Sessions {
        let known = Arc::new(Known::default());
        let subscriber = Forget(known.clone());
        if !shared::events::subscribe_in_background(target, channel, subscriber, stop, first_wait)
            .await
        {
            // Until it stands, an account change made on another process reaches this one
            // when the memory of the session lapses.
            tracing::warn!(
                "not yet subscribed to account events; changes elsewhere take up to 10 s here"
            );
        }
        Sessions { known }
    }

    /// The state of session `id`, `None` for one never issued.
    pub async fn state(
        &self,
        db: &sqlx::PgPool,
        id: Uuid,
    ) -> Result<Option<SessionState>, ApiError> {
        if let Some((state, at)) = self.known.lock().get(&id)
            && at.elapsed() < REMEMBER_FOR
        {
            return Ok(Some(*state));
        }
        let before = self.known.forgettings.load(Ordering::SeqCst);
        let state = sessions::state(&mut *shared::db::hold(db, "auth").await?, id).await?;
        if let Some(state) = state {
            let mut entries = self.known.lock();
            if self.known.forgettings.load(Ordering::SeqCst) == before {
                if entries.len() >= MOST_REMEMBERED {
                    entries.clear();
                }
                entries.insert(id, (state, Instant::now()));
            }
        }
        Ok(state)
    }

    /// Drops what is remembered of sessions whose memory has lapsed.
    pub fn forget_lapsed(&self) {
        self.known
            .lock()
            .retain(|_, (_, at)| at.elapsed() < REMEMBER_FOR);
    }
}

/// A new access token and refresh token, and the session they belong to.
pub struct Issued {
    pub session: Uuid,
    pub access_token: String,
    pub refresh_token: String,
}

/// Opens a session for `user` that lasts `lifetime`, with an access token valid for
/// `access_lifetime` (the API's short one; the dashboard's cookie takes the session's).
pub async fn open(
    state: &AppState,
    user: &User,
    lifetime: Duration,
    access_lifetime: Duration,
) -> Result<Issued, ApiError> {
    let secret = new_secret();
    let (session, _) = {
        let mut conn = shared::db::hold(&state.db, "auth").await?;
        sessions::create(&mut conn, user.id, &digest(&secret), lifetime).await?
    };
    Ok(Issued {
        access_token: state
            .tokens
            .issue(user.id, user.role, session, access_lifetime)?,
        refresh_token: format!("{}.{secret}", session.simple()),
        session,
    })
}

/// Trades a refresh token for a new access token and a new refresh token (the old one stops
/// working). A token used a second time ends its session, since one of its two holders is not
/// the owner: a 401 `invalid_token` either way, and for an ended, expired or disabled one.
pub async fn refresh(state: &AppState, refresh_token: &str) -> Result<(User, Issued), ApiError> {
    let (session, secret) = refresh_token
        .split_once('.')
        .and_then(|(id, secret)| Some((Uuid::try_parse(id).ok()?, secret)))
        .ok_or(ApiError::InvalidToken)?;
    let next = new_secret();
    let mut conn = shared::db::hold(&state.db, "auth").await?;
    let user_id =
        match sessions::rotate(&mut conn, session, &digest(secret), &digest(&next)).await? {
            Rotation::Rotated { user_id } => user_id,
            Rotation::Reused { user_id } => {
                drop(conn);
                tracing::warn!(%session, "a refresh token was used twice; the session is ended");
                account_changed(state, user_id).await;
                return Err(ApiError::SessionEnded);
            }
            Rotation::Dead => return Err(ApiError::SessionEnded),
        };
    let user = shared::db::users::find_by_id(&mut conn, user_id)
        .await?
        .ok_or(ApiError::SessionEnded)?;
    drop(conn);
    let access_token = state
        .tokens
        .issue(user.id, user.role, session, state.tokens.ttl())?;
    let issued = Issued {
        access_token,
        refresh_token: format!("{}.{next}", session.simple()),
        session,
    };
    Ok((user, issued))
}

/// Ends session `id` of `user` (a logout), on every API process at once.
pub async fn end(state: &AppState, user: Uuid, id: Uuid) -> Result<(), ApiError> {
    sessions::revoke(&mut *shared::db::hold(&state.db, "auth").await?, id).await?;
    account_changed(state, user).await;
    Ok(())
}

/// Tells every API process (this one first) to read `user`'s sessions again: call after the
/// change is committed. Should Redis fail, other processes notice within [`REMEMBER_FOR`].
pub async fn account_changed(state: &AppState, user: Uuid) {
    state.sessions.known.forget_user(user);
    if let Err(error) = shared::events::accounts_changed(state.queue.redis(), &[user]).await {
        tracing::warn!(%error, %user, "could not publish an account change");
    }
}

/// 32 random bytes as hex: the secret half of a refresh token.
fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What is stored of a refresh token's secret.
fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}
