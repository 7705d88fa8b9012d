//! Time zones: UTC, the system's local zone, or a named IANA zone, read safely.
//!
//! A [`Zone`] converts a [`SystemTime`] to the civil (wall clock) time of the zone and back,
//! and tells the UTC offset in force at an instant. It is what the file rotation uses for
//! local-time periods and what a local timestamp (RFC 3164 syslog) is written in.
//!
//! The zone data comes from [jiff](https://docs.rs/jiff), safe Rust, without a bundled
//! database: [`Zone::local`] honours `TZ` (an IANA name such as `Europe/Berlin`, a path to a
//! TZif file, or a POSIX rule such as `CET-1CEST,M3.5.0,M10.5.0/3`) and otherwise reads
//! `/etc/localtime`; [`Zone::named`] reads `/usr/share/zoneinfo`; [`Zone::posix`] needs no
//! database at all. The zone is read once, when the `Zone` is made: later changes to the
//! system's zone are seen by a new `Zone`, not by one already in use.
//!
//! From civil time back to an instant ([`Zone::to_system_time`]), the two ambiguous cases
//! are resolved as the `compatible` rule of RFC 9557 and JavaScript's Temporal (and
//! `mktime` with `tm_isdst = -1` on most systems): a time in a gap (02:30 on the day clocks
//! jump from 02:00 to 03:00) is moved forward by the length of the gap (03:30), and a time
//! that happens twice (02:30 on the day clocks go back from 03:00 to 02:00) is the earlier
//! of the two.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use watchbell_core::zone::{Civil, Zone};
//!
//! // Europe/Berlin's rule, with no database needed.
//! let berlin = Zone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
//! // 2026-07-01T12:00:00Z is 14:00 summer time in Berlin.
//! let t = UNIX_EPOCH + Duration::from_secs(1_782_907_200);
//! let c = berlin.civil(t);
//! assert_eq!((c.year, c.month, c.day, c.hour, c.offset), (2026, 7, 1, 14, 7200));
//! assert_eq!(berlin.to_system_time(&c), t);
//! assert_eq!(berlin.offset_at(t), 7200);
//! // 02:30 on 29 March 2026 does not exist in Berlin: it is read as 03:30 summer time.
//! let gap = Civil::new(2026, 3, 29, 2, 30, 0);
//! assert_eq!(berlin.civil(berlin.to_system_time(&gap)).hour, 3);
//! assert_eq!(Zone::utc().civil(t).hour, 12);
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A time zone: UTC, the local zone of the system, a named IANA zone, or a POSIX rule.
/// Cheap to clone.
#[derive(Clone)]
pub struct Zone {
    tz: TimeZone,
    label: String,
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Zone").field(&self.label).finish()
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.tz == other.tz
    }
}

impl Default for Zone {
    /// UTC.
    fn default() -> Self {
        Zone::utc()
    }
}

/// Why a zone could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneError(String);

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ZoneError {}

impl Zone {
    /// UTC.
    pub fn utc() -> Zone {
        Zone { tz: TimeZone::UTC, label: "UTC".to_owned() }
    }

    /// The system's local zone: `TZ` when it is set and valid, else `/etc/localtime`. When
    /// neither can be read, UTC (see [`try_local`](Self::try_local) to know).
    pub fn local() -> Zone {
        Zone::try_local().unwrap_or_else(|_| Zone::utc())
    }

    /// The system's local zone, or why it cannot be read.
    pub fn try_local() -> Result<Zone, ZoneError> {
        let tz = TimeZone::try_system().map_err(|e| ZoneError(format!("cannot read the local time zone: {e}")))?;
        let label = tz.iana_name().map_or_else(|| "local".to_owned(), |n| format!("local ({n})"));
        Ok(Zone { tz, label })
    }

    /// A zone of the IANA database by name (`Europe/Berlin`, `America/New_York`, `UTC`), read
    /// from the system's database (`/usr/share/zoneinfo`, or `TZDIR`).
    pub fn named(name: &str) -> Result<Zone, ZoneError> {
        let tz = TimeZone::get(name).map_err(|e| ZoneError(format!("unknown time zone {name:?}: {e}")))?;
        Ok(Zone { tz, label: name.to_owned() })
    }

    /// A zone given by a POSIX `TZ` rule, such as `CET-1CEST,M3.5.0,M10.5.0/3` (Central
    /// Europe) or `EST5EDT,M3.2.0,M11.1.0` (US Eastern): no database needed.
    pub fn posix(rule: &str) -> Result<Zone, ZoneError> {
        let tz = TimeZone::posix(rule).map_err(|e| ZoneError(format!("invalid POSIX time zone {rule:?}: {e}")))?;
        Ok(Zone { tz, label: rule.to_owned() })
    }

