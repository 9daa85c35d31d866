//! The names file: chat's memory of which name each client IP chose.
//!
//! The file is UTF-8 text, one `IP<TAB>NAME` a line (`127.0.0.1\talice`),
//! so a teacher can read or edit it. Lines go from the least recently seen
//! IP to the most recent, so the order itself is the recency: loading the
//! file back gives the same memory, and `--names-max` forgets from the top.
//!
//! This module does no writing and keeps no path: [`Names`] is memory (the
//! chat room owns it and updates it on every join and `/nick`), and
//! [`Names::to_bytes`] is the snapshot the shell hands to the background
//! saver (`persist.rs`) at most once a second. So a `/nick` storm costs the
//! room a map update per change, never a disk write inside a turn.
//!
//! Loading happens once, at start, and never fails the server. It reads
//! only a regular file of at most [`MAX_FILE_BYTES`]: the file is opened
//! with `O_NONBLOCK` (so a FIFO with no writer does not block the open) and
//! checked with `fstat` on the opened descriptor (so what is checked is
//! what is read). A FIFO, a device such as `/dev/zero`, a directory or a
//! larger file gets one [`LoadWarning`], and the server starts without it
//! and does not save over it. Damaged lines are skipped with one summary
//! warning, however many there are.
//!
//! Read `persist.rs` next for how the snapshot reaches the disk.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::check_name;

/// The largest names file that is read (DESIGN.md, "Limits and bad
/// input"): about 400,000 remembered names, far past `--names-max`.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The longest good line: an IPv6 address in text (at most 45 bytes), a
/// tab, and 32 characters of at most 4 bytes. Longer lines are damaged and
/// are refused before any Unicode work is spent on them.
const MAX_LINE_BYTES: usize = 45 + 1 + 32 * 4;

/// Remembered names by client IP, bounded by `--names-max`, least recently
/// seen forgotten first.
///
/// Two maps, so that every operation is O(log n): `by_ip` finds an IP's
/// entry, `by_seen` keeps the entries in recency order (a counter that
/// grows with every `remember`), so the oldest is `by_seen`'s first key and
/// the snapshot is one in-order walk. Each entry keeps its line of the file
/// ready-made: formatting 10,000 IP addresses takes milliseconds, copying
/// 10,000 short lines a tenth of one, and the snapshot is taken inside a
/// reactor turn.
#[derive(Debug)]
pub struct Names {
    /// `--names-max`: IPs remembered at most.
    max: usize,
    /// IP to its position in `by_seen`.
    by_ip: HashMap<IpAddr, u64>,
    /// Recency order: the oldest first.
    by_seen: BTreeMap<u64, Entry>,
    /// The position the next `remember` gets.
    next_seen: u64,
    /// The snapshot's size: the sum of the entries' line lengths.
    bytes: usize,
}

/// One remembered IP.
#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    /// Its line of the file, `IP<TAB>NAME\n`.
    line: Box<str>,
}

impl Entry {
    fn new(ip: IpAddr, name: &str) -> Entry {
        Entry {
            ip,
            line: format!("{ip}\t{name}\n").into_boxed_str(),
        }
    }

    fn name(&self) -> &str {
        // The line was built with one tab and a final newline, and an IP
        // holds no tab, so both are found.
        let line = self.line.strip_suffix('\n').unwrap_or(&self.line);
        line.split_once('\t').map_or(line, |(_, name)| name)
    }
}

impl Names {
    /// An empty memory that keeps at most `max` IPs (`0`: remembers none).
    pub fn new(max: usize) -> Names {
        Names {
            max,
            by_ip: HashMap::new(),
            by_seen: BTreeMap::new(),
            next_seen: 0,
            bytes: 0,
        }
    }

    /// The name remembered for `ip`, if any.
    pub fn get(&self, ip: IpAddr) -> Option<&str> {
        let seen = self.by_ip.get(&ip.to_canonical())?;
        self.by_seen.get(seen).map(Entry::name)
    }

