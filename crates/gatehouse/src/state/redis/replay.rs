//! Single-use ids in Redis: `SET P j:{sha256(id)} 1 NX PXAT exp` (`d:` for DPoP proofs) succeeds for the first use
//! on any replica and never again until the id expires.

use sha2::{Digest, Sha256};
use std::sync::Arc;

use super::link::RedisLink;
use crate::state::{ReplayCache, StateFuture, Unavailable};

/// Key prefix (after `redis.key_prefix`) of client assertion ids.
pub const ASSERTIONS: &str = "j:";
/// Key prefix of DPoP proof ids.
pub const DPOP_PROOFS: &str = "d:";

pub struct RedisReplay {
    link: Arc<RedisLink>,
    kind: &'static str,
}

impl RedisReplay {
    /// `kind` ([`ASSERTIONS`], [`DPOP_PROOFS`]) keeps each cache's ids under its own keys.
    pub fn new(link: Arc<RedisLink>, kind: &'static str) -> Self {
        Self { link, kind }
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
            "{}{}",
            self.kind,
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
