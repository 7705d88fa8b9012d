//! RFC 5424 and RFC 3164 frames, written here rather than by the `syslog` crate's formatters
//! (see the crate docs for why).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use watchbell_core::format::{Format, FormatContext};
use watchbell_core::text::{single_line, truncate_bytes, MARKER};
use watchbell_core::time::{write_rfc3339, UtcTime};
use watchbell_core::zone::Zone;
use watchbell_core::{Level, Record};

use crate::{Facility, Protocol};

/// The UTF-8 byte order mark that RFC 5424 puts before a UTF-8 MSG.
pub(crate) const BOM: &str = "\u{feff}";

/// The replacement of a NUL byte in log text (many receivers cut a message at NUL).
const NUL_REPLACEMENT: char = '\u{fffd}';

/// Replaces every NUL in `s` with [`NUL_REPLACEMENT`].
fn replace_nul(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', &NUL_REPLACEMENT.to_string());
    }
}

/// The syslog severity of a level by default: ERROR err(3), WARN warning(4), INFO info(6),
/// DEBUG and TRACE debug(7). [`level_severity`](crate::SyslogBuilder::level_severity) changes
/// it per sink.
pub fn severity(level: Level) -> u8 {
    DEFAULT_SEVERITIES[level_index(level)].code()
}

/// The default severity of each level, in the order of [`level_index`].
pub(crate) const DEFAULT_SEVERITIES: [Severity; 5] =
    [Severity::Error, Severity::Warning, Severity::Informational, Severity::Debug, Severity::Debug];

/// ERROR 0, WARN 1, INFO 2, DEBUG 3, TRACE 4.
pub(crate) fn level_index(level: Level) -> usize {
    match level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        _ => 4,
    }
}

/// A syslog severity (RFC 5424 §6.2.1), 0 (emergency) to 7 (debug).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// 0: the system is unusable.
    Emergency,
    /// 1: action must be taken immediately.
    Alert,
    /// 2: critical conditions.
    Critical,
    /// 3: error conditions.
    Error,
    /// 4: warning conditions.
    Warning,
    /// 5: normal but significant condition.
    Notice,
    /// 6: informational messages.
    Informational,
    /// 7: debug-level messages.
    Debug,
}

const SEVERITY_NAMES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];

impl Severity {
    const ALL: [Severity; 8] = [
        Severity::Emergency,
        Severity::Alert,
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Notice,
        Severity::Informational,
        Severity::Debug,
    ];

    /// The severity's code, 0 (emergency) to 7 (debug).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The severity of a code, 0 to 7.
    pub fn from_code(code: u8) -> Option<Severity> {
        Severity::ALL.get(usize::from(code)).copied()
    }

    /// The severity's short name as syslog.conf writes it (`err`, `warning`, `notice`).
    pub fn name(self) -> &'static str {
        SEVERITY_NAMES[self as usize]
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    /// Parses the syslog.conf names and their long forms, any case, with or without `LOG_`:
    /// `emerg`/`emergency`/`panic`, `alert`, `crit`/`critical`, `err`/`error`,
    /// `warning`/`warn`, `notice`, `info`/`informational`, `debug`; or a code `0` to `7`.
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let name = lower.strip_prefix("log_").unwrap_or(&lower);
        if let Ok(code) = name.parse::<u8>() {
            return Severity::from_code(code).ok_or_else(|| format!("severity code {code} is not 0 to 7"));
        }
        Ok(match name {
            "emerg" | "emergency" | "panic" => Severity::Emergency,
            "alert" => Severity::Alert,
            "crit" | "critical" => Severity::Critical,
            "err" | "error" => Severity::Error,
            "warning" | "warn" => Severity::Warning,
            "notice" => Severity::Notice,
            "info" | "informational" => Severity::Informational,
            "debug" => Severity::Debug,
            _ => {
                return Err(format!(
                    "unknown severity {s:?}; expected emerg, alert, crit, err, warning, notice, info, debug or 0 to 7"
                ))
            }
        })
    }
}

/// The MSGID of a record: the value of field `name`, made PRINTUSASCII (other chars become
/// `_`) and cut to 32 chars; `-` (the NILVALUE) when the field is absent or empty.
pub(crate) fn msgid(r: &Record, name: &str) -> String {
    r.fields.get(name).and_then(|v| sanitize_header(&v.to_string(), 32)).unwrap_or_else(|| "-".to_owned())
}

/// The zone of RFC 3164 timestamps.
#[derive(Clone, Debug)]
pub(crate) enum StampZone {
    /// A time zone (local by default), with its daylight-saving changes.
    Zone(Zone),
    /// A fixed number of minutes east of UTC.
    Fixed(i32),
}

