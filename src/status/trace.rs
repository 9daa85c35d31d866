//! `--trace`: one console line per reactor turn, so a class can watch the
//! loop breathe — how long `poll` slept, what woke it, what the turn did.
//!
//! The reactor fills one [`TurnTrace`] per turn (the same figures feed the
//! status page and `/metrics`, measured once). [`TraceLimiter`] decides what
//! reaches the console: at most [`TRACE_LINES_PER_SEC`] lines a second, and
//! past that one line a second saying how many turns were not shown — a
//! busy server turns thousands of times a second, and a terminal that
//! scrolls faster than anyone can read teaches nothing (and a blocking
//! write to it would slow the very loop being watched).
//!
//! Lines are in the `--lang` language; the wire protocols and the log file
//! stay English.

use std::time::{Duration, Instant};

/// Most trace lines written in one second.
pub const TRACE_LINES_PER_SEC: u32 = 20;

/// The language of `--trace` lines (kept in `lang/`, re-exported here for
/// the reactor's configuration).
pub use crate::lang::Lang;
use crate::lang::{decimal, tr};

/// What one reactor turn did: filled by the reactor as it goes, handed to
/// the status figures and (with `--trace`) to the console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnTrace {
    /// The turn's number since the server started (1 is the first).
    pub turn: u64,
    /// How long `poll` slept before it returned.
    pub slept: Duration,
    /// Readiness events `poll` returned (0: it woke for its timeout).
    pub events: u32,
    /// Of those, events on listening sockets (connections waiting in the
    /// accept queue)...
    pub woke_listeners: u32,
    /// ... on connections (bytes to read, room to write, or a close) ...
    pub woke_conns: u32,
    /// ... and on the control sources (signals, the console, a waker).
    pub woke_control: u32,
    /// Connections accepted this turn.
    pub accepts: u32,
    /// `recv` calls that returned bytes (or the end of the stream).
    pub reads: u32,
    /// `send` calls that handed bytes to the kernel.
    pub writes: u32,
    /// Connections closed.
    pub closes: u32,
    /// How long the turn worked after `poll` returned.
    pub took: Duration,
}

/// Lets at most [`TRACE_LINES_PER_SEC`] trace lines through per second;
/// past that, counts the turns it holds back and reports them in one line
/// when the second is over.
#[derive(Debug)]
pub struct TraceLimiter {
    lang: Lang,
    /// Start of the current one-second window.
    window: Option<Instant>,
    shown: u32,
    hidden: u64,
}

impl TraceLimiter {
    pub fn new(lang: Lang) -> Self {
        TraceLimiter {
            lang,
            window: None,
            shown: 0,
            hidden: 0,
        }
    }

    /// Offers the trace of a finished turn; appends the lines to print now
    /// (none, the turn's line, and/or the summary of the second before) to
    /// `out`, each ending in `\n`.
    pub fn offer(&mut self, now: Instant, trace: &TurnTrace, out: &mut String) {
        let new_window = match self.window {
            None => true,
            Some(start) => now.saturating_duration_since(start) >= Duration::from_secs(1),
        };
        if new_window {
            if self.hidden > 0 {
                write_hidden(self.lang, self.hidden, out);
            }
            self.window = Some(now);
            self.shown = 0;
            self.hidden = 0;
        }
        if self.shown < TRACE_LINES_PER_SEC {
            self.shown += 1;
            write_turn(self.lang, trace, out);
        } else {
            self.hidden += 1;
        }
    }

    /// The turns held back in the current second (for a final line at
    /// shutdown).
    pub fn hidden(&self) -> u64 {
        self.hidden
    }
}

/// One turn's line, e.g. `turn 42: poll slept 12.3 ms; events: 3
/// (listeners 1, connections 2, control 0); accepted 1, read 2, wrote 2,
/// closed 0; the turn took 85 µs`. In Ukrainian and Russian a turn is an
/// iteration of the loop ("ітерація"/"итерация") and a listener is a
/// listening socket ("сокет прослуховування"/"слушающий сокет"), the course's words.
pub fn write_turn(lang: Lang, t: &TurnTrace, out: &mut String) {
    let (n, slept, took) = (t.turn, Dur(lang, t.slept), Dur(lang, t.took));
    out.push_str(&tr!(
        lang,
        "turn {n}: poll slept {slept}; ",
        "ітерація {n}: poll чекав {slept}; ",
        "итерация {n}: poll ждал {slept}; ",
    ));
    let (e, l, c, k) = (t.events, t.woke_listeners, t.woke_conns, t.woke_control);
    out.push_str(&if e == 0 {
        tr!(
            lang,
            "woke for its timeout, no events; ",
            "повернувся за таймаутом, подій немає; ",
            "вернулся по таймауту, событий нет; ",
        )
    } else {
        tr!(
            lang,
            "events: {e} (listeners {l}, connections {c}, control {k}); ",
            "подій: {e} (сокети прослуховування {l}, з'єднання {c}, керування {k}); ",
            "событий: {e} (слушающие сокеты {l}, соединения {c}, управление {k}); ",
        )
    });
    let (a, r, w, c) = (t.accepts, t.reads, t.writes, t.closes);
    out.push_str(&tr!(
        lang,
        "accepted {a}, read {r}, wrote {w}, closed {c}; the turn took {took}\n",
        "прийнято {a}, прочитано {r}, записано {w}, закрито {c}; ітерація тривала {took}\n",
        "принято {a}, прочитано {r}, записано {w}, закрыто {c}; итерация длилась {took}\n",
    ));
}

