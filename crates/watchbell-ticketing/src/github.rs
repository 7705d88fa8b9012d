//! [`GitHubIssues`]: a [`TicketSink`] that opens an issue per new ticket (Cargo feature `github`).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};
use watchbell_core::http::{HttpClient, Method};
use watchbell_core::secret::{redact_text, redact_url, Secret};
use watchbell_core::text::truncate_chars;
use watchbell_core::BuildError;

use crate::notify::{TicketChange, TicketEvent, TicketSink};

/// The most tickets whose issue number is remembered (the oldest is forgotten first).
const REMEMBERED: usize = 10_000;

/// Opens a GitHub issue (or a GitHub Enterprise one, or any tracker with the same API) when a
/// ticket is new, and reopens it with a comment when the ticket is reopened.
///
/// - New ticket: `POST {api_base}/repos/{owner}/{repo}/issues` with the title
///   `[{app}] {LEVEL}: {message}` (the message's first line, at most 200 characters), a body
///   with the ticket's id, fingerprint, target, location, occurrence count and the record's
///   fields, and the [`labels`](GitHubIssues::labels).
/// - Reopened ticket: `PATCH …/issues/{number}` `{"state": "open"}` and a comment; when the
///   issue of that ticket is not known (another process opened it, or this one restarted), a new
///   issue is opened.
///
/// The token is sent as `Authorization: Bearer`; it never appears in `Debug` or errors. A
/// non-2xx answer is an error (retried by the ticket sinks' thread, then counted as failed).
///
/// ```
/// use watchbell_ticketing::github::GitHubIssues;
/// let issues = GitHubIssues::new("https://api.github.com", "acme/billing", "ghp_…")
///     .unwrap()
///     .labels(["bug", "watchbell"]);
/// # let _ = issues;
/// ```
pub struct GitHubIssues {
    client: HttpClient,
    api_base: String,
    repo: String,
    token: Secret<String>,
    labels: Vec<String>,
    numbers: HashMap<String, u64>,
    order: std::collections::VecDeque<String>,
}

impl fmt::Debug for GitHubIssues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubIssues")
            .field("api_base", &redact_url(&self.api_base))
            .field("repo", &self.repo)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl GitHubIssues {
    /// Issues in `repo` (`owner/name`) through the API at `api_base` (`https://api.github.com`;
    /// GitHub Enterprise: `https://HOST/api/v3`), authenticated with `token`. Plain `http://` is
    /// accepted for loopback hosts only.
    pub fn new(api_base: &str, repo: &str, token: impl Into<String>) -> Result<GitHubIssues, BuildError> {
        let err = |key: &str, m: String| BuildError::new("watchbell-ticketing", key, m);
        let mut parts = repo.split('/');
        let valid = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        };
        if !(valid(parts.next()) && valid(parts.next()) && parts.next().is_none()) {
            return Err(err("repo", format!("{repo:?}: expected owner/name")));
        }
        let token = token.into();
        if token.trim().is_empty() {
            return Err(err("token", "empty; expected an API token".into()));
        }
        let client =
            HttpClient::builder().timeout(Duration::from_secs(10)).build().map_err(|e| err("http_client", e))?;
        let api_base = api_base.trim_end_matches('/').to_owned();
        client.check_url(&api_base).map_err(|e| err("api_base", e))?;
        Ok(GitHubIssues {
            client,
            api_base,
            repo: repo.to_owned(),
            token: Secret::new(token),
            labels: Vec::new(),
            numbers: HashMap::new(),
            order: Default::default(),
        })
    }

    /// Labels put on every issue opened (default none).
    pub fn labels<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    fn call(&self, method: Method, path: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}/repos/{}{path}", self.api_base, self.repo);
        let req = self
            .client
            .request(method, &url)
            .header("authorization", format!("Bearer {}", self.token.expose()))
            .header("accept", "application/vnd.github+json")
            .header("content-type", "application/json")
            .body(body.to_string());
        let resp = self.client.send(req, &url).map_err(|e| e.to_string())?;
        let text = resp.text();
        if !(200..300).contains(&resp.status) {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| truncate_chars(&text, 200, "…").into_owned());
            let message = redact_text(&message).replace(self.token.expose().as_str(), "***");
            return Err(format!("the issue tracker answered {}: {message}", resp.status));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn open(&mut self, event: &TicketEvent) -> Result<(), String> {
        let r = &event.record;
        let first_line = r.message.lines().next().unwrap_or("");
        let title = format!("[{}] {}: {}", event.app_id, event.level, truncate_chars(first_line, 200, "…"));
        let mut body = format!(
            "**{}** from `{}`{}\n\n{}\n\n| ticket | fingerprint | occurrences |\n|---|---|---|\n| {} | `{}` | {} |\n",
            event.level,
            r.target,
            r.location().map(|l| format!(" at `{l}`")).unwrap_or_default(),
            r.message,
            event.ticket_id,
            event.fingerprint,
            event.occurrence_count,
        );
        if r.fields.iter().len() > 0 {
            body.push_str("\n| field | value |\n|---|---|\n");
            for (k, v) in r.fields.iter() {
                body.push_str(&format!("| `{k}` | `{}` |\n", v.to_string().replace('|', "\\|")));
            }
        }
        let answer =
            self.call(Method::POST, "/issues", &json!({ "title": title, "body": body, "labels": self.labels }))?;
        if let Some(n) = answer.get("number").and_then(Value::as_u64) {
            self.remember(&event.fingerprint, n);
        }
        Ok(())
    }

    fn remember(&mut self, fingerprint: &str, number: u64) {
        if self.numbers.insert(fingerprint.to_owned(), number).is_none() {
            self.order.push_back(fingerprint.to_owned());
            if self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.numbers.remove(&old);
                }
            }
        }
    }
}

impl TicketSink for GitHubIssues {
    fn name(&self) -> &str {
        "github"
    }

    fn ticket(&mut self, event: &TicketEvent) -> Result<(), String> {
        match (event.change, self.numbers.get(&event.fingerprint).copied()) {
            (TicketChange::Reopened, Some(n)) => {
                self.call(Method::PATCH, &format!("/issues/{n}"), &json!({ "state": "open" }))?;
                let comment = format!(
                    "Reopened by a new occurrence ({} in all): {}",
                    event.occurrence_count, event.record.message
                );
                self.call(Method::POST, &format!("/issues/{n}/comments"), &json!({ "body": comment }))?;
                Ok(())
            }
            _ => self.open(event),
        }
    }
}
