//! `watchbell-relay --config relay.toml`: runs the sinks of a `watchbell.toml` for the records
//! that many services send to the inputs of its `[relay]` table. `WATCHBELL_*` variables apply
//! over the file. Prints `listening http <addr>` (and `listening unix <path>`) on stdout once
//! ready; SIGTERM or Ctrl-C drains the queue into the sinks and exits.
use std::process::ExitCode;
use std::time::Duration;

fn usage() -> ExitCode {
    eprintln!("usage: watchbell-relay --config relay.toml [--drain-timeout SECONDS]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut drain = Duration::from_secs(10);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => path = args.next(),
            "--drain-timeout" => match args.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(s) => drain = Duration::from_secs(s),
                None => return usage(),
            },
            "--help" | "-h" => {
                let _ = usage();
                return ExitCode::SUCCESS;
            }
            _ => return usage(),
        }
    }
    let Some(path) = path.or_else(|| std::env::var("WATCHBELL_CONFIG").ok()) else { return usage() };
    let config = match watchbell::Config::from_file(&path).and_then(watchbell::Config::with_env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("watchbell-relay: {path}:\n{e}");
            return ExitCode::from(2);
        }
    };
    match watchbell_relay::run(&config, drain) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("watchbell-relay: {e}");
            ExitCode::FAILURE
        }
    }
}
