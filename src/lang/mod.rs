//! `--lang`: the language of what echochat says to people — the `--explain`
//! sentences, the `--trace` lines and the clients' lifecycle messages — in
//! English, Ukrainian or Russian. Wire protocols and log lines stay English
//! whatever the language: scripts, tests and `echochat log` read them.
//!
//! **How translations are kept.** Compile-time tables in plain Rust: each
//! sentence is one `match` on [`Lang`] with its three versions side by side
//! (the [`tr!`] macro), next to the code that says it:
//!
//! - `event/explain.rs` — one sentence per lifecycle event (`--explain`);
//! - `status/trace.rs` — the per-turn line of `--trace`;
//! - `client/messages.rs` — what the clients print on stderr.
//!
//! Why not a runtime catalogue (`fluent`, `rust-i18n`, gettext)? Three
//! languages and about a hundred sentences, each with typed values: with
//! tables in code, a sentence missing in one language, or a value it
//! forgets, is a compile error rather than a key shown at run time; a test
//! walks every sentence in every language (length, one line); and no file
//! has to be found next to the binary in a classroom. What this module
//! adds is the small part such crates would: the language from the
//! environment, and plural forms ([`Count`]) — `1 byte, 2 bytes`;
//! `1 байт, 2 байти, 5 байтів`; `1 байт, 2 байта, 5 байт`.
//!
//! The words are the course's own (`../shared/course/`): сокет,
//! з'єднання/соединение, порт, сервер, клієнт/клиент, буфер,
//! датаграма/датаграмма, прослуховування/прослушивание.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

/// A language of `--lang`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Uk,
    Ru,
}

