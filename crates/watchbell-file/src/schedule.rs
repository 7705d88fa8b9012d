//! [`When`] and the periods of time-based rotation, in UTC or a local [`Zone`].

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use watchbell_core::zone::{Civil, Zone};

/// The unit of time-based rotation, as the `when` of Python's `TimedRotatingFileHandler`.
///
/// Combined with an [`interval`](crate::RollingFileBuilder::interval) of N units, an
/// [`at_time`](crate::RollingFileBuilder::at_time) (midnight and weekly only) and a
/// [`zone`](crate::RollingFileBuilder::zone). Parsed from the standard library's letters
/// (`S`, `M`, `H`, `D`, `MIDNIGHT`, `W0`–`W6`, any case) or from words (`second`, `minute`,
/// `hour`, `day`, `midnight`, `monday` … `sunday`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum When {
    /// `S`: every N seconds; backups named `app.log.2026-11-21_14-05-09`.
    Second,
    /// `M`: every N minutes; `app.log.2026-11-21_14-05`.
    Minute,
    /// `H`: every N hours; `app.log.2026-11-21_14`.
    Hour,
    /// `D`: every N days, at midnight; `app.log.2026-11-21`.
    Day,
    /// `MIDNIGHT`: every N days at midnight, or at the [`at_time`](crate::RollingFileBuilder::at_time);
    /// `app.log.2026-11-21`.
    Midnight,
    /// `W0`–`W6`: every N weeks on this weekday (0 = Monday … 6 = Sunday, as Python's
    /// `weekday()`), at midnight or at the `at_time`; `app.log.2026-11-23`.
    Weekday(u8),
}

impl When {
    /// The length of one unit in seconds, for the sub-day units.
    fn unit_secs(self) -> Option<i64> {
        match self {
            When::Second => Some(1),
            When::Minute => Some(60),
            When::Hour => Some(3600),
            When::Day | When::Midnight | When::Weekday(_) => None,
        }
    }

    /// The shape of the default suffix (`d` for a digit).
    fn shape(self) -> &'static str {
        match self {
            When::Second => "dddd-dd-dd_dd-dd-dd",
            When::Minute => "dddd-dd-dd_dd-dd",
            When::Hour => "dddd-dd-dd_dd",
            When::Day | When::Midnight | When::Weekday(_) => "dddd-dd-dd",
        }
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Second => f.write_str("S"),
            When::Minute => f.write_str("M"),
            When::Hour => f.write_str("H"),
            When::Day => f.write_str("D"),
            When::Midnight => f.write_str("MIDNIGHT"),
            When::Weekday(d) => write!(f, "W{d}"),
        }
    }
}

/// A `when` that is none of the accepted values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseWhenError(String);

impl fmt::Display for ParseWhenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not S, M, H, D, MIDNIGHT or W0-W6", self.0)
    }
}

impl std::error::Error for ParseWhenError {}

impl FromStr for When {
    type Err = ParseWhenError;

    fn from_str(s: &str) -> Result<When, ParseWhenError> {
        const DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "s" | "second" | "seconds" | "secondly" => When::Second,
            "m" | "minute" | "minutes" | "minutely" => When::Minute,
            "h" | "hour" | "hours" | "hourly" => When::Hour,
            "d" | "day" | "days" | "daily" => When::Day,
            "midnight" => When::Midnight,
            w => match (w.strip_prefix('w'), DAYS.iter().position(|d| *d == w)) {
                (_, Some(i)) => When::Weekday(i as u8),
                (Some(n), None) if n.len() == 1 && (b'0'..=b'6').contains(&n.as_bytes()[0]) => {
                    When::Weekday(n.as_bytes()[0] - b'0')
                }
                _ => return Err(ParseWhenError(s.to_owned())),
            },
        })
    }
}

/// A validated rotation schedule: when, every how many units, at what time of day, in which
/// zone.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    pub(crate) when: When,
    pub(crate) interval: u32,
    /// Seconds after midnight (midnight and weekly rotation).
    pub(crate) at: u32,
    pub(crate) zone: Zone,
}

const DAY: i64 = 86_400;

