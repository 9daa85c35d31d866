//! The account store: who is registered (the accounts file), which session
//! tokens are valid (the sessions file), and the tokens themselves.
//!
//! **Accounts file** (`--accounts-file`, default `accounts.tsv` in the log
//! dir): UTF-8, one `NAME<TAB>PHC` a line, the name as its owner typed it
//! and the Argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
//!
//! **Sessions file** (`sessions.tsv` beside it): one
//! `TOKEN-HASH<TAB>EXPIRES<TAB>NAME` a line: the SHA-256 of the token (64
//! hex digits), the expiry in milliseconds since the Unix epoch, and the
//! account's name. Wall-clock time, not `Instant`: expiry must survive a
//! restart, and `Instant` means nothing to another process.
//!
//! **Tokens** are 128 random bits from the operating system (`getrandom`),
//! sent to the client as 32 lowercase hex digits and never stored: only
//! their SHA-256 is. A stolen sessions file therefore opens no session.
//! Why a fast hash is right here while passwords need Argon2: a password
//! is chosen by a person and can be guessed from a dictionary, so each
//! guess must be made expensive; a token is 128 bits of pure chance, and
//! 2^128 guesses stay out of reach at any speed. SHA-256 also keeps a
//! token check a microsecond on the reactor thread, no worker needed.
//!
//! **Loading is safe:** only a regular file of at most 16 MiB is read
//! (opened non-blocking and checked with `fstat`, so a FIFO in its place
//! cannot hang the start), and damaged lines are skipped with one summary
//! warning for the file, not one per line.
//!
//! **Saving is atomic:** [`write_atomic`] writes a temporary file in the
//! same directory, `fsync`s it and renames it over the old one, so a crash
//! leaves the old file or the new one, never a mix. The files hold hashes
//! only, yet are created `0600`: nobody else needs to read them. The room
//! never writes: it hands serialized snapshots to a background thread.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::hasher::check_phc;

/// Largest accounts or sessions file read at start.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Most accounts the server keeps; registering past it is refused. At
/// ~120 bytes a line this keeps the file well under [`MAX_FILE_BYTES`].
pub const MAX_ACCOUNTS: usize = 100_000;
/// Most live sessions per account; a new login past it ends the one that
/// would expire first (every login makes a token).
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 16;

/// The case-insensitive key of a name: what makes `Alice` and `alice` the
/// same account. The room passes its own key function in, so accounts
/// follow the same uniqueness rule as names in the room.
pub type NameKey = fn(&str) -> Box<str>;

/// A session token as the client sees it: 16 random bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Token([u8; 16]);

impl Token {
    /// 128 bits from the operating system's generator.
    ///
    /// # Errors
    /// The OS generator failed (it does not, once the system has booted).
    pub fn generate() -> Result<Token, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(Token(bytes))
    }

    /// 32 lowercase hex digits, as sent in `* token TOKEN`.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses what a client sent after `/token`: exactly 32 hex digits
    /// (either case).
    pub fn parse(text: &str) -> Option<Token> {
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Token(out))
    }

    /// What is stored and looked up: SHA-256 of the 16 bytes.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// SHA-256 of a token: the sessions file's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    fn parse_hex(text: &str) -> Option<TokenHash> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(TokenHash(out))
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// One registered name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// As its owner typed it.
    pub name: Box<str>,
    /// The Argon2id PHC string.
    pub phc: String,
}

/// Registered names by key.
#[derive(Debug, Default, Clone)]
pub struct Accounts {
    /// Sorted by key, so the saved file is stable and diffable.
    by_key: BTreeMap<Box<str>, Account>,
}

