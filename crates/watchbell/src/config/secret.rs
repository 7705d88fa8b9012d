//! Secret values: a literal, `{ env = "VAR" }` or `{ file = "/path" }`.
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret setting (a token, a password, a webhook URL): the value itself, or where to read it.
///
/// In TOML: `token = "123:abc"`, `token = { env = "TELEGRAM_TOKEN" }` (an environment variable,
/// read when the layers are built) or `token = { file = "/run/secrets/telegram" }` (a file whose
/// content, trailing whitespace trimmed, is the value). `Debug` never shows a literal value:
/// only where a value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    /// The value itself.
    Literal(String),
    /// The value of this environment variable.
    Env(String),
    /// The content of this file (trailing whitespace trimmed).
    File(PathBuf),
}

impl SecretValue {
    /// A literal secret.
    pub fn literal(value: impl Into<String>) -> Self {
        SecretValue::Literal(value.into())
    }

    /// Reads the value. The error says what is wrong without the value — and without the
    /// variable's name or the file's path when they do not look like one (a secret typed into
    /// the slot by mistake). A file is read up to 64 KiB.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            SecretValue::Literal(v) => Ok(v.clone()),
            SecretValue::Env(var) => {
                let shown = shown_var(var);
                if !is_var_name(var) {
                    return Err(format!("{shown} is not a variable name: was the secret itself typed into `env`?"));
                }
                match std::env::var(var) {
                    Ok(v) if !v.trim().is_empty() => Ok(v),
                    Ok(_) => Err(format!("the environment variable {shown} is empty; expected the secret in it")),
                    Err(std::env::VarError::NotPresent) => {
                        Err(format!("the environment variable {shown} is not set; expected the secret in it"))
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        Err(format!("the environment variable {shown} is not UTF-8; expected the secret in it"))
                    }
                }
            }
            SecretValue::File(path) => {
                let shown = shown_path(path);
                let mut data = Vec::new();
                let read = std::fs::File::open(path).and_then(|f| {
                    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_SECRET_FILE + 1), &mut data)
                });
                match read {
                    Err(e) => Err(format!("the file {shown} cannot be read ({}); expected the secret in it", e.kind())),
                    Ok(_) if data.len() as u64 > MAX_SECRET_FILE => {
                        Err(format!("the file {shown} is larger than 64 KiB; expected a secret in it"))
                    }
                    Ok(_) => match String::from_utf8(data) {
                        Ok(v) if !v.trim().is_empty() => Ok(v.trim_end().to_owned()),
                        Ok(_) => Err(format!("the file {shown} is empty; expected the secret in it")),
                        Err(_) => Err(format!("the file {shown} is not UTF-8 text; expected the secret in it")),
                    },
                }
            }
        }
    }

    /// How the value is shown in errors: `"***"` for a literal, the variable or file otherwise
    /// (unless they do not look like a variable name or a path: then only their length).
    pub fn redacted(&self) -> String {
        match self {
            SecretValue::Literal(_) => "\"***\"".to_owned(),
            SecretValue::Env(var) => format!("{{ env = {} }}", shown_var(var)),
            SecretValue::File(path) => format!("{{ file = {} }}", shown_path(path)),
        }
    }
}

/// The most bytes read from a `{ file = … }` secret (64 KiB): a secret is short, and a path
/// such as `/dev/zero` must not be read for ever.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters: what an environment variable's name looks
/// like (a token or a password does not).
fn is_var_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn shown_var(v: &str) -> String {
    if is_var_name(v) {
        format!("{v:?}")
    } else {
        format!("(a value of {} characters, not shown)", v.chars().count())
    }
}

/// A path is shown when it looks like one: it has a `/` and no part that looks like a secret.
fn shown_path(p: &std::path::Path) -> String {
    let text = p.display().to_string();
    let looks_like_a_path = text.contains('/')
        && !text.contains(['\0', ':', '@', '?', '='])
        && watchbell_core::secret::redact_text(&text) == text.as_str();
    if looks_like_a_path {
        format!("{text:?}")
    } else {
        format!("(a value of {} characters, not shown)", text.chars().count())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl From<&str> for SecretValue {
    fn from(s: &str) -> Self {
        SecretValue::Literal(s.to_owned())
    }
}

impl From<String> for SecretValue {
    fn from(s: String) -> Self {
        SecretValue::Literal(s)
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SecretValue::Literal(v) => serializer.serialize_str(v),
            SecretValue::Env(var) => {
                let mut m = serializer.serialize_map(Some(1))?;
                m.serialize_entry("env", var)?;
                m.end()
            }
            SecretValue::File(path) => {
                let mut m = serializer.serialize_map(Some(1))?;
                m.serialize_entry("file", &path.display().to_string())?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, { env = \"VAR\" } or { file = \"/path\" }")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretValue, E> {
                Ok(SecretValue::Literal(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretValue, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    if out.is_some() {
                        return Err(de::Error::custom("a secret takes one of `env` or `file`, not both"));
                    }
                    out = Some(match key.as_str() {
                        "env" => SecretValue::Env(map.next_value()?),
                        "file" => SecretValue::File(PathBuf::from(map.next_value::<String>()?)),
                        _ => return Err(de::Error::unknown_field(&key, &["env", "file"])),
                    });
                }
                out.ok_or_else(|| {
                    de::Error::custom("an empty secret table; expected { env = \"VAR\" } or { file = \"/path\" }")
                })
            }
        }
        deserializer.deserialize_any(V)
    }
}
