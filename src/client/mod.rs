//! The interactive clients `echochat echo` and `echochat chat`: the same
//! event-driven idea as the server, seen from the other end of the socket.
//!
//! Both clients find out where to connect ([`Target`]: `--host`/`--port`,
//! or a prompt with safe defaults on a terminal), make one blocking
//! `connect` (the TCP three-way handshake), and then run a small event loop
//! (`session.rs`) that waits on two sources at once — standard input and the
//! socket — exactly as the server's reactor waits on many sockets.
//!
//! Output is split for pipes: the payload (what the server sends) goes to
//! stdout, and the lifecycle messages — connected, sent N bytes, received N
//! bytes, disconnected and why — go to stderr in the `--lang` language, the
//! first of each kind with a short socket-level explanation for the class
//! (`messages.rs`). So `printf 'hi\n' | echochat echo` prints exactly `hi` on
//! stdout, and `-q` leaves only the payload and errors.
//!
//! Options for lessons ([`Lesson`]): `--read-delay` makes a slow reader (the
//! server's backpressure shows in its log as `pause why=backlog`), and
//! `--reset` ends the connection with RST instead of FIN (`reason=reset`).
//!
//! Read `session.rs` next for the loop, then `stdin.rs` for how a terminal is
//! watched without making it non-blocking.

mod account;
mod framed;
mod messages;
mod session;
mod stdin;
mod udp;

use std::fmt;
use std::io::{self, IsTerminal};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::cli::ClientArgs;
use messages::{Msg, Tell};

/// The host used when none is given: this machine, over loopback.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// The echo service's first default port (`--echo-ports 7000-7099`).
pub const ECHO_DEFAULT_PORT: u16 = crate::cli::ports::ECHO_PORT;
/// The chat service's first default port (`--chat-ports 7100-7199`).
pub const CHAT_DEFAULT_PORT: u16 = crate::cli::ports::CHAT_PORT;
/// The framed echo service's first default port (`--frame-ports 7300-7399`).
pub const FRAME_DEFAULT_PORT: u16 = crate::cli::ports::FRAME_PORT;

/// How long one connect attempt may take before we give up on that
/// address (a host that drops SYNs would otherwise hang for minutes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest line accepted at a prompt; a host name is at most 253 bytes.
const PROMPT_MAX_BYTES: usize = 1024;

/// Which service a client talks to; it decides the default port, the words
/// that end a session and how the end of input is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientKind {
    Echo,
    Chat,
}

impl ClientKind {
    fn name(self) -> &'static str {
        match self {
            ClientKind::Echo => "echo",
            ClientKind::Chat => "chat",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            ClientKind::Echo => ECHO_DEFAULT_PORT,
            ClientKind::Chat => CHAT_DEFAULT_PORT,
        }
    }

    /// Lines that end the session when typed: the echo server knows the
    /// exit word; chat also has `/quit`.
    fn quit_words(self) -> &'static [&'static str] {
        match self {
            ClientKind::Echo => &["exit"],
            ClientKind::Chat => &["exit", "/quit"],
        }
    }
}

/// Why a client stopped with a failure (`main` prints `error: {self}`).
#[derive(Debug)]
pub enum Error {
    /// The host name did not resolve to any address.
    Resolve { host: String, why: String },
    /// `--port 0` (or a port that cannot be connected to by definition).
    BadPort(u16),
    /// No address of the target accepted the connection.
    Connect {
        target: String,
        why: String,
        hint: &'static str,
    },
    /// The server aborted the connection (a TCP RST arrived).
    Reset { peer: SocketAddr },
    /// We finished sending but the server never closed its side.
    NoClose { peer: SocketAddr, waited: Duration },
    /// The prompt got end of input before an answer.
    PromptEnded,
    /// Nothing came back (`what`: "to /join", "to any datagram").
    NoReply {
        peer: SocketAddr,
        what: &'static str,
        hint: &'static str,
    },
    /// The server closed the connection in the middle of its reply.
    ClosedEarly {
        peer: SocketAddr,
        hint: &'static str,
    },
    /// A local I/O step failed (stdout, stdin, the poll itself).
    Io { what: &'static str, err: io::Error },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Resolve { host, why } => write!(
                f,
                "cannot resolve host '{host}': {why}; check the name or use an address like 127.0.0.1"
            ),
            Error::BadPort(p) => write!(f, "invalid port {p}: use a port from 1 to 65535"),
            Error::Connect { target, why, hint } => {
                write!(f, "cannot connect to {target}: {why}; {hint}")
            }
            Error::Reset { peer } => write!(
                f,
                "the connection to {peer} was reset: the server aborted it (a TCP RST arrived)"
            ),
            Error::NoClose { peer, waited } => write!(
                f,
                "{peer} did not close the connection within {}s after we finished sending; giving up",
                waited.as_secs()
            ),
            Error::PromptEnded => f.write_str("end of input at the prompt; nothing to connect to"),
            Error::NoReply { peer, what, hint } => {
                write!(f, "no reply from {peer} {what}; {hint}")
            }
            Error::ClosedEarly { peer, hint } => write!(
                f,
                "{peer} closed the connection before its reply was complete; {hint}"
            ),
            Error::Io { what, err } => write!(f, "{what}: {}", describe(err)),
        }
    }
}