impl Accounts {
    pub fn get(&self, key: &str) -> Option<&Account> {
        self.by_key.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Adds or replaces the account under `key`.
    pub fn insert(&mut self, key: Box<str>, account: Account) {
        self.by_key.insert(key, account);
    }

    /// Parses an accounts file. Bad lines (no tab, a name with a tab or a
    /// control character, a PHC string that does not parse or asks for
    /// too much work) are skipped and counted; a later line for the same
    /// name wins.
    pub fn parse(bytes: &[u8], key_of: NameKey) -> (Accounts, Damage) {
        let mut accounts = Accounts::default();
        let mut damage = Damage::default();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let result = parse_fields::<2>(raw).and_then(|fields| {
                let Some([name, phc]) = fields else {
                    return Ok(None);
                };
                check_stored_name(name)?;
                check_phc(phc)?;
                Ok(Some((name, phc)))
            });
            match result {
                Ok(None) => {}
                Ok(Some((name, phc))) => accounts.insert(
                    key_of(name),
                    Account {
                        name: name.into(),
                        phc: phc.to_string(),
                    },
                ),
                Err(problem) => damage.note(i + 1, problem),
            }
        }
        (accounts, damage)
    }

    /// The whole file, one `NAME<TAB>PHC` a line.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.by_key.len() * 128);
        for account in self.by_key.values() {
            out.extend_from_slice(account.name.as_bytes());
            out.push(b'\t');
            out.extend_from_slice(account.phc.as_bytes());
            out.push(b'\n');
        }
        out
    }
}

/// One live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The account's key (see [`NameKey`]).
    pub key: Box<str>,
    /// The account's name as registered (written to the file).
    pub name: Box<str>,
    /// Milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

/// Live sessions by token hash.
#[derive(Debug, Default, Clone)]
pub struct Sessions {
    by_hash: HashMap<TokenHash, Session>,
    /// The token hashes of each account, for `/passwd` (end them all) and
    /// the per-account cap.
    by_key: HashMap<Box<str>, Vec<TokenHash>>,
}

/// What a token lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Valid(Session),
    /// Known, but expired; it is removed now.
    Expired(Session),
    Unknown,
}

impl Sessions {
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Adds a session; past [`MAX_SESSIONS_PER_ACCOUNT`] for its account,
    /// the one expiring first ends.
    pub fn insert(&mut self, hash: TokenHash, session: Session) {
        let list = self.by_key.entry(session.key.clone()).or_default();
        if list.len() >= MAX_SESSIONS_PER_ACCOUNT {
            let by_hash = &self.by_hash;
            if let Some((i, _)) = list
                .iter()
                .enumerate()
                .min_by_key(|(_, h)| by_hash.get(*h).map_or(0, |s| s.expires_ms))
            {
                let old = list.swap_remove(i);
                self.by_hash.remove(&old);
            }
        }
        list.push(hash);
        if let Some(old) = self.by_hash.insert(hash, session) {
            // The same hash twice (a file with a repeated line): keep the
            // index consistent with the map.
            if let Some(list) = self.by_key.get_mut(&old.key) {
                remove_one(list, hash);
            }
        }
    }

    /// Finds the session of `hash` at wall-clock time `now_ms`; an expired
    /// one is removed.
    pub fn lookup(&mut self, hash: TokenHash, now_ms: u64) -> Lookup {
        let Some(session) = self.by_hash.get(&hash) else {
            return Lookup::Unknown;
        };
        if session.expires_ms > now_ms {
            return Lookup::Valid(session.clone());
        }
        match self.remove(hash) {
            Some(s) => Lookup::Expired(s),
            None => Lookup::Unknown,
        }
    }

    /// Ends one session (`/logout`).
    pub fn remove(&mut self, hash: TokenHash) -> Option<Session> {
        let session = self.by_hash.remove(&hash)?;
        if let Some(list) = self.by_key.get_mut(&session.key) {
            remove_one(list, hash);
            if list.is_empty() {
                self.by_key.remove(&session.key);
            }
        }
        Some(session)
    }

    /// Ends every session of an account (`/passwd`); returns how many.
    pub fn remove_account(&mut self, key: &str) -> usize {
        let Some(list) = self.by_key.remove(key) else {
            return 0;
        };
        for hash in &list {
            self.by_hash.remove(hash);
        }
        list.len()
    }