/// The once-a-second line for turns that were not shown. The count comes
/// after a colon, so no language needs a plural form for it.
pub fn write_hidden(lang: Lang, hidden: u64, out: &mut String) {
    let max = TRACE_LINES_PER_SEC;
    out.push_str(&tr!(
        lang,
        "trace: turns in the last second that were not shown: {hidden} (at most {max} lines a second)\n",
        "trace: ітерацій за останню секунду не показано: {hidden} (не більше {max} рядків на секунду)\n",
        "trace: итераций за последнюю секунду не показано: {hidden} (не больше {max} строк в секунду)\n",
    ));
}

/// A duration in the unit a person reads best: µs below a millisecond, ms
/// with one decimal below a second, else seconds.
struct Dur(Lang, Duration);

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Dur(lang, d) = *self;
        let (us, ms, s) = match lang {
            Lang::En => ("µs", "ms", "s"),
            Lang::Uk | Lang::Ru => ("мкс", "мс", "с"),
        };
        let micros = d.as_micros();
        if micros < 1_000 {
            write!(f, "{micros} {us}")
        } else if micros < 1_000_000 {
            write!(f, "{} {ms}", decimal(lang, micros as f64 / 1_000.0, 1))
        } else {
            write!(f, "{} {s}", decimal(lang, d.as_secs_f64(), 3))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TurnTrace {
        TurnTrace {
            turn: 42,
            slept: Duration::from_micros(12_345),
            events: 3,
            woke_listeners: 1,
            woke_conns: 2,
            woke_control: 0,
            accepts: 1,
            reads: 2,
            writes: 2,
            closes: 0,
            took: Duration::from_micros(85),
        }
    }

    #[test]
    fn english_line_says_what_the_turn_did() {
        let mut out = String::new();
        write_turn(Lang::En, &sample(), &mut out);
        assert_eq!(
            out,
            "turn 42: poll slept 12.3 ms; events: 3 (listeners 1, connections 2, control 0); accepted 1, read 2, wrote 2, closed 0; the turn took 85 µs\n"
        );
    }

    #[test]
    fn a_timeout_turn_says_so_in_each_language() {
        let t = TurnTrace {
            events: 0,
            ..sample()
        };
        for (lang, word) in [
            (Lang::En, "timeout"),
            (Lang::Uk, "таймаутом"),
            (Lang::Ru, "таймауту"),
        ] {
            let mut out = String::new();
            write_turn(lang, &t, &mut out);
            assert!(out.contains(word), "{out}");
            assert_eq!(out.matches('\n').count(), 1);
        }
    }

    #[test]
    fn ukrainian_and_russian_units() {
        let mut out = String::new();
        write_turn(Lang::Uk, &sample(), &mut out);
        assert!(out.starts_with("ітерація 42: poll чекав 12,3 мс;"), "{out}");
        assert!(
            out.contains("(сокети прослуховування 1, з'єднання 2,"),
            "{out}"
        );
        assert!(out.ends_with("ітерація тривала 85 мкс\n"), "{out}");
        out.clear();
        write_turn(Lang::Ru, &sample(), &mut out);
        assert!(out.starts_with("итерация 42: poll ждал 12,3 мс;"), "{out}");
        assert!(out.contains("закрыто 0; итерация длилась 85 мкс"), "{out}");
    }

    #[test]
    fn at_most_twenty_lines_a_second_then_one_summary() {
        let mut limiter = TraceLimiter::new(Lang::En);
        let start = Instant::now();
        let mut out = String::new();
        // 1000 turns within the first second (1 ms apart).
        for i in 0..1000u64 {
            let t = TurnTrace {
                turn: i + 1,
                ..sample()
            };
            limiter.offer(start + Duration::from_millis(i / 2), &t, &mut out);
        }
        assert_eq!(out.lines().count(), 20);
        assert_eq!(limiter.hidden(), 980);
        // The first turn of the next second prints the summary, then itself.
        out.clear();
        limiter.offer(start + Duration::from_millis(1_000), &sample(), &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].contains("were not shown: 980"), "{}", lines[0]);
        assert!(lines[1].starts_with("turn 42:"));
        assert_eq!(limiter.hidden(), 0);
    }

    #[test]
    fn a_quiet_second_prints_no_summary() {
        let mut limiter = TraceLimiter::new(Lang::Ru);
        let start = Instant::now();
        let mut out = String::new();
        for i in 0..5 {
            limiter.offer(start + Duration::from_secs(i), &sample(), &mut out);
        }
        assert_eq!(out.lines().count(), 5);
        assert!(!out.contains("trace:"));
    }

    #[test]
    fn long_sleeps_in_seconds() {
        let t = TurnTrace {
            slept: Duration::from_millis(2_500),
            ..sample()
        };
        let mut out = String::new();
        write_turn(Lang::En, &t, &mut out);
        assert!(out.contains("slept 2.500 s"), "{out}");
        out.clear();
        write_turn(Lang::Uk, &t, &mut out);
        assert!(out.contains("чекав 2,500 с"), "{out}");
    }

    #[test]
    fn the_hidden_line_in_each_language() {
        for lang in Lang::ALL {
            let mut out = String::new();
            write_hidden(lang, 1, &mut out);
            assert!(out.starts_with("trace: "), "{out}");
            assert!(out.contains(": 1 ("), "{out}");
            assert_eq!(out.matches('\n').count(), 1, "{out}");
        }
    }
}
