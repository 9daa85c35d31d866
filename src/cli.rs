//! The command line: clap types for every command, and the small parsers for
//! the values the contract accepts (sizes, durations, port ranges, levels).
//!
//! Parsing is pure and unit-tested here, so `main` only dispatches. A value
//! that does not parse is a usage error (exit 2, clap's convention) whose
//! message says what was expected. Read `main.rs` next for how each command
//! runs, or `reactor/mod.rs` for what `serve` does with these options.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::lang::Lang;

/// Default port ranges, in one place: the server binds the first free port
/// of each, and the clients and load generator default to its first port.
pub mod ports {
    pub const ECHO: &str = "7000-7099";
    pub const CHAT: &str = "7100-7199";
    pub const HTTP: &str = "7200-7299";
    pub const FRAME: &str = "7300-7399";
    /// The first port of each range, where clients look by default.
    pub const ECHO_PORT: u16 = 7000;
    pub const CHAT_PORT: u16 = 7100;
    pub const HTTP_PORT: u16 = 7200;
    pub const FRAME_PORT: u16 = 7300;
}

/// The largest `--read-chunk` and `--max-line`: the read buffer is
/// allocated once, and a partial line may be buffered per connection.
pub const MAX_CHUNK_BYTES: u64 = 16 << 20;

/// `echochat`: an event-driven echo and chat server on one thread, with its
/// clients and a load generator.
#[derive(Debug, Parser)]
#[command(name = "echochat", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: echo and chat services in one single-threaded reactor.
    Serve(Box<ServeArgs>),
    /// Interactive echo client: sends stdin lines, prints what comes back.
    Echo(ClientArgs),
    /// Interactive chat client: stdin lines go out, room lines are printed.
    Chat(ClientArgs),
    /// Load generator against a running server.
    #[command(subcommand)]
    Load(LoadCommand),
    /// Read the log: the active and rotated files in order as one stream;
    /// filter, follow, summarize.
    Log(LogArgs),
}

