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
            // International (`+` and 1–3 digits, then groups), North American (3-3-4) or
            // national with a trunk `0` and separated groups; `confirms_in` then drops dates,
            // versions and fragments of longer numbers.
            Builtin::Phone => concat!(
                r"\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}",
                r"|\(?\b\d{3}\)?[ .\-]?\d{3}[ .\-]\d{4}\b",
                r"|\b0\d{1,4}(?:[ .\-]\d{2,8}){1,4}\b",
            ),
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

    /// Whether the candidate at `text[start..end]` really is one: its own checks, and for
    /// phone numbers, that it is not a piece of something longer (a UUID, a version, an
    /// address, a card number).
    pub fn confirms_in(self, text: &str, start: usize, end: usize) -> bool {
        let candidate = &text[start..end];
        match self {
            Builtin::Phone => {
                !continues(text[..start].chars().rev())
                    && !continues(text[end..].chars())
                    && phone_shaped(candidate)
            }
            _ => self.confirms(candidate),
        }
    }

    /// Whether a candidate really is one (checksums and structure).
    pub fn confirms(self, candidate: &str) -> bool {
        match self {
            Builtin::CreditCard => card_network(candidate) && luhn(candidate),
            Builtin::Phone => phone_shaped(candidate),
            Builtin::Iban => iban_valid(candidate),
            Builtin::Jwt => jwt_shaped(candidate),
            Builtin::GatehouseKey => crate::tokens::api_key::is_gatehouse_key(candidate),
            _ => true,
        }
    }
}

/// Whether the first digit is one of the major card networks' (2–6: Mastercard, Amex,
/// Diners, JCB, Visa, Discover), which keeps millisecond timestamps and other long counters
/// from passing the Luhn check by chance.
fn card_network(text: &str) -> bool {
    text.chars()
        .find(char::is_ascii_digit)
        .is_some_and(|first| ('2'..='6').contains(&first))
}

/// Whether the characters next to a match (read away from it) continue a longer token: a
/// letter or digit, or a separator followed by a digit.
fn continues(mut next: impl Iterator<Item = char>) -> bool {
    match next.next() {
        Some(c) if c.is_alphanumeric() || c == '_' => true,
        Some(' ' | '.' | '-' | '/' | ':') => next.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// 7 to 15 digits (E.164) and not a date (`2025-06-18`, `18.06.2025`).
fn phone_shaped(candidate: &str) -> bool {
    let digits = candidate.chars().filter(char::is_ascii_digit).count();
    if !(7..=15).contains(&digits) {
        return false;
    }
    let groups: Vec<usize> = candidate
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .map(str::len)
        .collect();
    let date = matches!(groups.as_slice(), [4, 1..=2, 1..=2] | [1..=2, 1..=2, 4]);
    !date || candidate.starts_with('+')
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

    fn phones(text: &str) -> Vec<&str> {
        let regex = regex::Regex::new(Builtin::Phone.pattern()).unwrap();
        regex
            .find_iter(text)
            .filter(|m| Builtin::Phone.confirms_in(text, m.start(), m.end()))
            .map(|m| m.as_str())
            .collect()
    }

    #[test]
    fn phone_numbers_are_found_whole() {
        for number in [
            "+44 20 7946 0958",
            "+1 (415) 555-0132",
            "+33 1 23 45 67 89",
            "+491701234567",
            "(415) 555-0132",
            "415-555-0132",
            "415.555.0132",
            "020 7946 0958",
            "01 23 45 67 89",
            "030 1234567",
        ] {
            assert_eq!(
                phones(&format!("call {number} today")),
                [number],
                "{number}"
            );
        }
    }

    #[test]
    fn dates_times_versions_ids_and_cards_are_not_phone_numbers() {
        for text in [
            r#""protocolVersion":"2025-06-18""#,
            "2025-06-18T10:30:45Z",
            "on 18.06.2025 at 10:30:45",
            "01.02.2024",
            "version 1.2.3, build 2025.06.18",
            "10.0.0.1 and 192.168.100.200",
            "550e8400-e29b-41d4-a716-446655440000",
            "12345678-1234-5678-1234-567812345678",
            "4111 1111 1111 1111",
            "5500 0000 0000 0004",
            "order 1733350000000",
            "ACC-000123",
            "call 555-0132",
        ] {
            assert!(phones(text).is_empty(), "{text}: {:?}", phones(text));
        }
    }

    #[test]
    fn cards_need_a_major_network_prefix() {
        assert!(Builtin::CreditCard.confirms("4111111111111111"));
        // Passes the Luhn check, but a millisecond timestamp is not a card.
        assert!(luhn("1733350000001"));
        assert!(!Builtin::CreditCard.confirms("1733350000001"));
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