impl Lang {
    /// Every language, for tests that check each sentence in each.
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Uk, Lang::Ru];

    /// Reads a language tag such as `uk`, `ru_RU.UTF-8` or `en_US`; `None`
    /// for anything else (the caller falls back to English).
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let lower = tag.trim().to_ascii_lowercase();
        let code = lower.split(['_', '.', '-', '@']).next().unwrap_or("");
        match code {
            "en" | "c" | "posix" => Some(Lang::En),
            "uk" => Some(Lang::Uk),
            "ru" => Some(Lang::Ru),
            _ => None,
        }
    }

    /// The contract's default: `LC_ALL`, then `LC_MESSAGES`, then `LANG`
    /// (the first one set and not empty, as the C library reads them),
    /// else English. A locale of another language also means English.
    pub fn from_env() -> Lang {
        Lang::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Lang::from_env`] over any source of variables (for tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|name| get(name))
            .find(|v| !v.is_empty())
            .and_then(|v| Lang::from_tag(&v))
            .unwrap_or_default()
    }

    /// The tag `--lang` takes: `en`, `uk`, `ru`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Uk => "uk",
            Lang::Ru => "ru",
        }
    }
}

/// The language of the process's `--explain` sentences, set once at start
/// (`serve`). A global, like the `log` facade the sentences go through:
/// events are built all over the reactor, and threading a language through
/// each of them would be noise for one byte of state.
static CURRENT: AtomicU8 = AtomicU8::new(0);

/// Sets the language of the `--explain` sentences.
pub fn set_current(lang: Lang) {
    CURRENT.store(lang as u8, Ordering::Relaxed);
}

/// The language set by [`set_current`] (English until then).
pub fn current() -> Lang {
    match CURRENT.load(Ordering::Relaxed) {
        1 => Lang::Uk,
        2 => Lang::Ru,
        _ => Lang::En,
    }
}

/// One sentence in three languages: `tr!(lang, "en", "uk", "ru")` is a
/// `String` in `lang`. Each version is a `format!` string, so it names the
/// values it shows (`"sent {n}"`) and the compiler checks them.
macro_rules! tr {
    ($lang:expr, $en:literal, $uk:literal, $ru:literal $(,)?) => {
        match $lang {
            $crate::lang::Lang::En => format!($en),
            $crate::lang::Lang::Uk => format!($uk),
            $crate::lang::Lang::Ru => format!($ru),
        }
    };
}
pub(crate) use tr;

/// The plural form a number takes (CLDR's cardinal categories). English
/// has two; Ukrainian and Russian three, by the last digits: 1, 21, 101
/// take `One`; 2–4, 22–24 take `Few`; 0, 5–20, 25–30, 111–114 take `Many`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    One,
    Few,
    Many,
}

impl Form {
    pub fn of(lang: Lang, n: u64) -> Form {
        match lang {
            Lang::En if n == 1 => Form::One,
            Lang::En => Form::Many,
            Lang::Uk | Lang::Ru => {
                let (last, last_two) = (n % 10, n % 100);
                if last == 1 && last_two != 11 {
                    Form::One
                } else if (2..=4).contains(&last) && !(12..=14).contains(&last_two) {
                    Form::Few
                } else {
                    Form::Many
                }
            }
        }
    }
}

/// A counted noun's forms in each language (nominative, as after
/// "sent"/"надіслано"/"отправлено").
#[derive(Debug)]
pub struct Noun {
    /// One, other.
    pub en: [&'static str; 2],
    /// One, few, many.
    pub uk: [&'static str; 3],
    pub ru: [&'static str; 3],
}

impl Noun {
    /// The form of this noun after the number `n`.
    pub fn word(&self, lang: Lang, n: u64) -> &'static str {
        let form = Form::of(lang, n);
        let i = match form {
            Form::One => 0,
            Form::Few => 1,
            Form::Many => 2,
        };
        match lang {
            Lang::En => self.en[i.min(1)],
            Lang::Uk => self.uk[i],
            Lang::Ru => self.ru[i],
        }
    }
}

pub const BYTE: Noun = Noun {
    en: ["byte", "bytes"],
    uk: ["байт", "байти", "байтів"],
    ru: ["байт", "байта", "байт"],
};

pub const DATAGRAM: Noun = Noun {
    en: ["datagram", "datagrams"],
    uk: ["датаграма", "датаграми", "датаграм"],
    ru: ["датаграмма", "датаграммы", "датаграмм"],
};

pub const REPLY: Noun = Noun {
    en: ["reply", "replies"],
    uk: ["відповідь", "відповіді", "відповідей"],
    ru: ["ответ", "ответа", "ответов"],
};

/// After "in" / "за": `in 1 read`, `за 2 читання`, `за 5 чтений`.
pub const READ: Noun = Noun {
    en: ["read", "reads"],
    uk: ["читання", "читання", "читань"],
    ru: ["чтение", "чтения", "чтений"],
};

/// A number with its noun in the right form: `Count(lang, 2, &BYTE)` shows
/// `2 bytes`, `2 байти` or `2 байта`.
#[derive(Debug, Clone, Copy)]
pub struct Count<'a>(pub Lang, pub u64, pub &'a Noun);

impl fmt::Display for Count<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Count(lang, n, noun) = *self;
        write!(f, "{n} {}", noun.word(lang, n))
    }
}

/// Bytes, counted: `bytes(lang, 1)` is `1 byte` / `1 байт`.
pub fn bytes(lang: Lang, n: impl TryInto<u64>) -> Count<'static> {
    Count(lang, n.try_into().unwrap_or(u64::MAX), &BYTE)
}

/// A number with `places` decimals, with the decimal separator of the
/// language: `12.3` in English, `12,3` in Ukrainian and Russian.
pub fn decimal(lang: Lang, value: f64, places: usize) -> String {
    let text = format!("{value:.places$}");
    match lang {
        Lang::En => text,
        Lang::Uk | Lang::Ru => text.replace('.', ","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(lang: Lang, n: u64) -> String {
        bytes(lang, n).to_string()
    }

    #[test]
    fn english_bytes() {
        assert_eq!(show(Lang::En, 0), "0 bytes");
        assert_eq!(show(Lang::En, 1), "1 byte");
        assert_eq!(show(Lang::En, 2), "2 bytes");
        assert_eq!(show(Lang::En, 21), "21 bytes");
    }

    #[test]
    fn ukrainian_bytes() {
        for (n, want) in [
            (0, "0 байтів"),
            (1, "1 байт"),
            (2, "2 байти"),
            (4, "4 байти"),
            (5, "5 байтів"),
            (11, "11 байтів"),
            (12, "12 байтів"),
            (14, "14 байтів"),
            (21, "21 байт"),
            (22, "22 байти"),
            (25, "25 байтів"),
            (101, "101 байт"),
            (111, "111 байтів"),
            (1024, "1024 байти"),
            (1_048_576, "1048576 байтів"),
        ] {
            assert_eq!(show(Lang::Uk, n), want);
        }
    }

    #[test]
    fn russian_bytes() {
        for (n, want) in [
            (0, "0 байт"),
            (1, "1 байт"),
            (2, "2 байта"),
            (3, "3 байта"),
            (5, "5 байт"),
            (11, "11 байт"),
            (13, "13 байт"),
            (21, "21 байт"),
            (23, "23 байта"),
            (112, "112 байт"),
            (1024, "1024 байта"),
        ] {
            assert_eq!(show(Lang::Ru, n), want);
        }
    }

    #[test]
    fn other_nouns() {
        assert_eq!(Count(Lang::En, 1, &DATAGRAM).to_string(), "1 datagram");
        assert_eq!(Count(Lang::Uk, 3, &DATAGRAM).to_string(), "3 датаграми");
        assert_eq!(Count(Lang::Ru, 5, &DATAGRAM).to_string(), "5 датаграмм");
        assert_eq!(Count(Lang::En, 2, &REPLY).to_string(), "2 replies");
        assert_eq!(Count(Lang::Uk, 11, &REPLY).to_string(), "11 відповідей");
        assert_eq!(Count(Lang::Ru, 2, &REPLY).to_string(), "2 ответа");
        assert_eq!(Count(Lang::Uk, 5, &READ).to_string(), "5 читань");
        assert_eq!(Count(Lang::Ru, 1, &READ).to_string(), "1 чтение");
    }

    #[test]
    fn language_tags() {
        assert_eq!(Lang::from_tag("uk_UA.UTF-8"), Some(Lang::Uk));
        assert_eq!(Lang::from_tag("ru"), Some(Lang::Ru));
        assert_eq!(Lang::from_tag("RU_ru"), Some(Lang::Ru));
        assert_eq!(Lang::from_tag("en_US.utf8"), Some(Lang::En));
        assert_eq!(Lang::from_tag("C.UTF-8"), Some(Lang::En));
        assert_eq!(Lang::from_tag("de_DE"), None);
        assert_eq!(Lang::from_tag(""), None);
        for lang in Lang::ALL {
            assert_eq!(Lang::from_tag(lang.tag()), Some(lang));
        }
    }

    #[test]
    fn environment_order_is_lc_all_lc_messages_lang() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Lang::from_vars(env(&[])), Lang::En);
        assert_eq!(Lang::from_vars(env(&[("LANG", "uk_UA.UTF-8")])), Lang::Uk);
        assert_eq!(
            Lang::from_vars(env(&[("LANG", "uk_UA.UTF-8"), ("LC_MESSAGES", "ru_RU")])),
            Lang::Ru
        );
        assert_eq!(
            Lang::from_vars(env(&[("LC_ALL", "C"), ("LC_MESSAGES", "ru_RU")])),
            Lang::En
        );
        // An empty variable is skipped, as the C library does.
        assert_eq!(
            Lang::from_vars(env(&[("LC_ALL", ""), ("LANG", "ru_UA.UTF-8")])),
            Lang::Ru
        );
        // A language we do not have is English, not the next variable.
        assert_eq!(
            Lang::from_vars(env(&[("LC_ALL", "de_DE"), ("LANG", "uk_UA")])),
            Lang::En
        );
    }

    #[test]
    fn decimals_use_the_languages_separator() {
        assert_eq!(decimal(Lang::En, 12.345, 1), "12.3");
        assert_eq!(decimal(Lang::Uk, 12.345, 1), "12,3");
        assert_eq!(decimal(Lang::Ru, 2.5, 3), "2,500");
    }

    #[test]
    fn tr_picks_the_language_and_fills_values() {
        let n = bytes(Lang::Uk, 2);
        assert_eq!(
            tr!(Lang::Uk, "sent {n}", "надіслано {n}", "x"),
            "надіслано 2 байти"
        );
        let n = 3;
        assert_eq!(tr!(Lang::En, "sent {n}", "y", "x"), "sent 3");
        assert_eq!(tr!(Lang::Ru, "a", "b", "c {n}"), "c 3");
    }
}