/// Options of `echochat serve` (see DESIGN.md, "echochat serve").
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the services bind; 0.0.0.0 or :: lets other machines in; a name such as localhost is resolved.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR", value_parser = parse_host)]
    pub host: IpAddr,
    /// Echo ports: a port (7000), a range (7000-7099), or 0 (the OS picks).
    #[arg(long, default_value = ports::ECHO, value_name = "RANGE")]
    pub echo_ports: PortRange,
    /// Chat ports: same forms as --echo-ports.
    #[arg(long, default_value = ports::CHAT, value_name = "RANGE")]
    pub chat_ports: PortRange,
    /// Status page ports: same forms as --echo-ports.
    #[arg(long, default_value = ports::HTTP, value_name = "RANGE")]
    pub http_ports: PortRange,
    /// Address of the status page, apart from --host: it shows peers' addresses, so it stays on loopback unless asked.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR", value_parser = parse_host)]
    pub http_host: IpAddr,
    /// Run without the echo service.
    #[arg(long)]
    pub no_echo: bool,
    /// Run without the chat service.
    #[arg(long)]
    pub no_chat: bool,
    /// Run without the status page.
    #[arg(long)]
    pub no_http: bool,
    /// Framed echo ports (4-byte length header): same forms as --echo-ports.
    #[arg(long, default_value = ports::FRAME, value_name = "RANGE")]
    pub frame_ports: PortRange,
    /// Run without the framed echo service.
    #[arg(long)]
    pub no_frame: bool,
    /// Run without the UDP twins of echo and chat (udp-echo, udp-chat).
    #[arg(long)]
    pub no_udp: bool,
    /// Longest framed-echo message; a longer length header closes the connection.
    #[arg(long, default_value = "1MiB", value_name = "SIZE", value_parser = parse_max_frame)]
    pub max_frame: Size,
    /// A UDP chat member silent this long is dropped; 0 = never.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub udp_member_timeout: HumanDuration,
    /// Directory of the log file; created if missing.
    #[arg(long, default_value = "logs", value_name = "DIR")]
    pub log_dir: PathBuf,
    /// Name of the active log file; rotated copies are NAME.1 (newest) .. NAME.K.
    #[arg(long, default_value = "echochat.log", value_name = "NAME")]
    pub log_file: String,
    /// Rotate when the active file would pass this size (512KiB, 1MiB, 1000); 0 = never by size.
    #[arg(long, default_value = "10MiB", value_name = "SIZE")]
    pub log_max_size: Size,
    /// Rotated files kept (0-1000); older ones are deleted.
    #[arg(long, default_value_t = 5, value_name = "K",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(crate::logging::MAX_KEEP)))]
    pub log_keep: u32,
    /// Also rotate by age (1h, 30m, 1day).
    #[arg(long, value_name = "DURATION")]
    pub log_rotate_every: Option<HumanDuration>,
    /// File level: debug logs recv/send (within --log-traffic-rate) and traffic; info leaves those out.
    #[arg(long, default_value = "debug", value_name = "LEVEL")]
    pub log_level: Level,
    /// recv/send lines per second per service written one by one; past that they are summed into traffic lines; 0 = no cap.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub log_traffic_rate: u32,
    /// Console (stdout) level.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    pub console_level: Level,
    /// Quiet: the same as --console-level warn.
    #[arg(short, long)]
    pub quiet: bool,
    /// Console lines also say, in one plain sentence, what happened at the socket level.
    #[arg(long)]
    pub explain: bool,
    /// One console line per reactor turn: how long poll slept, what woke it, what the turn did (at most 20 lines a second).
    #[arg(long)]
    pub trace: bool,
    /// Language of --explain and --trace (log lines stay English): en, uk, ru [default: from LC_ALL, LC_MESSAGES, LANG; else en].
    #[arg(long, value_name = "LANG", value_parser = parse_lang)]
    pub lang: Option<Lang>,
    /// Connections of all services together; more are refused with a message.
    #[arg(long, default_value_t = 10_000, value_name = "N", value_parser = parse_at_least_one)]
    pub max_clients: usize,
    /// Connections from one IP address; more are refused like --max-clients; 0 = no limit.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_per_ip: u32,
    /// Close a connection with no traffic for this long; 0 = never.
    #[arg(long, default_value = "2h", value_name = "DURATION")]
    pub idle_timeout: HumanDuration,
    /// Bytes read per recv call (1B to 16MiB).
    #[arg(long, default_value = "1KiB", value_name = "SIZE", value_parser = parse_chunk_size)]
    pub read_chunk: Size,
    /// Longest chat line, terminator not counted (1B to 16MiB).
    #[arg(long, default_value = "4KiB", value_name = "SIZE", value_parser = parse_chunk_size)]
    pub max_line: Size,
    /// Unsent bytes a connection may hold before the server acts.
    #[arg(long, default_value = "1MiB", value_name = "SIZE")]
    pub max_backlog: Size,
    /// Lines a chat user may send per second on average...
    #[arg(long, default_value_t = 20, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub chat_rate: u32,
    /// ...and at once; past that the server stops reading that user until the allowance refills.
    #[arg(long, default_value_t = 40, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub chat_burst: u32,
    /// How long a graceful stop waits for pending output.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub shutdown_grace: HumanDuration,
    /// Chat's memory of names by client IP [default: names.tsv in the log dir].
    #[arg(long, value_name = "PATH")]
    pub names_file: Option<PathBuf>,
    /// IPs the names file remembers; the least recently seen are forgotten first.
    #[arg(long, default_value_t = 10_000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub names_max: u32,
    /// Registered chat names and their password hashes [default: accounts.tsv in the log dir].
    #[arg(long, value_name = "PATH")]
    pub accounts_file: Option<PathBuf>,
    /// How long a chat session token stays valid (like a cookie).
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_session_ttl)]
    pub session_ttl: HumanDuration,
    /// A line that is exactly this word ends an echo connection; '' turns it off.
    #[arg(long, default_value = "exit", value_name = "WORD")]
    pub exit_word: String,
    /// The listen() queue length.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub listen_backlog: u32,
}

