//! What the real daemons do with the RFC 5424 BOM: rsyslog and syslog-ng (Debian's packages)
//! are started as receivers on loopback TCP ports with a configuration written to a temporary
//! directory, each writing the MSG of what it receives to a file; the layer sends one message
//! with the BOM and one without, and the test reads the files.
//!
//! The daemons must be installed (`.ci/run` installs them): `rsyslogd` (`/usr/sbin/rsyslogd`,
//! or `WATCHBELL_TEST_RSYSLOGD`) and `syslog-ng` (`WATCHBELL_TEST_SYSLOG_NG`, else the package
//! unpacked under `/opt/syslog-ng-core`, else `/usr/sbin/syslog-ng`: Debian's two packages
//! conflict, so one of them is unpacked rather than installed). The test fails when one is
//! missing or does not start.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use watchbell_core::{Handler, Level, Record};
use watchbell_syslog::SyslogLayer;

const WAIT: Duration = Duration::from_secs(20);
const APP: &str = "bomtest";

/// A daemon started by the test, killed when dropped.
struct Daemon {
    name: &'static str,
    child: Child,
    port: u16,
    file: PathBuf,
    log: PathBuf,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Daemon {
    /// Its own output, for failure messages.
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the daemon accepts TCP connections on its port.
    fn wait_ready(&mut self) {
        let deadline = watchbell_core::time::deadline(WAIT);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before listening:\n{}", self.name, self.output());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} does not listen on {}:\n{}",
                self.name,
                self.port,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the file holds `lines` lines, and returns its bytes.
    fn wait_lines(&self, lines: usize) -> Vec<u8> {
        let deadline = watchbell_core::time::deadline(WAIT);
        loop {
            let bytes = std::fs::read(&self.file).unwrap_or_default();
            if bytes.iter().filter(|b| **b == b'\n').count() >= lines {
                return bytes;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} wrote {:?}, expected {lines} lines:\n{}",
                self.name,
                String::from_utf8_lossy(&bytes),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("watchbell-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(name: &'static str, mut cmd: Command, port: u16, file: PathBuf, dir: &Path) -> Daemon {
    let log = dir.join("daemon.out");
    let out = std::fs::File::create(&log).unwrap();
    cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot start {name} ({cmd:?}): {e}; install it (see .ci/run: apt-get install rsyslog, and syslog-ng-core unpacked)")
    });
    let mut d = Daemon { name, child, port, file, log, dir: dir.to_path_buf() };
    d.wait_ready();
    d
}

fn rsyslog() -> Daemon {
    let bin =
        std::env::var_os("WATCHBELL_TEST_RSYSLOGD").map(PathBuf::from).unwrap_or_else(|| "/usr/sbin/rsyslogd".into());
    assert!(bin.exists(), "rsyslogd not found at {} (apt-get install rsyslog)", bin.display());
    let dir = temp_dir("rsyslog");
    let port = free_port();
    let file = dir.join("messages.log");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{dir}")
module(load="imtcp")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="msgonly" type="string" string="%msg%\n")
if $app-name == "{APP}" then action(type="omfile" file="{file}" template="msgonly")
"#,
            dir = dir.display(),
            file = file.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-n").arg("-f").arg(&conf).arg("-i").arg(dir.join("rsyslogd.pid"));
    spawn("rsyslogd", cmd, port, file, &dir)
}

fn syslog_ng() -> Daemon {
    let bin = std::env::var_os("WATCHBELL_TEST_SYSLOG_NG").map(PathBuf::from).unwrap_or_else(|| {
        let unpacked = PathBuf::from("/opt/syslog-ng-core/usr/sbin/syslog-ng");
        if unpacked.exists() {
            unpacked
        } else {
            "/usr/sbin/syslog-ng".into()
        }
    });
    assert!(bin.exists(), "syslog-ng not found at {} (see .ci/run)", bin.display());
    let dir = temp_dir("syslog-ng");
    let port = free_port();
    let file = dir.join("messages.log");
    let conf = dir.join("syslog-ng.conf");
    std::fs::write(
        &conf,
        format!(
            r#"@version: 3.38
options {{ use_dns(no); dns_cache(no); }};
source s_net {{ syslog(ip("127.0.0.1") port({port}) transport("tcp")); }};
filter f_app {{ program("{APP}"); }};
destination d_file {{ file("{file}" template("${{MSG}}\n")); }};
log {{ source(s_net); filter(f_app); destination(d_file); }};
"#,
            file = file.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(&bin);
    // The package unpacked under a root of its own: its library and modules are there.
    let root = bin.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_default();
    let libdir = root.join("usr/lib/syslog-ng");
    if root != Path::new("/") && libdir.is_dir() {
        cmd.env("LD_LIBRARY_PATH", &libdir);
        let modules = std::fs::read_dir(&libdir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.is_dir()
                    && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(|c: char| c.is_ascii_digit()))
            })
            .expect("the module directory of the unpacked syslog-ng");
        cmd.arg(format!("--module-path={}", modules.display()));
    }
    cmd.arg("-F")
        .arg("--no-caps")
        .arg("-f")
        .arg(&conf)
        .arg("-p")
        .arg(dir.join("syslog-ng.pid"))
        .arg("-R")
        .arg(dir.join("syslog-ng.persist"))
        .arg("-c")
        .arg(dir.join("syslog-ng.ctl"));
    spawn("syslog-ng", cmd, port, file, &dir)
}

/// Sends one RFC 5424 message over TCP (octet counting) to `port`, with or without the BOM.
fn send(port: u16, bom: bool, msg: &str) {
    let (handler, guard) = SyslogLayer::builder()
        .tcp(format!("127.0.0.1:{port}"))
        .app_name(APP)
        .hostname("web-1")
        .bom(bom)
        .build_handler()
        .unwrap();
    handler.handle(Record::new(Level::ERROR, "shop", msg));
    assert!(guard.flush(WAIT).is_complete());
}

#[test]
fn the_daemons_rsyslog_and_syslog_ng_with_and_without_the_bom() {
    for daemon in [rsyslog(), syslog_ng()] {
        send(daemon.port, true, "with the bom: héllo");
        daemon.wait_lines(1);
        send(daemon.port, false, "without the bom: héllo");
        let bytes = daemon.wait_lines(2);
        let text = String::from_utf8(bytes).expect("UTF-8 in the file");
        let want = match daemon.name {
            // rsyslog keeps U+FEFF inside %msg%: the line starts with EF BB BF.
            "rsyslogd" => "\u{feff}with the bom: héllo\nwithout the bom: héllo\n",
            // syslog-ng removes it.
            _ => "with the bom: héllo\nwithout the bom: héllo\n",
        };
        assert_eq!(text, want, "{}:\n{}", daemon.name, daemon.output());
        // Without the BOM (the default), both write the message exactly as sent.
        assert!(text.ends_with("\nwithout the bom: héllo\n"));
    }
}
