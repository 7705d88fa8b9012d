//! [`FakeIssues`]: a small issue tracker speaking the shape of GitHub's REST issues API on a
//! [`FakeHttp`], for outside ticket systems fed by the ticketing layer.
//!
//! Routes (every one needs `Authorization: Bearer TOKEN`, else `401`):
//!
//! - `POST /repos/{owner}/{repo}/issues` with `{"title", "body", "labels"}`: `201` and
//!   `{"number", "html_url", "state": "open"}`;
//! - `PATCH /repos/{owner}/{repo}/issues/{number}` with `{"state": "open" | "closed"}`: `200`;
//! - `POST /repos/{owner}/{repo}/issues/{number}/comments` with `{"body"}`: `201`.
//!
//! A missing title, an unknown issue or a malformed body gets `422` or `404` with GitHub's
//! `{"message": …}`; other paths `404`.
//!
//! ```
//! use watchbell_test::issues::FakeIssues;
//! let tracker = FakeIssues::start("acme/billing");
//! assert!(tracker.api_base().starts_with("http://127.0.0.1:"));
//! assert!(tracker.issues().is_empty());
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::http::{FakeHttp, Reply, Request};
use crate::store::Recorded;

/// The token [`FakeIssues::start`] accepts.
pub const ISSUES_TOKEN: &str = "ghp_fakeissuestoken0123456789";

/// One issue as the fake holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Its number (1, 2, …).
    pub number: u64,
    /// The title.
    pub title: String,
    /// The body (Markdown).
    pub body: String,
    /// The labels.
    pub labels: Vec<String>,
    /// `open` or `closed`.
    pub state: String,
    /// The comments' bodies, in order.
    pub comments: Vec<String>,
}

#[derive(Default)]
struct State {
    issues: Vec<Issue>,
    /// Failures to give before answering normally: (status, message).
    failures: Vec<(u16, String)>,
}

struct Shared {
    repo: String,
    token: String,
    state: Recorded<State>,
}

/// A loopback issue tracker (see the [module docs](self)).
pub struct FakeIssues {
    http: FakeHttp,
    shared: Arc<Shared>,
}

impl fmt::Debug for FakeIssues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeIssues").field("url", &self.http.url()).field("repo", &self.shared.repo).finish()
    }
}

impl FakeIssues {
    /// Starts a tracker holding the repository `owner/name`, accepting [`ISSUES_TOKEN`].
    pub fn start(repo: &str) -> FakeIssues {
        FakeIssues::start_with(repo, ISSUES_TOKEN)
    }

    /// Starts a tracker accepting `token`.
    pub fn start_with(repo: &str, token: &str) -> FakeIssues {
        let http = FakeHttp::start();
        let shared = Arc::new(Shared { repo: repo.to_owned(), token: token.to_owned(), state: Recorded::default() });
        let s = Arc::clone(&shared);
        http.respond_with(move |req| answer(&s, req));
        FakeIssues { http, shared }
    }

    /// The base URL to give a client in place of `https://api.github.com`.
    pub fn api_base(&self) -> String {
        self.http.url()
    }

    /// The token it accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The underlying HTTP fake (every raw request).
    pub fn http(&self) -> &FakeHttp {
        &self.http
    }

    /// The next `n` authenticated requests fail with `status` and GitHub's error body.
    pub fn fail_next(&self, n: usize, status: u16, message: &str) {
        self.shared.state.update(|s| s.failures.extend((0..n).map(|_| (status, message.to_owned()))));
    }

    /// Every issue, in creation order.
    pub fn issues(&self) -> Vec<Issue> {
        self.shared.state.lock().issues.clone()
    }

    /// Marks an issue closed, as a person would.
    pub fn close(&self, number: u64) {
        self.shared.state.update(|s| {
            if let Some(i) = s.issues.iter_mut().find(|i| i.number == number) {
                i.state = "closed".to_owned();
            }
        });
    }

    /// Waits until `done(issues)` holds or `timeout` passed; returns the issues either way.
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&[Issue]) -> bool) -> Vec<Issue> {
        self.shared.state.wait_until(timeout, |s| done(&s.issues)).issues.clone()
    }
}

fn error(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({ "message": message }).to_string())
}

fn answer(s: &Shared, req: &Request) -> Reply {
    let auth = req.header("authorization").unwrap_or("");
    if auth != format!("Bearer {}", s.token) {
        return error(401, "Bad credentials");
    }
    let prefix = format!("/repos/{}/issues", s.repo);
    let Some(rest) = req.path.strip_prefix(&prefix) else { return error(404, "Not Found") };
    if let Some(failure) = s.state.update(|st| (!st.failures.is_empty()).then(|| st.failures.remove(0))) {
        return error(failure.0, &failure.1);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return error(400, "Problems parsing JSON");
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (req.method.as_str(), parts.as_slice()) {
        ("POST", []) => {
            let Some(title) = body.get("title").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
                return error(422, "Validation Failed: title is missing");
            };
            let labels = body
                .get("labels")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            let issue = s.state.update(|st| {
                let issue = Issue {
                    number: st.issues.len() as u64 + 1,
                    title: title.to_owned(),
                    body: body.get("body").and_then(Value::as_str).unwrap_or("").to_owned(),
                    labels,
                    state: "open".to_owned(),
                    comments: Vec::new(),
                };
                st.issues.push(issue.clone());
                issue
            });
            let html = format!("https://github.invalid/{}/issues/{}", s.repo, issue.number);
            Reply::json(201, &json!({ "number": issue.number, "html_url": html, "state": "open" }).to_string())
        }
        ("PATCH", [n]) => {
            let Ok(n) = n.parse::<u64>() else { return error(404, "Not Found") };
            let state = body.get("state").and_then(Value::as_str).map(str::to_owned);
            if state.as_deref().is_some_and(|st| st != "open" && st != "closed") {
                return error(422, "Validation Failed: state");
            }
            let found = s.state.update(|st| {
                let issue = st.issues.iter_mut().find(|i| i.number == n)?;
                if let Some(state) = state {
                    issue.state = state;
                }
                Some(issue.state.clone())
            });
            match found {
                Some(state) => Reply::json(200, &json!({ "number": n, "state": state }).to_string()),
                None => error(404, "Not Found"),
            }
        }
        ("POST", [n, "comments"]) => {
            let Ok(n) = n.parse::<u64>() else { return error(404, "Not Found") };
            let Some(text) = body.get("body").and_then(Value::as_str).map(str::to_owned) else {
                return error(422, "Validation Failed: body is missing");
            };
            let ok = s.state.update(|st| match st.issues.iter_mut().find(|i| i.number == n) {
                Some(issue) => {
                    issue.comments.push(text);
                    true
                }
                None => false,
            });
            if ok {
                Reply::json(201, &json!({ "id": n * 1000 }).to_string())
            } else {
                error(404, "Not Found")
            }
        }
        _ => error(404, "Not Found"),
    }
}