impl ServeArgs {
    /// Checks that need more than one option: at least one service must be
    /// left on. A usage error, like every bad value (exit 2).
    ///
    /// # Errors
    /// clap's usage error, ready for `exit()`.
    pub fn check(&self) -> Result<(), clap::Error> {
        if self.no_echo && self.no_chat && self.no_http && self.no_frame {
            return Err(<Cli as clap::CommandFactory>::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "every service is turned off (--no-echo --no-chat --no-http --no-frame); leave at least one on",
            ));
        }
        Ok(())
    }

    /// The console level after `-q` is applied.
    pub fn effective_console_level(&self) -> Level {
        if self.quiet {
            Level::Warn
        } else {
            self.console_level
        }
    }

    /// `--lang`, or the language of the environment.
    pub fn language(&self) -> Lang {
        self.lang.unwrap_or_else(Lang::from_env)
    }

    /// Where chat keeps accounts: `--accounts-file`, or `accounts.tsv` in
    /// the log dir (the sessions file is `sessions.tsv` beside it).
    pub fn accounts_path(&self) -> PathBuf {
        self.accounts_file
            .clone()
            .unwrap_or_else(|| self.log_dir.join("accounts.tsv"))
    }

    /// Where chat remembers names: `--names-file`, or `names.tsv` in the log dir.
    pub fn names_path(&self) -> PathBuf {
        self.names_file
            .clone()
            .unwrap_or_else(|| self.log_dir.join("names.tsv"))
    }
}

/// Options of the interactive clients `echochat echo` and `echochat chat`.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server address [default: 127.0.0.1; asked on a terminal].
    #[arg(long)]
    pub host: Option<String>,
    /// Server port [default: the service's first default port; asked on a terminal].
    #[arg(long)]
    pub port: Option<u16>,
    /// Over UDP: each line is one datagram (no connection, no retransmission).
    #[arg(long)]
    pub udp: bool,
    /// Echo only: the framed echo service, each line sent with a 4-byte length header [port 7300].
    #[arg(long, conflicts_with = "udp")]
    pub framed: bool,
    /// Quiet: print only what the server sends, and errors (no lifecycle messages).
    #[arg(short, long)]
    pub quiet: bool,
    /// A slow reader: pause this long before each read of the socket (at most 1 KiB a read), to show backpressure.
    #[arg(long, value_name = "DURATION")]
    pub read_delay: Option<HumanDuration>,
    /// Close with RST instead of FIN (SO_LINGER 0), so the server logs reason=reset; the exit word is not sent.
    #[arg(long, conflicts_with = "udp")]
    pub reset: bool,
    /// Language of the lifecycle messages: en, uk, ru [default: from LC_ALL, LC_MESSAGES, LANG; else en].
    #[arg(long, value_name = "LANG", value_parser = parse_lang)]
    pub lang: Option<Lang>,
}

impl ClientArgs {
    /// `--lang`, or the language of the environment.
    pub fn language(&self) -> Lang {
        self.lang.unwrap_or_else(Lang::from_env)
    }

