//! The per-layer filter every watchbell layer sits behind: a level, an optional span level and
//! optional target allow and deny lists, decided in `register_callsite` where possible so that
//! a callsite below the level costs what it costs with no watchbell layer at all.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tracing_core::subscriber::Interest;
use tracing_core::{Level, LevelFilter, Metadata};
use tracing_subscriber::layer::{Context, Filter};

/// watchbell's per-layer filter. It only decides for the layer it is attached to: the
/// application's other layers keep seeing every event they want.
///
/// - Events pass when their level is at least `level` and their target passes the target rules.
/// - Spans pass when their level is at least `span_level` (default `INFO`), so that the fields
///   of an `INFO` span (a request, a job) are known when an `ERROR` event happens inside it.
///   `DEBUG` and `TRACE` spans are not recorded unless `span_level` says so: recording them would
///   raise tracing's global maximum level to `TRACE` and make every `debug!`/`trace!` callsite
///   in the program cost an interest lookup, even where no layer wants them.
/// - Target rules match whole path segments: `"hyper"` matches `hyper` and `hyper::client`, not
///   `hyperx`. A target must match an `allow` rule (when there are any) and no `deny` rule.
///
/// ```
/// use watchbell_core::LayerFilter;
/// let filter = LayerFilter::new(tracing::Level::WARN).deny_target("noisy_crate");
/// assert_eq!(filter.level(), tracing::level_filters::LevelFilter::WARN);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct LayerFilter {
    level: LevelFilter,
    span_level: LevelFilter,
    allow: Arc<[String]>,
    deny: Arc<[String]>,
}

impl fmt::Debug for LayerFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerFilter")
            .field("level", &self.level)
            .field("span_level", &self.span_level)
            .field("allow", &self.allow)
            .field("deny", &self.deny)
            .finish()
    }
}

impl LayerFilter {
    /// Events at `level` and more severe.
    pub fn new(level: Level) -> Self {
        Self::from_level_filter(LevelFilter::from_level(level))
    }

    /// From a [`LevelFilter`] (`LevelFilter::OFF` captures nothing).
    pub fn from_level_filter(level: LevelFilter) -> Self {
        LayerFilter { level, span_level: LevelFilter::INFO, allow: Arc::from([]), deny: Arc::from([]) }
    }

    /// Only spans at `level` or more severe are recorded for their fields.
    pub fn span_level(mut self, level: LevelFilter) -> Self {
        self.span_level = level;
        self
    }

    /// Only events whose target is `prefix` or below it (add several for several prefixes).
    pub fn allow_target(mut self, prefix: impl Into<String>) -> Self {
        let mut v = self.allow.to_vec();
        v.push(prefix.into());
        self.allow = v.into();
        self
    }

    /// Never events whose target is `prefix` or below it.
    pub fn deny_target(mut self, prefix: impl Into<String>) -> Self {
        let mut v = self.deny.to_vec();
        v.push(prefix.into());
        self.deny = v.into();
        self
    }

    /// The event level.
    pub fn level(&self) -> LevelFilter {
        self.level
    }

    /// Whether `target` passes the target rules.
    pub fn allows_target(&self, target: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|p| target_matches(p, target)))
            && !self.deny.iter().any(|p| target_matches(p, target))
    }

    /// Whether an event with this metadata passes.
    #[inline]
    pub fn allows_event(&self, meta: &Metadata<'_>) -> bool {
        self.level >= *meta.level() && self.allows_target(meta.target())
    }

    /// Whether a record with this level and target passes (for records that do not come with
    /// tracing metadata, such as the `log` bridge's).
    pub fn allows(&self, level: Level, target: &str) -> bool {
        self.level >= level && self.allows_target(target)
    }

    fn has_target_rules(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty()
    }
}

impl FromStr for LayerFilter {
    type Err = String;

    /// Parses a level name (`error`, `WARN`, `off`, ...).
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<LevelFilter>()
            .map(Self::from_level_filter)
            .map_err(|_| format!("invalid level {s:?}: expected one of off, error, warn, info, debug, trace"))
    }
}

fn target_matches(prefix: &str, target: &str) -> bool {
    target.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Callsites of events that `tracing-log` dispatches for `log` records: their metadata's target
/// is the generic `log`, the real one is only known per record.
fn is_log_callsite(meta: &Metadata<'_>) -> bool {
    meta.fields().field("log.target").is_some()
}

impl<S> Filter<S> for LayerFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        if meta.is_span() {
            self.span_level >= *meta.level()
        } else {
            self.allows_event(meta)
        }
    }

    /// `never` for callsites this filter rejects whatever the record (below the level, or a
    /// denied target), so they cost nothing; `sometimes` otherwise. Not `always`: with
    /// `always`, tracing skips the per-event `enabled` call that refreshes this filter's bit in
    /// tracing-subscriber's per-layer filter state, and a stale bit left by an `enabled!` or
    /// `log_enabled!` query with no event after it would make the next span or event vanish
    /// for this layer (tracing #2519).
    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        let wanted = if meta.is_span() {
            self.span_level >= *meta.level()
        } else {
            self.level >= *meta.level()
                && (!self.has_target_rules() || is_log_callsite(meta) || self.allows_target(meta.target()))
        };
        if wanted {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.level.max(self.span_level))
    }
}

/// A level by name, case-insensitive, with the names Python's logging and Logbook use:
/// `error` (also `err`, `critical`, `crit`, `fatal`), `warn` (also `warning`), `info`, `debug`,
/// `trace`. Config files, builders that take a level as text, and the stores that read levels
/// back all parse them here.
///
/// ```
/// use watchbell_core::{filter::parse_level, Level};
/// assert_eq!(parse_level("WARNING"), Some(Level::WARN));
/// assert_eq!(parse_level(" critical "), Some(Level::ERROR));
/// assert_eq!(parse_level("loud"), None);
/// ```
pub fn parse_level(s: &str) -> Option<Level> {
    match s.trim().to_ascii_lowercase().as_str() {
        "error" | "err" | "critical" | "crit" | "fatal" => Some(Level::ERROR),
        "warn" | "warning" => Some(Level::WARN),
        "info" => Some(Level::INFO),
        "debug" => Some(Level::DEBUG),
        "trace" => Some(Level::TRACE),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match_whole_segments() {
        let f = LayerFilter::new(Level::INFO).allow_target("app").deny_target("app::noisy");
        assert!(f.allows_target("app"));
        assert!(f.allows_target("app::db"));
        assert!(!f.allows_target("application"));
        assert!(!f.allows_target("app::noisy"));
        assert!(!f.allows_target("app::noisy::deep"));
        assert!(f.allows_target("app::noisyx"));
        assert!(!f.allows_target("other"));
    }

    #[test]
    fn parses_levels() {
        assert_eq!("warn".parse::<LayerFilter>().unwrap().level(), LevelFilter::WARN);
        assert_eq!("OFF".parse::<LayerFilter>().unwrap().level(), LevelFilter::OFF);
        let e = "loud".parse::<LayerFilter>().unwrap_err();
        assert!(e.contains("\"loud\"") && e.contains("expected"), "{e}");
    }
}
