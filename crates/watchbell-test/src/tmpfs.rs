//! A small tmpfs mounted for one test: a disk that really fills, for disk-full tests (root
//! needed, as on CI). When it cannot be mounted the test fails and says why; it never passes
//! without having run.
//!
//! ```no_run
//! let fs = watchbell_test::tmpfs::mount("my_test", 256 << 10);
//! let filler = watchbell_test::tmpfs::fill(&fs, 40 << 10); // full, but for 40 KiB
//! std::fs::remove_file(filler).unwrap(); // space again
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A tmpfs of a fixed size mounted on a fresh directory; unmounted and removed when dropped.
#[derive(Debug)]
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

/// Mounts a tmpfs of `bytes` on a fresh directory; panics with the reason when it cannot.
pub fn mount(name: &str, bytes: u64) -> Tmpfs {
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
        Ok(o) if o.status.success() => Tmpfs(dir),
        Ok(o) => {
            let _ = std::fs::remove_dir(&dir);
            panic!(
                "{name} needs a small tmpfs to fill the disk for real, and `mount -t tmpfs` failed: {} \
                 (run the tests as root, as CI does)",
                String::from_utf8_lossy(&o.stderr).trim()
            )
        }
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            panic!(
                "{name} needs a small tmpfs and cannot run `mount`: {e} \
                 (run the tests as root, as CI does)"
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