impl std::error::Error for Error {}

/// Runs `echochat echo`: connect, send stdin, print what comes back.
///
/// # Errors
/// The host does not resolve, nobody listens, the connection is reset, or
/// stdin/stdout fail.
pub fn run_echo(args: &ClientArgs) -> Result<(), Error> {
    run(args, ClientKind::Echo)
}

/// Runs `echochat chat`: connect, send stdin lines, print room lines as
/// they arrive.
///
/// # Errors
/// As for [`run_echo`].
pub fn run_chat(args: &ClientArgs) -> Result<(), Error> {
    run(args, ClientKind::Chat)
}

/// How a client behaves for a lesson: what it tells (language, `-q`),
/// how slowly it reads, and how it closes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lesson {
    tell: Tell,
    /// `--read-delay`: wait this long before each read of the socket.
    read_delay: Option<Duration>,
    /// `--reset`: end with RST (`SO_LINGER` 0) instead of FIN.
    reset: bool,
}

impl Lesson {
    fn from_args(args: &ClientArgs) -> Lesson {
        Lesson {
            tell: Tell {
                lang: args.language(),
                quiet: args.quiet,
            },
            read_delay: args.read_delay.and_then(|d| d.non_zero()),
            reset: args.reset,
        }
    }
}

/// How much a slow reader (`--read-delay`) takes per read: the course's
/// "portions of 1 KB", small enough that the kernel's buffers, not the
/// client, hold what is not read yet.
pub(crate) const SLOW_READ_BYTES: usize = 1024;

fn run(args: &ClientArgs, service: ClientKind) -> Result<(), Error> {
    let interactive = io::stdin().is_terminal();
    let lesson = Lesson::from_args(args);
    let target = Target::from_args(args, service, interactive, lesson.tell)?;
    if let Some(delay) = lesson.read_delay {
        lesson.tell.say(Msg::SlowReader { delay });
    }
    if args.framed {
        return framed::run(&target, interactive, lesson);
    }
    if args.udp {
        return match service {
            ClientKind::Echo => udp::run_echo(&target, interactive, lesson),
            ClientKind::Chat => udp::run_chat(&target, interactive, lesson),
        };
    }
    let stream = target.connect()?;
    session::run(stream, service, interactive, &target.label(), lesson)
}

/// Where to connect: a host (name or address) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
}

impl Target {
    /// `--host`/`--port`. With neither given on a terminal, both are asked
    /// for (the course's "prompt with safe defaults"); giving either option
    /// means the user chose the command line, so the other one defaults.
    /// Not on a terminal, nothing is asked: a script must never hang on a
    /// prompt.
    fn from_args(
        args: &ClientArgs,
        service: ClientKind,
        interactive: bool,
        tell: Tell,
    ) -> Result<Self, Error> {
        let (name, default_port) = if args.framed {
            ("frame", FRAME_DEFAULT_PORT)
        } else {
            (service.name(), service.default_port())
        };
        if interactive && args.host.is_none() && args.port.is_none() {
            let host = ask_host(tell)?;
            let port = ask_port(name, default_port, tell)?;
            return Ok(Target { host, port });
        }
        let host = args
            .host
            .as_deref()
            .map_or_else(|| DEFAULT_HOST.to_string(), normalize_host);
        let port = match args.port {
            Some(0) => return Err(Error::BadPort(0)),
            Some(p) => p,
            None => default_port,
        };
        Ok(Target { host, port })
    }

