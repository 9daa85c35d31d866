//! The names file: chat's memory of which name each client IP chose, and
//! the rule for what a name may be.
//!
//! The file is UTF-8 text, one `IP<TAB>NAME` a line (`127.0.0.1\talice`),
//! so a teacher can read or edit it. Loading never fails the server: a
//! missing file is an empty memory, and a damaged line (no tab, a bad IP, a
//! name that breaks the rules, invalid UTF-8) is skipped and reported as a
//! [`NamesError`] that the chat service turns into a `warning` event.
//!
//! Saving is atomic: the whole map is written to a temporary file in the
//! same directory, then renamed over the old one. `rename` within one
//! filesystem replaces the directory entry in one step, so a reader (or a
//! crash) sees either the old file or the new one, never half of each. The
//! data is not `fsync`ed: the server is single-threaded, and stalling every
//! connection for a disk flush on each join would cost more than losing the
//! latest name on a power cut.
//!
//! Read `service/chat.rs` next: it loads this file at start and saves it
//! when a name is chosen or changed.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The longest name, in characters (not bytes).
pub const MAX_NAME_CHARS: usize = 32;

/// Why a name is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Empty, or more than [`MAX_NAME_CHARS`] characters.
    Length,
    /// A character other than a letter, a digit, `_` or `-` (this includes
    /// spaces and every control character).
    Character,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Length => {
                write!(f, "a name has 1 to {MAX_NAME_CHARS} characters")
            }
            NameError::Character => f.write_str("a name may only hold letters, digits, _ and -"),
        }
    }
}

/// Checks the name rule: 1–32 characters, each a letter (any script, so
/// `Олена` is fine), an ASCII digit, `_` or `-`. Uniqueness is the chat
/// room's business, not this function's.
///
/// # Errors
/// [`NameError`] says which part of the rule the name breaks.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let mut chars = 0;
    for c in name.chars() {
        if !(c.is_alphabetic() || c.is_ascii_digit() || c == '_' || c == '-') {
            return Err(NameError::Character);
        }
        chars += 1;
    }
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(NameError::Length);
    }
    Ok(())
}

/// What can go wrong with the names file. None of it is fatal: the chat
/// service logs it as a `warning` and goes on.
#[derive(Debug)]
pub enum NamesError {
    /// The file exists but could not be read.
    Read { path: PathBuf, error: io::Error },
    /// One line was damaged and skipped (`line` counts from 1).
    Line {
        path: PathBuf,
        line: usize,
        problem: &'static str,
    },
    /// The new file could not be written or renamed into place.
    Write { path: PathBuf, error: io::Error },
}

impl fmt::Display for NamesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamesError::Read { path, error } => {
                write!(f, "cannot read names file {}: {error}", path.display())
            }
            NamesError::Line {
                path,
                line,
                problem,
            } => write!(
                f,
                "names file {} line {line} skipped: {problem}",
                path.display()
            ),
            NamesError::Write { path, error } => write!(
                f,
                "cannot save names file {}: {error}; names are kept in memory only",
                path.display()
            ),
        }
    }
}

impl std::error::Error for NamesError {}

/// The remembered names, by client IP, and the file they live in.
#[derive(Debug)]
pub struct NamesFile {
    /// Where the map is loaded from and saved to.
    path: PathBuf,
    /// Sorted, so the saved file is stable and easy to read.
    names: BTreeMap<IpAddr, Box<str>>,
}

impl NamesFile {
    /// Loads `path`. Never fails: a missing file gives an empty map; an
    /// unreadable file or damaged lines are returned as errors to report,
    /// and every good line is kept. If an IP appears twice, the later line
    /// wins.
    pub fn load(path: impl Into<PathBuf>) -> (NamesFile, Vec<NamesError>) {
        let path = path.into();
        let mut file = NamesFile {
            path,
            names: BTreeMap::new(),
        };
        let mut problems = Vec::new();
        let bytes = match fs::read(&file.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return (file, problems),
            Err(error) => {
                problems.push(NamesError::Read {
                    path: file.path.clone(),
                    error,
                });
                return (file, problems);
            }
        };
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            match parse_line(raw) {
                Ok(None) => {}
                Ok(Some((ip, name))) => {
                    file.names.insert(ip, name.into());
                }
                Err(problem) => problems.push(NamesError::Line {
                    path: file.path.clone(),
                    line: i + 1,
                    problem,
                }),
            }
        }
        (file, problems)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name remembered for `ip`, if any.
    pub fn get(&self, ip: IpAddr) -> Option<&str> {
        self.names.get(&ip).map(|n| &**n)
    }

    /// How many IPs are remembered.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Remembers `name` for `ip` and saves the file if that changed
    /// anything. Returns whether the file was rewritten.
    ///
    /// # Errors
    /// [`NamesError::Write`] if saving failed; the name is still remembered
    /// in memory, and the next change tries to save again.
    pub fn remember(&mut self, ip: IpAddr, name: &str) -> Result<bool, NamesError> {
        if self.get(ip) == Some(name) {
            return Ok(false);
        }
        self.names.insert(ip, name.into());
        self.save()?;
        Ok(true)
    }

