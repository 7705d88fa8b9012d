//! # watchbell-syslog
//!
//! Syslog for tracing: RFC 3164 and RFC 5424 over unix, UDP and TCP sockets, with RFC 6587
//! framing on TCP, reconnection after errors, and event fields as RFC 5424 structured data.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_core::Level;
//! use watchbell_syslog::{Facility, Severity, SyslogLayer};
//!
//! let (layer, guard) = SyslogLayer::builder()
//!     .tcp("logs.internal:6514")          // or .udp("10.0.0.5:514"), or .unix("/dev/log") (the default)
//!     .facility(Facility::Local3)
//!     .app_name("billing")
//!     .level_severity(Level::WARN, Severity::Notice) // WARN as notice(5) instead of warning(4)
//!     .msgid_field("event")                          // MSGID from the field `event`, if any
//!     .level(Level::INFO)
//!     .build()
//!     .expect("a valid configuration");
//! tracing_subscriber::registry().with(layer).init();
//!
//! tracing::error!(invoice = 42, "payment failed");
//! // sends `<155>1 2026-11-21T18:21:45.123456Z web-1 billing 4242 - [fields@32473 invoice="42"] payment failed`,
//! // framed as `LEN SP frame` (RFC 6587 octet counting)
//!
//! guard.shutdown(Duration::from_secs(5));
//! ```
//!
//! Writing happens on watchbell's delivery thread: the thread that logs only captures the event
//! and enqueues it. A syslog daemon that is down, slow or restarting never blocks it.
//!
//! ## What is sent
//!
//! RFC 5424 (the default over UDP and TCP):
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [fields@32473 name="value" ...] MSG
//! ```
//!
//! - PRI = facility × 8 + severity; severity from the level: `ERROR` err(3), `WARN` warning(4),
//!   `INFO` info(6), `DEBUG` and `TRACE` debug(7) ([`severity`]), or as
//!   [`level_severity`](SyslogBuilder::level_severity) maps it (`WARN` to notice(5), say).
//! - TIMESTAMP is the event's time (not the time of sending, which may be later after a retry),
//!   RFC 3339 in UTC with microseconds.
//! - MSGID is the NILVALUE `-`, or the value of the field named by
//!   [`msgid_field`](SyslogBuilder::msgid_field) (`msgid_field("event")` and
//!   `tracing::warn!(event = "login_failed", …)` give `login_failed`): printable US-ASCII
//!   only (other chars become `_`), cut to 32 chars, `-` when the record lacks the field.
//! - The event's fields form one SD-ELEMENT whose SD-ID is `fields@32473` by default (32473 is
//!   the enterprise number RFC 5612 reserves for documentation; set your own with
//!   [`sd_id`](SyslogBuilder::sd_id)). Field names are made valid PARAM-NAMEs (printable
//!   US-ASCII; `=`, space, `]`, `"`, control and non-ASCII chars become `_`; cut to 32 chars);
//!   values are escaped (`"`, `\` and `]` get a backslash). An event without fields has `-`.
//!   The element takes at most half of what the header leaves of the frame: a value is cut to
//!   a quarter of that with the marker `…[truncated]`, and fields that do not fit are left out and counted in a last
//!   parameter `watchbell.omitted="N"`.
//! - MSG is the event's message (and ` (N similar suppressed)` when a rate limit withheld
//!   some), with no byte order mark unless [`bom`](SyslogBuilder::bom)`(true)` (see
//!   [below](#the-byte-order-mark)).
//!
//! RFC 3164 (the default on unix sockets, which local daemons such as journald and rsyslog's
//! imuxsock read as the C library writes it):
//!
//! ```text
//! <PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: message key=value ...
//! ```
//!
//! - The day is padded with a space (`Oct  5`), as the RFC requires.
//! - The time is the local time of this machine (RFC 3164 has no zone; daemons read the
//!   stamp as their own local time), following its daylight-saving changes. The zone is read
//!   when the layer is built ([`Zone::local`]: `TZ`, else `/etc/localtime`; UTC when neither
//!   can be read). Choose another with [`zone`](SyslogBuilder::zone) (`Zone::utc()`,
//!   `Zone::named("Europe/Berlin")`, a POSIX rule) or a fixed offset with
//!   [`utc_offset_minutes`](SyslogBuilder::utc_offset_minutes).
//! - HOSTNAME is left out on unix sockets unless set with [`hostname`](SyslogBuilder::hostname)
//!   (as the C library does; the local daemon adds it).
//! - TAG is the app name cut to 32 chars; the fields follow the message as `key=value`.
//! - Newlines (and every other control char) become spaces: one record is one line.
//!
//! In both formats a NUL in log text becomes U+FFFD (receivers cut messages at NUL), and the
//! whole frame is cut to [`max_message_bytes`](SyslogBuilder::max_message_bytes) at a char
//! boundary, ending with the marker `…[truncated]`.
//!
//! ## The byte order mark
//!
//! RFC 5424 §6.4 says a MSG in UTF-8 starts with the BOM (U+FEFF). This crate leaves it out by
//! default, because of what the two common daemons do with it (Debian 12's packages, checked
//! by `the_daemons_rsyslog_and_syslog_ng_with_and_without_the_bom`, which starts both as
//! receivers on loopback and reads the files they write):
//!
//! - rsyslog 8.2302 keeps the BOM as part of `%msg%`: every line it writes to a file starts
//!   with the bytes `EF BB BF`, which breaks `grep ^…`, log shippers' patterns and parsers.
//! - syslog-ng 3.38 (`flags(syslog-protocol)`) strips it: the file is the same with or without.
//!
//! So without the BOM both write the message as sent; with it one of them corrupts every line.
//! Python's `logging.handlers.SysLogHandler` dropped its BOM for the same reason. The text is
//! UTF-8 either way. Turn it on with [`bom`](SyslogBuilder::bom)`(true)` for a receiver that
//! needs it to treat the MSG as UTF-8.
//!
//! ## Transports
//!
//! - **unix** (default): `/dev/log`, then `/var/run/syslog`, then `/var/run/log` (or the path of
//!   [`unix`](SyslogBuilder::unix)); a datagram socket, or a stream socket when the path is
//!   one. The socket need not exist when the layer is built: records wait in the queue and
//!   are delivered once it appears.
//! - **UDP**: one datagram per record, at most 2048 bytes by default (RFC 5426's guidance for
//!   messages that must cross unknown networks; RFC 5424 receivers must take 480 and should
//!   take 2048).
//! - **TCP**: one connection, each frame framed per RFC 6587 with octet counting
//!   (`LEN SP MSG`, so messages may hold newlines), or ended by LF with
//!   [`framing`](SyslogBuilder::framing)`(Framing::LineFeed)` for receivers that only know
//!   that (newlines inside become spaces then). Stream sockets on unix use the same framing.
//!
//! After a send error the connection is dropped and the batch is retried from the first record
//! not sent, with backoff (see [`retry`](SinkOptions::retry)); the retry opens a new connection.
//! Before writing to a stream the sink checks that the peer has not closed it, so a restarted
//! receiver does not lose the record that would otherwise go into the dead connection. What
//! does not fit in the queue while the receiver is away is dropped, counted in
//! [`Guard::stats`](watchbell_core::Guard::stats), and announced by a notice record afterwards.
//!
//! ## Why not the `syslog` crate's formatters
//!
//! The workspace uses the [`syslog`](https://docs.rs/syslog/7) crate where it helps: opening
//! unix sockets (datagram, with its fallback to a stream socket) and UDP sockets, and writing
//! datagrams through its `LoggerBackend`. Its `Formatter3164`/`Formatter5424` cannot produce
//! what the RFCs need, so the frames are written here: they stamp the time of sending instead
//! of the event's, zero-pad the 3164 day, take structured data as a sorted map
//! without checking SD-NAMEs, and do not bound the frame's size. Its TCP backend has no
//! RFC 6587 framing, may write a frame in part, and never reconnects (rust-syslog #21, #79), so
//! TCP and unix stream connections are handled here.
//!
//! ## What TCP cannot promise
//!
//! Plain syslog over TCP (RFC 6587) has no acknowledgement: a frame counts as delivered once
//! the kernel took it. A receiver that resets the connection afterwards loses what was still in
//! flight (at most what the socket buffers held; the next write sees the reset, reconnects and
//! nothing later is lost — `a_syslog_receiver_that_resets_never_holds_the_caller_and_the_next_record_arrives`
//! measures it). Where every record matters, prefer a collector with acknowledgements
//! (watchbell-http, which retries until the collector answers 2xx) or a local unix socket.
//!
//! ## Defaults
//!
//! | setting | default | builder method |
//! |---|---|---|
//! | transport | unix socket: `/dev/log`, `/var/run/syslog`, `/var/run/log` | [`unix`](SyslogBuilder::unix), [`udp`](SyslogBuilder::udp), [`tcp`](SyslogBuilder::tcp) |
//! | protocol | RFC 3164 on unix sockets, RFC 5424 over UDP and TCP | [`protocol`](SyslogBuilder::protocol) |
//! | framing on streams | RFC 6587 octet counting | [`framing`](SyslogBuilder::framing) |
//! | facility | `user` (1) | [`facility`](SyslogBuilder::facility) |
//! | app name | the executable's file name (made valid: printable ASCII, ≤ 48 chars) | [`app_name`](SyslogBuilder::app_name) |
//! | hostname | this machine's (`/proc/sys/kernel/hostname`, `/etc/hostname`, `$HOSTNAME`), else `-` | [`hostname`](SyslogBuilder::hostname) |
//! | process id | this process's | [`pid`](SyslogBuilder::pid) |
//! | structured data | the fields as `[fields@32473 ...]` | [`sd_id`](SyslogBuilder::sd_id), [`no_structured_data`](SyslogBuilder::no_structured_data) |
//! | frame size | 2048 bytes over UDP, 8096 over TCP and unix sockets (rsyslog's default) | [`max_message_bytes`](SyslogBuilder::max_message_bytes) |
//! | severities | ERROR err, WARN warning, INFO info, DEBUG and TRACE debug | [`level_severity`](SyslogBuilder::level_severity) |
//! | MSGID (5424) | `-` | [`msgid_field`](SyslogBuilder::msgid_field) |
//! | BOM before the 5424 MSG | none | [`bom`](SyslogBuilder::bom) |
//! | RFC 3164 time | local time ([`Zone::local`]) | [`zone`](SyslogBuilder::zone), [`utc_offset_minutes`](SyslogBuilder::utc_offset_minutes) |
//! | level captured | `INFO` and more severe | [`level`](SyslogBuilder::level) |
//! | rate limit | none | [`rate_limit`](SinkOptions::rate_limit) |
//! | pace | none | [`pace`](SinkOptions::pace) |
//! | batching | records that queue while the socket is busy are written together, up to 100 | — |
//! | retries | `Retry::default()`: 500 ms doubling to 60 s, for 10 minutes per batch | [`retry`](SinkOptions::retry) |
//! | queue | 10,000 records, the newest dropped and counted when full | [`queue_records`](SinkOptions::queue_records), [`overflow`](SinkOptions::overflow) |
//! | connect and write timeout | 10 s | [`timeout`](SinkOptions::timeout) |
//!
//! The common setters come from [`SinkOptions`]; bring it into scope with
//! `use watchbell_core::SinkOptions;`.
#![deny(missing_docs)]

