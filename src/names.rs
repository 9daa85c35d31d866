//! Chat names: what a name may be, and when two names are "the same".
//!
//! A name is shown to every user, so it must not be able to pretend to be
//! someone else's. Unicode offers many ways to write what looks like
//! `alice`: Cyrillic `а` (U+0430) in place of Latin `a`, fullwidth
//! `ａｌｉｃｅ`, mathematical bold `𝐚𝐥𝐢𝐜𝐞`, the Kelvin sign `K` beside `K`,
//! Turkish dotless `ı` beside `i`, or a "name" made of Hangul fillers
//! (U+3164, U+FFA0) that draws nothing at all. DESIGN.md (chat protocol
//! rule 1) answers with two checks, both from Unicode's own advice on
//! identifiers (UTS #39, "Unicode Security Mechanisms"):
//!
//! 1. **What a name may hold** ([`check_name`]). After NFKC normalization
//!    (which turns fullwidth, bold, Kelvin and ligature forms into the plain
//!    letters they stand for): 1–32 characters, each a letter or digit that
//!    UTS #39 allows in identifiers (`Identifier_Status=Allowed`: no
//!    invisible or default-ignorable characters, no obsolete or technical
//!    ones), or `_` or `-`; letters of one script only (Cyrillic `Олена`,
//!    Latin `alice`, Japanese kana with kanji; digits and `_`/`-` go with
//!    any script); combining marks only on a letter, at most
//!    [`MAX_MARKS_PER_LETTER`] on one and never the same one twice (a
//!    "Zalgo" stack of marks paints over the lines around it). The name is
//!    still shown as typed: `ａｌｉｃｅ` stays fullwidth.
//! 2. **When two names clash** ([`name_key`]): names are unique among
//!    connected users by their key — NFKC, then case folding, then the
//!    UTS #39 confusable *skeleton*, which maps each character to a
//!    prototype it can be mistaken for (`0` and `O`, `ı` and `i`, `rn` and
//!    `m`). So `аlice`, `ALICE`, `ａｌｉｃｅ` and `alıce` all have the key of
//!    `alice`, and none can join beside her.
//!
//! The crates `unicode-normalization` (NFKC, combining marks) and
//! `unicode-security` (identifier status, script sets, skeletons) carry the
//! Unicode data; this file only decides how to combine them.
//!
//! Read `names/store.rs` next for the names file (chat's memory of names by
//! client IP), and `text.rs` for the filter applied to relayed text.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::{GeneralSecurityProfile, MixedScript};

mod store;

pub use store::{Damage, FileProblem, LoadWarning, MAX_FILE_BYTES, Names};

/// The longest name, in characters (not bytes), as typed and after NFKC.
pub const MAX_NAME_CHARS: usize = 32;

/// Most combining marks on one letter. Two cover Thai tone over vowel
/// (`กี่`); three, Hindi nukta, vowel sign and nasal (`ज़िं`, the first
/// syllable of `ज़िंदगी`). UTS #39 section 5.4 suggests forbidding more than
/// four; fewer is safer and no language needs more in a name.
pub const MAX_MARKS_PER_LETTER: usize = 3;

