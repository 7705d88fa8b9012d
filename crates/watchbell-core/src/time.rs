//! Time arithmetic that cannot overflow, and calendar arithmetic for timestamps: RFC 3339
//! (records, JSON payloads) and the HTTP date of `Retry-After`. UTC only, no time zone
//! database, no extra dependency.
//!
//! # Saturating time
//!
//! `Instant + Duration` panics when the sum does not fit, and `Duration::from_secs_f64` panics
//! on a negative, NaN or huge number. Every deadline, backoff, pace and server-requested delay
//! in watchbell goes through the helpers here instead, so no value — a user's
//! `Duration::MAX` timeout, a configured `pace`, a peer's `Retry-After: 18446744073709551615` —
//! can panic a caller or a worker:
//!
//! - [`after`]`(t, d)` is `t + d`, saturated at [`FAR_FUTURE`] from `t` (about a century): a
//!   deadline that far away never comes, so `Duration::MAX` means "no deadline".
//! - [`deadline`]`(d)` is `after(Instant::now(), d)`.
//! - [`secs_f64`] turns seconds given as a float into a `Duration`, saturating (negative and
//!   NaN are zero).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use watchbell_core::time::{after, deadline, secs_f64, FAR_FUTURE};
//!
//! let now = Instant::now();
//! assert_eq!(after(now, Duration::from_secs(1)), now + Duration::from_secs(1));
//! assert_eq!(after(now, Duration::MAX), now + FAR_FUTURE); // no panic: "no deadline"
//! assert!(deadline(Duration::MAX) > now);
//! assert_eq!(secs_f64(-1.0), Duration::ZERO);
//! assert_eq!(secs_f64(f64::NAN), Duration::ZERO);
//! assert_eq!(secs_f64(1e300), Duration::MAX);
//! ```

use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How far in the future a saturated instant lies (100 years of 365 days). Waits that long are
/// waits for ever; the value is small enough that adding it to any `Instant` of a running
/// process fits on every platform.
pub const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `t + d`, saturated at `t + FAR_FUTURE` (never panics). `Duration::MAX` gives an instant
/// that, for any purpose of a running process, never comes.
pub fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(FAR_FUTURE)).or_else(|| t.checked_add(Duration::from_secs(86_400))).unwrap_or(t)
}

/// The instant `timeout` from now, saturated like [`after`]: `Duration::MAX` means no deadline.
pub fn deadline(timeout: Duration) -> Instant {
    after(Instant::now(), timeout)
}

/// Seconds as a float to a `Duration`, saturating: negative, NaN and `-inf` give zero; values
/// beyond `Duration::MAX` (and `+inf`) give `Duration::MAX`. Never panics.
pub fn secs_f64(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31). Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01. Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The broken-down UTC time of a [`SystemTime`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    /// The year.
    pub year: i64,
    /// The month, 1 to 12.
    pub month: u32,
    /// The day of the month, 1 to 31.
    pub day: u32,
    /// The hour, 0 to 23.
    pub hour: u32,
    /// The minute, 0 to 59.
    pub minute: u32,
    /// The second, 0 to 59.
    pub second: u32,
    /// Nanoseconds within the second.
    pub nanos: u32,
    /// Day of the week, 0 = Sunday.
    pub weekday: u32,
}

impl UtcTime {
    /// Breaks `t` down into UTC calendar fields.
    pub fn from_system_time(t: SystemTime) -> Self {
        let (secs, nanos) = split_secs(t);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        UtcTime {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            nanos,
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// Back to a [`SystemTime`].
    ///
    /// Total: years are clamped to -9999..=9999 and fields out of their ranges saturate, so no
    /// input panics (the parsers reject such values before they get here).
    pub fn to_system_time(self) -> SystemTime {
        let days = days_from_civil(self.year.clamp(-9999, 9999), self.month.clamp(1, 12), self.day.min(31));
        let sod =
            i64::from(self.hour.min(23)) * 3600 + i64::from(self.minute.min(59)) * 60 + i64::from(self.second.min(60));
        let secs = days * 86_400 + sod;
        let nanos = Duration::from_nanos(u64::from(self.nanos.min(999_999_999)));
        let t = if secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(secs as u64))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
        };
        t.and_then(|t| t.checked_add(nanos)).unwrap_or(UNIX_EPOCH)
    }
}

/// `2026-11-21T18:21:45.123456Z`: RFC 3339, UTC, microseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let mut s = String::with_capacity(27);
    let _ = write_rfc3339(&mut s, t);
    s
}

/// Writes `t` as [`rfc3339`] does, without allocating.
pub fn write_rfc3339(out: &mut impl std::fmt::Write, t: SystemTime) -> std::fmt::Result {
    let u = UtcTime::from_system_time(t);
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        u.year,
        u.month,
        u.day,
        u.hour,
        u.minute,
        u.second,
        u.nanos / 1000
    )
}

