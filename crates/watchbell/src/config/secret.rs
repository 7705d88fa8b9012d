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

    /// Reads the value. The error says what is wrong without the value.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            SecretValue::Literal(v) => Ok(v.clone()),
            SecretValue::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(v),
                Ok(_) => Err(format!("the environment variable {var} is empty; expected the secret in it")),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("the environment variable {var} is not set; expected the secret in it"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("the environment variable {var} is not UTF-8; expected the secret in it"))
                }
            },
            SecretValue::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim_end().to_owned()),
                Ok(_) => Err(format!("the file {} is empty; expected the secret in it", path.display())),
                Err(e) => Err(format!("the file {} cannot be read ({e}); expected the secret in it", path.display())),
            },
        }
    }

    /// How the value is shown in errors: `"***"` for a literal, the variable or file otherwise.
    pub fn redacted(&self) -> String {
        match self {
            SecretValue::Literal(_) => "\"***\"".to_owned(),
            SecretValue::Env(var) => format!("{{ env = {var:?} }}"),
            SecretValue::File(path) => format!("{{ file = {:?} }}", path.display().to_string()),
        }
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
