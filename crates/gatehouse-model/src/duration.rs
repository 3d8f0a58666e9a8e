//! Human durations (`90s`, `15m`, `1h`, `7d`, `1h30m`) for configuration and the CLI.

use std::time::Duration;

/// Parses `<n><unit>` groups, units `ms`, `s`, `m`, `h`, `d`, `w`. A bare number is seconds.
pub fn parse(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration {input:?}: expected a number before {rest:?}"
            ));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {input:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            other => {
                return Err(format!(
                    "invalid duration {input:?}: unknown unit {other:?} (use ms, s, m, h, d or w)"
                ));
            }
        };
        let millis = value
            .checked_mul(millis_per_unit)
            .ok_or_else(|| format!("invalid duration {input:?}: too large"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| format!("invalid duration {input:?}: too large"))?;
    }
    Ok(total)
}

/// Serde adapter so configuration files can say `upstream_timeout = "30s"`.
pub mod serde_human {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Seconds(u64),
        }
        match Raw::deserialize(de)? {
            Raw::Text(text) => super::parse(&text).map_err(serde::de::Error::custom),
            Raw::Seconds(secs) => Ok(Duration::from_secs(secs)),
        }
    }

    pub fn serialize<S: Serializer>(value: &Duration, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&format!("{}ms", value.as_millis()))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(7 * 86400));
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert!(parse("").is_err());
        assert!(parse("h").unwrap_err().contains("expected a number"));
        assert!(parse("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse("99999999999999999999d").is_err());
    }
}