/// Why a name is not acceptable. The text (`Display`) is what the user
/// reads after `! `, so it names the rule, and the character by code point
/// (never the character itself, which may be the invisible one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Empty, or more than [`MAX_NAME_CHARS`] characters.
    Length,
    /// A character that is not a letter, a digit, `_` or `-` (this includes
    /// spaces, punctuation and every control character).
    Character(char),
    /// A character that draws nothing (default-ignorable, such as the
    /// Hangul filler U+3164 or a zero-width joiner).
    Invisible(char),
    /// A letter that UTS #39 advises against in identifiers (obsolete,
    /// technical or rarely used: historic scripts, `ſ`-like variants).
    Restricted(char),
    /// Letters of more than one script (`аlice`: Cyrillic `а`, Latin
    /// `lice`).
    MixedScripts,
    /// A combining mark with no letter under it, more than
    /// [`MAX_MARKS_PER_LETTER`] on one letter, or the same mark twice.
    MarkStack,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Length => write!(f, "a name has 1 to {MAX_NAME_CHARS} characters"),
            NameError::Character(c) => write!(
                f,
                "a name may only hold letters, digits, _ and - (not U+{:04X})",
                u32::from(*c)
            ),
            NameError::Invisible(c) => write!(
                f,
                "a name may not hold invisible characters (U+{:04X})",
                u32::from(*c)
            ),
            NameError::Restricted(c) => write!(
                f,
                "a name may not use U+{:04X}, a character Unicode advises against in names",
                u32::from(*c)
            ),
            NameError::MixedScripts => f.write_str(
                "a name's letters must all be of one script (not Latin and Cyrillic together, say)",
            ),
            NameError::MarkStack => write!(
                f,
                "a name may put at most {MAX_MARKS_PER_LETTER} different accents on a letter"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks the name rule (see the module docs). Uniqueness is the chat
/// room's business, through [`name_key`].
///
/// # Errors
/// [`NameError`] says which part of the rule the name breaks, checking
/// the length first, then controls and invisible characters as typed,
/// then (after NFKC) mark stacks, each character, and the script.
pub fn check_name(name: &str) -> Result<(), NameError> {
    // The typed form is bounded too: it is what others see, and bounding
    // it keeps the work below small whatever a client sends.
    let typed = name.chars().count();
    if typed == 0 || typed > MAX_NAME_CHARS {
        return Err(NameError::Length);
    }
    // Controls and bidi controls are reported as themselves (NFKC keeps
    // them anyway, but this way the check reads like the rule).
    if let Some(c) = name.chars().find(|&c| crate::text::is_filtered(c)) {
        return Err(NameError::Character(c));
    }
    // Invisible characters too, so the user hears of the one typed (NFKC
    // turns U+3164 into U+1160, just as invisible).
    if let Some(c) = name.chars().find(|&c| is_default_ignorable(c)) {
        return Err(NameError::Invisible(c));
    }
    let normalized: String = name.nfkc().collect();
    let chars = normalized.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(NameError::Length);
    }
    check_marks(&normalized)?;
    check_characters(&normalized)?;
    if !normalized.as_str().is_single_script() {
        return Err(NameError::MixedScripts);
    }
    Ok(())
}

/// Each character of an NFKC-normalized name.
fn check_characters(normalized: &str) -> Result<(), NameError> {
    for c in normalized.chars() {
        if c == '_' || c == '-' {
            continue;
        }
        if !c.is_alphanumeric() && !is_combining_mark(c) && !is_default_ignorable(c) {
            return Err(NameError::Character(c));
        }
        check_allowed(c)?;
    }
    Ok(())
}

/// The combining-mark rule, on the fully decomposed form (NFD), so a
/// precomposed `á` followed by another acute counts as two acutes.
fn check_marks(normalized: &str) -> Result<(), NameError> {
    // Marks on the current letter, to refuse repeats; `None` when there is
    // no letter to put a mark on (the start, or after `_` or `-`).
    let mut marks: Option<Vec<char>> = None;
    for c in normalized.nfd() {
        if is_combining_mark(c) {
            let on_letter = marks.as_mut().ok_or(NameError::MarkStack)?;
            if on_letter.len() == MAX_MARKS_PER_LETTER || on_letter.contains(&c) {
                return Err(NameError::MarkStack);
            }
            on_letter.push(c);
        } else if c.is_alphanumeric() {
            marks = Some(Vec::new());
        } else {
            marks = None;
        }
    }
    Ok(())
}

/// UTS #39's identifier status: `Allowed`, or why not.
fn check_allowed(c: char) -> Result<(), NameError> {
    if is_default_ignorable(c) {
        Err(NameError::Invisible(c))
    } else if !c.identifier_allowed() {
        Err(NameError::Restricted(c))
    } else {
        Ok(())
    }
}

