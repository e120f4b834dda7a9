//! Durations as people write them in desired-state files: `500ms`, `15s`,
//! `2m`, `1h`, `1h30m`.
//!
//! Written by hand rather than taken from `humantime` because the accepted
//! syntax is part of the file format: it must stay small, documented and
//! stable (no `sec`, `minutes`, `1.5m` or spaces), and a mistake must get a
//! message that says what was found and what is expected.

use std::time::Duration;

/// Why a duration could not be read. The `Display` text is written for the
/// person who wrote the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration: expected a number with a unit ms, s, m or h, e.g. `15s`")]
    Empty,
    #[error("`{found}` is not a duration: expected a number with a unit ms, s, m or h, e.g. `15s`")]
    Malformed { found: String },
    #[error("`{found}` is negative: durations are zero or more, e.g. `0s` or `15s`")]
    Negative { found: String },
    #[error("`{found}` has a fraction: write whole numbers of a smaller unit instead, e.g. `1m30s` rather than `1.5m`")]
    Fraction { found: String },
    #[error(
        "`{found}` has an unknown unit `{unit}`: expected ms, s, m or h, e.g. `15s`{}",
        suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
    )]
    UnknownUnit { found: String, unit: String, suggestion: Option<&'static str> },
    #[error("`{found}` has a number without a unit: expected ms, s, m or h after it, e.g. `15s`")]
    MissingUnit { found: String },
    #[error("`{found}` repeats or reorders units: write the largest unit first, each at most once, e.g. `1h30m`")]
    UnitOrder { found: String },
    #[error("`{found}` is too long a duration")]
    Overflow { found: String },
}

/// The units, largest first; the order also defines the only accepted
/// order of parts in a compound duration like `1h30m15s`.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Common ways of writing a unit that the format does not accept, with the
/// unit meant, so the message can say which one to write.
const UNIT_ALIASES: [(&str, &str); 14] = [
    ("sec", "s"),
    ("secs", "s"),
    ("second", "s"),
    ("seconds", "s"),
    ("min", "m"),
    ("mins", "m"),
    ("minute", "m"),
    ("minutes", "m"),
    ("hr", "h"),
    ("hrs", "h"),
    ("hour", "h"),
    ("hours", "h"),
    ("msec", "ms"),
    ("millis", "ms"),
];

/// Parses a duration such as `500ms`, `15s`, `2m`, `1h` or `1h30m`.
///
/// Leading and trailing spaces are ignored; anything else that is not
/// one or more `<whole number><unit>` parts, largest unit first, is an
/// error.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let found = || s.to_string();
    if s.starts_with('-') {
        return Err(DurationError::Negative { found: found() });
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the last unit used; the next must be smaller.
    let mut last_unit: Option<usize> = None;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(DurationError::Malformed { found: found() });
        }
        let number: u64 = s[digits_start..i].parse().map_err(|_| DurationError::Overflow { found: found() })?;
        if i < bytes.len() && (bytes[i] == b'.' || bytes[i] == b',') {
            return Err(DurationError::Fraction { found: found() });
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        if unit.is_empty() {
            return Err(if i == bytes.len() {
                DurationError::MissingUnit { found: found() }
            } else {
                DurationError::Malformed { found: found() }
            });
        }
        let Some(unit_index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            let lower = unit.to_ascii_lowercase();
            let suggestion = UNITS
                .iter()
                .map(|(name, _)| *name)
                .find(|name| *name == lower)
                .or_else(|| UNIT_ALIASES.iter().find(|(alias, _)| *alias == lower).map(|(_, unit)| *unit));
            return Err(DurationError::UnknownUnit { found: found(), unit: unit.to_string(), suggestion });
        };
        if last_unit.is_some_and(|last| unit_index <= last) {
            return Err(DurationError::UnitOrder { found: found() });
        }
        last_unit = Some(unit_index);
        total_ms = number
            .checked_mul(UNITS[unit_index].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| DurationError::Overflow { found: found() })?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration in the file syntax, largest units first, so messages
/// can quote values the way the user would write them (`90s` → `1m30s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (name, unit_ms) in UNITS {
        let unit_ms = u128::from(unit_ms);
        if ms >= unit_ms {
            out.push_str(&format!("{}{}", ms / unit_ms, name));
            ms %= unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        let cases: &[(&str, u64)] = &[
            ("500ms", 500),
            ("15s", 15_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("1m30s", 90_000),
            ("1h2m3s4ms", 3_723_004),
            ("0s", 0),
            ("0ms", 0),
            ("  5m ", 300_000),
            ("120s", 120_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(*ms)), "parsing {text:?}");
        }
    }

    #[test]
    fn rejects_with_a_message_naming_what_was_found_and_what_is_expected() {
        // (input, a substring the message must contain)
        let cases: &[(&str, &str)] = &[
            ("", "empty duration"),
            ("   ", "empty duration"),
            ("5", "`5` has a number without a unit"),
            ("fast", "`fast` is not a duration: expected a number with a unit ms, s, m or h"),
            ("m5", "`m5` is not a duration"),
            ("5 m", "`5 m` is not a duration"),
            ("-5s", "`-5s` is negative"),
            ("1.5m", "write whole numbers"),
            ("5sec", "unknown unit `sec`: expected ms, s, m or h, e.g. `15s` (did you mean `s`?)"),
            ("2minutes", "did you mean `m`?"),
            ("5S", "did you mean `s`?"),
            ("3d", "unknown unit `d`"),
            ("30m1h", "largest unit first"),
            ("1m1m", "largest unit first"),
            ("1h30", "`1h30` has a number without a unit"),
            ("99999999999999999999s", "too long"),
            ("18446744073709551615h", "too long"),
        ];
        for (text, expected) in cases {
            let err = parse_duration(text).expect_err(text).to_string();
            assert!(err.contains(expected), "parsing {text:?}: message {err:?} should contain {expected:?}");
        }
    }

    #[test]
    fn every_message_shows_an_example_or_a_fix() {
        for text in ["", "5", "x", "-1s", "1.5s", "5q", "1s1h"] {
            let msg = parse_duration(text).unwrap_err().to_string();
            assert!(msg.contains("e.g.") || msg.contains("zero or more"), "{msg}");
        }
    }

    #[test]
    fn formats_back_to_the_file_syntax() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (500, "500ms"),
            (15_000, "15s"),
            (90_000, "1m30s"),
            (300_000, "5m"),
            (5_400_000, "1h30m"),
            (3_723_004, "1h2m3s4ms"),
        ];
        for (ms, text) in cases {
            let d = Duration::from_millis(*ms);
            assert_eq!(format_duration(d), *text);
            assert_eq!(parse_duration(text), Ok(d), "round trip of {text}");
        }
    }
}
