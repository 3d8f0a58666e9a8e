//! Redis as a line of `/readyz` and `gatehouse_backend_up{backend="redis"}`: one bounded PING
//! per check. While it does not answer, `redis.on_outage` decides whether the replica still
//! serves correctly: `local` counts per replica (degraded), `closed` refuses every stateful
//! policy (unready, so the load balancer stops sending traffic: ADR 0005, section 4).

use parking_lot::Mutex;
use std::{sync::Arc, time::Instant};

use super::link::RedisLink;
use crate::{
    config::OnOutage,
    health::{Check, CheckFuture, Component, Health},
};

pub struct RedisCheck {
    link: Arc<RedisLink>,
    on_outage: OnOutage,
    down_since: Mutex<Option<Instant>>,
}

impl RedisCheck {
    pub fn new(link: Arc<RedisLink>, on_outage: OnOutage) -> Self {
        Self {
            link,
            on_outage,
            down_since: Mutex::new(None),
        }
    }
}

impl Check for RedisCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            // A failed PING counts towards marking the link down like any command, so an idle
            // replica notices the outage at the first check rather than the first request.
            let answered = self.link.query::<String>(redis::cmd("PING")).await;
            if answered.is_ok() {
                *self.down_since.lock() = None;
                return Component::ok("redis", "ok");
            }
            let since = *self.down_since.lock().get_or_insert_with(Instant::now);
            let (health, effect) = match self.on_outage {
                OnOutage::Local => (Health::Degraded, "counters per replica"),
                OnOutage::Closed => (Health::Unready, "stateful policies refused"),
            };
            Component {
                name: "redis",
                health,
                detail: format!("unreachable for {}s; {effect}", since.elapsed().as_secs()),
            }
        })
    }
}
