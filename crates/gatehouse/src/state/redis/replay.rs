//! Single-use ids in Redis: `SET P j:{sha256(id)} 1 NX PXAT exp` succeeds for the first use
//! on any replica and never again until the id expires.

use sha2::{Digest, Sha256};
use std::sync::Arc;

use super::link::RedisLink;
use crate::state::{ReplayCache, StateFuture, Unavailable};

pub struct RedisReplay {
    link: Arc<RedisLink>,
}

impl RedisReplay {
    pub fn new(link: Arc<RedisLink>) -> Self {
        Self { link }
    }
}

impl ReplayCache for RedisReplay {
    fn first_use(
        &self,
        id: &str,
        expires_at: i64,
        now: i64,
    ) -> StateFuture<'_, Result<bool, Unavailable>> {
        if expires_at <= now {
            // Already expired: nothing to remember, and the assertion's own `exp` refuses it.
            return StateFuture::ready(Ok(true));
        }
        let key = self.link.key(format_args!(
            "j:{}",
            hex::encode(Sha256::digest(id.as_bytes()))
        ));
        StateFuture::pending(async move {
            let mut command = redis::cmd("SET");
            command
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("PXAT")
                .arg(expires_at.saturating_mul(1_000));
            let answer: Option<String> = self.link.query(command).await?;
            Ok(answer.is_some())
        })
    }

    fn len(&self) -> usize {
        0
    }
}
