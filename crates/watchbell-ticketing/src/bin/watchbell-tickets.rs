//! `watchbell-tickets`: list, show, solve, reopen and delete watchbell tickets, and print
//! totals, in a SQLite file or a PostgreSQL database. Run with `--help` for the usage.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use watchbell_core::text::{single_line, truncate_chars};
use watchbell_core::time::rfc3339;
use watchbell_core::Level;
use watchbell_ticketing::{Order, Ticket, TicketQuery, TicketStore, DEFAULT_PREFIX};

const USAGE: &str = "\
watchbell-tickets: read and manage watchbell error tickets

USAGE:
    watchbell-tickets [OPTIONS] COMMAND

COMMANDS:
    list                 tickets, most recently seen first
    show ID              one ticket and its newest occurrences
    solve ID             mark a ticket solved (a new occurrence reopens it); with --resolve,
                         resolve its incident too
    reopen ID            mark a ticket open
    delete ID            delete a ticket and its occurrences
    stats                totals per level and per app
    serve                the web viewer (needs the `serve` feature); prints its URL, stops on Ctrl-C

OPTIONS:
    --db URL             sqlite://PATH, a SQLite file path, or postgres://USER:PASSWORD@HOST:PORT/DB
                         (default: the WATCHBELL_TICKETS_DB environment variable)
    --prefix PREFIX      table prefix (default watchbell_)
    --app ID             only tickets of this app (list, stats)
    --level LEVEL        only tickets of this level: error, warn, info, debug, trace (list)
    --open | --solved    only open or only solved tickets (list)
    --order ORDER        last (default), first or count (list)
    --limit N            tickets (list, default 50) or occurrences (show, default 10)
    --offset N           skip N tickets (list)
    --json               print JSON instead of tables
    --resolve URL        solve: also resolve the ticket's PagerDuty incident or Opsgenie alert
                         (pagerduty://ROUTING_KEY, opsgenie://API_KEY: the URLs the alerts were
                         sent with; repeatable; default: the comma-separated URLs of the
                         WATCHBELL_TICKETS_RESOLVE environment variable). Needs the `notify`
                         feature of watchbell-ticketing.
    --listen ADDR        serve: the address to listen on (default 127.0.0.1:8080)
    --token TOKEN        serve: the token every request needs (default: the
                         WATCHBELL_TICKETS_TOKEN environment variable); required when ADDR is
                         not a loopback address
    --read-only          serve: no solve, reopen or delete
    -h, --help           this text
";

struct Args {
    db: Option<String>,
    prefix: String,
    app: Option<String>,
    level: Option<Level>,
    solved: Option<bool>,
    order: Order,
    limit: Option<u32>,
    offset: u64,
    json: bool,
    resolve: Vec<String>,
    command: Vec<String>,
    listen: Option<String>,
    token: Option<String>,
    read_only: bool,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        db: None,
        prefix: DEFAULT_PREFIX.to_owned(),
        app: None,
        level: None,
        solved: None,
        order: Order::LastOccurrence,
        limit: None,
        offset: 0,
        json: false,
        resolve: Vec::new(),
        command: Vec::new(),
        listen: None,
        token: None,
        read_only: false,
    };
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline.clone().or_else(|| it.next()).ok_or_else(|| format!("{name} needs {what}"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--db" => a.db = Some(value("a URL")?),
            "--prefix" => a.prefix = value("a prefix")?,
            "--app" => a.app = Some(value("an app id")?),
            "--level" => {
                let v = value("a level")?;
                a.level = Some(v.parse().map_err(|_| format!("unknown level {v:?}"))?);
            }
            "--open" => a.solved = Some(false),
            "--solved" => a.solved = Some(true),
            "--order" => {
                a.order = match value("an order")?.as_str() {
                    "last" => Order::LastOccurrence,
                    "first" => Order::FirstOccurrence,
                    "count" => Order::Count,
                    o => return Err(format!("unknown order {o:?} (expected last, first or count)")),
                }
            }
            "--limit" => a.limit = Some(value("a number")?.parse().map_err(|_| "--limit needs a number")?),
            "--offset" => a.offset = value("a number")?.parse().map_err(|_| "--offset needs a number")?,
            "--json" => a.json = true,
            "--resolve" => a.resolve.push(value("a pagerduty:// or opsgenie:// URL")?),
            "--listen" => a.listen = Some(value("an address such as 127.0.0.1:8080")?),
            "--token" => a.token = Some(value("a token")?),
            "--read-only" => a.read_only = true,
            s if s.starts_with('-') && s.len() > 1 && s.parse::<i64>().is_err() => {
                return Err(format!("unknown option {s}"))
            }
            _ => a.command.push(arg),
        }
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("watchbell-tickets: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("watchbell-tickets: {e}");
            ExitCode::FAILURE
        }
    }
}