mod format;
mod sink;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::format::{Format, FormatContext};
pub use watchbell_core::{BuildError, SinkOptions};
use watchbell_core::{Guard, Handler, Level, Options, SinkLayer};

pub use crate::format::{escape_sd_value, sd_param_name, severity, Severity};
use crate::format::{is_sd_name, level_index, printable, sanitize_header, FrameFormat, StampZone, DEFAULT_SEVERITIES};
use crate::sink::{Dest, SyslogSink};
pub use watchbell_core::zone::Zone;

/// Entry points for fuzz targets and property tests: RFC 5424 structured-data escaping and the
/// RFC 3164 / 5424 frames with their RFC 6587 stream framing, as the sink makes them. Not a
/// stable API.
#[doc(hidden)]
pub mod fuzzing {
    use watchbell_core::format::FormatContext;
    use watchbell_core::Record;

    pub use crate::format::{escape_sd_value, sd_param_name};
    use crate::format::{FrameFormat, StampZone, DEFAULT_SEVERITIES};
    use crate::{Facility, Framing, Protocol};

    /// The frame of `record` (without transport framing) as a sink with these settings makes
    /// it: host `host`, app `app`, pid 1, the fields as structured data under `sd_id` (when
    /// given and valid), RFC 3164 time in UTC, a BOM before a non-empty 5424 MSG, frames of at most `max_bytes` bytes (at least 480, as the builder
    /// requires), one line when `framing` is [`Framing::LineFeed`].
    pub fn frame(
        protocol: Protocol,
        framing: Framing,
        sd_id: Option<&str>,
        max_bytes: usize,
        record: &Record,
    ) -> String {
        FrameFormat {
            protocol,
            facility: Facility::User,
            hostname: Some("host".to_owned()),
            app_name: "app".to_owned(),
            procid: "1".to_owned(),
            sd_id: sd_id.filter(|id| crate::format::is_sd_name(id)).map(str::to_owned),
            max_bytes: max_bytes.max(480),
            zone: StampZone::Fixed(0),
            severities: DEFAULT_SEVERITIES,
            msgid_field: None,
            bom: true,
            single_line: framing == Framing::LineFeed,
            format: None,
            cx: FormatContext::new("app".to_owned()),
        }
        .frame(record)
    }