    /// `--framed` is for `echochat echo` only (the chat protocol is lines).
    /// A usage error, like every bad option (exit 2).
    ///
    /// # Errors
    /// clap's usage error, ready for `exit()`.
    pub fn check_chat(&self) -> Result<(), clap::Error> {
        if self.framed {
            return Err(<Cli as clap::CommandFactory>::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "--framed is for 'echochat echo' only; chat is line-based (try --udp)",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
pub enum LoadCommand {
    /// Echo round trips, every byte verified: closed loop, or open loop at --rate;
    /// --framed for the framed echo service.
    #[command(after_long_help = LOAD_REPORT_HELP)]
    Echo(LoadEchoArgs),
    /// Chat users at a fixed message rate, measuring delivery latency.
    #[command(after_long_help = LOAD_REPORT_HELP)]
    Chat(LoadChatArgs),
    /// Open a connection, make one verified round trip, let the server close; again and again.
    #[command(after_long_help = LOAD_REPORT_HELP)]
    Connect(LoadConnectArgs),
    /// Datagrams at --rate to the udp-echo service, each stamped and verified:
    /// lost, reordered and duplicated ones counted.
    #[command(after_long_help = LOAD_REPORT_HELP)]
    UdpEcho(LoadUdpEchoArgs),
}

/// What the summary's counters mean (`echochat load echo --help`).
const LOAD_REPORT_HELP: &str = "\
The summary (or --json):
  connections   sessions made (echo: connected; chat: joined the room), and
                failed ones by cause: refused (nothing listening), reset,
                timed_out (no answer within 5 s, or still connecting when
                half of --duration had passed), full (the server said
                '! server full, try again later'), out_of_descriptors,
                out_of_ports, closed (the server closed before the session
                started), other. connected + failed = --clients.
                udp-echo: sockets opened; one refused before any reply
                (ICMP port unreachable: nothing listens) is a failed one.
  served        echo connections (udp-echo: sockets) that completed at
                least one round trip.
  messages      echo: round trips completed; chat: messages sent;
                connect: cycles completed (connect, round trip, close);
                udp-echo: datagrams answered (unique verified replies).
  framed        echo --framed: each message is a 4-byte big-endian length
                and --size bytes; each reply must be exactly one frame
                equal to what was sent. MiB/s counts headers, msgs/s not.
  msgs/s        per second of the load phase (ramp and drain excluded).
  MiB/s         sent = bytes written to the server; received = bytes read.
  latency ms    mean, standard deviation and percentiles. Echo closed loop:
                send to reply; open loop (--rate): from when each message was
                DUE, so a stalled server cannot hide its stall; chat: send to
                delivery at each other user; connect: connect start (or due
                time) to the verified reply.
  rate          open loop: asked, achieved, how far short (percent), and
                sends that came due but never started.
  unanswered    echo messages still in flight when the 2 s drain ended.
  lost          udp-echo: datagrams sent that never came back verified,
                counted after the drain (which ends early once nothing has
                come back for 0.5 s): sent - received. UDP does not
                retransmit; a datagram dropped on the way or by a full
                socket buffer (at either end) is lost.
  reordered     udp-echo: replies that arrived after the reply to a later
                datagram of the same socket.
  duplicated    udp-echo: extra copies of a reply already received (not
                counted in received).
  not sent      udp-echo: datagrams the kernel refused (ENOBUFS) before
                they left; neither sent nor lost.
  delivered     chat: lines received by other users, of messages x (users-1)
                expected, as a percentage.
  `!` lines     chat: error lines the server sent our users.
  other clients chat: lines of users not in this run (ignored, not errors).
  generator     CPU the load threads used from the load's start to the end
                of the drain, and per message (chat: per line received).
Exit status: 0 for a clean run; 1 with an 'error:' line when no connection
could be made, any reply failed verification, or (udp-echo) no reply at all
came back; 2 for a bad option. Lost datagrams alone do not fail a run.";

/// Options every load scenario shares.
#[derive(Debug, Clone, Args)]
pub struct LoadCommon {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port [default: 7000 for echo, connect and udp-echo, 7300 for echo --framed,
    /// 7100 for chat].
    #[arg(long)]
    pub port: Option<u16>,
    /// Concurrent connections (connect: at most this many open at once; udp-echo: sockets).
    #[arg(long, default_value_t = 50, value_name = "N", value_parser = at_least_one)]
    pub clients: usize,
    /// How long the run lasts, connecting included (at most half of it is spent connecting).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = load_duration)]
    pub duration: HumanDuration,
    /// Event-loop threads driving the connections.
    #[arg(long, default_value_t = 1, value_name = "T", value_parser = at_least_one)]
    pub threads: usize,
    /// Connects in flight at once while connecting.
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = at_least_one)]
    pub connect_burst: usize,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LoadEchoArgs {
    #[command(flatten)]
    pub common: LoadCommon,
    /// Bytes per message (1 byte to 16MiB).
    #[arg(long, default_value = "1KiB", value_name = "SIZE", value_parser = load_size)]
    pub size: Size,
    /// Open loop: this many messages a second over all clients, latency from each one's due time.
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = load_rate)]
    pub rate: Option<f64>,
    /// Framed echo: each message is a 4-byte big-endian length and SIZE bytes, sent to the
    /// framed echo service (port 7300 by default).
    #[arg(long)]
    pub framed: bool,
}

/// Options of `echochat load udp-echo`.
#[derive(Debug, Clone, Args)]
pub struct LoadUdpEchoArgs {
    #[command(flatten)]
    pub common: LoadCommon,
    /// Bytes per datagram (16 bytes, the stamp, to 65507 bytes, the largest UDP datagram).
    #[arg(long, default_value = "64B", value_name = "SIZE", value_parser = udp_size)]
    pub size: Size,
    /// Datagrams a second over all sockets (open loop: sent when due, whatever came back).
    #[arg(long, default_value_t = 1000.0, value_name = "MSGS_PER_SEC", value_parser = load_rate)]
    pub rate: f64,
}

#[derive(Debug, Clone, Args)]
pub struct LoadChatArgs {
    #[command(flatten)]
    pub common: LoadCommon,
    /// Messages per second sent by each user.
    #[arg(long, default_value_t = 1.0, value_name = "MSGS_PER_SEC", value_parser = load_rate)]
    pub rate: f64,
}

/// Options of `echochat log` (see DESIGN.md, "Log reader").
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Directory of the log files (the server's --log-dir).
    #[arg(long, default_value = "logs", value_name = "DIR")]
    pub dir: PathBuf,
    /// Name of the active file (the server's --log-file); NAME.1 .. NAME.K are read before it.
    #[arg(long, default_value = "echochat.log", value_name = "NAME")]
    pub file: String,
    /// Only the lines of this connection (its whole story: accept .. disconnect).
    #[arg(long, value_name = "N")]
    pub conn: Option<u64>,
    /// Only the lines of this service (echo, chat, ...).
    #[arg(long, value_name = "S")]
    pub service: Option<String>,
    /// Only these events (repeatable: --event accept --event disconnect).
    #[arg(long = "event", value_name = "E")]
    pub events: Vec<String>,
    /// Only lines from the last DURATION (10m, 2h).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<HumanDuration>,
    /// Keep printing new lines as they are written, across rotations (like tail -F).
    #[arg(long)]
    pub follow: bool,
    /// Print a summary instead of lines: connections, bytes, peers, traffic per second, warnings.
    #[arg(long, conflicts_with = "follow")]
    pub summary: bool,
}

/// Options of `echochat load connect`.
#[derive(Debug, Clone, Args)]
pub struct LoadConnectArgs {
    #[command(flatten)]
    pub common: LoadCommon,
    /// Connects per second over all threads [default: as fast as --clients at once allow].
    #[arg(long, value_name = "CONNS_PER_SEC", value_parser = load_rate)]
    pub rate: Option<f64>,
    /// The server's --exit-word: sent after the verified line, so the server closes first
    /// (its side keeps TIME_WAIT, not ours); '' to close from our side instead.
    #[arg(long, default_value = "exit", value_name = "WORD")]
    pub exit_word: String,
}

/// A count of at least 1 (`--clients`, `--threads`, `--connect-burst`).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

/// A load `--duration`: a run of zero length measures nothing.
fn load_duration(s: &str) -> Result<HumanDuration, String> {
    let d: HumanDuration = s.parse().map_err(|e: ParseError| e.to_string())?;
    if d.0.is_zero() {
        return Err("must be longer than 0 (e.g. 500ms, 10s, 1m)".into());
    }
    Ok(d)
}

/// A load message `--size`: 1 byte to the generator's largest message.
fn load_size(s: &str) -> Result<Size, String> {
    let size: Size = s.parse().map_err(|e: ParseError| e.to_string())?;
    let max = crate::load::MAX_MESSAGE_BYTES;
    if size.0 == 0 || size.0 > max {
        return Err(format!("must be between 1 byte and {}MiB", max >> 20));
    }
    Ok(size)
}

/// A udp-echo `--size`: a datagram that holds its stamp and fits UDP.
fn udp_size(s: &str) -> Result<Size, String> {
    let size: Size = s.parse().map_err(|e: ParseError| e.to_string())?;
    let (min, max) = (
        crate::load::MIN_DATAGRAM_BYTES as u64,
        crate::load::MAX_DATAGRAM_BYTES as u64,
    );
    if size.0 < min || size.0 > max {
        return Err(format!(
            "must be between {min} bytes (the id and sequence stamp) and {max} bytes \
             (the largest UDP datagram)"
        ));
    }
    Ok(size)
}

/// A load `--rate`: a positive number of messages (or connects) a second.
fn load_rate(s: &str) -> Result<f64, String> {
    const MAX: f64 = 10_000_000.0;
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= MAX => Ok(r),
        Ok(_) => Err(format!("must be above 0 and at most {MAX}")),
        Err(_) => Err(format!("'{s}' is not a number")),
    }
}

/// A log level name as the contract spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Level {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    pub fn to_filter(self) -> log::LevelFilter {
        match self {
            Level::Off => log::LevelFilter::Off,
            Level::Error => log::LevelFilter::Error,
            Level::Warn => log::LevelFilter::Warn,
            Level::Info => log::LevelFilter::Info,
            Level::Debug => log::LevelFilter::Debug,
            Level::Trace => log::LevelFilter::Trace,
        }
    }
}

