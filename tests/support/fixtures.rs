//! The repository's test inputs: the broken desired-state fixtures
//! (tests/fixtures/invalid) and the shipped examples. Shared by the
//! loader's unit tests, the scenario tests (both include this file by
//! path) and the CLI tests.

use std::path::PathBuf;

/// The ballast crate's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files in `dir` (relative to the crate) whose name ends in `.ext`,
/// sorted; fails when there are fewer than `at_least`, so that a moved
/// folder cannot pass as "nothing to check".
pub fn files(dir: &str, ext: &str, at_least: usize) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    assert!(files.len() >= at_least, "{dir}: only {} .{ext} files", files.len());
    files
}

/// One broken desired-state file, alone in a fresh directory, and the
/// message part it must be refused with (its first line, `# expect: …`).
pub struct Broken {
    pub path: PathBuf,
    pub expect: String,
    pub dir: tempfile::TempDir,
}

/// Every fixture of tests/fixtures/invalid (one mistake each).
pub fn broken_desired_states() -> Vec<Broken> {
    files("tests/fixtures/invalid", "yaml", 10)
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let expect = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{}: first line must be `# expect: …`", path.display()))
                .trim()
                .to_string();
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            Broken { path, expect, dir }
        })
        .collect()
}