    /// The bytes a stream transport writes for `frame` (RFC 6587 octet counting or LF).
    pub fn stream_bytes(framing: Framing, frame: &str) -> Vec<u8> {
        let mut buf = Vec::new();
        crate::sink::stream_frame(framing, frame, &mut buf);
        buf
    }
}

const CRATE: &str = "watchbell-syslog";

/// The SD-ID of the fields element by default (32473: the documentation enterprise number of
/// RFC 5612).
pub const DEFAULT_SD_ID: &str = "fields@32473";

/// The default frame size over UDP (RFC 5426's guidance).
pub const DEFAULT_UDP_MAX_BYTES: usize = 2048;

/// The default frame size over TCP and unix sockets: rsyslog's default `maxMessageSize`, which
/// is "8k" = 8,096 bytes (not 8,192). A larger frame is cut by a stock rsyslog mid-character,
/// and the rest is stored as a bogus message of its own.
pub const DEFAULT_STREAM_MAX_BYTES: usize = 8096;

/// The unix socket paths tried in order by default.
pub const DEFAULT_UNIX_PATHS: [&str; 3] = ["/dev/log", "/var/run/syslog", "/var/run/log"];

/// A syslog facility (RFC 5424 §6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[allow(missing_docs)]
pub enum Facility {
    Kern,
    #[default]
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Ntp,
    Audit,
    Alert,
    Clock,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

const FACILITY_NAMES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
    "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

impl Facility {
    const ALL: [Facility; 24] = [
        Facility::Kern,
        Facility::User,
        Facility::Mail,
        Facility::Daemon,
        Facility::Auth,
        Facility::Syslog,
        Facility::Lpr,
        Facility::News,
        Facility::Uucp,
        Facility::Cron,
        Facility::Authpriv,
        Facility::Ftp,
        Facility::Ntp,
        Facility::Audit,
        Facility::Alert,
        Facility::Clock,
        Facility::Local0,
        Facility::Local1,
        Facility::Local2,
        Facility::Local3,
        Facility::Local4,
        Facility::Local5,
        Facility::Local6,
        Facility::Local7,
    ];