/// An error from one of the value parsers; clap prints it as a usage error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// `--lang`: `en`, `uk` or `ru` (a locale such as `uk_UA.UTF-8` works too).
fn parse_lang(s: &str) -> Result<Lang, String> {
    Lang::from_tag(s).ok_or_else(|| format!("unknown language {s:?}; use en, uk or ru"))
}

/// `--host`: an IP address, or a name resolved now (`localhost`), so a
/// name that does not resolve is a usage error like any bad value. Of
/// several addresses, the first IPv4 one is taken: that is what `nc
/// localhost` tries first, so students and server agree.
fn parse_host(s: &str) -> Result<IpAddr, ParseError> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip);
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<IpAddr> = (s, 0)
        .to_socket_addrs()
        .map_err(|e| {
            ParseError(format!(
                "cannot resolve '{s}': {e}; give an IP address such as 127.0.0.1"
            ))
        })?
        .map(|a| a.ip())
        .collect();
    addrs
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| {
            ParseError(format!(
                "'{s}' has no address; give an IP address such as 127.0.0.1"
            ))
        })
}

/// A count that must be at least 1 (`--max-clients 0` would refuse
/// everyone).
fn parse_at_least_one(s: &str) -> Result<usize, ParseError> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err(ParseError("must be at least 1".into())),
        Ok(n) => Ok(n),
        Err(_) => Err(ParseError(format!(
            "invalid number '{s}'; use a whole number such as 100"
        ))),
    }
}