    /// Drops sessions expired at `now_ms`; returns how many.
    pub fn prune(&mut self, now_ms: u64) -> usize {
        let expired: Vec<TokenHash> = self
            .by_hash
            .iter()
            .filter(|(_, s)| s.expires_ms <= now_ms)
            .map(|(h, _)| *h)
            .collect();
        for hash in &expired {
            self.remove(*hash);
        }
        expired.len()
    }

    /// Parses a sessions file. Lines that are damaged, already expired at
    /// `now_ms`, or name an account that `accounts` does not have are
    /// dropped (only the damaged ones are counted as damage).
    pub fn parse(
        bytes: &[u8],
        accounts: &Accounts,
        key_of: NameKey,
        now_ms: u64,
    ) -> (Sessions, Damage) {
        let mut sessions = Sessions::default();
        let mut damage = Damage::default();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let result = parse_fields::<3>(raw).and_then(|fields| {
                let Some([hash, expires, name]) = fields else {
                    return Ok(None);
                };
                let hash = TokenHash::parse_hex(hash).ok_or("not a 64-digit hex token hash")?;
                let expires_ms: u64 = expires
                    .parse()
                    .map_err(|_| "the expiry is not a number of milliseconds")?;
                check_stored_name(name)?;
                Ok(Some((hash, expires_ms, name)))
            });
            match result {
                Ok(None) => {}
                Ok(Some((hash, expires_ms, name))) => {
                    let key = key_of(name);
                    if expires_ms > now_ms && accounts.contains(&key) {
                        sessions.insert(
                            hash,
                            Session {
                                key,
                                name: name.into(),
                                expires_ms,
                            },
                        );
                    }
                }
                Err(problem) => damage.note(i + 1, problem),
            }
        }
        (sessions, damage)
    }

    /// The whole file, sorted by hash so it is stable; sessions expired
    /// at `now_ms` are left out.
    pub fn serialize(&self, now_ms: u64) -> Vec<u8> {
        let mut live: Vec<(&TokenHash, &Session)> = self
            .by_hash
            .iter()
            .filter(|(_, s)| s.expires_ms > now_ms)
            .collect();
        live.sort_by_key(|(h, _)| **h);
        let mut out = Vec::with_capacity(live.len() * 100);
        for (hash, session) in live {
            out.extend_from_slice(hex(&hash.0).as_bytes());
            out.push(b'\t');
            out.extend_from_slice(session.expires_ms.to_string().as_bytes());
            out.push(b'\t');
            out.extend_from_slice(session.name.as_bytes());
            out.push(b'\n');
        }
        out
    }
}

fn remove_one(list: &mut Vec<TokenHash>, hash: TokenHash) {
    if let Some(i) = list.iter().position(|h| *h == hash) {
        list.swap_remove(i);
    }
}

/// Splits one line into exactly `N` tab-separated UTF-8 fields; a blank
/// line is `Ok(None)`.
fn parse_fields<const N: usize>(raw: &[u8]) -> Result<Option<[&str; N]>, &'static str> {
    // Tolerate a file edited on Windows.
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.is_empty() {
        return Ok(None);
    }
    let line = std::str::from_utf8(raw).map_err(|_| "not valid UTF-8")?;
    let fields: Vec<&str> = line.split('\t').collect();
    let fields: [&str; N] = fields
        .try_into()
        .map_err(|_| "wrong number of tab-separated fields")?;
    Ok(Some(fields))
}

/// A stored name must at least be something the room could show: 1 to 32
/// characters, no control characters (the room checks its full rule when
/// the name is used).
fn check_stored_name(name: &str) -> Result<(), &'static str> {
    let chars = name.chars().count();
    if chars == 0 || chars > 32 || name.chars().any(|c| c.is_control() || c == ' ') {
        return Err("not a possible name");
    }
    Ok(())
}