    /// The facility's code, 0 (kern) to 23 (local7).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The facility of a code, 0 to 23.
    pub fn from_code(code: u8) -> Option<Facility> {
        Facility::ALL.get(usize::from(code)).copied()
    }

    /// The facility's name (`local3`).
    pub fn name(self) -> &'static str {
        FACILITY_NAMES[self as usize]
    }
}

impl fmt::Display for Facility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Facility {
    type Err = String;

    /// Parses `local3`, `LOG_LOCAL3`, `daemon`, ... (any case) or a code `0` to `23`.
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let name = lower.strip_prefix("log_").unwrap_or(&lower);
        if let Ok(code) = name.parse::<u8>() {
            return Facility::from_code(code).ok_or_else(|| format!("facility code {code} is not 0 to 23"));
        }
        let name = if name == "clock_daemon" { "clock" } else { name };
        FACILITY_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Facility::ALL[i])
            .ok_or_else(|| format!("unknown facility {s:?}; expected kern, user, mail, daemon, ..., local0 to local7"))
    }
}

/// The message format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 3164, the BSD format: `<PRI>Mmm dd hh:mm:ss HOST TAG[pid]: message`.
    Rfc3164,
    /// RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.
    Rfc5424,
}

/// How frames are delimited on stream transports (TCP, unix stream), per RFC 6587.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Framing {
    /// Octet counting: `LEN SP MSG` (the default: a message may hold any byte).
    #[default]
    OctetCounting,
    /// Non-transparent framing: each frame ends with LF (newlines in the text become spaces).
    LineFeed,
}