/// The largest `--max-frame`: the 4-byte header cannot say more than
/// 4 GiB - 1, and a reader (the clients, the load generator) holds a whole
/// message before it uses it; the server itself never buffers one.
pub const MAX_FRAME_BYTES: u64 = 1 << 30;

/// `--max-frame`: a size from 0 bytes (only empty messages) to 1 GiB.
fn parse_max_frame(s: &str) -> Result<Size, ParseError> {
    let size: Size = s.parse()?;
    if size.0 > MAX_FRAME_BYTES {
        return Err(ParseError(format!(
            "{size} is out of range; use 0B to 1GiB"
        )));
    }
    Ok(size)
}

/// `--read-chunk` and `--max-line`: a size from 1 byte to 16 MiB.
fn parse_chunk_size(s: &str) -> Result<Size, ParseError> {
    let size: Size = s.parse()?;
    if size.0 == 0 || size.0 > MAX_CHUNK_BYTES {
        return Err(ParseError(format!(
            "{size} is out of range; use 1B to 16MiB"
        )));
    }
    Ok(size)
}

/// A byte count: `1000`, `512KiB`, `1MiB`, `2GiB`, `10KB` (powers of ten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    pub fn bytes(self) -> u64 {
        self.0
    }
    /// The size as a `usize`, saturating (only matters on 32-bit machines).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for Size {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let bad = || {
            ParseError(format!(
                "invalid size '{s}': use a number of bytes with an optional unit B, KiB, MiB, GiB, KB, MB or GB (e.g. 512KiB)"
            ))
        };
        if digits.is_empty() {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim() {
            "" | "B" | "b" => 1,
            "KiB" | "K" | "k" | "kib" => 1 << 10,
            "MiB" | "M" | "m" | "mib" => 1 << 20,
            "GiB" | "G" | "g" | "gib" => 1 << 30,
            "KB" | "kB" | "kb" => 1_000,
            "MB" | "mb" => 1_000_000,
            "GB" | "gb" => 1_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(mult)
            .map(Size)
            .ok_or_else(|| ParseError(format!("invalid size '{s}': too large")))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

/// `--session-ttl`: a duration of at least a second (a token that expires
/// at once is no session), at most ten years.
fn parse_session_ttl(s: &str) -> Result<HumanDuration, ParseError> {
    let d: HumanDuration = s.parse()?;
    if d.0 < std::time::Duration::from_secs(1)
        || d.0 > std::time::Duration::from_secs(10 * 365 * 86_400)
    {
        return Err(ParseError(format!(
            "invalid --session-ttl '{s}': use 1s to 10 years, e.g. 30m, 24h or 7days"
        )));
    }
    Ok(d)
}

/// A duration parsed by `humantime` (`5s`, `10m`, `1day`); a bare `0` is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// `None` for zero, which the contract uses to mean "never".
    pub fn non_zero(self) -> Option<Duration> {
        (!self.0.is_zero()).then_some(self.0)
    }
}

impl FromStr for HumanDuration {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        if s.trim() == "0" {
            return Ok(HumanDuration(Duration::ZERO));
        }
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| {
                ParseError(format!(
                    "invalid duration '{s}': {e}; use e.g. 500ms, 5s, 10m, 1h or 1day"
                ))
            })
    }
}

