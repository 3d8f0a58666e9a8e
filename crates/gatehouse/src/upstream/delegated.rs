//! Per-user delegated tokens (ADR 0006 §5): each person's own tokens at an upstream, granted in
//! the upstream's OAuth flow, kept sealed in the store (`upstream_grants`), refreshed before
//! they expire (one refresh in flight per person and server) and revoked on request.
//!
//! A call reads the person's grant from the store every time rather than from a process cache,
//! so a grant revoked on one replica is not used on another.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::Full;

use super::tokens::{Grant, Received, TokenBroker, authenticate};
use crate::{
    error::GatewayError,
    secrets::Keyring,
    snapshot::upstream_auth::{self, PerUser, UpstreamAuth},
    store::{DynStore, StoreError},
};
use gatehouse_model::records::UpstreamGrantRecord;

/// Associated data of a person's sealed upstream tokens: a row copied to another person or
/// server does not open.
pub fn grant_context(user: &str, server: &str) -> String {
    format!("upstream-grant:{user}:{server}")
}

/// What a person's call to a per-user server carries, or why it cannot.
pub enum Delegated {
    /// `Authorization: Bearer <the person's token>`.
    Token(HeaderValue),
    /// No usable grant: the person must connect their account first.
    ConsentNeeded,
}

/// Whether the grant's token is at 80 % of its lifetime (or past it). A token whose lifetime
/// was not stated is used until the upstream refuses it.
fn due(grant: &UpstreamGrantRecord, now_ms: i64) -> bool {
    let Some(expires) = grant.expires_at else {
        return false;
    };
    let issued = grant.refreshed_at.unwrap_or(grant.created_at);
    now_ms >= issued + (expires - issued).max(0) / 5 * 4
}

fn live(grant: &UpstreamGrantRecord, now_ms: i64) -> bool {
    grant.expires_at.is_none_or(|expires| now_ms < expires)
}

fn store_failed(err: StoreError) -> GatewayError {
    tracing::error!(error = %err, "reading a person's upstream grant failed");
    GatewayError::StateUnavailable
}

impl TokenBroker {
    /// The person's token for this server, refreshed when due.
    pub async fn delegated(
        &self,
        store: &DynStore,
        keyring: &Keyring,
        auth: &PerUser,
        user: &str,
    ) -> Result<Delegated, GatewayError> {
        let read = || async {
            store
                .get_upstream_grant(user, &auth.server)
                .await
                .map_err(store_failed)
        };
        let Some(grant) = read().await? else {
            return Ok(Delegated::ConsentNeeded);
        };
        let now = crate::now_ms();
        if !due(&grant, now) {
            return bearer(keyring, &grant);
        }
        let flight = self.flight(&format!("{}#{user}", auth.client.cache_key));
        let _guard = if live(&grant, now) {
            // Someone else is refreshing: the current token is still good.
            match flight.try_lock() {
                Ok(guard) => guard,
                Err(_) => return bearer(keyring, &grant),
            }
        } else {
            flight.lock().await
        };
        // Another caller may have refreshed (or the person revoked) while this one waited.
        let Some(grant) = read().await? else {
            return Ok(Delegated::ConsentNeeded);
        };
        let now = crate::now_ms();
        if !due(&grant, now) {
            return bearer(keyring, &grant);
        }
        let refreshed = match &grant.refresh_sealed {
            Some(sealed) => match open(keyring, &grant, sealed) {
                Some(refresh_token) => self
                    .fetch_received(
                        &auth.client,
                        &Grant::Refresh {
                            refresh_token: &refresh_token,
                        },
                    )
                    .await
                    .map(|received| (received, refresh_token)),
                None => Err("the refresh token does not open".into()),
            },
            None => Err("no refresh token".into()),
        };
        match refreshed {
            Ok((received, old_refresh)) => {
                let record = sealed_grant(
                    keyring,
                    user,
                    &auth.server,
                    &received,
                    Some(&old_refresh),
                    Some(&grant),
                )
                .map_err(|_| GatewayError::UpstreamCredentialUnavailable)?;
                store
                    .put_upstream_grant(&record)
                    .await
                    .map_err(store_failed)?;
                header_value(&received.token.access_token)
            }
            Err(why) => {
                tracing::warn!(server = %auth.server, why, "refreshing a person's upstream token failed");
                if live(&grant, now) {
                    bearer(keyring, &grant)
                } else {
                    Ok(Delegated::ConsentNeeded)
                }
            }
        }
    }