    /// Reads a setting: `utc` (or `UTC`, `Z`), `local`, an IANA name, or a POSIX rule. This is
    /// what configuration keys that name a zone accept.
    pub fn parse(s: &str) -> Result<Zone, ZoneError> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "utc" | "z" | "gmt" => return Ok(Zone::utc()),
            "local" => return Zone::try_local(),
            _ => {}
        }
        Zone::named(s).or_else(|named| Zone::posix(s).map_err(|_| named))
    }

    /// Whether this is UTC (or a zone that is always at offset zero with no changes).
    pub fn is_utc(&self) -> bool {
        self.tz == TimeZone::UTC
    }

    /// The offset from UTC in force at `t`, in seconds east of Greenwich (Berlin in summer:
    /// 7200).
    pub fn offset_at(&self, t: SystemTime) -> i32 {
        self.tz.to_offset(timestamp(t)).seconds()
    }

    /// The civil time in this zone at `t`.
    pub fn civil(&self, t: SystemTime) -> Civil {
        let ts = timestamp(t);
        let dt = self.tz.to_datetime(ts);
        Civil {
            year: dt.year(),
            month: dt.month() as u8,
            day: dt.day() as u8,
            hour: dt.hour() as u8,
            minute: dt.minute() as u8,
            second: dt.second() as u8,
            nanosecond: dt.subsec_nanosecond() as u32,
            offset: self.tz.to_offset(ts).seconds(),
        }
    }

    /// The instant at which this zone's clocks show `civil` (its `offset` is ignored). A time
    /// in a gap is moved forward by the gap's length; a time that happens twice is the
    /// earlier one (see the [module docs](self)). Out-of-range fields are clamped to a valid
    /// date and time.
    pub fn to_system_time(&self, civil: &Civil) -> SystemTime {
        let month = civil.month.clamp(1, 12);
        let day = civil.day.clamp(1, days_in_month(civil.year, month));
        let dt = jiff::civil::DateTime::new(
            civil.year.clamp(-9998, 9998),
            month as i8,
            day as i8,
            civil.hour.min(23) as i8,
            civil.minute.min(59) as i8,
            civil.second.min(59) as i8,
            civil.nanosecond.min(999_999_999) as i32,
        );
        match dt.and_then(|dt| self.tz.to_ambiguous_timestamp(dt).compatible()) {
            Ok(ts) => SystemTime::try_from(ts).unwrap_or(UNIX_EPOCH),
            Err(_) => UNIX_EPOCH,
        }
    }

    /// `t` written with a `strftime` format in this zone (`%Y-%m-%d` → `2026-11-28`; `%H`,
    /// `%M`, `%S`, `%b`, `%a`, `%z`, `%Z`, `%j`, `%%` …, as C's `strftime`). An invalid
    /// format is an error.
    pub fn strftime(&self, t: SystemTime, format: &str) -> Result<String, ZoneError> {
        let zoned = timestamp(t).to_zoned_datetime(self.tz.clone());
        let mut out = String::new();
        jiff::fmt::strtime::BrokenDownTime::from(&zoned)
            .format(format, &mut out)
            .map_err(|e| ZoneError(format!("invalid time format {format:?}: {e}")))?;
        Ok(out)
    }
}

/// Whether `text` is, in full, something `format` can write (parsed back with `strptime`
/// rules): `matches_strftime("%Y-%m-%d", "2026-11-28")` is true, `"2026-11-28.gz"` is not.
pub fn matches_strftime(format: &str, text: &str) -> bool {
    jiff::fmt::strtime::parse(format, text).is_ok()
}

/// A civil (wall clock) time in some zone, with the offset it had there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Civil {
    /// The year.
    pub year: i16,
    /// The month, 1 to 12.
    pub month: u8,
    /// The day of the month, 1 to 31.
    pub day: u8,
    /// The hour, 0 to 23.
    pub hour: u8,
    /// The minute, 0 to 59.
    pub minute: u8,
    /// The second, 0 to 59.
    pub second: u8,
    /// Nanoseconds within the second.
    pub nanosecond: u32,
    /// The offset from UTC in seconds east (0 for a `Civil` made with [`Civil::new`]; set by
    /// [`Zone::civil`]).
    pub offset: i32,
}