    /// How the target is named in messages: `127.0.0.1:7000`, `[::1]:7000`
    /// or `localhost:7000`.
    fn label(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, self.port).to_string(),
            Err(_) => format!("{}:{}", self.host, self.port),
        }
    }

    fn resolve(&self) -> Result<Vec<SocketAddr>, Error> {
        resolve(&self.host, self.port)
    }

    /// One blocking `connect(2)` per resolved address until one accepts.
    /// Blocking is right here: there is nothing else to do until the
    /// handshake is done. The loop switches the socket to non-blocking.
    fn connect(&self) -> Result<TcpStream, Error> {
        let mut last: Option<io::Error> = None;
        for addr in self.resolve()? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        // resolve() never returns an empty list, so `last` is set; the
        // fallback only keeps this panic-free.
        let err = last.unwrap_or_else(|| io::Error::other("no address to try"));
        let hint = match err.kind() {
            io::ErrorKind::ConnectionRefused => "is 'echochat serve' running on that port?",
            io::ErrorKind::TimedOut => {
                "is the host reachable, and does a firewall let the port in?"
            }
            _ => "check the host and port",
        };
        Err(Error::Connect {
            target: self.label(),
            why: describe(&err),
            hint,
        })
    }
}

/// Resolves `host` (an address or a DNS name) to the addresses to try.
fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let fail = |why: String| Error::Resolve {
        host: host.to_string(),
        why,
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail(describe(&e)))?
        .collect();
    if addrs.is_empty() {
        return Err(fail("no addresses found".into()));
    }
    Ok(addrs)
}

/// Accepts `[::1]` as well as `::1` (people copy addresses from URLs).
fn normalize_host(h: &str) -> String {
    let h = h.trim();
    h.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(h)
        .to_string()
}

/// Parses a typed port: empty takes the default; 1–65535 only. The error
/// is said in `lang` (it answers the user at the prompt).
fn parse_port(answer: &str, default: u16, lang: crate::lang::Lang) -> Result<u16, String> {
    let a = answer.trim();
    if a.is_empty() {
        return Ok(default);
    }
    match a.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Msg::BadPort { answer: a.into() }.text(lang)),
    }
}

/// Shows `question [default]: ` on stderr (stdout is kept for the payload)
/// and reads the answer.
fn prompt(question: &str, default: &str, tell: Tell) -> Result<String, Error> {
    tell.ask(format_args!("{question} [{default}]: "));
    match stdin::read_line(PROMPT_MAX_BYTES) {
        Ok(Some(a)) => Ok(a),
        Ok(None) => {
            eprintln!();
            Err(Error::PromptEnded)
        }
        Err(err) => Err(Error::Io {
            what: "reading the answer from stdin",
            err,
        }),
    }
}

/// Asks for the host until it resolves; Enter takes the default.
fn ask_host(tell: Tell) -> Result<String, Error> {
    let question = Msg::PromptHost.text(tell.lang);
    loop {
        let answer = prompt(&question, DEFAULT_HOST, tell)?;
        let host = if answer.is_empty() {
            DEFAULT_HOST.to_string()
        } else {
            normalize_host(&answer)
        };
        // Port 0 only to ask the resolver about the name.
        match resolve(&host, 0) {
            Ok(_) => return Ok(host),
            Err(e) => eprintln!("! {e}"),
        }
    }
}

/// Asks for the port until it is 1–65535; Enter takes the default.
fn ask_port(service: &'static str, default: u16, tell: Tell) -> Result<u16, Error> {
    let question = Msg::PromptPort { service }.text(tell.lang);
    loop {
        let answer = prompt(&question, &default.to_string(), tell)?;
        match parse_port(&answer, default, tell.lang) {
            Ok(p) => return Ok(p),
            Err(why) => eprintln!("! {why}"),
        }
    }
}