/// Whether a byte may stand in a header field (PRINTUSASCII, 33 to 126).
pub(crate) fn printable(b: u8) -> bool {
    (33..=126).contains(&b)
}

/// Makes `s` a valid header field: non-printable and non-ASCII chars become `_`, cut to `max`
/// bytes; empty gives `None`.
pub(crate) fn sanitize_header(s: &str, max: usize) -> Option<String> {
    let out: String = s.chars().map(|c| if c.is_ascii() && printable(c as u8) { c } else { '_' }).take(max).collect();
    (!out.is_empty()).then_some(out)
}

/// Whether `s` is a valid SD-NAME (SD-ID or PARAM-NAME): 1 to 32 printable US-ASCII chars,
/// none of `=`, space, `]`, `"`.
pub(crate) fn is_sd_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| printable(b) && !matches!(b, b'=' | b']' | b'"'))
}

/// A field name as a PARAM-NAME: each forbidden char (non-ASCII, control, space, `=`, `]`,
/// `"`) becomes `_`, the result is cut to 32 chars; an empty name becomes `_`.
pub fn sd_param_name(name: &str) -> String {
    let out: String = name
        .chars()
        .map(|c| if c.is_ascii() && printable(c as u8) && !matches!(c, '=' | ']' | '"') { c } else { '_' })
        .take(32)
        .collect();
    if out.is_empty() {
        "_".to_owned()
    } else {
        out
    }
}