impl Civil {
    /// A civil date and time (offset 0, nanoseconds 0).
    pub fn new(year: i16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Civil {
        Civil { year, month, day, hour, minute, second, nanosecond: 0, offset: 0 }
    }

    /// The day of the week, 0 = Monday … 6 = Sunday (Python's `weekday()`).
    pub fn weekday(&self) -> u8 {
        // 1970-01-01 was a Thursday (3).
        (self.days_since_epoch() + 3).rem_euclid(7) as u8
    }

    /// Days from 1970-01-01 to this date (negative before it), ignoring the time of day.
    pub fn days_since_epoch(&self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let (y, m, d) = (i64::from(self.year), i64::from(self.month), i64::from(self.day));
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// This civil time moved to the date `days` days from 1970-01-01, with the same time of
    /// day.
    pub fn with_days_since_epoch(&self, days: i64) -> Civil {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i16;
        Civil { year, month, day, ..*self }
    }
}

fn days_in_month(year: i16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// `t` as a jiff timestamp, clamped to jiff's range (years -9999 to 9999).
fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or_else(|_| if t < UNIX_EPOCH { Timestamp::MIN } else { Timestamp::MAX })
}

/// `t` moved by `secs` seconds (negative: back), saturating at the epoch's range.
pub fn shift(t: SystemTime, secs: i64) -> SystemTime {
    let d = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        t.checked_add(d).unwrap_or(t)
    } else {
        t.checked_sub(d).unwrap_or(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERLIN: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

    fn utc(y: i16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> SystemTime {
        Zone::utc().to_system_time(&Civil::new(y, mo, d, h, mi, s))
    }

    #[test]
    fn berlin_offsets_change_at_both_2026_transitions() {
        let z = Zone::posix(BERLIN).unwrap();
        // Spring: 01:00Z (02:00 CET) becomes 03:00 CEST.
        assert_eq!(z.offset_at(utc(2026, 3, 29, 0, 59, 59)), 3600);
        assert_eq!(z.offset_at(utc(2026, 3, 29, 1, 0, 0)), 7200);
        assert_eq!(z.civil(utc(2026, 3, 29, 1, 0, 0)).hour, 3);
        // Autumn: 01:00Z (03:00 CEST) becomes 02:00 CET.
        assert_eq!(z.offset_at(utc(2026, 10, 25, 0, 59, 59)), 7200);
        assert_eq!(z.offset_at(utc(2026, 10, 25, 1, 0, 0)), 3600);
        assert_eq!(z.civil(utc(2026, 10, 25, 0, 30, 0)).hour, 2);
        assert_eq!(z.civil(utc(2026, 10, 25, 1, 30, 0)).hour, 2);
    }

    #[test]
    fn gaps_move_forward_and_repeated_times_are_the_earlier() {
        let z = Zone::posix(BERLIN).unwrap();
        assert_eq!(z.to_system_time(&Civil::new(2026, 3, 29, 2, 30, 0)), utc(2026, 3, 29, 1, 30, 0));
        assert_eq!(z.to_system_time(&Civil::new(2026, 10, 25, 2, 30, 0)), utc(2026, 10, 25, 0, 30, 0));
        assert_eq!(z.to_system_time(&Civil::new(2026, 10, 26, 0, 0, 0)), utc(2026, 10, 25, 23, 0, 0));
    }

    #[test]
    fn day_numbers_and_weekdays_round_trip() {
        let c = Civil::new(2026, 11, 28, 0, 0, 0);
        assert_eq!(c.weekday(), 5, "a Saturday");
        assert_eq!(Civil::new(1970, 1, 1, 0, 0, 0).days_since_epoch(), 0);
        for days in [-800_000i64, -1, 0, 59, 60, 365, 11_016, 20_420, 2_000_000] {
            let c = Civil::new(1970, 1, 1, 5, 6, 7).with_days_since_epoch(days);
            assert_eq!(c.days_since_epoch(), days, "{c:?}");
            assert_eq!((c.hour, c.minute, c.second), (5, 6, 7));
        }
        assert_eq!(Civil::new(2024, 2, 29, 0, 0, 0).with_days_since_epoch(20_513).day, 1);
    }

    #[test]
    fn parse_accepts_utc_local_names_and_rules() {
        assert!(Zone::parse("UTC").unwrap().is_utc());
        assert!(Zone::parse("local").is_ok() || Zone::try_local().is_err());
        let rule = Zone::parse(BERLIN).unwrap();
        assert_eq!(rule.offset_at(utc(2026, 7, 1, 0, 0, 0)), 7200);
        assert!(Zone::parse("Not/AZone").is_err());
        let z = Zone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        assert_eq!(z.strftime(utc(2026, 11, 28, 3, 0, 0), "%Y-%m-%d_%H").unwrap(), "2026-11-27_22");
        assert!(matches_strftime("%Y-%m-%d", "2026-11-28"));
        assert!(!matches_strftime("%Y-%m-%d", "2026-11-28.gz"));
    }
}
