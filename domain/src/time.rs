//! Points in time as .NET publishers write them and as the table stores them.
//!
//! Publishers send `System.DateTime` values: 0–7 fraction digits, with `Z`, with a
//! numeric offset, or with no offset at all (which the contract says means UTC).
//! The table stores `yyyy-MM-ddTHH:mm:ss.fffffffZ` (docs/contracts.md §3) so that strings
//! sort by time; [`Timestamp::to_table_string`] always writes that shape.

use std::fmt;

/// A UTC instant with 100 ns resolution (the resolution of a .NET `DateTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    secs: i64,
    /// 100 ns ticks within the second, `0..10_000_000`.
    ticks: u32,
}

/// Why a date-time string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an ISO 8601 date-time such as 2021-02-19T15:12:00.1234567Z: {reason}")]
pub struct TimestampError {
    /// What was wrong, for the person reading the error.
    pub reason: &'static str,
}

const TICKS_PER_SEC: u32 = 10_000_000;

fn err(reason: &'static str) -> TimestampError {
    TimestampError { reason }
}

/// Days since the Unix epoch of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since the Unix epoch.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Reads exactly `n` ASCII digits from the front of `s`.
fn digits(s: &[u8], n: usize) -> Result<(u32, &[u8]), TimestampError> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return Err(err("a date or time part is not made of digits"));
    }
    let v = s[..n]
        .iter()
        .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    Ok((v, &s[n..]))
}

fn expect<'a>(s: &'a [u8], c: u8, reason: &'static str) -> Result<&'a [u8], TimestampError> {
    match s.split_first() {
        Some((&b, rest)) if b == c => Ok(rest),
        _ => Err(err(reason)),
    }
}

impl Timestamp {
    /// The instant `secs` seconds and `ticks` 100 ns ticks after the Unix epoch.
    pub fn from_unix(secs: i64, ticks: u32) -> Option<Self> {
        (ticks < TICKS_PER_SEC).then_some(Self { secs, ticks })
    }