fn id_arg(command: &[String]) -> Result<i64, String> {
    match command.get(1..) {
        Some([id]) => id.parse().map_err(|_| format!("{}: expected a ticket id, got {id:?}", command[0])),
        _ => Err(format!("{} takes exactly one ticket id", command[0])),
    }
}

fn run(args: Args) -> Result<ExitCode, String> {
    let db = args
        .db
        .clone()
        .or_else(|| std::env::var("WATCHBELL_TICKETS_DB").ok())
        .ok_or("no database: pass --db URL or set WATCHBELL_TICKETS_DB")?;
    let Some(command) = args.command.first().cloned() else {
        return Err(format!("no command\n\n{USAGE}"));
    };
    if !["list", "show", "solve", "reopen", "delete", "stats", "serve"].contains(&command.as_str()) {
        return Err(format!("unknown command {command:?}\n\n{USAGE}"));
    }
    let mut store = TicketStore::open_with(&db, &args.prefix, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    if command == "serve" {
        return serve(store, &args);
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    let w = |out: &mut std::io::StdoutLock<'_>, s: String| {
        let _ = out.write_all(s.as_bytes());
    };
    match command.as_str() {
        "list" => {
            if args.command.len() > 1 {
                return Err("list takes no arguments".into());
            }
            let q = TicketQuery {
                app_id: args.app.clone(),
                level: args.level,
                solved: args.solved,
                order: args.order,
                limit: args.limit.unwrap_or(50),
                offset: args.offset,
            };
            let total = store.count_tickets(&q).map_err(|e| e.to_string())?;
            let tickets = store.list_tickets(&q).map_err(|e| e.to_string())?;
            if args.json {
                let v = serde_json::json!({ "total": total, "offset": q.offset, "tickets": tickets });
                w(&mut out, format!("{v}\n"));
            } else {
                w(&mut out, table(&tickets));
                w(&mut out, format!("{} of {total} tickets\n", tickets.len()));
            }
        }
        "show" => {
            let id = id_arg(&args.command)?;
            let Some(ticket) = store.get_ticket(id).map_err(|e| e.to_string())? else {
                eprintln!("watchbell-tickets: no ticket {id}");
                return Ok(ExitCode::FAILURE);
            };
            let occ = store.occurrences(id, args.limit.unwrap_or(10), 0).map_err(|e| e.to_string())?;
            if args.json {
                let v = serde_json::json!({ "ticket": ticket, "occurrences": occ });
                w(&mut out, format!("{v}\n"));
            } else {
                let mut s = String::new();
                s += &format!("ticket {}  [{}]\n", ticket.id, if ticket.solved { "solved" } else { "open" });
                s += &format!("  app          {}\n", ticket.app_id);
                s += &format!("  level        {}\n", ticket.level);
                s += &format!("  target       {}\n", ticket.target);
                s += &format!("  location     {}\n", ticket.location.as_deref().unwrap_or("-"));
                s += &format!("  module       {}\n", ticket.module.as_deref().unwrap_or("-"));
                s += &format!("  fingerprint  {}\n", ticket.fingerprint);
                s += &format!("  occurrences  {}\n", ticket.occurrence_count);
                s += &format!("  first seen   {}\n", rfc3339(ticket.first_occurrence_time));
                s += &format!("  last seen    {}\n", rfc3339(ticket.last_occurrence_time));
                s += &format!("  message      {}\n", single_line(&ticket.message));
                s += &format!("\nnewest {} stored occurrences:\n", occ.len());
                for o in &occ {
                    let (msg, fields) = match o.record() {
                        Ok(r) => {
                            let f: Vec<String> = r.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                            (r.message.into_owned(), f.join(" "))
                        }
                        Err(_) => (String::new(), String::new()),
                    };
                    let line = format!(
                        "  #{}  {}  {}  {}",
                        o.id,
                        rfc3339(o.time),
                        truncate_chars(&single_line(&msg), 100, "…"),
                        truncate_chars(&single_line(&fields), 100, "…")
                    );
                    s += line.trim_end();
                    s.push('\n');
                }
                w(&mut out, s);
            }
        }
        "solve" | "reopen" | "delete" => {
            let id = id_arg(&args.command)?;
            let done = match command.as_str() {
                "solve" => store.solve(id),
                "reopen" => store.reopen(id),
                _ => store.delete(id),
            }
            .map_err(|e| e.to_string())?;
            if args.json {
                w(&mut out, format!("{}\n", serde_json::json!({ "id": id, "action": command, "done": done })));
            } else if done {
                let verb = match command.as_str() {
                    "solve" => "solved",
                    "reopen" => "reopened",
                    _ => "deleted",
                };
                w(&mut out, format!("ticket {id} {verb}\n"));
            }
            if !done {
                eprintln!("watchbell-tickets: no ticket {id}");
                return Ok(ExitCode::FAILURE);
            }
            if command == "solve" {
                let mut urls = args.resolve.clone();
                if urls.is_empty() {
                    if let Ok(v) = std::env::var("WATCHBELL_TICKETS_RESOLVE") {
                        urls = v.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
                    }
                }
                if !urls.is_empty() {
                    let fingerprint = match store.get_ticket(id).map_err(|e| e.to_string())? {
                        Some(t) => t.fingerprint,
                        None => return Err(format!("ticket {id} vanished before it could be resolved")),
                    };
                    for url in &urls {
                        let what = resolve(url, &fingerprint)?;
                        w(&mut out, format!("ticket {id}: {what}\n"));
                    }
                }
            }
        }
        "stats" => {
            if args.command.len() > 1 {
                return Err("stats takes no arguments".into());
            }
            let st = store.stats(args.app.as_deref()).map_err(|e| e.to_string())?;
            if args.json {
                w(&mut out, format!("{}\n", serde_json::to_string(&st).map_err(|e| e.to_string())?));
            } else {
                let mut s = format!(
                    "tickets      {} ({} open, {} solved)\noccurrences  {} ({} stored)\n",
                    st.tickets, st.open, st.solved, st.occurrences, st.stored_occurrences
                );
                s += "\nLEVEL   TICKETS  OCCURRENCES\n";
                for (l, t, o) in &st.by_level {
                    s += &format!("{l:<7} {t:>7}  {o:>11}\n");
                }
                s += "\nAPP                  TICKETS  OCCURRENCES\n";
                for (a, t, o) in &st.by_app {
                    s += &format!("{:<20} {t:>7}  {o:>11}\n", truncate_chars(&single_line(a), 20, "…"));
                }
                w(&mut out, s);
            }
        }
        _ => unreachable!("checked above"),
    }
    Ok(ExitCode::SUCCESS)
}

fn table(tickets: &[Ticket]) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "LEVEL".to_owned(),
        "COUNT".to_owned(),
        "STATE".to_owned(),
        "LAST SEEN".to_owned(),
        "APP".to_owned(),
        "LOCATION".to_owned(),
        "MESSAGE".to_owned(),
    ]];
    for t in tickets {
        let last = rfc3339(t.last_occurrence_time);
        rows.push([
            t.id.to_string(),
            t.level.to_string(),
            t.occurrence_count.to_string(),
            if t.solved { "solved" } else { "open" }.to_owned(),
            last.get(..19).unwrap_or(&last).replace('T', " "),
            truncate_chars(&single_line(&t.app_id), 16, "…").into_owned(),
            tail(&single_line(t.location.as_deref().unwrap_or("-")), 40),
            truncate_chars(&single_line(&t.message), 60, "…").into_owned(),
        ]);
    }
    let mut widths = [0usize; 8];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
            let pad = w - c.chars().count();
            if i == 2 || i == 0 {
                line += &" ".repeat(pad);
                line += c;
            } else {
                line += c;
                if i < 7 {
                    line += &" ".repeat(pad);
                }
            }
            if i < 7 {
                line += "  ";
            }
        }
        s += line.trim_end();
        s.push('\n');
    }
    s
}