    /// Redeems the person's authorization code and keeps their tokens; the error is for the
    /// log and the page (never a token).
    pub async fn redeem(
        &self,
        store: &DynStore,
        keyring: &Keyring,
        auth: &PerUser,
        user: &str,
        code: Grant<'_>,
    ) -> Result<(), String> {
        let received = self.fetch_received(&auth.client, &code).await?;
        let record = sealed_grant(keyring, user, &auth.server, &received, None, None)?;
        store
            .put_upstream_grant(&record)
            .await
            .map_err(|e| format!("keeping the grant: {e}"))
    }

    /// Forgets the person's grant at this server, telling the upstream's revocation endpoint
    /// first when one is configured (RFC 7009; a failure there is logged, the grant is
    /// forgotten anyway). Whether there was one.
    pub async fn revoke(
        &self,
        store: &DynStore,
        keyring: &Keyring,
        auth: Option<&PerUser>,
        user: &str,
        server: &str,
    ) -> Result<bool, StoreError> {
        let Some(grant) = store.get_upstream_grant(user, server).await? else {
            return Ok(false);
        };
        if let Some(auth) = auth {
            self.revoke_at_upstream(keyring, auth, &grant).await;
        }
        store.delete_upstream_grant(user, server).await
    }

    /// Tells the upstream's revocation endpoint, when configured, that `grant` is withdrawn
    /// (RFC 7009); a failure there is logged, never fatal: the grant is forgotten anyway.
    pub async fn revoke_at_upstream(
        &self,
        keyring: &Keyring,
        auth: &PerUser,
        grant: &UpstreamGrantRecord,
    ) {
        let Some(endpoint) = &auth.revocation_endpoint else {
            return;
        };
        // The refresh token first: revoking it ends the access tokens made from it.
        let token = grant
            .refresh_sealed
            .as_deref()
            .and_then(|sealed| open(keyring, grant, sealed).map(|t| (t, "refresh_token")))
            .or_else(|| open(keyring, grant, &grant.access_sealed).map(|t| (t, "access_token")));
        if let Some((token, hint)) = token
            && let Err(why) = self.tell_revocation(auth, endpoint, &token, hint).await
        {
            tracing::warn!(server = %auth.server, why, "the upstream's revocation endpoint failed");
        }
    }

    async fn tell_revocation(
        &self,
        auth: &PerUser,
        endpoint: &http::Uri,
        token: &str,
        hint: &str,
    ) -> Result<(), String> {
        let request = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token);
            form.append_pair("token_type_hint", hint);
            let request = Request::builder()
                .method(Method::POST)
                .uri(endpoint.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            let request = authenticate(&auth.client, request, &mut form)?;
            request
                .body(Full::new(Bytes::from(form.finish())))
                .map_err(|e| format!("request: {e}"))?
        };
        let (client, _) = self.http();
        let response = client
            .send(request)
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        // RFC 7009 §2.2: 200 whether or not the token was known.
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status()))
        }
    }
}

/// For a process without a running gateway (the CLI on the store): tells `server`'s
/// revocation endpoint, as [`TokenBroker::revoke_at_upstream`] does, that `grant` is withdrawn.
/// Whether the server is one with per-user tokens (else there is no one to tell).
pub async fn revoke_at_upstream_once(
    config: &crate::config::GatewayConfig,
    keyring: &Keyring,
    server: &gatehouse_model::records::ServerRecord,
    grant: &UpstreamGrantRecord,
) -> Result<bool, String> {
    let UpstreamAuth::PerUser(auth) = upstream_auth::compile(server, keyring, None)? else {
        return Ok(false);
    };
    let client = super::client::UpstreamClient::new(config).map_err(|e| e.to_string())?;
    let broker = TokenBroker::new(
        Arc::new(crate::state::memory::upstream_tokens::MemoryUpstreamTokens::new(1)),
        client,
        config.upstream_read_timeout,
    );
    broker.revoke_at_upstream(keyring, &auth, grant).await;
    Ok(true)
}

