//! A small tmpfs mounted for one test (the disk-full tests need a disk that really fills).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A tmpfs of a fixed size mounted on a fresh directory; unmounted and removed when dropped.
pub struct Tmpfs(PathBuf);

impl std::ops::Deref for Tmpfs {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Mounts a tmpfs of `bytes` on a fresh directory. Returns `None` only when the environment
/// variable `WATCHBELL_TEST_NO_TMPFS=1` is set (the caller prints that it is skipped); when the
/// mount fails otherwise the test fails with the reason.
pub fn mount(name: &str, bytes: u64) -> Option<Tmpfs> {
    if std::env::var("WATCHBELL_TEST_NO_TMPFS").as_deref() == Ok("1") {
        eprintln!("SKIPPED {name}: WATCHBELL_TEST_NO_TMPFS=1, no tmpfs mounted, nothing tested");
        return None;
    }
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "watchbell-tmpfs-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create the mount point");
    let out =
        Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={bytes}")]).arg("tmpfs").arg(&dir).output();
    match out {
        Ok(o) if o.status.success() => Some(Tmpfs(dir)),
        Ok(o) => {
            let _ = std::fs::remove_dir(&dir);
            panic!(
                "{name} needs a small tmpfs to fill the disk for real, and `mount -t tmpfs` failed: {} \
                 (run as root, or set WATCHBELL_TEST_NO_TMPFS=1 to skip this test knowingly)",
                String::from_utf8_lossy(&o.stderr).trim()
            )
        }
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            panic!(
                "{name} needs a small tmpfs and cannot run `mount`: {e} \
                 (run as root, or set WATCHBELL_TEST_NO_TMPFS=1 to skip this test knowingly)"
            )
        }
    }
}

/// Fills the file system at `dir` with a file `filler`, until writing fails, and returns its
/// path: the disk is then full.
pub fn fill(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create the filler");
    let chunk = vec![b'x'; 4096];
    while f.write_all(&chunk).is_ok() {}
    drop(f);
    // Give back `leave` bytes so that some records fit and the disk fills part-way through one.
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len.saturating_sub(leave)).unwrap();
    path
}