/// Damaged lines of one file: how many, and the first one, for a single
/// summary warning.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Damage {
    pub lines: usize,
    pub first: Option<(usize, &'static str)>,
}

impl Damage {
    fn note(&mut self, line: usize, problem: &'static str) {
        self.lines += 1;
        self.first.get_or_insert((line, problem));
    }

    /// One warning for the whole file, or `None` if nothing was damaged.
    pub fn warning(&self, path: &Path) -> Option<String> {
        let (line, problem) = self.first?;
        Some(format!(
            "{}: {} damaged line(s) skipped (first: line {line}: {problem})",
            path.display(),
            self.lines
        ))
    }
}

/// Why a file could not be loaded (the server starts without it).
#[derive(Debug)]
pub enum LoadError {
    Open { path: PathBuf, error: io::Error },
    NotRegular { path: PathBuf },
    TooLarge { path: PathBuf, bytes: u64 },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Open { path, error } => {
                write!(
                    f,
                    "cannot read {}: {error}; starting without it",
                    path.display()
                )
            }
            LoadError::NotRegular { path } => write!(
                f,
                "{} is not a regular file; starting without it",
                path.display()
            ),
            LoadError::TooLarge { path, bytes } => write!(
                f,
                "{} is {bytes} bytes, over the 16 MiB limit; starting without it",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads `path` if it is a regular file of at most [`MAX_FILE_BYTES`].
/// A missing file is `Ok(None)`: a first start has none.
///
/// # Errors
/// The file exists but cannot be opened, is not a regular file (a FIFO, a
/// device, a directory) or is too large.
pub fn read_limited(path: &Path) -> Result<Option<Vec<u8>>, LoadError> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer, and the server would hang before it ever listened.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(LoadError::Open {
                path: path.to_path_buf(),
                error,
            });
        }
    };
    let meta = file.metadata().map_err(|error| LoadError::Open {
        path: path.to_path_buf(),
        error,
    })?;
    if !meta.is_file() {
        return Err(LoadError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            bytes: meta.len(),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // `take`: a file growing while we read still stops at the limit.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| LoadError::Open {
            path: path.to_path_buf(),
            error,
        })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            bytes: bytes.len() as u64,
        });
    }
    Ok(Some(bytes))
}

/// Loads the accounts file and the sessions file beside it. Never fails:
/// what could not be read is returned as warnings (one per file at most),
/// and the server starts with what was good.
pub fn load(
    accounts_path: &Path,
    key_of: NameKey,
    now_ms: u64,
) -> (Accounts, Sessions, Vec<String>) {
    let mut warnings = Vec::new();
    let accounts = match read_limited(accounts_path) {
        Ok(Some(bytes)) => {
            let (accounts, damage) = Accounts::parse(&bytes, key_of);
            warnings.extend(damage.warning(accounts_path));
            accounts
        }
        Ok(None) => Accounts::default(),
        Err(e) => {
            warnings.push(e.to_string());
            Accounts::default()
        }
    };
    let sessions_path = sessions_path(accounts_path);
    let sessions = match read_limited(&sessions_path) {
        Ok(Some(bytes)) => {
            let (sessions, damage) = Sessions::parse(&bytes, &accounts, key_of, now_ms);
            warnings.extend(damage.warning(&sessions_path));
            sessions
        }
        Ok(None) => Sessions::default(),
        Err(e) => {
            warnings.push(e.to_string());
            Sessions::default()
        }
    };
    (accounts, sessions, warnings)
}

/// `sessions.tsv` in the accounts file's directory.
pub fn sessions_path(accounts_path: &Path) -> PathBuf {
    accounts_path.with_file_name("sessions.tsv")
}

