//! The command line as a user meets it (DESIGN.md, "Commands"): `--version`
//! and `--help` exit 0, usage errors exit 2, runtime errors exit 1 with one
//! `error:` line on stderr.

use crate::common::*;

#[test]
fn version_exits_0_and_names_the_version() {
    let out = run_bin(["--version"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains(env!("CARGO_PKG_VERSION")), "{out:?}");
}

#[test]
fn serve_help_exits_0_and_lists_the_options() {
    let out = run_bin(["serve", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for opt in [
        "--host",
        "--echo-ports",
        "--log-max-size",
        "--max-clients",
        "--idle-timeout",
        "--exit-word",
        "--listen-backlog",
    ] {
        assert!(out.stdout.contains(opt), "help lacks {opt}: {}", out.stdout);
    }
}

#[test]
fn bad_values_are_usage_errors_exit_2() {
    for args in [
        &["serve", "--echo-ports", "x"][..],
        &["serve", "--log-max-size", "1.5MiB"],
        &["serve", "--idle-timeout", "soon"],
        &["serve", "--echo-ports", "7099-7000"],
        &["serve", "--no-such-option"],
    ] {
        let out = run_bin(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}

#[test]
fn unwritable_log_dir_exits_1_with_one_error_line() {
    // A directory cannot be made under a regular file, whoever runs this.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, "not a directory").unwrap();
    let bad = file.join("logs");
    let out = run_bin([
        "serve".as_ref(),
        "--echo-ports".as_ref(),
        "0".as_ref(),
        "--chat-ports".as_ref(),
        "0".as_ref(),
        "--log-dir".as_ref(),
        bad.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.starts_with("error:"), "{:?}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {:?}", out.stderr);
    assert!(
        out.stderr.contains("plain-file"),
        "the error should name the path: {:?}",
        out.stderr
    );
    assert!(!out.stdout.contains("listening on"), "{:?}", out.stdout);
}