    /// How many IPs are remembered.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// Remembers `name` for `ip` as its most recent choice, forgetting the
    /// least recently seen IP if the memory is full. Returns whether
    /// anything changed (a new name, or an older entry becoming the most
    /// recent), which is when a new snapshot is worth saving.
    pub fn remember(&mut self, ip: IpAddr, name: &str) -> bool {
        if self.max == 0 {
            return false;
        }
        let ip = ip.to_canonical();
        if let Some(&seen) = self.by_ip.get(&ip) {
            let newest = seen + 1 == self.next_seen;
            if newest && self.by_seen.get(&seen).is_some_and(|e| e.name() == name) {
                return false;
            }
            if let Some(old) = self.by_seen.remove(&seen) {
                self.bytes -= old.line.len();
            }
        }
        let seen = self.next_seen;
        self.next_seen += 1;
        let entry = Entry::new(ip, name);
        self.bytes += entry.line.len();
        self.by_ip.insert(ip, seen);
        self.by_seen.insert(seen, entry);
        while self.by_ip.len() > self.max {
            let Some((_, oldest)) = self.by_seen.pop_first() else {
                break;
            };
            self.bytes -= oldest.line.len();
            self.by_ip.remove(&oldest.ip);
        }
        true
    }

    /// The file's content: `IP<TAB>NAME\n` per IP, least recent first.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes);
        for entry in self.by_seen.values() {
            out.extend_from_slice(entry.line.as_bytes());
        }
        out
    }

    /// Reads the content of a names file: every good line is remembered in
    /// order (so a later line for the same IP wins, and the last
    /// `max` IPs are kept); damaged lines are counted in the returned
    /// [`Damage`].
    pub fn parse(bytes: &[u8], max: usize) -> (Names, Option<Damage>) {
        let mut names = Names::new(max);
        let mut damage: Option<Damage> = None;
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            match parse_line(raw) {
                Ok(None) => {}
                Ok(Some((ip, name))) => {
                    names.remember(ip, name);
                }
                Err(problem) => match &mut damage {
                    Some(d) => d.lines += 1,
                    None => {
                        damage = Some(Damage {
                            lines: 1,
                            first_line: i + 1,
                            first_problem: problem,
                        })
                    }
                },
            }
        }
        (names, damage)
    }

    /// Loads the names file at `path` (see the module docs). Never fails:
    /// a missing file is an empty memory without a warning; anything else
    /// that keeps the file from being used is one warning.
    pub fn load(path: &Path, max: usize) -> (Names, Option<LoadWarning>) {
        let bytes = match read_regular_file(path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return (Names::new(max), None),
            Err(problem) => {
                let warning = LoadWarning::Unused {
                    path: path.to_path_buf(),
                    problem,
                };
                return (Names::new(max), Some(warning));
            }
        };
        let (names, damage) = Names::parse(&bytes, max);
        let warning = damage.map(|damage| LoadWarning::Damaged {
            path: path.to_path_buf(),
            damage,
        });
        (names, warning)
    }
}

/// The whole file, if it is a regular file of at most [`MAX_FILE_BYTES`];
/// `Ok(None)` if there is none.
fn read_regular_file(path: &Path) -> Result<Option<Vec<u8>>, FileProblem> {
    // O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer.
    // O_NOCTTY: a terminal device must not become our controlling terminal.
    let mut file: File = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileProblem::Open(e)),
    };
    // fstat on the descriptor we hold, not stat on the path: the file
    // checked is the file read, even if the path changes meanwhile.
    let meta = file.metadata().map_err(FileProblem::Open)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "something else"
        };
        return Err(FileProblem::NotRegular(what));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(FileProblem::TooLarge(meta.len()));
    }
    // The file may grow between fstat and read: never read past the limit.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(FileProblem::Read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileProblem::TooLarge(bytes.len() as u64));
    }
    Ok(Some(bytes))
}

