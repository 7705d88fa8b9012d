//! The stable driver: runs every fuzz target (or one) over its committed corpus, then over
//! random mutations of the corpus for a number of seconds per target.
//!
//! `cargo run --release --features driver --bin smoke -- [--seconds N] [--target NAME]
//! [--seed S]` (or `cargo xtask fuzz --smoke`). A failing input is written to
//! `artifacts/<target>/crash-<hash>` (next to the corpus) and the run fails. What the code
//! under test prints to stderr (the spool's notices about damaged segments, thousands of them)
//! is discarded: the targets run in a child process whose stderr is closed; `--verbose` keeps
//! it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use watchbell_fuzz::{run_one, seed, TARGETS};

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\0",
    b"\r\n",
    b"\n",
    b"<",
    b">",
    b"&",
    b"&amp;",
    b"\"",
    b"\\",
    b"]",
    b"=",
    b"[",
    b"{",
    b"}",
    b"\xff",
    b"\xf0\x9f\x98\x80",
    b"18446744073709551615",
    b"-1",
    b"GMT",
    b"https://",
    b"@",
    b"?token=",
    b"<!channel>",
    b"```",
    b"\"status\":",
    b"[slack]",
    b"path = ",
    b"\"\\u0000\"",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(input.len() + 1);
                let word = INTERESTING[rng.below(INTERESTING.len())];
                input.splice(i..i, word.iter().copied());
            }
            3 if !input.is_empty() => {
                let i = rng.below(input.len());
                let n = rng.below(input.len() - i + 1);
                input.drain(i..i + n);
            }
            4 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let i = rng.below(input.len() + 1);
                let j = rng.below(other.len() + 1);
                input.truncate(i);
                input.extend_from_slice(&other[j..]);
            }
            5 if !input.is_empty() => {
                let i = rng.below(input.len());
                let n = rng.below(64).min(input.len() - i);
                let copy = input[i..i + n].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, copy);
            }
            _ => {
                let n = rng.below(16);
                for _ in 0..n {
                    input.push(rng.next() as u8);
                }
            }
        }
    }
    input.truncate(8192);
}

fn save(root: &Path, target: &str, input: &[u8]) -> PathBuf {
    let mut h = DefaultHasher::new();
    input.hash(&mut h);
    let dir = root.join("artifacts").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("crash-{:016x}", h.finish()));
    let _ = std::fs::write(&path, input);
    path
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if !argv.iter().any(|a| a == "--child" || a == "--verbose") {
        let status = std::env::current_exe().and_then(|exe| {
            std::process::Command::new(exe).args(&argv).arg("--child").stderr(std::process::Stdio::null()).status()
        });
        return match status {
            Ok(s) if s.success() => ExitCode::SUCCESS,
            Ok(s) => {
                println!("the fuzz driver failed: {s}");
                ExitCode::FAILURE
            }
            Err(e) => {
                println!("the fuzz driver did not start: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut seconds = 3.0f64;
    let mut only: Option<String> = None;
    let mut seed = seed();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--target" => only = args.next(),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(seed) | 1,
            "--child" | "--verbose" => {}
            _ => {
                eprintln!("usage: smoke [--seconds N] [--target NAME] [--seed S] [--verbose]");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(t) = &only {
        if !TARGETS.iter().any(|(n, _)| n == t) {
            eprintln!("no target {t}; targets: {}", TARGETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" "));
            return ExitCode::FAILURE;
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Panics are expected to be reported by us, with the input.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    println!("seed {seed}");
    for &(name, f) in TARGETS.iter().filter(|(n, _)| only.as_deref().is_none_or(|o| o == *n)) {
        let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(root.join("corpus").join(name))
            .map(|d| d.filter_map(|e| e.ok()).filter_map(|e| std::fs::read(e.path()).ok()).collect())
            .unwrap_or_default();
        if corpus.is_empty() {
            corpus.push(Vec::new());
        }
        let mut rng = Rng(seed ^ (name.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let start = Instant::now();
        let mut execs = 0u64;
        let mut finding = None;
        for input in &corpus {
            execs += 1;
            if let Err(msg) = run_one(f, input) {
                finding = Some((input.clone(), msg));
                break;
            }
        }
        let budget = Duration::from_secs_f64(seconds.max(0.0));
        while finding.is_none() && start.elapsed() < budget {
            let mut input = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &mut input, &corpus);
            execs += 1;
            if let Err(msg) = run_one(f, &input) {
                finding = Some((input, msg));
            }
        }
        match finding {
            None => println!("{name}: ok, {execs} inputs in {:.1} s", start.elapsed().as_secs_f64()),
            Some((input, msg)) => {
                let path = save(root, name, &input);
                println!("{name}: FAILED after {execs} inputs: {msg}\n  input saved to {}", path.display());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