#[derive(Clone, Debug)]
enum Transport {
    Unix(Option<PathBuf>),
    Udp(String),
    Tcp(String),
}

/// Where [`SyslogLayer::builder`] starts.
#[derive(Debug)]
pub struct SyslogLayer(());

impl SyslogLayer {
    /// A builder with the defaults of the [crate docs](crate): the local unix socket, RFC 3164,
    /// facility `user`, level `INFO`.
    pub fn builder() -> SyslogBuilder {
        SyslogBuilder {
            options: Options::new(),
            transport: Transport::Unix(None),
            protocol: None,
            framing: Framing::OctetCounting,
            facility: Facility::User,
            app_name: None,
            hostname: None,
            pid: None,
            sd_id: Some(DEFAULT_SD_ID.to_owned()),
            max_bytes: None,
            zone: None,
            severities: DEFAULT_SEVERITIES,
            msgid_field: None,
            bom: false,
            level: Level::INFO,
            format: None,
        }
    }
}

/// Builds a syslog layer; see the [crate docs](crate) for every default.
pub struct SyslogBuilder {
    options: Options,
    transport: Transport,
    protocol: Option<Protocol>,
    framing: Framing,
    facility: Facility,
    app_name: Option<String>,
    hostname: Option<String>,
    pid: Option<u32>,
    sd_id: Option<String>,
    max_bytes: Option<usize>,
    zone: Option<StampZone>,
    severities: [Severity; 5],
    msgid_field: Option<String>,
    bom: bool,
    level: Level,
    format: Option<Arc<dyn Format>>,
}

impl fmt::Debug for SyslogBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyslogBuilder")
            .field("transport", &self.transport)
            .field("protocol", &self.protocol)
            .field("framing", &self.framing)
            .field("facility", &self.facility)
            .field("app_name", &self.app_name)
            .field("hostname", &self.hostname)
            .field("pid", &self.pid)
            .field("sd_id", &self.sd_id)
            .field("max_bytes", &self.max_bytes)
            .field("zone", &self.zone)
            .field("severities", &self.severities)
            .field("msgid_field", &self.msgid_field)
            .field("bom", &self.bom)
            .field("level", &self.level)
            .field("format", &self.format.is_some())
            .field("options", &self.options)
            .finish()
    }
}

impl SinkOptions for SyslogBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

impl SyslogBuilder {
    /// Sends to the unix socket at `path` (a datagram socket, or a stream socket).
    pub fn unix(mut self, path: impl Into<PathBuf>) -> Self {
        self.transport = Transport::Unix(Some(path.into()));
        self
    }

    /// Sends to the first of [`DEFAULT_UNIX_PATHS`] that accepts a connection (the default).
    pub fn unix_default(mut self) -> Self {
        self.transport = Transport::Unix(None);
        self
    }

    /// Sends datagrams to `addr` (`host:port`, `10.0.0.5:514`, `[::1]:514`), resolved when
    /// connecting.
    pub fn udp(mut self, addr: impl Into<String>) -> Self {
        self.transport = Transport::Udp(addr.into());
        self
    }

    /// Sends over a TCP connection to `addr` (`host:port`), resolved when connecting.
    pub fn tcp(mut self, addr: impl Into<String>) -> Self {
        self.transport = Transport::Tcp(addr.into());
        self
    }

    /// The message format (default: RFC 3164 on unix sockets, RFC 5424 otherwise).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// The framing on stream transports (default: octet counting).
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// The facility (default `user`).
    pub fn facility(mut self, facility: Facility) -> Self {
        self.facility = facility;
        self
    }