/// An I/O error in the contract's lowercase style, without Rust's
/// `(os error N)` suffix: `connection refused`.
fn describe(err: &io::Error) -> String {
    use io::ErrorKind::*;
    let plain = match err.kind() {
        ConnectionRefused => "connection refused (nothing listens on that port)",
        ConnectionReset => "connection reset by the server",
        TimedOut => "timed out",
        BrokenPipe => "broken pipe (the other side is gone)",
        AddrNotAvailable => "address not available",
        _ => "",
    };
    if !plain.is_empty() {
        return plain.to_string();
    }
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lang::Lang;

    #[test]
    fn ports_typed_at_the_prompt() {
        assert_eq!(parse_port("", 7000, Lang::En), Ok(7000));
        assert_eq!(parse_port("  \r", 7100, Lang::En), Ok(7100));
        assert_eq!(parse_port("7005", 7000, Lang::En), Ok(7005));
        assert_eq!(parse_port(" 65535 ", 7000, Lang::En), Ok(65535));
        for bad in ["0", "65536", "-1", "abc", "70 00", "7000x"] {
            let why = parse_port(bad, 7000, Lang::En).unwrap_err();
            assert!(why.contains("1 to 65535"), "{bad}: {why}");
            let why = parse_port(bad, 7000, Lang::Uk).unwrap_err();
            assert!(why.contains("від 1 до 65535"), "{bad}: {why}");
        }
    }

    #[test]
    fn hosts_resolve_or_say_why() {
        assert!(resolve("127.0.0.1", 7000).is_ok());
        assert!(resolve("::1", 7000).is_ok());
        assert_eq!(normalize_host(" [::1] "), "::1");
        // A failing lookup is not tried here: it would ask a DNS server,
        // and tests keep to loopback. The message is checked as built.
        let err = Error::Resolve {
            host: "nosuch".into(),
            why: "name or service not known".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot resolve host 'nosuch': name or service not known; check the name or use an address like 127.0.0.1"
        );
    }

    /// Client options as clap builds them from `ARGS`.
    fn client_args(args: &[&str]) -> ClientArgs {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["echochat", "echo"].iter().chain(args).copied())
            .unwrap();
        match cli.command {
            crate::cli::Command::Echo(a) => a,
            _ => unreachable!("parsed as echo"),
        }
    }

    #[test]
    fn defaults_without_a_terminal() {
        let tell = Tell {
            lang: Lang::En,
            quiet: true,
        };
        let args = client_args(&[]);
        let t = Target::from_args(&args, ClientKind::Echo, false, tell).unwrap();
        assert_eq!(t.label(), "127.0.0.1:7000");
        let t = Target::from_args(&args, ClientKind::Chat, false, tell).unwrap();
        assert_eq!(t.label(), "127.0.0.1:7100");
        let args = client_args(&["--host", "::1", "--port", "9"]);
        let t = Target::from_args(&args, ClientKind::Echo, false, tell).unwrap();
        assert_eq!(t.label(), "[::1]:9");
        let args = client_args(&["--port", "0"]);
        assert!(Target::from_args(&args, ClientKind::Echo, false, tell).is_err());
    }

    #[test]
    fn lesson_options() {
        let lesson = Lesson::from_args(&client_args(&[
            "-q",
            "--lang",
            "uk",
            "--read-delay",
            "50ms",
            "--reset",
        ]));
        assert!(lesson.tell.quiet);
        assert_eq!(lesson.tell.lang, Lang::Uk);
        assert_eq!(lesson.read_delay, Some(Duration::from_millis(50)));
        assert!(lesson.reset);
        let lesson = Lesson::from_args(&client_args(&["--read-delay", "0", "--lang", "ru"]));
        assert_eq!(lesson.read_delay, None, "0 means no delay");
        assert_eq!(lesson.tell.lang, Lang::Ru);
        assert!(!lesson.reset && !lesson.tell.quiet);
        // RST is a TCP thing: --reset with --udp is a usage error.
        use clap::Parser;
        assert!(crate::cli::Cli::try_parse_from(["echochat", "echo", "--udp", "--reset"]).is_err());
        assert!(crate::cli::Cli::try_parse_from(["echochat", "echo", "--lang", "de"]).is_err());
    }

    #[test]
    fn errors_read_as_one_lowercase_line() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(describe(&e).starts_with("connection refused"));
        let e = io::Error::from_raw_os_error(libc::ENETUNREACH);
        let d = describe(&e);
        assert!(!d.contains("os error") && d.starts_with("network"), "{d}");
    }
}