/// Appends `t` as [`rfc3339`] writes it (the same text), faster: the date and the time up to
/// the second are computed once per second and thread (a per-thread cache of the last whole
/// second's text, keyed by the whole second since 1970, so times before 1970 and times a
/// minute or a day apart never share an entry), and the digits are written without `fmt`.
/// For the many records of one second, only the microseconds are new.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use watchbell_core::time::{push_rfc3339, rfc3339};
///
/// let t = UNIX_EPOCH + Duration::new(1_795_285_305, 123_456_000);
/// let mut out = String::from("at ");
/// push_rfc3339(&mut out, t);
/// assert_eq!(out, "at 2026-11-21T18:21:45.123456Z");
/// assert_eq!(out[3..], rfc3339(t));
/// ```
pub fn push_rfc3339(out: &mut String, t: SystemTime) {
    let done = with_rfc3339(t, |head, micros| {
        out.reserve(27);
        out.push_str(head);
        let mut frac = [b'0'; 6];
        digits::<6>(&mut frac, micros);
        out.extend(frac.iter().map(|&b| char::from(b)));
        out.push('Z');
    });
    if done.is_none() {
        let _ = write_rfc3339(out, t);
    }
}

/// [`push_rfc3339`] for a byte buffer.
///
/// ```
/// use std::time::UNIX_EPOCH;
/// let mut out = b"t=".to_vec();
/// watchbell_core::time::extend_rfc3339(&mut out, UNIX_EPOCH);
/// assert_eq!(out, b"t=1970-01-01T00:00:00.000000Z");
/// ```
pub fn extend_rfc3339(out: &mut Vec<u8>, t: SystemTime) {
    let done = with_rfc3339(t, |head, micros| {
        out.reserve(27);
        out.extend_from_slice(head.as_bytes());
        let mut frac = [b'0'; 6];
        digits::<6>(&mut frac, micros);
        out.extend_from_slice(&frac);
        out.push(b'Z');
    });
    if done.is_none() {
        out.extend_from_slice(rfc3339(t).as_bytes());
    }
}

/// `t` as whole seconds since 1970 (rounded down, so negative before 1970) and nanoseconds.
fn split_secs(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let mut s = -(d.as_secs() as i64);
            let mut n = d.subsec_nanos();
            if n > 0 {
                s -= 1;
                n = 1_000_000_000 - n;
            }
            (s, n)
        }
    }
}

thread_local! {
    /// The last whole second [`with_rfc3339`] wrote, and its text up to the fraction
    /// (`YYYY-MM-DDTHH:MM:SS.`).
    static LAST_SECOND: RefCell<(Option<i64>, String)> = const { RefCell::new((None, String::new())) };
}