/// Characters that draw nothing. The Hangul fillers are letters (`Lo`) by
/// category yet invisible, which is why "letters only" is not enough.
fn is_default_ignorable(c: char) -> bool {
    matches!(c.identifier_type(), Some(IdentifierType::Default_Ignorable))
        || matches!(
            c,
            '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
            | '\u{034F}' // COMBINING GRAPHEME JOINER
            | '\u{180B}'..='\u{180F}' // Mongolian variation selectors
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{E0100}'..='\u{E01EF}'
            | '\u{200B}'..='\u{200D}' // zero-width space, (non-)joiner
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{FEFF}' // zero-width no-break space
            | '\u{00AD}' // soft hyphen
        )
}

/// The key two names must not share among connected users: NFKC, full
/// case folding, the UTS #39 skeleton, and a last lowercasing (the
/// skeleton maps some characters to capitals: `0` to `O`).
///
/// Case folding is computed as uppercase-then-lowercase, which agrees with
/// Unicode's full case folding where it matters here (`ß` and `SS`, Greek
/// final `ς` and `σ`) without another crate. The steps only ever merge
/// names, so an approximation errs toward "taken", never toward letting a
/// look-alike in.
///
/// Called for a valid name; for any other string it still returns a key.
pub fn name_key(name: &str) -> String {
    let normalized: String = name.nfkc().collect();
    let folded: String = normalized.to_uppercase().to_lowercase();
    let refolded: String = folded.nfkc().collect();
    let skeleton: String = unicode_security::skeleton(&refolded).collect();
    skeleton.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn good(name: &str) {
        assert_eq!(check_name(name), Ok(()), "{name:?} should be a good name");
    }

    #[track_caller]
    fn bad(name: &str, why: NameError) {
        assert_eq!(check_name(name), Err(why), "{name:?}");
    }

    #[test]
    fn good_names_of_many_scripts() {
        for name in [
            "a",
            "alice",
            "Bob_2",
            "x-y",
            "alice42",
            "007",
            "Олена",
            "іван_2",
            "Їжак",
            "ñandú",
            "Ελένη",
            "たなか太郎",
            "김민수",
            "ज़िंदगी",
            "กี่",
            "Straße",
            &"z".repeat(32),
            &"ж".repeat(32),
        ] {
            good(name);
        }
        // Compatibility forms are fine on their own: shown as typed, and
        // clashing with the plain form (see `look_alikes_share_a_key`).
        for name in ["ａｌｉｃｅ", "𝐚𝐥𝐢𝐜𝐞", "\u{212A}ate", "alıce"] {
            good(name);
        }
    }

    #[test]
    fn length_counts_characters_as_typed_and_after_nfkc() {
        bad("", NameError::Length);
        bad(&"z".repeat(33), NameError::Length);
        // 32 two-byte letters are 64 bytes but 32 characters: fine.
        good(&"ж".repeat(32));
        // One typed character, two after NFKC: `ﬀ` is `ff`.
        good(&"ﬀ".repeat(16));
        bad(&"ﬀ".repeat(17), NameError::Length);
    }

    #[test]
    fn punctuation_spaces_and_controls_are_characters_names_may_not_have() {
        for (name, c) in [
            ("a b", ' '),
            ("a=b", '='),
            ("a\"b", '"'),
            ("a\tb", '\t'),
            ("a\x1b[2J", '\x1b'),
            ("a\u{85}", '\u{85}'),
            ("a.b", '.'),
            ("@x", '@'),
            ("a\u{202E}b", '\u{202E}'),
            ("a\u{2066}b", '\u{2066}'),
            ("a\u{200F}", '\u{200F}'),
            ("a\u{2028}b", '\u{2028}'),
            ("a\u{2029}", '\u{2029}'),
            ("a\u{3000}b", ' '), // ideographic space: NFKC makes it a space
            ("🙂", '🙂'),
        ] {
            bad(name, NameError::Character(c));
        }
    }

    #[test]
    fn invisible_names_are_refused() {
        bad("\u{3164}", NameError::Invisible('\u{3164}'));
        bad("\u{3164}\u{3164}\u{3164}", NameError::Invisible('\u{3164}'));
        bad("\u{FFA0}", NameError::Invisible('\u{FFA0}'));
        bad("al\u{3164}ice", NameError::Invisible('\u{3164}'));
        bad("\u{1160}", NameError::Invisible('\u{1160}'));
        bad("\u{115F}", NameError::Invisible('\u{115F}'));
        for c in [
            '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{AD}',
        ] {
            bad(&format!("al{c}ice"), NameError::Invisible(c));
        }
        bad("a\u{FE0F}", NameError::Invisible('\u{FE0F}'));
        bad("a\u{34F}", NameError::Invisible('\u{34F}'));
    }

    #[test]
    fn one_script_per_name() {
        // Cyrillic `а` with Latin `lice`; Latin `o` in Cyrillic `Олена`.
        bad("\u{430}lice", NameError::MixedScripts);
        bad("Оlена", NameError::MixedScripts);
        bad("Ελenη", NameError::MixedScripts);
        // Digits, `_` and `-` go with any script; kana with kanji, Hangul
        // with Hanja, as UTS #39 allows.
        good("Олена_1990");
        good("きょうと京都");
        good("서울市");
    }

    #[test]
    fn combining_marks_go_on_letters_without_stacks() {
        good("e\u{301}"); // NFKC makes it é
        good("ñ\u{323}"); // n, tilde, dot below: two marks
        bad("\u{301}a", NameError::MarkStack); // nothing under it
        bad("a_\u{301}", NameError::MarkStack);
        bad("a\u{301}\u{301}", NameError::MarkStack); // the same twice
        bad("x\u{300}\u{301}\u{302}\u{303}", NameError::MarkStack);
        let zalgo = format!("a{}", "\u{300}\u{301}\u{302}\u{303}\u{304}\u{305}");
        bad(&zalgo, NameError::MarkStack);
    }

    #[test]
    fn restricted_letters_are_refused() {
        // Old Italic and Cherokee are letters, but not for identifiers.
        bad("\u{10300}", NameError::Restricted('\u{10300}'));
        bad("\u{13A0}", NameError::Restricted('\u{13A0}'));
    }

    #[test]
    fn look_alikes_share_a_key() {
        let alice = name_key("alice");
        for twin in [
            "ALICE",
            "Alice",
            "\u{430}lice", // Cyrillic а (refused anyway: mixed scripts)
            "ａｌｉｃｅ",  // fullwidth
            "𝐚𝐥𝐢𝐜𝐞",       // mathematical bold
            "𝒂𝒍𝒊𝒄𝒆",       // mathematical bold italic
            "al\u{131}ce", // dotless ı
            "a1ice",       // digit one for l
            "al\u{456}ce", // Cyrillic і (refused anyway)
        ] {
            assert_eq!(name_key(twin), alice, "{twin:?}");
        }
        // Kelvin sign and Latin K.
        assert_eq!(name_key("\u{212A}ate"), name_key("Kate"));
        assert_eq!(name_key("kate"), name_key("Kate"));
        // Whole-script confusables: all-Cyrillic `асе` and Latin `ace`.
        good("асе");
        assert_eq!(name_key("асе"), name_key("ace"));
        // `0` and `O`, `rn` and `m`, `ß` and `ss`.
        assert_eq!(name_key("B0B"), name_key("bob"));
        assert_eq!(name_key("rnary"), name_key("mary"));
        assert_eq!(name_key("Straße"), name_key("STRASSE"));
        // Decomposed and precomposed accents.
        assert_eq!(name_key("e\u{301}"), name_key("é"));
    }

    #[test]
    fn different_names_keep_different_keys() {
        let keys: Vec<String> = [
            "alice",
            "alicia",
            "bob",
            "Олена",
            "Олег",
            "іван",
            "ivan2",
            "a-b",
            "a_b",
        ]
        .iter()
        .map(|n| name_key(n))
        .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn error_messages_name_the_code_point_not_the_character() {
        let msg = check_name("al\u{3164}ice").unwrap_err().to_string();
        assert_eq!(msg, "a name may not hold invisible characters (U+3164)");
        let msg = check_name("a\x1bb").unwrap_err().to_string();
        assert!(msg.ends_with("(not U+001B)"), "{msg}");
        assert!(!msg.contains('\x1b'));
    }
}
