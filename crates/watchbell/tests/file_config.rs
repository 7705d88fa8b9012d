//! The `[file]` rotation keys through `watchbell::Config`: `backup_count = 0`, `truncate`,
//! `when` with `zone` and `date_format`, `compress`, and the errors of bad values.
#![cfg(all(feature = "config", feature = "file"))]

use std::time::{Duration, SystemTime};

use tracing_subscriber::prelude::*;
use watchbell::Config;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("watchbell-file-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Runs `f` under the layers built from `toml`, then flushes them.
fn with_config(toml: &str, f: impl FnOnce()) {
    let config = Config::from_toml_str(toml).unwrap();
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), f);
    assert!(guard.shutdown(Duration::from_secs(10)).is_complete());
}

#[test]
fn backup_count_zero_keeps_no_backup_the_file_is_truncated_at_each_rotation() {
    let dir = temp_dir("zero");
    let toml = format!(
        "[file]\npath = \"{}\"\nlevel = \"error\"\nmax_bytes = 300\nbackup_count = 0\n",
        dir.join("app.log").display()
    );
    with_config(&toml, || {
        for i in 0..40 {
            tracing::error!(n = i, "disk almost full, record number {i}");
        }
    });
    assert_eq!(names(&dir), ["app.log"], "no backup file");
    let text = std::fs::read_to_string(dir.join("app.log")).unwrap();
    assert!(text.len() <= 300 && text.contains("record number 39"), "{text}");
    assert!(!text.contains("record number 0,"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncate_empties_the_file_left_by_an_earlier_run() {
    let dir = temp_dir("truncate");
    let path = dir.join("app.log");
    for (truncate, kept) in [(false, true), (true, false)] {
        std::fs::write(&path, "left by an earlier run\n").unwrap();
        let toml = format!("[file]\npath = \"{}\"\ntruncate = {truncate}\n", path.display());
        with_config(&toml, || tracing::error!("new run"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.contains("left by an earlier run"), kept, "truncate = {truncate}: {text}");
        assert!(text.contains("new run"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn when_zone_date_format_and_compress_name_the_rotated_file() {
    let dir = temp_dir("when");
    let berlin = watchbell::file::Zone::named("Europe/Berlin").unwrap();
    let toml = format!(
        "[file]\npath = \"{}\"\nwhen = \"S\"\ninterval = 1\nzone = \"Europe/Berlin\"\n\
         date_format = \"%Y-%m-%dT%H-%M-%S%z\"\ncompress = \"gzip\"\nbackup_count = 3\n",
        dir.join("app.log").display()
    );
    let before = SystemTime::now();
    with_config(&toml, || {
        tracing::error!("in the first second");
        // The next second of the clock starts a new period.
        std::thread::sleep(Duration::from_millis(1100));
        tracing::error!("in a later second");
    });
    let files = names(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    let rotated = files.iter().find(|n| n.starts_with("app-")).expect("a rotated file");
    // Named `{stem}-{date}{ext}` + `.gz`, with the date on Berlin's clock (its offset shows).
    let offset = berlin.strftime(before, "%z").unwrap();
    assert!(rotated.ends_with(&format!("{offset}.log.gz")), "{rotated} has Berlin's offset {offset}");
    let date = &rotated["app-".len()..rotated.len() - format!("{offset}.log.gz").len()];
    let expected: Vec<String> =
        (0..3).map(|s| berlin.strftime(before + Duration::from_secs(s), "%Y-%m-%dT%H-%M-%S").unwrap()).collect();
    assert!(expected.iter().any(|e| e == date), "{date} in {expected:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_rotation_values_name_their_key() {
    for (extra, key) in [
        ("when = \"W7\"", "file.when"),
        ("when = \"H\"\nrotate_every = \"day\"", "file.when"),
        ("when = \"midnight\"\nat_time = \"25:00\"", "file.at_time"),
        ("zone = \"Mars/Olympus_Mons\"", "file.zone"),
        ("compress = \"zip\"", "file.compress"),
        ("when = \"H\"\nat_time = \"06:00\"", "at_time"),
        ("date_format = \"%Y-%m-%d\"", "date_format"),
        ("when = \"D\"\ninterval = 0", "interval"),
    ] {
        let toml = format!("[file]\npath = \"/tmp/watchbell-never-written.log\"\n{extra}\n");
        let err = Config::from_toml_str(&toml)
            .and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ()))
            .expect_err(extra);
        let text = format!("{err}");
        assert!(text.contains(key), "{extra}: {text}");
    }
    let ok = "[file]\npath = \"/tmp/watchbell-never-written.log\"\nwhen = \"W0\"\nat_time = \"06:30\"\n\
              interval = 2\nzone = \"utc\"\ndate_format = \"%Y%m%d\"\ntruncate = false\n";
    assert!(Config::from_toml_str(ok).unwrap().check().is_ok());
}

#[test]
fn the_environment_variables_set_the_same_keys() {
    let dir = temp_dir("env");
    let path = dir.join("app.log");
    std::fs::write(&path, "left by an earlier run\n").unwrap();
    let path_text = path.display().to_string();
    let vars = [
        ("WATCHBELL_FILE_PATH", path_text.as_str()),
        ("WATCHBELL_FILE_TRUNCATE", "true"),
        ("WATCHBELL_FILE_WHEN", "midnight"),
        ("WATCHBELL_FILE_INTERVAL", "1"),
        ("WATCHBELL_FILE_AT_TIME", "04:00"),
        ("WATCHBELL_FILE_ZONE", "local"),
        ("WATCHBELL_FILE_DATE_FORMAT", "%Y-%m-%d"),
        ("WATCHBELL_FILE_COMPRESS", "gzip"),
    ];
    let config = Config::from_toml_str("").unwrap().with_vars(vars).unwrap();
    let file = config.file.as_ref().expect("[file] from the variables");
    assert_eq!(file.when.as_deref(), Some("midnight"));
    assert_eq!((file.interval, file.truncate), (Some(1), Some(true)));
    assert_eq!(file.at_time.as_deref(), Some("04:00"));
    assert_eq!(file.zone.as_deref(), Some("local"));
    assert_eq!(file.date_format.as_deref(), Some("%Y-%m-%d"));
    assert_eq!(file.compress.as_deref(), Some("gzip"));
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || tracing::error!("new run"));
    assert!(guard.shutdown(Duration::from_secs(10)).is_complete());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("earlier run") && text.contains("new run"), "{text}");

    let bad = Config::from_toml_str("")
        .unwrap()
        .with_vars([("WATCHBELL_FILE_PATH", path_text.as_str()), ("WATCHBELL_FILE_WHEN", "fortnightly")]);
    let err = bad.and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ())).unwrap_err();
    assert!(err.to_string().contains("file.when"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