fn open(keyring: &Keyring, grant: &UpstreamGrantRecord, sealed: &[u8]) -> Option<String> {
    keyring
        .decrypt(sealed, &grant_context(&grant.user_id, &grant.server))
        .ok()
        .and_then(|plain| String::from_utf8(plain).ok())
}

fn bearer(keyring: &Keyring, grant: &UpstreamGrantRecord) -> Result<Delegated, GatewayError> {
    match open(keyring, grant, &grant.access_sealed) {
        Some(token) => header_value(&token),
        None => {
            tracing::error!(server = %grant.server, "a person's upstream token does not open");
            Ok(Delegated::ConsentNeeded)
        }
    }
}

fn header_value(token: &str) -> Result<Delegated, GatewayError> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|_| GatewayError::UpstreamCredentialUnavailable)?;
    value.set_sensitive(true);
    Ok(Delegated::Token(value))
}

/// The grant row for a token response; a refresh that names no new refresh token keeps the
/// old one (RFC 6749 §6).
fn sealed_grant(
    keyring: &Keyring,
    user: &str,
    server: &str,
    received: &Received,
    old_refresh: Option<&str>,
    previous: Option<&UpstreamGrantRecord>,
) -> Result<UpstreamGrantRecord, String> {
    let context = grant_context(user, server);
    let seal = |text: &str| {
        keyring
            .encrypt(text.as_bytes(), &context)
            .map_err(|e| format!("sealing: {e}"))
    };
    let now = crate::now_ms();
    let refresh = received.refresh_token.as_deref().or(old_refresh);
    Ok(UpstreamGrantRecord {
        user_id: user.to_owned(),
        server: server.to_owned(),
        access_sealed: seal(&received.token.access_token)?,
        refresh_sealed: refresh.map(seal).transpose()?,
        expires_at: received
            .lifetime_stated
            .then_some(received.token.expires_at_ms),
        scope: received
            .scope
            .clone()
            .or_else(|| previous.map(|p| p.scope.clone()))
            .unwrap_or_default(),
        created_at: previous.map_or(now, |p| p.created_at),
        refreshed_at: previous.map(|_| now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(created_at: i64, expires_at: Option<i64>) -> UpstreamGrantRecord {
        UpstreamGrantRecord {
            user_id: "usr_1".into(),
            server: "files".into(),
            access_sealed: Vec::new(),
            refresh_sealed: None,
            expires_at,
            scope: String::new(),
            created_at,
            refreshed_at: None,
        }
    }

    #[test]
    fn a_token_is_due_at_four_fifths_of_its_life_and_one_without_a_stated_life_never_is() {
        let g = grant(1_000, Some(11_000));
        assert!(!due(&g, 8_999));
        assert!(due(&g, 9_000));
        assert!(live(&g, 10_999));
        assert!(!live(&g, 11_000));
        let unstated = grant(1_000, None);
        assert!(!due(&unstated, i64::MAX / 2));
        assert!(live(&unstated, i64::MAX / 2));
    }

    #[test]
    fn a_sealed_token_opens_only_for_its_person_and_server() {
        let keyring = Keyring::from_master(&[5; 32]);
        let mut g = grant(0, None);
        g.access_sealed = keyring
            .encrypt(b"tok", &grant_context("usr_1", "files"))
            .unwrap();
        assert_eq!(open(&keyring, &g, &g.access_sealed).as_deref(), Some("tok"));
        let moved = UpstreamGrantRecord {
            user_id: "usr_2".into(),
            ..g.clone()
        };
        assert_eq!(open(&keyring, &moved, &moved.access_sealed), None);
    }
}