/// The end of `s` in at most `max` characters (file paths: the line number matters most).
fn tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let rest: String = s.chars().skip(n - (max - 1)).collect();
    format!("…{rest}")
}

/// Resolves the incident of `fingerprint` at the service of `url`; what happened, or why not.
#[cfg(feature = "notify")]
fn resolve(url: &str, fingerprint: &str) -> Result<String, String> {
    use watchbell_core::SinkOptions;
    let b = watchbell_notify::from_url(url).map_err(|e| e.to_string())?;
    if !b.resolves() {
        return Err(format!("--resolve: {} has no incidents to resolve (pagerduty:// or opsgenie://)", b.service()));
    }
    let service = b.service();
    let (handler, guard) = b.no_rate_limit().pace(Duration::ZERO).build_handler().map_err(|e| e.to_string())?;
    handler.handle(watchbell_notify::resolve_record(fingerprint));
    let _ = guard.shutdown(Duration::from_secs(30));
    let stats = guard.stats().into_iter().find(|s| s.name == service);
    match stats {
        Some(s) if s.delivered > 0 => Ok(format!("{service} incident {fingerprint} resolved")),
        Some(s) => Err(format!(
            "{service} did not take the resolve of {fingerprint}: {}",
            s.last_error.as_deref().unwrap_or("not delivered")
        )),
        None => Err(format!("{service}: no delivery")),
    }
}