/// One line of the file: `Ok(None)` for a blank line, `Ok(Some(..))` for a
/// good one, `Err(problem)` for a damaged one.
fn parse_line(raw: &[u8]) -> Result<Option<(IpAddr, &str)>, &'static str> {
    // Tolerate a file edited on Windows.
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > MAX_LINE_BYTES {
        return Err("longer than any good line");
    }
    let line = std::str::from_utf8(raw).map_err(|_| "not valid UTF-8")?;
    let (ip, name) = line
        .split_once('\t')
        .ok_or("no tab between the IP and the name")?;
    let ip: IpAddr = ip.parse().map_err(|_| "not an IP address")?;
    check_name(name).map_err(|_| "not a valid name")?;
    Ok(Some((ip.to_canonical(), name)))
}

/// Damaged lines found while loading, summed up for one warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// How many lines were skipped.
    pub lines: usize,
    /// The first of them (counting from 1), and what was wrong with it.
    pub first_line: usize,
    pub first_problem: &'static str,
}

/// Why the file could not be used at all.
#[derive(Debug)]
pub enum FileProblem {
    /// Opening or `fstat` failed (other than "no such file").
    Open(io::Error),
    /// Not a regular file: what it is instead.
    NotRegular(&'static str),
    /// Larger than [`MAX_FILE_BYTES`]: its size.
    TooLarge(u64),
    /// Reading failed.
    Read(io::Error),
}

/// The one warning loading may give. The chat server logs it as a
/// `warning` event (`what=names-file`) and goes on.
#[derive(Debug)]
pub enum LoadWarning {
    /// The file exists but cannot be used: the server starts with an empty
    /// memory and does not save over the file (it is not ours to replace:
    /// think of `--names-file /dev/zero`).
    Unused { path: PathBuf, problem: FileProblem },
    /// The file was loaded, but some lines were skipped.
    Damaged { path: PathBuf, damage: Damage },
}

impl LoadWarning {
    /// Whether the file was left unused, so saving over it is not allowed.
    pub fn file_unused(&self) -> bool {
        matches!(self, LoadWarning::Unused { .. })
    }
}

impl fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadWarning::Unused { path, problem } => {
                let path = path.display();
                match problem {
                    FileProblem::Open(e) => write!(f, "cannot open names file {path}: {e}")?,
                    FileProblem::NotRegular(what) => {
                        write!(f, "names file {path} is {what}, not a regular file")?
                    }
                    FileProblem::TooLarge(bytes) => write!(
                        f,
                        "names file {path} is {bytes} bytes, over the {} MiB limit",
                        MAX_FILE_BYTES >> 20
                    )?,
                    FileProblem::Read(e) => write!(f, "cannot read names file {path}: {e}")?,
                }
                f.write_str("; starting without it, and names are not saved this run")
            }
            LoadWarning::Damaged { path, damage } => {
                let Damage {
                    lines,
                    first_line,
                    first_problem,
                } = damage;
                let s = if *lines == 1 { "" } else { "s" };
                write!(
                    f,
                    "names file {}: {lines} damaged line{s} skipped (first: line {first_line}, {first_problem})",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for LoadWarning {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn text(names: &Names) -> String {
        String::from_utf8(names.to_bytes()).unwrap()
    }

    #[test]
    fn remember_get_and_snapshot_in_recency_order() {
        let mut names = Names::new(10);
        assert!(names.remember(ip("127.0.0.1"), "alice"));
        assert!(names.remember(ip("::1"), "Олена"));
        assert!(!names.remember(ip("::1"), "Олена"), "unchanged");
        assert!(names.remember(ip("127.0.0.1"), "alice2"));
        assert_eq!(names.get(ip("127.0.0.1")), Some("alice2"));
        assert_eq!(names.get(ip("::1")), Some("Олена"));
        assert_eq!(names.get(ip("10.0.0.1")), None);
        assert_eq!(text(&names), "::1\tОлена\n127.0.0.1\talice2\n");
        // Seen again with the same name: no new content, but newer.
        assert!(names.remember(ip("::1"), "Олена"));
        assert_eq!(text(&names), "127.0.0.1\talice2\n::1\tОлена\n");
        // IPv4 seen through a dual-stack socket is the same IP.
        assert_eq!(names.get(ip("::ffff:127.0.0.1")), Some("alice2"));
        names.remember(ip("::ffff:127.0.0.1"), "alice3");
        assert_eq!(names.len(), 2);
        assert_eq!(text(&names), "::1\tОлена\n127.0.0.1\talice3\n");
    }

    #[test]
    fn least_recently_seen_is_forgotten_first() {
        let mut names = Names::new(3);
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            names.remember(ip(&format!("10.0.0.{i}")), name);
        }
        // `a` is seen again, so `b` is now the oldest.
        names.remember(ip("10.0.0.0"), "a");
        names.remember(ip("10.0.0.9"), "d");
        assert_eq!(names.len(), 3);
        assert_eq!(names.get(ip("10.0.0.1")), None, "b forgotten");
        assert_eq!(text(&names), "10.0.0.2\tc\n10.0.0.0\ta\n10.0.0.9\td\n");
        // A bound of 0 remembers nothing.
        let mut none = Names::new(0);
        assert!(!none.remember(ip("10.0.0.1"), "a"));
        assert!(none.is_empty());
    }

    #[test]
    fn the_bound_holds_under_many_ips_and_each_remember_stays_cheap() {
        let mut names = Names::new(1000);
        let started = Instant::now();
        for i in 0..100_000u32 {
            names.remember(IpAddr::from(i.to_be_bytes()), "x");
        }
        assert_eq!(names.len(), 1000);
        assert_eq!(names.by_seen.len(), 1000);
        assert_eq!(names.to_bytes().len(), names.bytes, "size kept in step");
        // The newest 1000 are the ones kept.
        assert_eq!(names.get(IpAddr::from(99_999u32.to_be_bytes())), Some("x"));
        assert_eq!(names.get(IpAddr::from(98_999u32.to_be_bytes())), None);
        // Generous: O(log n) each is ~0.1 s for all of them in a debug
        // build; a full rewrite per remember (the old way) took minutes.
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn parse_round_trips_a_snapshot() {
        let mut names = Names::new(100);
        names.remember(ip("10.0.0.1"), "ann");
        names.remember(ip("fe80::1"), "Їжак");
        names.remember(ip("10.0.0.2"), "ｂｏｂ");
        let bytes = names.to_bytes();
        let (again, damage) = Names::parse(&bytes, 100);
        assert_eq!(damage, None);
        assert_eq!(again.to_bytes(), bytes);
        // Loading into a smaller memory keeps the most recent.
        let (small, _) = Names::parse(&bytes, 2);
        assert_eq!(text(&small), "fe80::1\tЇжак\n10.0.0.2\tｂｏｂ\n");
    }

    #[test]
    fn damaged_lines_are_counted_in_one_summary() {
        let bytes = b"10.0.0.1\tann\n\nno-tab-here\nnot-an-ip\tbob\n10.0.0.2\tbad name\n\
              10.0.0.3\t\xff\xfe\n10.0.0.4\tcarl\r\n::ffff:10.0.0.5\tdana\n10.0.0.1\tann2\n\
              10.0.0.6\t\xd0\xb0lice\n10.0.0.7\t\xe3\x85\xa4";
        let (names, damage) = Names::parse(bytes, 100);
        assert_eq!(names.len(), 3);
        assert_eq!(names.get(ip("10.0.0.1")), Some("ann2"), "later line wins");
        assert_eq!(names.get(ip("10.0.0.4")), Some("carl"));
        assert_eq!(names.get(ip("10.0.0.5")), Some("dana"), "v4-mapped");
        assert_eq!(
            damage,
            Some(Damage {
                lines: 6,
                first_line: 3,
                first_problem: "no tab between the IP and the name",
            })
        );
    }

    #[test]
    fn a_huge_damaged_input_is_quick_and_one_summary() {
        // 10 MiB of short garbage lines: the old loader wrote one warning
        // each (5 million lines) and took 24 s.
        let lines = 10 << 20 >> 4;
        let garbage = b"garbage \xff line\n".repeat(lines);
        let started = Instant::now();
        let (names, damage) = Names::parse(&garbage, 10_000);
        assert!(names.is_empty());
        assert_eq!(damage.map(|d| d.lines), Some(lines));
        assert!(started.elapsed() < Duration::from_secs(20));
        // One enormous line is refused by its length, not decoded.
        let long = [b"10.0.0.1\t".as_slice(), &[b'a'; 1 << 20]].concat();
        let (_, damage) = Names::parse(&long, 10);
        assert_eq!(damage.unwrap().first_problem, "longer than any good line");
    }

    #[test]
    fn missing_file_is_empty_without_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (names, warning) = Names::load(&dir.path().join("names.tsv"), 10);
        assert!(names.is_empty());
        assert!(warning.is_none());
    }

    #[test]
    fn load_reads_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.tsv");
        std::fs::write(&path, "10.0.0.1\talice\n10.0.0.2\tbob\n").unwrap();
        let (names, warning) = Names::load(&path, 10);
        assert!(warning.is_none(), "{warning:?}");
        assert_eq!(names.get(ip("10.0.0.2")), Some("bob"));
    }

    #[test]
    fn damaged_lines_give_one_warning_and_the_file_is_still_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.tsv");
        let mut content = b"10.0.0.1\talice\n".to_vec();
        for _ in 0..1000 {
            content.extend_from_slice(b"garbage\n");
        }
        std::fs::write(&path, &content).unwrap();
        let (names, warning) = Names::load(&path, 10);
        assert_eq!(names.get(ip("10.0.0.1")), Some("alice"));
        let warning = warning.unwrap();
        assert!(!warning.file_unused());
        let msg = warning.to_string();
        assert!(
            msg.ends_with(
                "1000 damaged lines skipped (first: line 2, no tab between the IP and the name)"
            ),
            "{msg}"
        );
    }

