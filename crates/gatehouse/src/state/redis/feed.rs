//! Change announcements through Redis pub/sub (`P events`), with polling underneath: a
//! replica reloads as soon as any process announces a change, and still within
//! `snapshot.poll_interval` when an announcement is lost, a subscription is reconnecting or
//! a change was written without one.

use async_trait::async_trait;
use futures_util::StreamExt;
use std::{sync::Arc, time::Duration};
use tokio::sync::watch;

use super::{
    link::RedisLink,
    pins::{PINS_MESSAGE, RedisPinHolds},
};
use crate::{
    change_feed::{Announce, ChangeFeed},
    config::RedisConfig,
    store::{DynStore, StoreResult},
};
use gatehouse_model::records::Generation;

/// Pause before subscribing again after the subscription failed.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

pub struct RedisFeed {
    store: DynStore,
    interval: Duration,
    /// Counts announcements heard; the subscriber task bumps it.
    heard: watch::Receiver<u64>,
}

impl RedisFeed {
    /// Starts the subscriber task (it ends with the runtime).
    /// `pins` copies the shared pin holds on each `pins` announcement.
    pub fn start(
        config: &RedisConfig,
        link: Arc<RedisLink>,
        store: DynStore,
        interval: Duration,
        pins: Option<Arc<RedisPinHolds>>,
    ) -> Self {
        let channel = events_channel(&config.key_prefix);
        let (tell, heard) = watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                // Asked each time: under Sentinel the master may have moved.
                let client = match link.master().await {
                    Some((url, _)) => redis::Client::open(url),
                    None => Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "no master named",
                    ))),
                };
                let subscribed = match client {
                    Ok(client) => client.get_async_pubsub().await,
                    Err(err) => Err(err),
                };
                match subscribed {
                    Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                        Ok(()) => {
                            tracing::debug!("subscribed to change announcements");
                            // Whatever was announced while not subscribed: look once.
                            tell.send_modify(|n| *n += 1);
                            if let Some(pins) = &pins {
                                pins.refresh().await;
                            }
                            let mut messages = pubsub.on_message();
                            while let Some(message) = messages.next().await {
                                let pins_changed =
                                    message.get_payload_bytes() == PINS_MESSAGE.as_bytes();
                                match &pins {
                                    Some(pins) if pins_changed => pins.refresh().await,
                                    _ => tell.send_modify(|n| *n += 1),
                                }
                            }
                        }
                        Err(err) => tracing::debug!(kind = ?err.kind(), "subscribing failed"),
                    },
                    Err(err) => tracing::debug!(kind = ?err.kind(), "announcements unreachable"),
                }
                if tell.is_closed() {
                    return;
                }
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
            }
        });
        Self {
            store,
            interval,
            heard,
        }
    }
}

pub fn events_channel(prefix: &str) -> String {
    format!("{prefix}events")
}

#[async_trait]
impl ChangeFeed for RedisFeed {
    async fn next_change(&self, seen: Generation) -> StoreResult<Generation> {
        let mut heard = self.heard.clone();
        heard.mark_unchanged();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                changed = heard.changed() => {
                    if changed.is_err() {
                        // The subscriber is gone: polling alone.
                        tokio::time::sleep(self.interval).await;
                    }
                }
            }
            let generation = self.store.generation().await?;
            if generation != seen {
                return Ok(generation);
            }
        }
    }
}

/// Publishes `gen` on `P events` after a change.
pub struct RedisAnnouncer {
    link: Arc<RedisLink>,
    channel: String,
}

impl RedisAnnouncer {
    pub fn new(link: Arc<RedisLink>, config: &RedisConfig) -> Self {
        Self {
            link,
            channel: events_channel(&config.key_prefix),
        }
    }
}

#[async_trait]
impl Announce for RedisAnnouncer {
    async fn changed(&self) {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&self.channel).arg("gen");
        if self.link.query::<i64>(publish).await.is_err() {
            tracing::debug!("a change was not announced; replicas poll for it");
        }
    }
}
