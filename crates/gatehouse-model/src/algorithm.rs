//! The JWS signing algorithms Gatehouse signs and verifies with (a signing key record's `alg`,
//! `oauth.signing_alg`). The enum only: signing and verifying are the library's.

/// Declares [`Algorithm`] from JWA names (RFC 7518, RFC 8037): each variant is spelled
/// exactly as its registered, case-sensitive name, so the name is the variant.
macro_rules! algorithms {
    ($($name:ident),+ $(,)?) => {
        #[allow(clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Algorithm {
            $($name),+
        }

        impl Algorithm {
            pub const ALL: &[Algorithm] = &[$(Self::$name),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$name => stringify!($name)),+
                }
            }

            /// Exact match only; `none` and the HMAC algorithms are deliberately absent.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($name) => Some(Self::$name),)+
                    _ => None,
                }
            }
        }
    };
}

algorithms!(
    EdDSA, ES256, ES384, RS256, RS384, RS512, PS256, PS384, PS512
);
