//! What Gatehouse keeps of other authorization servers and identity providers: the fetcher and
//! freshness of Client ID Metadata Documents, the keys and verified tokens of trusted external
//! issuers, the discovery documents and keys of upstream OpenID Connect providers. These caches
//! sit below the request context, which holds them; the flows that fill them (in `oauth/`)
//! take the whole context, so they live above it.

pub mod client_metadata;
pub mod external_issuers;
pub mod identity_providers;
