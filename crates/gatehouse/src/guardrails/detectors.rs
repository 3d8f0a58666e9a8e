//! Built-in detectors: a regex to find candidates and, where a format has one, a validator
//! that cuts false positives (Luhn for card numbers, mod-97 for IBANs, the checksum of
//! Gatehouse keys, the structure of JWTs).

use base64::Engine;

/// A detector's name, as written in guardrail specs and reported in denials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Email,
    Phone,
    CreditCard,
    Iban,
    UsSsn,
    IpAddress,
    AwsAccessKey,
    GcpApiKey,
    GithubToken,
    SlackToken,
    OpenaiKey,
    PrivateKey,
    Jwt,
    GatehouseKey,
    PromptInjection,
}

impl Builtin {
    pub const ALL: [Builtin; 15] = [
        Builtin::Email,
        Builtin::Phone,
        Builtin::CreditCard,
        Builtin::Iban,
        Builtin::UsSsn,
        Builtin::IpAddress,
        Builtin::AwsAccessKey,
        Builtin::GcpApiKey,
        Builtin::GithubToken,
        Builtin::SlackToken,
        Builtin::OpenaiKey,
        Builtin::PrivateKey,
        Builtin::Jwt,
        Builtin::GatehouseKey,
        Builtin::PromptInjection,
    ];

    /// The set enabled when a guardrail names `"default"`.
    pub const DEFAULT_SET: [Builtin; 11] = [
        Builtin::CreditCard,
        Builtin::Iban,
        Builtin::UsSsn,
        Builtin::AwsAccessKey,
        Builtin::GcpApiKey,
        Builtin::GithubToken,
        Builtin::SlackToken,
        Builtin::OpenaiKey,
        Builtin::PrivateKey,
        Builtin::GatehouseKey,
        Builtin::PromptInjection,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::Email => "email",
            Builtin::Phone => "phone",
            Builtin::CreditCard => "credit_card",
            Builtin::Iban => "iban",
            Builtin::UsSsn => "us_ssn",
            Builtin::IpAddress => "ip_address",
            Builtin::AwsAccessKey => "aws_access_key",
            Builtin::GcpApiKey => "gcp_api_key",
            Builtin::GithubToken => "github_token",
            Builtin::SlackToken => "slack_token",
            Builtin::OpenaiKey => "openai_key",
            Builtin::PrivateKey => "private_key",
            Builtin::Jwt => "jwt",
            Builtin::GatehouseKey => "gatehouse_key",
            Builtin::PromptInjection => "prompt_injection",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The candidate pattern. Word boundaries keep matches from starting mid-token.
    pub fn pattern(self) -> &'static str {
        match self {
            Builtin::Email => r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b",
            Builtin::Phone => {
                r"(?:\+\d{1,3}[ .\-]?)?\(?\b\d{2,4}\)?[ .\-]\d{2,4}[ .\-]\d{2,4}(?:[ .\-]\d{2,4})?\b"
            }
            Builtin::CreditCard => r"\b(?:\d[ \-]?){12,18}\d\b",
            Builtin::Iban => r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
            Builtin::UsSsn => {
                r"\b(?:00[1-9]|0[1-9]\d|[1-578]\d\d|6[0-57-9]\d|66[0-57-9])-(?:0[1-9]|[1-9]\d)-(?:000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})\b"
            }
            Builtin::IpAddress => {
                r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
            }
            Builtin::AwsAccessKey => r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",
            Builtin::GcpApiKey => r"\bAIza[0-9A-Za-z_\-]{35}\b",
            Builtin::GithubToken => {
                r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"
            }
            Builtin::SlackToken => r"\bxox[abposr]-[A-Za-z0-9\-]{10,250}\b",
            Builtin::OpenaiKey => r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,200}\b",
            Builtin::PrivateKey => r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----",
            Builtin::Jwt => {
                r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}\b"
            }
            Builtin::GatehouseKey => r"\bgth_[a-z2-7]{12}_[A-Za-z0-9]{49}\b",
            Builtin::PromptInjection => concat!(
                r"(?i)\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier)\s+(?:instructions|prompts|rules|directions)",
                r"|\byou\s+are\s+now\s+(?:in\s+)?(?:developer|dan|jailbreak|unrestricted)\b",
                r"|\b(?:reveal|print|show|output)\s+(?:your|the)\s+(?:system|hidden)\s+prompt",
                r"|<\|im_start\|>|<\|system\|>|\[/?INST\]",
                r"|\bdo\s+not\s+(?:tell|inform)\s+the\s+user\b",
                r"|<(?:IMPORTANT|SYSTEM)>",
            ),
        }
    }

    /// Whether a candidate really is one (checksums and structure).
    pub fn confirms(self, candidate: &str) -> bool {
        match self {
            Builtin::CreditCard => luhn(candidate),
            Builtin::Iban => iban_valid(candidate),
            Builtin::Jwt => jwt_shaped(candidate),
            Builtin::GatehouseKey => crate::identity::api_keys::is_gatehouse_key(candidate),
            _ => true,
        }
    }
}

/// The Luhn check over the digits (13–19 of them), ignoring spaces and dashes.
pub fn luhn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616 mod-97 check.
pub fn iban_valid(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) || !compact.is_ascii() {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        let width = if value >= 10 { 100 } else { 10 };
        remainder = (remainder * width + value) % 97;
    }
    remainder == 1
}

/// Three base64url parts whose first two decode to JSON objects.
fn jwt_shaped(text: &str) -> bool {
    let mut parts = text.split('.');
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let json_part = |part: Option<&str>| {
        part.and_then(|p| engine.decode(p).ok())
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|v| v.is_object())
    };
    json_part(parts.next()) && json_part(parts.next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_real_card_numbers_only() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(luhn("378282246310005"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(!luhn("1234567890123"));
        assert!(!luhn("12345"));
    }

    #[test]
    fn iban_mod97() {
        assert!(iban_valid("GB82 WEST 1234 5698 7654 32"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid("FR1420041010050500013M02606"));
        assert!(!iban_valid("GB82 WEST 1234 5698 7654 33"));
        assert!(!iban_valid("DE89370400440532013001"));
        assert!(!iban_valid("XX00"));
    }

    #[test]
    fn jwt_structure() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert!(jwt_shaped(jwt));
        assert!(!jwt_shaped("eyJub3QganNvbg.eyJhYmM.abcdefghijkl"));
    }

    #[test]
    fn names_round_trip() {
        for b in Builtin::ALL {
            assert_eq!(Builtin::parse(b.name()), Some(b));
            assert!(regex::Regex::new(b.pattern()).is_ok(), "{}", b.name());
        }
    }
}
