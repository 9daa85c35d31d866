//! The chat client's side of accounts: it keeps the session token the
//! server gives it, offers it by itself next time, and asks for a password
//! without showing it.
//!
//! **The token file** is `echochat/tokens.tsv` in the user's config
//! directory (`$XDG_CONFIG_HOME`, else `~/.config`), one `SERVER<TAB>TOKEN`
//! a line, where SERVER is the `host:port` the client connected to. Like a
//! browser's cookie jar, it is readable by its owner only (the directory
//! `0700`, the file `0600`): the token opens the account without the
//! password until it expires. It is rewritten atomically, so two clients
//! saving at once leave one whole file.
//!
//! **The server's lines** are watched as they are printed
//! ([`ServerLines`]): `* token TOKEN` is saved, `! unknown or expired
//! token` forgets the saved one, and `* NAME is registered; password?`
//! makes the client read the next line from the terminal with echo off
//! (`rpassword`), so nobody looking at the screen sees it. (Not from a pipe:
//! a script's password is simply its next line.)
//!
//! What this does not do: the password still crosses the network in the
//! clear, as every chat line does (plain TCP, no TLS; see the README).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Longest server line kept for watching (the lines watched are short;
/// a longer one is a room message and is only printed).
const MAX_WATCHED_LINE: usize = 256;

/// The saved session tokens, by server.
#[derive(Debug, Clone)]
pub(super) struct TokenStore {
    path: PathBuf,
    /// `host:port` as the user named the server.
    server: String,
}

impl TokenStore {
    /// The store for `server` in the user's config directory, or `None`
    /// when there is no home to keep it in.
    pub(super) fn for_server(server: &str) -> Option<TokenStore> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".config"))
            })?;
        Some(TokenStore {
            path: base.join("echochat").join("tokens.tsv"),
            server: server.to_string(),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The token saved for this server, if any (and well-formed).
    pub(super) fn load(&self) -> Option<String> {
        let text = fs::read_to_string(&self.path).ok()?;
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(server, token)| *server == self.server && is_token(token))
            .map(|(_, token)| token.to_string())
            .next_back()
    }

    /// Saves `token` for this server, replacing the old one.
    ///
    /// # Errors
    /// The config directory or the file cannot be written.
    pub(super) fn save(&self, token: &str) -> io::Result<()> {
        self.rewrite(Some(token))
    }

    /// Forgets this server's token.
    ///
    /// # Errors
    /// As for [`TokenStore::save`].
    pub(super) fn forget(&self) -> io::Result<()> {
        self.rewrite(None)
    }

    fn rewrite(&self, token: Option<&str>) -> io::Result<()> {
        let old = fs::read_to_string(&self.path).unwrap_or_default();
        let mut text = String::new();
        for line in old.lines() {
            match line.split_once('\t') {
                Some((server, _)) if server == self.server => {}
                Some(_) => {
                    text.push_str(line);
                    text.push('\n');
                }
                None => {} // damaged: dropped
            }
        }
        if let Some(token) = token {
            text.push_str(&self.server);
            text.push('\t');
            text.push_str(token);
            text.push('\n');
        }
        let Some(dir) = self.path.parent() else {
            return Err(io::Error::other("the token file has no directory"));
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let tmp = dir.join(format!(".tokens.tsv.tmp{}", std::process::id()));
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(text.as_bytes())?;
            fs::rename(&tmp, &self.path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// 32 lowercase hex digits, as the server sends tokens.
fn is_token(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A server line the client acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Notice {
    /// `* token TOKEN`: save it.
    Token(String),
    /// `! unknown or expired token`: forget the saved one.
    TokenRefused,
    /// `* NAME is registered; password?`: read the password without echo.
    PasswordAsked(String),
}

/// Splits what the server sends into lines, wherever reads cut them, and
/// picks out the [`Notice`]s. Keeps at most [`MAX_WATCHED_LINE`] bytes of a
/// line: memory stays bounded whatever the server sends.
#[derive(Debug, Default)]
pub(super) struct ServerLines {
    line: Vec<u8>,
    /// The current line is longer than anything watched.
    long: bool,
}

impl ServerLines {
    /// Feeds received bytes; returns the notices of the lines completed.
    pub(super) fn feed(&mut self, data: &[u8]) -> Vec<Notice> {
        let mut notices = Vec::new();
        for &b in data {
            if b == b'\n' {
                if !self.long
                    && let Some(n) = notice(&self.line)
                {
                    notices.push(n);
                }
                self.line.clear();
                self.long = false;
            } else if self.line.len() < MAX_WATCHED_LINE {
                self.line.push(b);
            } else {
                self.long = true;
            }
        }
        notices
    }
}

fn notice(line: &[u8]) -> Option<Notice> {
    let line = std::str::from_utf8(line.strip_suffix(b"\r").unwrap_or(line)).ok()?;
    if let Some(token) = line.strip_prefix("* token ") {
        return is_token(token).then(|| Notice::Token(token.to_string()));
    }
    if line == "! unknown or expired token" {
        return Some(Notice::TokenRefused);
    }
    let name = line
        .strip_prefix("* ")?
        .strip_suffix(" is registered; password?")?;
    Some(Notice::PasswordAsked(name.to_string()))
}

/// Reads a password from the terminal with echo off.
///
/// # Errors
/// There is no terminal, or reading it failed.
pub(super) fn read_password(name: &str, lang: crate::lang::Lang) -> io::Result<String> {
    let name = name.to_string();
    rpassword::prompt_password(super::messages::Msg::PromptPassword { name }.text(lang))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "0123456789abcdef0123456789abcdef";
    const T2: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn notices_are_found_wherever_reads_split_them() {
        let input = format!(
            "* welcome\n* alice is registered; password?\n* hello, alice\r\n* token {T1}\n\
             bob: * token {T2}\n* token short\n! unknown or expired token\n{}\n* token {T2}\n",
            "x".repeat(1000)
        );
        let want = vec![
            Notice::PasswordAsked("alice".into()),
            Notice::Token(T1.into()),
            Notice::TokenRefused,
            Notice::Token(T2.into()),
        ];
        let bytes = input.as_bytes();
        for at in 0..bytes.len() {
            let mut lines = ServerLines::default();
            let mut got = lines.feed(&bytes[..at]);
            got.extend(lines.feed(&bytes[at..]));
            assert_eq!(got, want, "split at {at}");
        }
    }

    #[test]
    fn tokens_are_kept_per_server_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("echochat").join("tokens.tsv");
        let a = TokenStore {
            path: path.clone(),
            server: "127.0.0.1:7100".into(),
        };
        let b = TokenStore {
            path: path.clone(),
            server: "[::1]:7100".into(),
        };
        assert_eq!(a.load(), None);
        a.save(T1).unwrap();
        b.save(T2).unwrap();
        a.save(T2).unwrap();
        assert_eq!(a.load().as_deref(), Some(T2));
        assert_eq!(b.load().as_deref(), Some(T2));
        a.forget().unwrap();
        assert_eq!(a.load(), None);
        assert_eq!(b.load().as_deref(), Some(T2));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("[::1]:7100\t{T2}\n")
        );
        // A damaged file is read around, not trusted.
        fs::write(&path, "junk\n127.0.0.1:7100\tnot-a-token\n").unwrap();
        assert_eq!(a.load(), None);
    }
}