    #[track_caller]
    fn assert_unused(path: &Path, want: &str) {
        let (names, warning) = Names::load(path, 10);
        assert!(names.is_empty());
        let warning = warning.expect("a warning");
        assert!(warning.file_unused());
        let msg = warning.to_string();
        assert!(msg.contains(want), "{msg}");
        assert!(msg.ends_with("starting without it, and names are not saved this run"));
    }

    #[test]
    fn a_fifo_is_a_warning_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.tsv");
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // No writer ever opens it: a blocking open would wait forever, and
        // the test harness would hang instead of failing.
        assert_unused(&path, "is a FIFO, not a regular file");
    }

    #[test]
    fn a_device_or_a_directory_is_a_warning() {
        assert_unused(Path::new("/dev/zero"), "is a device, not a regular file");
        assert_unused(Path::new("/dev/null"), "is a device, not a regular file");
        let dir = tempfile::tempdir().unwrap();
        assert_unused(dir.path(), "is a directory, not a regular file");
    }

    #[test]
    fn a_file_over_16_mib_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.tsv");
        let file = File::create(&path).unwrap();
        // Sparse: no 16 MiB written to the disk.
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert_unused(&path, "is 16777217 bytes, over the 16 MiB limit");
        // Exactly the limit is read (and is all damage: NUL bytes).
        file.set_len(MAX_FILE_BYTES).unwrap();
        let (_, warning) = Names::load(&path, 10);
        assert!(!warning.unwrap().file_unused());
    }

    #[test]
    fn an_unreadable_file_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        // A path through a regular file: not "missing", just unusable.
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert_unused(&file.join("names.tsv"), "cannot open names file");
    }
}