    /// The APP-NAME (3164: the TAG, cut to 32 chars): 1 to 48 printable US-ASCII chars.
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = Some(name.into());
        self
    }

    /// The HOSTNAME: 1 to 255 printable US-ASCII chars.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }

    /// The PROCID (default: this process's id).
    pub fn pid(mut self, pid: u32) -> Self {
        self.pid = Some(pid);
        self
    }

    /// The SD-ID of the element that carries the event's fields (default
    /// [`DEFAULT_SD_ID`]): a valid SD-NAME, with `@` and your enterprise number unless it is
    /// registered with IANA.
    pub fn sd_id(mut self, id: impl Into<String>) -> Self {
        self.sd_id = Some(id.into());
        self
    }

    /// No structured data: the fields are written after the message as `key=value`.
    pub fn no_structured_data(mut self) -> Self {
        self.sd_id = None;
        self
    }

    /// The most bytes of one frame, header included (default 2048 over UDP, 8096 otherwise;
    /// at least 480, at most 65,507 over UDP).
    pub fn max_message_bytes(mut self, n: usize) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// The zone of RFC 3164 timestamps (default: [`Zone::local`], read when the layer is
    /// built; [`Zone::utc`] for UTC). The time follows the zone's daylight-saving changes.
    pub fn zone(mut self, zone: Zone) -> Self {
        self.zone = Some(StampZone::Zone(zone));
        self
    }

    /// RFC 3164 timestamps at a fixed offset: minutes added to UTC (`120` for UTC+2), with no
    /// daylight-saving changes. Replaces [`zone`](Self::zone).
    pub fn utc_offset_minutes(mut self, minutes: i32) -> Self {
        self.zone = Some(StampZone::Fixed(minutes));
        self
    }

    /// The syslog severity of records at `level` (default: ERROR err, WARN warning, INFO
    /// info, DEBUG and TRACE debug; see [`severity`]). Call once per level to change.
    pub fn level_severity(mut self, level: Level, severity: Severity) -> Self {
        self.severities[level_index(level)] = severity;
        self
    }

    /// The RFC 5424 MSGID is the value of the record's field `name`: made printable US-ASCII
    /// (other chars become `_`) and cut to 32 chars; `-` when the record has no such field
    /// (or it is empty). The field stays in the structured data too. RFC 3164 has no MSGID.
    pub fn msgid_field(mut self, name: impl Into<String>) -> Self {
        self.msgid_field = Some(name.into());
        self
    }

    /// Whether a UTF-8 byte order mark goes before a non-empty RFC 5424 MSG (default `false`;
    /// see [the crate docs](crate#the-byte-order-mark) for why).
    pub fn bom(mut self, bom: bool) -> Self {
        self.bom = bom;
        self
    }

    /// The least severe level captured (default `INFO`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Replaces the MSG text by a format of your own (a [`Template`](watchbell_core::format::Template)
    /// or a closure). The header and structured data stay as they are; the text is still made
    /// safe (NUL replaced; one line in 3164) and truncated.
    pub fn format(mut self, format: impl Format) -> Self {
        self.format = Some(Arc::new(format));
        self
    }

    fn err(key: &str, msg: impl fmt::Display) -> BuildError {
        BuildError::new(CRATE, key, msg)
    }

    /// Checks the configuration and returns the sink and its delivery name.
    fn sink(&self) -> Result<(SyslogSink, String), BuildError> {
        let (dest, name, default_protocol, default_max) = match &self.transport {
            Transport::Unix(path) => {
                let paths = match path {
                    Some(p) if p.as_os_str().is_empty() => return Err(Self::err("unix", "the socket path is empty")),
                    Some(p) if p.as_os_str().as_encoded_bytes().contains(&0) => {
                        return Err(Self::err("unix", "the socket path contains a NUL character"))
                    }
                    Some(p) => vec![p.clone()],
                    None => DEFAULT_UNIX_PATHS.iter().map(PathBuf::from).collect(),
                };
                (Dest::Unix(paths), "syslog:unix".to_owned(), Protocol::Rfc3164, DEFAULT_STREAM_MAX_BYTES)
            }
            Transport::Udp(a) => {
                check_addr("udp", a)?;
                (Dest::Udp(a.clone()), format!("syslog:udp:{a}"), Protocol::Rfc5424, DEFAULT_UDP_MAX_BYTES)
            }
            Transport::Tcp(a) => {
                check_addr("tcp", a)?;
                (Dest::Tcp(a.clone()), format!("syslog:tcp:{a}"), Protocol::Rfc5424, DEFAULT_STREAM_MAX_BYTES)
            }
        };
        let protocol = self.protocol.unwrap_or(default_protocol);
        let max_bytes = self.max_bytes.unwrap_or(default_max);
        if max_bytes < 480 {
            return Err(Self::err("max_message_bytes", format!("{max_bytes} is below 480, the least RFC 5424 allows")));
        }
        if matches!(self.transport, Transport::Udp(_)) && max_bytes > 65_507 {
            return Err(Self::err("max_message_bytes", format!("{max_bytes} does not fit a UDP datagram (65,507)")));
        }
        let app_name = match &self.app_name {
            Some(a) => {
                check_header("app_name", a, 48)?;
                a.clone()
            }
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .and_then(|n| sanitize_header(&n, 48))
                .unwrap_or_else(|| "-".to_owned()),
        };
        let app_name = if protocol == Protocol::Rfc3164 && app_name == "-" { "rust".to_owned() } else { app_name };
        let explicit_host = self.hostname.is_some();
        let hostname = match &self.hostname {
            Some(h) => {
                check_header("hostname", h, 255)?;
                Some(h.clone())
            }
            None => FormatContext::local_host().and_then(|h| sanitize_header(&h, 255)),
        };
        let hostname = match (protocol, &self.transport) {
            (Protocol::Rfc3164, Transport::Unix(_)) if !explicit_host => None,
            (Protocol::Rfc3164, _) => Some(hostname.unwrap_or_else(|| "localhost".to_owned())),
            _ => hostname,
        };
        if let Some(id) = &self.sd_id {
            if !is_sd_name(id) {
                return Err(Self::err(
                    "sd_id",
                    format!("{id:?} is not an SD-ID: 1 to 32 printable US-ASCII chars without `=`, space, `]`, `\"`"),
                ));
            }
        }
        let mut cx = FormatContext::new(app_name.clone());
        if let Some(h) = &hostname {
            cx = cx.with_host(h.clone());
        }
        let format = FrameFormat {
            protocol,
            facility: self.facility,
            hostname,
            app_name,
            procid: self.pid.unwrap_or_else(std::process::id).to_string(),
            sd_id: self.sd_id.clone(),
            max_bytes,
            zone: self.zone.clone().unwrap_or_else(|| StampZone::Zone(Zone::local())),
            severities: self.severities,
            msgid_field: self.msgid_field.clone(),
            bom: self.bom,
            single_line: self.framing == Framing::LineFeed,
            format: self.format.clone(),
            cx,
        };
        Ok((SyslogSink::new(dest, format, self.framing, self.options.timeout), name))
    }

    /// Starts the delivery and returns the root handler (behind the rate limit, if any) and its
    /// guard: for feeding records from other handlers (a fingers-crossed buffer, a fan-out).
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let root = self.root()?;
        let guard = Guard::new(Arc::clone(&root));
        Ok((root, guard))
    }

    /// Starts the delivery; the root handler, without a guard.
    fn root(&self) -> Result<Arc<dyn Handler>, BuildError> {
        let (sink, name) = self.sink()?;
        let delivery = self
            .options
            .delivery(name, sink)
            .spawn()
            .map_err(|e| Self::err("delivery", format!("cannot start the delivery thread: {e}")))?;
        Ok(self.options.limited("syslog", delivery))
    }

    /// Builds the layer (capturing at [`level`](Self::level) and above) and its guard. Keep
    /// the guard until the end of `main`: dropping it delivers what is queued.
    pub fn build<S>(self) -> Result<(SinkLayer<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        Ok(watchbell_core::options::layer(self.root()?, self.level))
    }
}

fn check_addr(key: &str, addr: &str) -> Result<(), BuildError> {
    let port_ok = addr.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if port_ok {
        Ok(())
    } else {
        Err(BuildError::new(CRATE, key, format!("{addr:?} is not `host:port` (such as `127.0.0.1:514`)")))
    }
}

fn check_header(key: &str, value: &str, max: usize) -> Result<(), BuildError> {
    if value.is_empty() || value.len() > max || !value.bytes().all(printable) {
        return Err(BuildError::new(
            CRATE,
            key,
            format!("{value:?} must be 1 to {max} printable US-ASCII chars (no space)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilities() {
        assert_eq!("local3".parse::<Facility>(), Ok(Facility::Local3));
        assert_eq!("LOG_DAEMON".parse::<Facility>(), Ok(Facility::Daemon));
        assert_eq!("23".parse::<Facility>(), Ok(Facility::Local7));
        assert!("24".parse::<Facility>().is_err());
        assert!("nope".parse::<Facility>().is_err());
        assert_eq!(Facility::Local7.code(), 23);
        assert_eq!(Facility::Clock.code(), 15);
        for f in Facility::ALL {
            assert_eq!(f.name().parse::<Facility>(), Ok(f));
        }
    }
}