    /// The current time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            secs: d.as_secs() as i64,
            ticks: d.subsec_nanos() / 100,
        }
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.secs
    }

    /// Parses a .NET `DateTime` / ISO 8601 string: `YYYY-MM-DDTHH:MM:SS`, an optional
    /// fraction of 1–7 digits, then `Z`, `±HH:MM`, `±HHMM` or nothing (UTC).
    pub fn parse(input: &str) -> Result<Self, TimestampError> {
        let s = input.trim().as_bytes();
        let (year, s) = digits(s, 4)?;
        let s = expect(s, b'-', "expected '-' after the year")?;
        let (month, s) = digits(s, 2)?;
        let s = expect(s, b'-', "expected '-' after the month")?;
        let (day, s) = digits(s, 2)?;
        let s = match s.split_first() {
            Some((b'T' | b't' | b' ', rest)) => rest,
            _ => return Err(err("expected 'T' between date and time")),
        };
        let (hour, s) = digits(s, 2)?;
        let s = expect(s, b':', "expected ':' after the hour")?;
        let (minute, s) = digits(s, 2)?;
        let s = expect(s, b':', "expected ':' after the minutes")?;
        let (second, mut s) = digits(s, 2)?;
        let mut ticks = 0u32;
        if let Some((b'.', rest)) = s.split_first() {
            let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 {
                return Err(err("expected digits after '.'"));
            }
            if n > 7 {
                return Err(err("more than 7 fraction digits"));
            }
            let (frac, rest) = digits(rest, n)?;
            ticks = frac * 10u32.pow(7 - n as u32);
            s = rest;
        }
        let offset_secs: i64 = match s {
            [] | [b'Z'] | [b'z'] => 0,
            [sign @ (b'+' | b'-'), rest @ ..] => {
                let (oh, rest) = digits(rest, 2)?;
                let rest = rest.strip_prefix(b":").unwrap_or(rest);
                let (om, rest) = digits(rest, 2)?;
                if !rest.is_empty() || oh > 23 || om > 59 {
                    return Err(err("the UTC offset is not ±HH:MM"));
                }
                let off = i64::from(oh * 3600 + om * 60);
                if *sign == b'-' { -off } else { off }
            }
            _ => return Err(err("unexpected text after the time")),
        };
        if !(1..=12).contains(&month) {
            return Err(err("month out of range"));
        }
        let year = i64::from(year);
        if day == 0 || day > days_in_month(year, month) {
            return Err(err("day out of range for the month"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(err("time of day out of range"));
        }
        let secs = days_from_civil(year, month, day) * 86_400
            + i64::from(hour * 3600 + minute * 60 + second)
            - offset_secs;
        Ok(Self { secs, ticks })
    }

    /// The table's format: `yyyy-MM-ddTHH:mm:ss.fffffffZ`, always 7 fraction digits.
    pub fn to_table_string(&self) -> String {
        self.to_string()
    }

    /// This instant plus `days` whole days.
    pub fn plus_days(&self, days: u32) -> Self {
        Self {
            secs: self.secs + i64::from(days) * 86_400,
            ticks: self.ticks,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:07}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60,
            self.ticks
        )
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn five_dotnet_shapes_parse_to_the_same_instant_family() {
        // 7 digits with Z: the shape the table stores.
        let a = Timestamp::parse("2021-02-19T15:12:00.1234567Z").unwrap();
        assert_eq!(a.to_table_string(), "2021-02-19T15:12:00.1234567Z");
        // No offset and no fraction: UTC per the contract.
        let b = Timestamp::parse("2021-02-19T15:12:00").unwrap();
        assert_eq!(b.to_table_string(), "2021-02-19T15:12:00.0000000Z");
        // 3 fraction digits, no offset.
        let c = Timestamp::parse("2021-02-19T15:12:00.5").unwrap();
        assert_eq!(c.to_table_string(), "2021-02-19T15:12:00.5000000Z");
        // Numeric positive offset: 16:12 at +01:00 is 15:12 UTC.
        let d = Timestamp::parse("2021-02-19T16:12:00.123+01:00").unwrap();
        assert_eq!(d.to_table_string(), "2021-02-19T15:12:00.1230000Z");
        // Negative offset crossing midnight backwards into the previous day.
        let e = Timestamp::parse("2021-02-18T23:30:00.1234567-0530").unwrap();
        assert_eq!(e.to_table_string(), "2021-02-19T05:00:00.1234567Z");
    }

    #[test]
    fn rejects_what_is_not_a_date_time() {
        for bad in [
            "",
            "yesterday",
            "2021-02-19",
            "2021-13-01T00:00:00Z",
            "2021-02-30T00:00:00Z",
            "2021-02-19T24:00:00Z",
            "2021-02-19T15:12:00.12345678Z",
            "2021-02-19T15:12:00.Z",
            "2021-02-19T15:12:00Zjunk",
            "2021-02-19T15:12:00+25:00",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn leap_day_is_accepted_only_in_leap_years() {
        assert!(Timestamp::parse("2024-02-29T00:00:00Z").is_ok());
        assert!(Timestamp::parse("2023-02-29T00:00:00Z").is_err());
        assert!(Timestamp::parse("2000-02-29T00:00:00Z").is_ok());
        assert!(Timestamp::parse("1900-02-29T00:00:00Z").is_err());
    }

    #[test]
    fn unix_epoch_is_zero() {
        assert_eq!(
            Timestamp::parse("1970-01-01T00:00:00Z")
                .unwrap()
                .unix_seconds(),
            0
        );
        assert_eq!(
            Timestamp::parse("2021-09-14T10:02:31Z")
                .unwrap()
                .unix_seconds(),
            1_631_613_751
        );
    }

    proptest! {
        #[test]
        fn table_string_round_trips_and_sorts_like_time(a in -2_000_000_000i64..8_000_000_000, at in 0u32..10_000_000,
                                                        b in -2_000_000_000i64..8_000_000_000, bt in 0u32..10_000_000) {
            let x = Timestamp::from_unix(a, at).unwrap();
            let y = Timestamp::from_unix(b, bt).unwrap();
            prop_assert_eq!(Timestamp::parse(&x.to_table_string()).unwrap(), x);
            // Only years 0000-9999 have the fixed width that makes strings sort.
            prop_assert_eq!(x.cmp(&y), x.to_table_string().cmp(&y.to_table_string()));
        }
    }
}