/// A port range: `7000`, `7000-7099`, or `0` (the OS picks a free port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// The ports in the order they are tried.
    pub fn ports(self) -> impl Iterator<Item = u16> {
        self.first..=self.last
    }
}

impl FromStr for PortRange {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = |why: &str| {
            ParseError(format!(
                "invalid port range '{s}': {why}; use a port (7000), a range (7000-7099) or 0"
            ))
        };
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| bad("not a port number"))
        };
        match s.split_once('-') {
            None => {
                let p = port(s)?;
                Ok(PortRange { first: p, last: p })
            }
            Some((a, b)) => {
                let (first, last) = (port(a)?, port(b)?);
                if first == 0 || last == 0 {
                    return Err(bad("0 stands alone, not in a range"));
                }
                if first > last {
                    return Err(bad("the first port is above the last"));
                }
                Ok(PortRange { first, last })
            }
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("1000".parse::<Size>(), Ok(Size(1000)));
        assert_eq!("512KiB".parse::<Size>(), Ok(Size(512 * 1024)));
        assert_eq!("1MiB".parse::<Size>(), Ok(Size(1 << 20)));
        assert_eq!("2GiB".parse::<Size>(), Ok(Size(2 << 30)));
        assert_eq!("10KB".parse::<Size>(), Ok(Size(10_000)));
        assert_eq!("3MB".parse::<Size>(), Ok(Size(3_000_000)));
        assert_eq!("7B".parse::<Size>(), Ok(Size(7)));
        for bad in [
            "",
            "KiB",
            "1.5MiB",
            "-1",
            "10 parsecs",
            "99999999999999999999",
        ] {
            let err = bad.parse::<Size>().unwrap_err().to_string();
            assert!(err.contains("invalid size"), "{bad}: {err}");
        }
        assert!("18446744073709551615GiB".parse::<Size>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            "5s".parse::<HumanDuration>(),
            Ok(HumanDuration(Duration::from_secs(5)))
        );
        assert_eq!(
            "10m".parse::<HumanDuration>(),
            Ok(HumanDuration(Duration::from_secs(600)))
        );
        assert_eq!(
            "1day".parse::<HumanDuration>(),
            Ok(HumanDuration(Duration::from_secs(86_400)))
        );
        assert_eq!("0".parse::<HumanDuration>().unwrap().non_zero(), None);
        let err = "soon".parse::<HumanDuration>().unwrap_err().to_string();
        assert!(err.contains("invalid duration 'soon'"), "{err}");
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            "7000".parse::<PortRange>(),
            Ok(PortRange {
                first: 7000,
                last: 7000
            })
        );
        assert_eq!(
            "7000-7099".parse::<PortRange>(),
            Ok(PortRange {
                first: 7000,
                last: 7099
            })
        );
        assert_eq!(
            "0".parse::<PortRange>(),
            Ok(PortRange { first: 0, last: 0 })
        );
        assert_eq!("7000-7002".parse::<PortRange>().unwrap().ports().count(), 3);
        assert_eq!(
            "7000-7099".parse::<PortRange>().unwrap().to_string(),
            "7000-7099"
        );
        for bad in ["", "x", "70000", "7099-7000", "0-10", "1-2-3"] {
            let err = bad.parse::<PortRange>().unwrap_err().to_string();
            assert!(err.contains("invalid port range"), "{bad}: {err}");
        }
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