#[cfg(not(feature = "notify"))]
fn resolve(_url: &str, _fingerprint: &str) -> Result<String, String> {
    Err("--resolve needs watchbell-tickets built with the `notify` feature of watchbell-ticketing".into())
}

#[cfg(feature = "serve")]
fn serve(store: TicketStore, args: &Args) -> Result<ExitCode, String> {
    use watchbell_ticketing::web::{serve, ServeOptions};
    if args.command.len() > 1 {
        return Err("serve takes no arguments".into());
    }
    let mut options = ServeOptions { read_only: args.read_only, stop_on_ctrl_c: true, ..ServeOptions::default() };
    if let Some(listen) = &args.listen {
        options.listen = listen.parse().map_err(|_| format!("--listen: not an address with a port: {listen:?}"))?;
    }
    let token = args.token.clone().or_else(|| std::env::var("WATCHBELL_TICKETS_TOKEN").ok()).filter(|t| !t.is_empty());
    if let Some(token) = token {
        options = options.token(token);
    }
    let server = serve(store, options).map_err(|e| e.to_string())?;
    println!("watchbell-tickets: serving {} (Ctrl-C stops)", server.url());
    let _ = std::io::stdout().flush();
    server.wait();
    println!("watchbell-tickets: stopped");
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "serve"))]
fn serve(_store: TicketStore, _args: &Args) -> Result<ExitCode, String> {
    Err("serve needs the `serve` feature of watchbell-ticketing (cargo install watchbell-ticketing --features serve)"
        .into())
}