    /// Writes the whole map atomically: a temporary file next to the target,
    /// then `rename` over it.
    ///
    /// # Errors
    /// [`NamesError::Write`] if the directory is not writable, the disk is
    /// full, or the path has no file name; the old file is left untouched.
    pub fn save(&self) -> Result<(), NamesError> {
        let fail = |error| NamesError::Write {
            path: self.path.clone(),
            error,
        };
        let Some(file_name) = self.path.file_name() else {
            return Err(fail(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path has no file name",
            )));
        };
        // Same directory, so the rename never crosses filesystems; the pid
        // keeps two servers sharing a file from writing the same temp file.
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = self.path.with_file_name(tmp_name);

        let mut text = String::with_capacity(self.names.len() * 32);
        for (ip, name) in &self.names {
            text.push_str(&ip.to_string());
            text.push('\t');
            text.push_str(name);
            text.push('\n');
        }
        let result = fs::write(&tmp, text.as_bytes()).and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(error) = result {
            // Best effort: do not leave a stray temp file behind.
            let _ = fs::remove_file(&tmp);
            return Err(fail(error));
        }
        Ok(())
    }
}

/// One line of the file: `Ok(None)` for a blank line, `Ok(Some(..))` for a
/// good one, `Err(problem)` for a damaged one.
fn parse_line(raw: &[u8]) -> Result<Option<(IpAddr, &str)>, &'static str> {
    // Tolerate a file edited on Windows.
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.is_empty() {
        return Ok(None);
    }
    let line = std::str::from_utf8(raw).map_err(|_| "not valid UTF-8")?;
    let (ip, name) = line
        .split_once('\t')
        .ok_or("no tab between the IP and the name")?;
    let ip: IpAddr = ip.parse().map_err(|_| "not an IP address")?;
    check_name(name).map_err(|e| match e {
        NameError::Length => "the name is empty or longer than 32 characters",
        NameError::Character => "the name holds a character names may not have",
    })?;
    Ok(Some((ip.to_canonical(), name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn name_rule() {
        for good in ["a", "alice", "Bob_2", "x-y", "Олена", "ñ", &"z".repeat(32)] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
        assert_eq!(check_name(""), Err(NameError::Length));
        assert_eq!(check_name(&"z".repeat(33)), Err(NameError::Length));
        // 32 two-byte letters are 64 bytes but 32 characters: fine.
        assert_eq!(check_name(&"ж".repeat(32)), Ok(()));
        for bad in [
            "a b", "a=b", "a\"b", "a\tb", "a\x1b[2J", "a\u{85}", "a.b", "@x",
        ] {
            assert_eq!(check_name(bad), Err(NameError::Character), "{bad:?}");
        }
    }

    #[test]
    fn missing_file_is_empty_without_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let (names, problems) = NamesFile::load(dir.path().join("names.tsv"));
        assert!(names.is_empty());
        assert!(problems.is_empty());
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.tsv");
        let (mut names, _) = NamesFile::load(&path);
        assert!(names.remember(ip("127.0.0.1"), "alice").unwrap());
        assert!(names.remember(ip("::1"), "Олена").unwrap());
        assert!(!names.remember(ip("::1"), "Олена").unwrap(), "unchanged");
        assert!(names.remember(ip("127.0.0.1"), "alice2").unwrap());

        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, "127.0.0.1\talice2\n::1\tОлена\n");
        let (again, problems) = NamesFile::load(&path);
        assert!(problems.is_empty());
        assert_eq!(again.get(ip("127.0.0.1")), Some("alice2"));
        assert_eq!(again.get(ip("::1")), Some("Олена"));
        // No temp file left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn damaged_lines_are_skipped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.tsv");
        fs::write(
            &path,
            b"10.0.0.1\tann\n\nno-tab-here\nnot-an-ip\tbob\n10.0.0.2\tbad name\n\
              10.0.0.3\t\xff\xfe\n10.0.0.4\tcarl\r\n::ffff:10.0.0.5\tdana\n10.0.0.1\tann2",
        )
        .unwrap();
        let (names, problems) = NamesFile::load(&path);
        assert_eq!(names.len(), 3);
        assert_eq!(names.get(ip("10.0.0.1")), Some("ann2"), "later line wins");
        assert_eq!(names.get(ip("10.0.0.4")), Some("carl"));
        assert_eq!(names.get(ip("10.0.0.5")), Some("dana"), "v4-mapped");
        let lines: Vec<usize> = problems
            .iter()
            .map(|p| match p {
                NamesError::Line { line, .. } => *line,
                other => panic!("unexpected {other}"),
            })
            .collect();
        assert_eq!(lines, vec![3, 4, 5, 6]);
        let msg = problems[0].to_string();
        assert!(msg.contains("line 3 skipped: no tab"), "{msg}");
    }

    #[test]
    fn unreadable_file_is_a_warning_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: reading it fails.
        let (names, problems) = NamesFile::load(dir.path());
        assert!(names.is_empty());
        assert!(matches!(problems.as_slice(), [NamesError::Read { .. }]));
    }

    #[test]
    fn unwritable_file_returns_an_error_and_keeps_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("names.tsv");
        let (mut names, _) = NamesFile::load(&path);
        let err = names.remember(ip("127.0.0.1"), "alice").unwrap_err();
        assert!(matches!(err, NamesError::Write { .. }));
        assert!(err.to_string().starts_with("cannot save names file"));
        assert_eq!(names.get(ip("127.0.0.1")), Some("alice"));
    }
}
