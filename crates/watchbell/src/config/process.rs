//! The top-level keys that set process-wide behaviour: `panics` and `errors`.

use watchbell_core::report::{set_error_reporter, ErrorReporter};

use super::build::quote;
use super::{Config, ConfigError};

impl Config {
    /// Applies the process-wide settings: `errors` (where watchbell's own failures go) and
    /// `panics = true` (installs [`capture_panics`](crate::capture_panics)). [`init`](crate::init)
    /// calls it; call it yourself when you compose layers with [`Config::layers`].
    ///
    /// An `errors` value other than `"stderr"` or `"silent"` is a problem under `errors`, and
    /// nothing is applied.
    pub fn apply_process_settings(&self) -> Result<(), ConfigError> {
        let reporter = match self.errors.as_deref().map(|e| e.trim().to_ascii_lowercase()) {
            None => None,
            Some(e) if e == "stderr" => Some(ErrorReporter::Stderr),
            Some(e) if e == "silent" => Some(ErrorReporter::Silent),
            Some(_) => {
                return Err(ConfigError::one("errors", self.errors.as_deref().map(quote), "\"stderr\" or \"silent\""))
            }
        };
        if let Some(r) = reporter {
            set_error_reporter(r);
        }
        if self.panics {
            crate::capture_panics();
        }
        Ok(())
    }
}