/// Replaces `path` with `bytes` atomically, readable by its owner only:
/// [`crate::persist::write_atomic_private`] (temporary file created
/// `0600`, `fsync`, `rename`, `fsync` of the directory). A reader, or a
/// crash, sees the old file or the new one.
///
/// This runs on the worker thread, never the reactor's: the `fsync` may
/// take milliseconds on a busy disk.
///
/// # Errors
/// The directory is not writable, the disk is full, the path has no file
/// name, or something other than a regular file is in its place (not
/// ours to replace); the old file is left untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::persist::write_atomic_private(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$9QTd0BVBED/R67IaX3FdEA$ljxT5TUWtapGSbpDTbCjp4rY2bdZVyxvGAMrUs6xe0s";

    fn key(name: &str) -> Box<str> {
        name.to_lowercase().into()
    }

    #[test]
    fn tokens_are_32_lowercase_hex_and_stored_only_hashed() {
        let t = Token::generate().unwrap();
        let text = t.to_hex();
        assert_eq!(text.len(), 32);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(Token::parse(&text), Some(t.clone()));
        assert_eq!(Token::parse(&text.to_uppercase()), Some(t.clone()));
        assert_ne!(Token::generate().unwrap(), t, "random");
        for bad in [
            "",
            "abc",
            &text[..31],
            &format!("{text}0"),
            &"g".repeat(32),
            &"é".repeat(16),
        ] {
            assert_eq!(Token::parse(bad), None, "{bad:?}");
        }
        assert_eq!(format!("{t:?}"), "Token(..)");
        // The stored form does not contain the token.
        let mut sessions = Sessions::default();
        sessions.insert(
            t.hash(),
            Session {
                key: "alice".into(),
                name: "Alice".into(),
                expires_ms: 2_000,
            },
        );
        let file = String::from_utf8(sessions.serialize(1_000)).unwrap();
        assert!(!file.contains(&text));
        assert_eq!(file, format!("{}\t2000\tAlice\n", hex(&t.hash().0)));
    }

    #[test]
    fn sha256_of_a_known_token() {
        // SHA-256 of 16 zero bytes.
        assert_eq!(
            hex(&Token([0; 16]).hash().0),
            "374708fff7719dd5979ec875d56cd2286f6d3cf7ec317a3b25632aab28ec37bb"
        );
    }

    #[test]
    fn accounts_round_trip_and_damaged_lines_are_counted_once() {
        let mut a = Accounts::default();
        a.insert(
            key("Olena"),
            Account {
                name: "Olena".into(),
                phc: PHC.into(),
            },
        );
        a.insert(
            key("bob"),
            Account {
                name: "bob".into(),
                phc: PHC.into(),
            },
        );
        let bytes = a.serialize();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!("bob\t{PHC}\nOlena\t{PHC}\n")
        );
        let (again, damage) = Accounts::parse(&bytes, key);
        assert_eq!(damage, Damage::default());
        assert_eq!(again.get("olena").unwrap().name.as_ref(), "Olena");

        let file = format!(
            "carl\t{PHC}\n\nno tab here\nx\tnot-a-phc\njunk\n\tempty-name\nbad\x1bname\t{PHC}\ndana\t{PHC}\r\ncarl\t{PHC}\ntoo\tmany\tfields\n"
        );
        let (parsed, damage) = Accounts::parse(file.as_bytes(), key);
        assert_eq!(parsed.len(), 2, "carl and dana");
        assert_eq!(damage.lines, 6);
        assert_eq!(
            damage.first,
            Some((3, "wrong number of tab-separated fields"))
        );
        let w = damage.warning(Path::new("a.tsv")).unwrap();
        assert_eq!(
            w,
            "a.tsv: 6 damaged line(s) skipped (first: line 3: wrong number of tab-separated fields)"
        );
    }

    #[test]
    fn invalid_utf8_is_damage_not_a_crash() {
        let (a, damage) = Accounts::parse(b"\xff\xfe\tx\n", key);
        assert!(a.is_empty());
        assert_eq!(damage.first, Some((1, "not valid UTF-8")));
    }

    #[test]
    fn sessions_expire_and_are_capped_per_account() {
        let mut accounts = Accounts::default();
        accounts.insert(
            key("alice"),
            Account {
                name: "alice".into(),
                phc: PHC.into(),
            },
        );
        let mut s = Sessions::default();
        let t = Token::generate().unwrap();
        let session = |expires_ms| Session {
            key: "alice".into(),
            name: "alice".into(),
            expires_ms,
        };
        s.insert(t.hash(), session(1_000));
        assert_eq!(s.lookup(t.hash(), 999), Lookup::Valid(session(1_000)));
        assert_eq!(s.lookup(t.hash(), 1_000), Lookup::Expired(session(1_000)));
        assert_eq!(s.lookup(t.hash(), 1_000), Lookup::Unknown, "removed");

        for i in 0..(MAX_SESSIONS_PER_ACCOUNT as u64 + 4) {
            s.insert(Token::generate().unwrap().hash(), session(10_000 + i));
        }
        assert_eq!(s.len(), MAX_SESSIONS_PER_ACCOUNT);
        let file = s.serialize(0);
        assert!(
            !String::from_utf8_lossy(&file).contains("\t10000\t"),
            "the oldest were ended"
        );
        // Round trip through the file; an expired line and a line for an
        // unknown account are dropped without counting as damage.
        let mut text = String::from_utf8(file).unwrap();
        text.push_str(&format!("{}\t5\talice\n", "a".repeat(64)));
        text.push_str(&format!("{}\t99999\tghost\n", "b".repeat(64)));
        text.push_str("zz\t1\talice\n");
        let (again, damage) = Sessions::parse(text.as_bytes(), &accounts, key, 100);
        assert_eq!(again.len(), MAX_SESSIONS_PER_ACCOUNT);
        assert_eq!(damage.lines, 1);
        assert_eq!(s.remove_account("alice"), MAX_SESSIONS_PER_ACCOUNT);
        assert!(s.is_empty());
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.tsv");
        write_atomic(&path, b"one\n").unwrap();
        write_atomic(&path, b"two\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left");
        // A directory that does not exist: an error, nothing written.
        let missing = dir.path().join("nope").join("accounts.tsv");
        assert!(write_atomic(&missing, b"x").is_err());
        // A FIFO in its place is not ours to replace.
        let fifo = dir.path().join("fifo.tsv");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(write_atomic(&fifo, b"x").is_err());
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn loading_reads_only_small_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.tsv");
        // Missing: empty, no warning.
        let (a, s, w) = load(&path, key, 0);
        assert!(a.is_empty() && s.is_empty() && w.is_empty());
        // A directory in its place.
        fs::create_dir(&path).unwrap();
        let (a, _, w) = load(&path, key, 0);
        assert!(a.is_empty());
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("not a regular file"), "{w:?}");
        fs::remove_dir(&path).unwrap();
        // A FIFO: must not hang.
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (_, _, w) = load(&path, key, 0);
        assert!(w[0].contains("not a regular file"), "{w:?}");
        fs::remove_file(&path).unwrap();
        // Too large (a sparse file: no 16 MiB written).
        let f = fs::File::create(&path).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let (_, _, w) = load(&path, key, 0);
        assert!(w[0].contains("over the 16 MiB limit"), "{w:?}");
        // A character device.
        let (_, _, w) = load(Path::new("/dev/zero"), key, 0);
        assert!(w[0].contains("not a regular file"), "{w:?}");
    }

    #[test]
    fn load_reads_both_files_with_one_warning_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.tsv");
        fs::write(&path, format!("alice\t{PHC}\ngarbage\ngarbage2\n")).unwrap();
        let t = Token::generate().unwrap();
        fs::write(
            sessions_path(&path),
            format!("{}\t5000\talice\nbroken\nbroken\n", hex(&t.hash().0)),
        )
        .unwrap();
        let (a, mut s, w) = load(&path, key, 1000);
        assert_eq!(a.len(), 1);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("2 damaged line(s)"));
        assert!(w[1].contains("sessions.tsv: 2 damaged line(s)"));
        assert!(matches!(s.lookup(t.hash(), 1000), Lookup::Valid(_)));
    }
}