/// Escapes a PARAM-VALUE: `"`, `\` and `]` get a backslash (RFC 5424 §6.3.3).
pub fn escape_sd_value(value: &str, out: &mut String) {
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The frame writer, with everything fixed at build time.
#[derive(Clone)]
pub(crate) struct FrameFormat {
    pub protocol: Protocol,
    pub facility: Facility,
    /// The HOSTNAME, already valid; `None` = NILVALUE in 5424, left out in 3164.
    pub hostname: Option<String>,
    /// The APP-NAME, already valid (≤ 48 printable chars).
    pub app_name: String,
    /// The PROCID.
    pub procid: String,
    /// The SD-ID of the fields element; `None` = no structured data.
    pub sd_id: Option<String>,
    /// The most bytes of one frame (without the transport framing).
    pub max_bytes: usize,
    /// The zone of the RFC 3164 timestamp.
    pub zone: StampZone,
    /// The severity of each level, in the order of [`level_index`].
    pub severities: [Severity; 5],
    /// The field whose value is the MSGID (5424), if any.
    pub msgid_field: Option<String>,
    /// Whether a UTF-8 BOM goes before a non-empty MSG (5424).
    pub bom: bool,
    /// Whether the transport ends frames at LF (then newlines inside are replaced).
    pub single_line: bool,
    /// The user's format of the MSG, if any.
    pub format: Option<Arc<dyn Format>>,
    pub cx: FormatContext,
}

impl FrameFormat {
    /// The MSG text of a record before escaping and truncation.
    fn message(&self, r: &Record) -> String {
        let mut msg = match &self.format {
            Some(f) => f.format_to_string(r, &self.cx),
            None => {
                let mut m = r.message.to_string();
                if self.protocol == Protocol::Rfc3164 || self.sd_id.is_none() {
                    // No structured data: the fields go into the text.
                    for (name, value) in r.fields.iter() {
                        let v = value.to_string();
                        if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
                            let _ = write!(m, " {name}={v:?}");
                        } else {
                            let _ = write!(m, " {name}={v}");
                        }
                    }
                }
                if r.suppressed > 0 {
                    let _ = write!(m, " ({} similar suppressed)", r.suppressed);
                }
                m
            }
        };
        replace_nul(&mut msg);
        if self.protocol == Protocol::Rfc3164 || self.single_line {
            msg = single_line(&msg).into_owned();
        }
        msg
    }

    /// The PRI value of a record.
    pub fn pri(&self, level: Level) -> u8 {
        self.facility.code() * 8 + self.severities[level_index(level)].code()
    }

    /// The whole frame of one record (no transport framing), at most `max_bytes` bytes.
    pub fn frame(&self, r: &Record) -> String {
        let mut out = String::with_capacity(256);
        let msg = self.message(r);
        match self.protocol {
            Protocol::Rfc5424 => {
                let _ = write!(out, "<{}>1 ", self.pri(r.level));
                let _ = write_rfc3339(&mut out, r.time);
                out.push(' ');
                out.push_str(self.hostname.as_deref().unwrap_or("-"));
                out.push(' ');
                out.push_str(&self.app_name);
                out.push(' ');
                out.push_str(&self.procid);
                out.push(' ');
                match &self.msgid_field {
                    Some(name) => out.push_str(&msgid(r, name)),
                    None => out.push('-'),
                }
                out.push(' ');
                self.write_sd(r, &mut out);
                if !msg.is_empty() {
                    out.push(' ');
                    if self.bom {
                        out.push_str(BOM);
                    }
                }
            }
            Protocol::Rfc3164 => {
                let _ = write!(out, "<{}>", self.pri(r.level));
                match &self.zone {
                    StampZone::Zone(z) => write_3164_civil(&mut out, r.time, z),
                    StampZone::Fixed(m) => write_3164_time(&mut out, r.time, *m),
                }
                out.push(' ');
                if let Some(h) = &self.hostname {
                    out.push_str(h);
                    out.push(' ');
                }
                let tag: String = self.app_name.chars().take(32).collect();
                let _ = write!(out, "{tag}[{}]: ", self.procid);
            }
        }
        let budget = self.max_bytes.saturating_sub(out.len());
        out.push_str(&truncate_bytes(&msg, budget, MARKER));
        out
    }

    /// The fields as one SD-ELEMENT (or `-`). The element takes at most half of what the
    /// header leaves of the frame: a value is cut to a quarter of that, and parameters that do not fit are left out and
    /// counted in a last parameter `watchbell.omitted`.
    fn write_sd(&self, r: &Record, out: &mut String) {
        let Some(id) = &self.sd_id else {
            out.push('-');
            return;
        };
        if r.fields.is_empty() {
            out.push('-');
            return;
        }
        // Half of what the header leaves.
        let limit = self.max_bytes.saturating_sub(out.len()) / 2;
        let value_max = (limit / 4).max(16);
        let mut sd = String::with_capacity(128);
        sd.push('[');
        sd.push_str(id);
        let mut omitted = 0usize;
        let mut param = String::new();
        for (name, value) in r.fields.iter() {
            param.clear();
            param.push(' ');
            param.push_str(&sd_param_name(name));
            param.push_str("=\"");
            let mut text = value.to_string();
            replace_nul(&mut text);
            if self.single_line {
                text = single_line(&text).into_owned();
            }
            escape_sd_value(&truncate_bytes(&text, value_max, MARKER), &mut param);
            param.push('"');
            // Room for `]` and a possible `watchbell.omitted="NNNN"`.
            if omitted > 0 || sd.len() + param.len() + 32 > limit {
                omitted += 1;
                continue;
            }
            sd.push_str(&param);
        }
        if omitted > 0 {
            let _ = write!(sd, " watchbell.omitted=\"{omitted}\"");
        }
        sd.push(']');
        out.push_str(&sd);
    }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `Mmm dd hh:mm:ss` with the day padded with a space (`Oct  5`), shifted by `offset_minutes`.
pub(crate) fn write_3164_time(out: &mut String, t: SystemTime, offset_minutes: i32) {
    let shift = Duration::from_secs(u64::from(offset_minutes.unsigned_abs()) * 60);
    let t = if offset_minutes >= 0 { t + shift } else { t - shift };
    let u = UtcTime::from_system_time(t);
    let _ =
        write!(out, "{} {:>2} {:02}:{:02}:{:02}", MONTHS[(u.month - 1) as usize], u.day, u.hour, u.minute, u.second);
}

/// `Mmm dd hh:mm:ss` with the day padded with a space, in the civil time of `zone`.
pub(crate) fn write_3164_civil(out: &mut String, t: SystemTime, zone: &Zone) {
    if zone.is_utc() {
        return write_3164_time(out, t, 0);
    }
    let c = zone.civil(t);
    let _ = write!(
        out,
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[usize::from(c.month.clamp(1, 12) - 1)],
        c.day,
        c.hour,
        c.minute,
        c.second
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn day_is_space_padded() {
        let mut s = String::new();
        // 2003-10-05T22:14:15Z
        write_3164_time(&mut s, UNIX_EPOCH + Duration::from_secs(1_065_392_055), 0);
        assert_eq!(s, "Oct  5 22:14:15");
        s.clear();
        write_3164_time(&mut s, UNIX_EPOCH + Duration::from_secs(1_065_392_055), 120);
        assert_eq!(s, "Oct  6 00:14:15");
    }

    #[test]
    fn sd_names_and_values() {
        assert_eq!(sd_param_name("a b=c]d\"é"), "a_b_c_d__");
        assert_eq!(sd_param_name(""), "_");
        assert_eq!(sd_param_name(&"x".repeat(40)).len(), 32);
        let mut s = String::new();
        escape_sd_value(r#"a"b\c]d"#, &mut s);
        assert_eq!(s, r#"a\"b\\c\]d"#);
        assert!(is_sd_name("fields@32473"));
        assert!(!is_sd_name("a b"));
    }

    #[test]
    fn severities() {
        assert_eq!([Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE].map(severity), [3, 4, 6, 7, 7]);
    }
}