impl Schedule {
    /// Seconds since 1970-01-01T00:00 on this zone's clocks.
    fn local_secs(&self, t: SystemTime) -> i64 {
        if self.zone.is_utc() {
            return match t.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
            };
        }
        let c = self.zone.civil(t);
        c.days_since_epoch() * DAY + i64::from(c.hour) * 3600 + i64::from(c.minute) * 60 + i64::from(c.second)
    }

    /// The instant this zone's clocks show `secs` (see [`Zone::to_system_time`]: a time in a
    /// gap moves forward, a repeated time is the earlier).
    fn instant(&self, secs: i64) -> SystemTime {
        if self.zone.is_utc() {
            return watchbell_core::zone::shift(UNIX_EPOCH, secs);
        }
        let (days, r) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
        let civil =
            Civil::new(1970, 1, 1, (r / 3600) as u8, (r / 60 % 60) as u8, (r % 60) as u8).with_days_since_epoch(days);
        self.zone.to_system_time(&civil)
    }

    /// The start of the period holding `t`, on the zone's clock (local seconds).
    fn start_local(&self, t: SystemTime) -> i64 {
        let s = self.local_secs(t);
        let n = i64::from(self.interval.max(1));
        if let Some(unit) = self.when.unit_secs() {
            let len = unit * n;
            return s - s.rem_euclid(len);
        }
        let at = i64::from(self.at);
        // The day whose rollover time is the last one at or before `t`.
        let mut day = (s - at).div_euclid(DAY);
        match self.when {
            When::Weekday(w) => {
                let weekday = (day + 3).rem_euclid(7); // 1970-01-01 was a Thursday (3)
                day -= (weekday - i64::from(w)).rem_euclid(7);
                // 1970-01-05 was a Monday: weeks counted from the first such weekday.
                let weeks = (day - (4 + i64::from(w))).div_euclid(7);
                day -= weeks.rem_euclid(n) * 7;
            }
            _ => day -= day.rem_euclid(n),
        }
        day * DAY + at
    }

    /// The length of one period on the zone's clock, in seconds.
    fn len_local(&self) -> i64 {
        let n = i64::from(self.interval.max(1));
        match self.when {
            When::Weekday(_) => 7 * DAY * n,
            w => w.unit_secs().unwrap_or(DAY) * n,
        }
    }

    /// The start of the period that holds `t`. A period starts at a time on the zone's clock;
    /// when that time happens twice (clocks going back), at the first; when it does not
    /// happen (clocks going forward), when the clock passes it.
    pub(crate) fn start(&self, t: SystemTime) -> SystemTime {
        self.instant(self.start_local(t))
    }

    /// The first instant of the period after the one starting at `start`.
    pub(crate) fn next(&self, start: SystemTime) -> SystemTime {
        let local = self.start_local(start);
        self.instant(local.saturating_add(self.len_local()))
    }

    /// The standard library's suffix for the period starting at `start`, on the zone's clock.
    pub(crate) fn suffix(&self, start: SystemTime) -> String {
        let s = self.local_secs(start);
        let c = Civil::new(1970, 1, 1, 0, 0, 0).with_days_since_epoch(s.div_euclid(DAY));
        let r = s.rem_euclid(DAY);
        let day = format!("{:04}-{:02}-{:02}", c.year, c.month, c.day);
        match self.when {
            When::Second => format!("{day}_{:02}-{:02}-{:02}", r / 3600, r / 60 % 60, r % 60),
            When::Minute => format!("{day}_{:02}-{:02}", r / 3600, r / 60 % 60),
            When::Hour => format!("{day}_{:02}", r / 3600),
            When::Day | When::Midnight | When::Weekday(_) => day,
        }
    }

    /// Whether `s` has the shape of [`suffix`](Self::suffix).
    pub(crate) fn matches(&self, s: &str) -> bool {
        let pattern = self.when.shape();
        s.len() == pattern.len()
            && s.bytes().zip(pattern.bytes()).all(|(c, p)| if p == b'd' { c.is_ascii_digit() } else { c == p })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> SystemTime {
        Zone::utc().to_system_time(&Civil::new(y, mo, d, h, mi, s))
    }

    fn schedule(when: When, interval: u32, at: u32, zone: Zone) -> Schedule {
        Schedule { when, interval, at, zone }
    }

    #[test]
    fn utc_periods_are_aligned_and_named_as_the_standard_library() {
        let s = schedule(When::Hour, 1, 0, Zone::utc());
        let t = utc(2026, 11, 21, 14, 5, 9);
        assert_eq!(s.start(t), utc(2026, 11, 21, 14, 0, 0));
        assert_eq!(s.next(s.start(t)), utc(2026, 11, 21, 15, 0, 0));
        assert_eq!(s.suffix(s.start(t)), "2026-11-21_14");
        assert!(s.matches("2026-11-21_14") && !s.matches("2026-11-21") && !s.matches("2026-11-2x_14"));
        let s = schedule(When::Second, 10, 0, Zone::utc());
        assert_eq!(s.suffix(s.start(t)), "2026-11-21_14-05-00");
        let s = schedule(When::Minute, 15, 0, Zone::utc());
        assert_eq!(s.start(t), utc(2026, 11, 21, 14, 0, 0));
        assert_eq!(s.next(s.start(t)), utc(2026, 11, 21, 14, 15, 0));
    }

    #[test]
    fn weekly_periods_start_on_their_weekday_at_the_time_given() {
        // 2026-11-21 is a Saturday; W0 (Monday) at 06:30 → the period began Monday the 16th.
        let s = schedule(When::Weekday(0), 1, 6 * 3600 + 1800, Zone::utc());
        let start = s.start(utc(2026, 11, 21, 12, 0, 0));
        assert_eq!(start, utc(2026, 11, 16, 6, 30, 0));
        assert_eq!(s.next(start), utc(2026, 11, 23, 6, 30, 0));
        // Monday 23rd, 06:29: still the period of the 16th.
        assert_eq!(s.start(utc(2026, 11, 23, 6, 29, 59)), start);
        // Every 2 weeks: consecutive periods are 14 days apart.
        let s2 = schedule(When::Weekday(6), 2, 0, Zone::utc());
        let a = s2.start(utc(2026, 11, 21, 0, 0, 0));
        assert_eq!(s2.next(a), a + std::time::Duration::from_secs(14 * 86_400));
        assert_eq!(Civil::new(1970, 1, 1, 0, 0, 0).with_days_since_epoch(0).weekday(), 3);
    }

    #[test]
    fn parses_the_standard_library_letters_and_words() {
        assert_eq!("S".parse(), Ok(When::Second));
        assert_eq!("midnight".parse(), Ok(When::Midnight));
        assert_eq!("W0".parse(), Ok(When::Weekday(0)));
        assert_eq!("w6".parse(), Ok(When::Weekday(6)));
        assert_eq!("sunday".parse(), Ok(When::Weekday(6)));
        assert!("W7".parse::<When>().is_err());
        assert!("weekly".parse::<When>().is_err());
        assert_eq!(When::Weekday(3).to_string(), "W3");
    }
}