/// Writes `n` as `N` decimal digits (zero-padded, the higher digits cut off) into `out`.
fn digits<const N: usize>(out: &mut [u8], mut n: u32) {
    for c in out[..N].iter_mut().rev() {
        *c = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Calls `f` with the text of `t` up to the fraction (`YYYY-MM-DDTHH:MM:SS.`, from this
/// thread's cache of the last second) and its microseconds. `None` (and `f` not called) for a
/// year outside 0 to 9999, or when the cache cannot be used (the thread is ending): the caller
/// falls back to `fmt`.
fn with_rfc3339<R>(t: SystemTime, f: impl FnOnce(&str, u32) -> R) -> Option<R> {
    let (secs, nanos) = split_secs(t);
    LAST_SECOND
        .try_with(|cell| {
            let mut last = cell.try_borrow_mut().ok()?;
            if last.0 != Some(secs) {
                let u = UtcTime::from_system_time(t);
                if !(0..=9999).contains(&u.year) {
                    return None;
                }
                let mut head = *b"0000-00-00T00:00:00.";
                digits::<4>(&mut head[0..], u.year as u32);
                digits::<2>(&mut head[5..], u.month);
                digits::<2>(&mut head[8..], u.day);
                digits::<2>(&mut head[11..], u.hour);
                digits::<2>(&mut head[14..], u.minute);
                digits::<2>(&mut head[17..], u.second);
                last.1.clear();
                last.1.extend(head.iter().map(|&b| char::from(b)));
                last.0 = Some(secs);
            }
            Some(f(&last.1, nanos / 1000))
        })
        .ok()
        .flatten()
}

/// Parses RFC 3339 (`Z` or a `±hh:mm` offset, any number of fraction digits).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> { s.get(r)?.parse().ok() };
    let year = i64::from(num(0..4)?);
    let (month, day, hour, minute, second) = (num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            return None;
        }
        let mut n: u64 = 0;
        for (k, c) in digits.bytes().enumerate() {
            if k < 9 {
                n = n * 10 + u64::from(c - b'0');
            }
        }
        for _ in digits.len()..9 {
            n *= 10;
        }
        nanos = n as u32;
    }
    let offset_secs: i64 = match &s[i..] {
        "Z" | "z" => 0,
        rest if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && rest.get(3..4) == Some(":") => {
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            let v = h * 3600 + m * 60;
            if rest.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let t = UtcTime { year, month, day, hour, minute, second: second.min(59), nanos, weekday: 0 }.to_system_time();
    if offset_secs >= 0 {
        t.checked_sub(Duration::from_secs(offset_secs as u64))
    } else {
        t.checked_add(Duration::from_secs(offset_secs.unsigned_abs()))
    }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// `Sat, 21 Nov 2026 18:21:45 GMT`: the IMF-fixdate of HTTP (RFC 9110 §5.6.7).
pub fn http_date(t: SystemTime) -> String {
    let u = UtcTime::from_system_time(t);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[u.weekday as usize],
        u.day,
        MONTHS[(u.month - 1) as usize],
        u.year,
        u.hour,
        u.minute,
        u.second
    )
}

/// Parses an HTTP date: IMF-fixdate, and the obsolete RFC 850 and asctime forms.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let month_of = |m: &str| MONTHS.iter().position(|x| x.eq_ignore_ascii_case(m)).map(|i| i as u32 + 1);
    let hms = |t: &str| -> Option<(u32, u32, u32)> {
        let mut it = t.split(':');
        let h = it.next()?.parse().ok()?;
        let m = it.next()?.parse().ok()?;
        let s = it.next()?.parse().ok()?;
        Some((h, m, s))
    };
    let (year, month, day, (hour, minute, second)) = match parts.as_slice() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [_, d, m, y, t, "GMT"] => (y.parse().ok()?, month_of(m)?, d.parse().ok()?, hms(t)?),
        // Sunday, 06-Nov-94 08:49:37 GMT
        [_, dmy, t, "GMT"] => {
            let mut it = dmy.split('-');
            let d = it.next()?.parse().ok()?;
            let m = month_of(it.next()?)?;
            let y: i64 = it.next()?.parse().ok()?;
            (
                if y < 70 {
                    2000 + y
                } else if y < 100 {
                    1900 + y
                } else {
                    y
                },
                m,
                d,
                hms(t)?,
            )
        }
        // Sun Nov  6 08:49:37 1994
        [_, m, d, t, y] => (y.parse().ok()?, month_of(m)?, d.parse().ok()?, hms(t)?),
        _ => return None,
    };
    if !(1..=31).contains(&day) || !(0..=9999).contains(&year) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(UtcTime { year, month, day, hour, minute, second: second.min(59), nanos: 0, weekday: 0 }.to_system_time())
}

/// Serde helpers that write a [`SystemTime`] as RFC 3339.
pub mod serde_rfc3339 {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    /// Serializes as RFC 3339 UTC with microseconds.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    /// Deserializes from RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).ok_or_else(|| de::Error::custom(format!("not an RFC 3339 time: {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_and_known_values() {
        let t = UNIX_EPOCH + Duration::new(1_795_285_305, 123_456_000);
        assert_eq!(rfc3339(t), "2026-11-21T18:21:45.123456Z");
        assert_eq!(parse_rfc3339("2026-11-21T18:21:45.123456Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-21T19:21:45.123456+01:00"), Some(t));
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000000Z");
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
    }

    #[test]
    fn cached_time_text_is_keyed_by_the_whole_second() {
        let base = UNIX_EPOCH + Duration::new(1_795_285_305, 123_456_000);
        let secs = |s: u64| Duration::from_secs(s);
        let times = [
            base,
            base + Duration::from_micros(1),          // same second
            base + Duration::from_micros(876_543),    // same second, .999999
            base + Duration::from_micros(876_544),    // the next second, .000000
            base + secs(60),                          // same second of the minute
            base + secs(3600),                        // same minute and second of the hour
            base + secs(86_400),                      // same time of day
            base + secs(86_400 * 366),                // a year later
            base - secs(1),                           // back
            UNIX_EPOCH + Duration::from_millis(500),  // second 0
            UNIX_EPOCH - Duration::from_millis(500),  // second -1 (not 0)
            UNIX_EPOCH - Duration::from_millis(1500), // second -2
            UNIX_EPOCH - secs(86_400 * 365 * 100),    // 1870
            UNIX_EPOCH + secs(253_402_300_799),       // 9999-12-31T23:59:59
            UNIX_EPOCH + secs(253_402_300_800),       // year 10000: fmt's text
            UNIX_EPOCH - secs(62_167_219_200 + 1),    // year -1: fmt's text
        ];
        for _ in 0..2 {
            for (i, &t) in times.iter().enumerate() {
                let mut s = String::new();
                push_rfc3339(&mut s, t);
                assert_eq!(s, rfc3339(t), "time {i}");
                let mut v = Vec::new();
                extend_rfc3339(&mut v, t);
                assert_eq!(v, rfc3339(t).as_bytes(), "time {i}");
            }
        }
        let mut s = String::new();
        push_rfc3339(&mut s, UNIX_EPOCH - Duration::from_millis(500));
        assert_eq!(s, "1969-12-31T23:59:59.500000Z");
        // Each thread has its own last second.
        let other = std::thread::spawn(move || {
            let mut s = String::new();
            push_rfc3339(&mut s, base + secs(1));
            s
        });
        let mut s = String::new();
        push_rfc3339(&mut s, base);
        assert_eq!(s, "2026-11-21T18:21:45.123456Z");
        assert_eq!(other.join().unwrap(), "2026-11-21T18:21:46.123456Z");
    }

    #[test]
    fn http_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(parse_http_date("soon"), None);
    }
}
