//! The log of a running [`Server`]: read as whole lines, parsed once by
//! the strict parser, and waited on with a deadline.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;

use super::logline::{LogLine, complete_lines, parse_all, parse_or_fail};
use super::server::Server;
use super::wait_until;

/// What the log file held when last read, parsed.
#[derive(Default)]
pub(super) struct LogCache {
    /// The whole lines read so far.
    text: String,
    events: Vec<LogLine>,
}

impl Server {
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// The active log file.
    pub fn log_path(&self) -> PathBuf {
        self.log_dir().join("echochat.log")
    }

    /// Reads the active log file and parses the whole lines that are new
    /// since the last read (all of them if the file was replaced, e.g. by
    /// a rotation). Fails the test on a malformed line.
    #[track_caller]
    fn read_log(&self) -> MutexGuard<'_, LogCache> {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let whole = complete_lines(&text);
        let mut cache = self.log.lock().unwrap();
        if !whole.starts_with(cache.text.as_str()) {
            *cache = LogCache::default();
        }
        let new = &whole[cache.text.len()..];
        let parsed: Vec<LogLine> = new.lines().map(parse_or_fail).collect();
        cache.events.extend(parsed);
        cache.text.push_str(new);
        cache
    }

    /// The whole lines of the active log file so far (a line the server is
    /// still writing is left out).
    #[track_caller]
    pub fn log(&self) -> String {
        self.read_log().text.clone()
    }

    /// Every whole line of the active log file so far, parsed; fails the
    /// test on a line that breaks the grammar.
    #[track_caller]
    pub fn events(&self) -> Vec<LogLine> {
        self.read_log().events.clone()
    }

    /// How many whole lines of the active log file so far satisfy `pred`
    /// (for `wait_until("3 disconnects", || server.count_events(..) == 3)`).
    #[track_caller]
    pub fn count_events(&self, pred: impl Fn(&LogLine) -> bool) -> usize {
        self.read_log().events.iter().filter(|e| pred(e)).count()
    }

    /// Waits until some log line satisfies `pred` and returns the first
    /// that does; fails saying `what` never appeared.
    #[track_caller]
    pub fn wait_log(&self, what: &str, pred: impl Fn(&LogLine) -> bool) -> LogLine {
        let mut found = None;
        wait_until(what, || {
            found = self.read_log().events.iter().find(|e| pred(e)).cloned();
            found.is_some()
        });
        found.unwrap()
    }

    /// The `conn` the server gave to the client socket `s` (found by its
    /// `accept` line's `peer`, which is the client's local address).
    #[track_caller]
    pub fn conn_of(&self, s: &TcpStream) -> u64 {
        let peer = s.local_addr().unwrap().to_string();
        let line = self.wait_log(&format!("accept of peer={peer}"), |e| {
            e.is("accept", "peer", &peer)
        });
        line.get("conn")
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("accept line without a numeric conn: {line}"))
    }

    /// Waits for the `disconnect` line of `conn` and returns it.
    #[track_caller]
    pub fn wait_disconnect(&self, conn: u64) -> LogLine {
        let c = conn.to_string();
        self.wait_log(&format!("disconnect of conn={conn}"), |e| {
            e.is("disconnect", "conn", &c)
        })
    }

    /// Stops the server with SIGTERM and checks the graceful stop: exit 0,
    /// a log that ends with a whole line, every line well-formed, and one
    /// `stop reason=signal`. Returns the log, parsed.
    #[track_caller]
    pub fn finish(mut self) -> Vec<LogLine> {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit();
        assert!(
            status.success(),
            "server exit status {status:?}; stderr={}",
            self.stderr_text()
        );
        let events = parse_all(&std::fs::read_to_string(self.log_path()).unwrap_or_default());
        let stops: Vec<&LogLine> = events.iter().filter(|e| e.event == "stop").collect();
        assert_eq!(stops.len(), 1, "one stop line: {stops:?}");
        assert_eq!(stops[0].get("reason"), Some("signal"), "{}", stops[0]);
        events
    }
}

/// All files of a directory whose names start with `prefix`, sorted.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
