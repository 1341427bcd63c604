//! DPoP for Tollgate: proofs are checked by `tollgate_verify::dpop`, exactly as resource servers
//! check them; where several instances share the store, they also share the memory of proofs
//! already used and the secret of the server nonces.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand;
use tollgate_verify::dpop::{Dpop, DpopPolicy, Nonces, Replays};
use tollgate_verify::{BoxFuture, Cause};

use super::TokenError;
use crate::config::{Config, DpopMode};
use crate::store::Store;

/// How long one server nonce is given out; a proof may carry it for two such periods.
const NONCE_PERIOD: Duration = Duration::from_secs(300);
/// The name of the nonce key among the store's shared secrets.
const NONCE_SECRET: &str = "dpop_nonce";

/// How far apart the instances' clocks may be: one whose clock is behind accepts a proof that
/// much longer than its `iat` says, so the shared store remembers it that much longer.
const CLOCK_MARGIN_SECS: i64 = 60;

/// Proofs used once across every instance on the store.
struct StoreReplays(Arc<dyn Store>);

impl Replays for StoreReplays {
    fn first_use(
        &self,
        key: [u8; 32],
        forget_at: i64,
        now: i64,
    ) -> BoxFuture<'_, Result<bool, Cause>> {
        let forget_at = forget_at.saturating_add(CLOCK_MARGIN_SECS);
        Box::pin(async move { Ok(self.0.first_dpop_use(&key, forget_at, now).await?) })
    }
}

/// The DPoP checks the settings ask for: replays in memory on SQLite (one process), in the
/// store on PostgreSQL; nonces under the store's shared secret when they are asked for.
pub async fn dpop(config: &Config, store: &Arc<dyn Store>) -> Result<Dpop, TokenError> {
    let policy = DpopPolicy::default()
        .with_algorithms(&config.dpop_algorithms)
        .map_err(|error| TokenError::KeyGeneration(error.into()))?;
    let mut dpop = Dpop::new(policy);
    if store.is_shared() {
        dpop = dpop.with_replays(Arc::new(StoreReplays(store.clone())));
    }
    if config.dpop_nonce {
        let mut candidate = [0u8; 32];
        rand::fill(&mut candidate)
            .map_err(|_| TokenError::KeyGeneration("no randomness".into()))?;
        let secret = store.server_secret(NONCE_SECRET, &candidate).await?;
        dpop = dpop.with_nonces(Nonces::new(&secret, NONCE_PERIOD));
    }
    if config.dpop == DpopMode::Required {
        dpop = dpop.requiring_bound_tokens();
    }
    if let Some(origin) = &config.dpop_origin {
        dpop = dpop.with_origin(origin);
    }
    Ok(dpop)
}
