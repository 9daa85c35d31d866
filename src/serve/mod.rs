//! The shell of `echochat serve`: every side effect of starting and
//! stopping, kept out of the loop.
//!
//! Like `quinn` around `quinn-proto`, or mini-redis's `server::run(listener,
//! shutdown)`, the reactor (`reactor/`) is handed what it needs — a
//! [`Config`], bound listeners and services — and does not know the command
//! line. This file does the rest, in order: set up logging, log `start`,
//! fit `--max-clients` to the descriptor limit, build the services, bind
//! each to the first free port of its range (`listen.rs`), announce the
//! listening addresses (with the machine's own addresses when a service
//! listens on all of them: `reach.rs`), run the loop, and log `stop`.
//!
//! Adding a service is a new module in `service/` and one entry in
//! [`services`].

pub mod listen;
pub mod reach;
pub mod udp;

use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::auth::DeskConfig;
use crate::auth::desk::AccountDesk;
use crate::auth::desk::unix_ms_now;
use crate::auth::hasher::Argon2Hasher;
use crate::auth::worker::Worker;

use crate::cli::{PortRange, ServeArgs};
use crate::event::{self, Event, StopReason};
use crate::logging::{self, LogConfig, RotatePolicy};
use crate::names::Names;
use crate::persist::Saver;
use crate::reactor::{Config, Listening, Reactor};
use crate::service::Service;
use crate::service::chat::{ChatConfig, ChatRoom, account_key};
use crate::service::echo::EchoService;
use crate::service::frame::FrameService;
use crate::service::http::HttpService;
use crate::service::rate::RateLimit;
use crate::sys;

/// Descriptors kept free beyond `--max-clients`: stdio, epoll, the signal
/// pipe, listeners, the log file, the names file being rewritten, and a few
/// refused connections (each needs a descriptor until it is told "full").
/// A burst of refusals larger than that spare meets `EMFILE`, which pauses
/// accepting until the refused sockets are closed at the end of the turn.
const RESERVED_FDS: u64 = 16;
/// The `what=` of warnings about the names file.
const NAMES_FILE: &str = "names-file";
/// The `what=` of warnings about the accounts and sessions files.
const ACCOUNTS_FILE: &str = "accounts-file";
/// The `what=` of a warning that the interface addresses are unknown.
const INTERFACES: &str = "interfaces";

/// Why `serve` stopped with an error.
#[derive(Debug)]
pub enum Error {
    Logging(logging::Error),
    Listen(listen::Error),
    Poll(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Logging(e) => e.fmt(f),
            Error::Listen(e) => e.fmt(f),
            Error::Poll(e) => write!(f, "the event loop failed: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Runs `echochat serve` until it is stopped (by a signal or `exit` on the
/// console). Returns after `stop` was logged. Option values were checked
/// by clap already (`cli.rs`), so a bad one never gets here.
///
/// # Errors
/// An unwritable log directory, a range with no free port, or a failing
/// `poll`.
pub fn serve(args: &ServeArgs) -> Result<(), Error> {
    // Before the first event: `--explain` sentences are in this language.
    crate::lang::set_current(args.language());
    let log = logging::init(&log_config(args)).map_err(Error::Logging)?;
    let started = Instant::now();
    event::record(&Event::Start {
        version: env!("CARGO_PKG_VERSION"),
        pid: std::process::id(),
    });
    let result = run(args);
    let reason = match &result {
        Ok(reason) => *reason,
        Err(_) => StopReason::Error,
    };
    event::record(&Event::Stop {
        reason,
        uptime: started.elapsed(),
    });
    log.flush();
    result.map(|_| ())
}

/// Builds, binds and runs the reactor; returns why it stopped.
fn run(args: &ServeArgs) -> Result<StopReason, Error> {
    let config = Config {
        max_clients: fit_descriptor_limit(args.max_clients),
        max_per_ip: (args.max_per_ip > 0).then_some(args.max_per_ip),
        idle_timeout: args.idle_timeout.non_zero(),
        read_chunk: args.read_chunk.as_usize(),
        max_backlog: args.max_backlog.as_usize(),
        shutdown_grace: args.shutdown_grace.0,
        trace: args.trace.then(|| args.language()),
    };
    // The password-hashing thread (chat accounts): its queues exist now,
    // for the room; its thread starts once the loop's `Poll` can be woken.
    let worker = (!args.no_chat).then(|| Worker::new(Box::new(Argon2Hasher::new())));
    let mut names_saver = None;
    let (services, places): (Vec<_>, Vec<_>) = services(args, &mut names_saver, worker.as_ref())
        .into_iter()
        .map(|(service, range, host)| (service, (range, host)))
        .unzip();
    let mut listeners = Vec::with_capacity(services.len());
    for (index, (service, (range, host))) in services.iter().zip(&places).enumerate() {
        let socket = listen::bind_range(service.name(), *host, *range, args.listen_backlog)
            .map_err(Error::Listen)?;
        listeners.push(Listening {
            socket,
            service: index,
        });
    }
    let ranges: Vec<PortRange> = places.iter().map(|(range, _)| *range).collect();
    let twins = bind_twins(args, &services, &listeners, &ranges)?;
    let names: Vec<&'static str> = services.iter().map(|s| s.name()).collect();
    let mut reactor = Reactor::new(config, listeners, services).map_err(Error::Poll)?;
    let mut twin_keys = Vec::with_capacity(twins.len());
    for (service, name, socket) in twins {
        let key = reactor
            .add_udp(socket, service, name)
            .map_err(Error::Poll)?;
        twin_keys.push((service, name, key));
    }
    if let Some((service, saver)) = names_saver {
        reactor.persist_with(service, NAMES_FILE, saver);
    }
    if let Some(worker) = worker {
        reactor.attach_worker(worker).map_err(Error::Poll)?;
    }
    let interfaces = reachable_interfaces(args);
    for (index, name) in names.into_iter().enumerate() {
        if let Some(addr) = reactor.listener_addr(index) {
            announce(name, addr, &interfaces);
        }
        for &(_, twin, key) in twin_keys.iter().filter(|t| t.0 == index) {
            if let Some(addr) = reactor.udp_addr(key) {
                announce(twin, addr, &interfaces);
            }
        }
    }
    let stopped = reactor.run().map_err(Error::Poll);
    reactor.finish_saving();
    reactor.finish();
    stopped
}

/// Binds the UDP twin of each service that has one (unless `--no-udp`), at
/// its TCP port number if that is free: `(service index, twin name,
/// socket)`.
fn bind_twins(
    args: &ServeArgs,
    services: &[Box<dyn Service>],
    listeners: &[Listening],
    ranges: &[PortRange],
) -> Result<Vec<(usize, &'static str, mio::net::UdpSocket)>, Error> {
    let mut twins = Vec::new();
    if args.no_udp {
        return Ok(twins);
    }
    for (index, service) in services.iter().enumerate() {
        let Some(twin) = udp::twin_name(service.name()) else {
            continue;
        };
        let port = listeners
            .iter()
            .find(|l| l.service == index)
            .and_then(|l| l.socket.local_addr().ok())
            .map_or(0, |a| a.port());
        let socket = udp::bind_twin(twin, args.host, port, ranges[index]).map_err(Error::Listen)?;
        twins.push((index, twin, socket));
    }
    Ok(twins)
}

/// The services this run serves, each with the port range and the
/// address it binds. A service whose state is saved to a file comes with
/// its saver thread; chat's accounts send their hashing to `worker`.
fn services(
    args: &ServeArgs,
    names_saver: &mut Option<(usize, Saver)>,
    worker: Option<&Worker>,
) -> Vec<(Box<dyn Service>, PortRange, IpAddr)> {
    let mut services: Vec<(Box<dyn Service>, PortRange, IpAddr)> = Vec::new();
    if !args.no_echo {
        services.push((
            Box::new(EchoService::new(&args.exit_word)),
            args.echo_ports,
            args.host,
        ));
    }
    if !args.no_chat {
        let (names, saver) = load_names(args);
        *names_saver = saver.map(|saver| (services.len(), saver));
        let mut chat = ChatRoom::new(
            ChatConfig {
                max_line_bytes: args.max_line.as_usize(),
                rate: RateLimit {
                    per_second: f64::from(args.chat_rate),
                    burst: f64::from(args.chat_burst),
                },
            },
            names,
        );
        if let Some(worker) = worker {
            chat.enable_accounts(load_accounts(args, worker));
        }
        chat.set_udp_limits(args.udp_member_timeout.non_zero(), args.max_clients);
        services.push((Box::new(chat), args.chat_ports, args.host));
    }
    if !args.no_http {
        // The status page shows peers' addresses: it binds `--http-host`
        // (loopback by default), not `--host`.
        services.push((
            Box::new(HttpService::new()),
            args.http_ports,
            args.http_host,
        ));
    }
    if !args.no_frame {
        let frame = FrameService::new(args.max_frame.as_usize());
        services.push((Box::new(frame), args.frame_ports, args.host));
    }
    services
}

/// Loads the accounts and sessions files (one warning per damaged or
/// unreadable file) into the desk chat's account rules run on; the desk
/// sends hashing to `worker` and changed files to its writer.
fn load_accounts(args: &ServeArgs, worker: &Worker) -> AccountDesk {
    let config = DeskConfig {
        accounts_path: args.accounts_path(),
        session_ttl: args.session_ttl.0,
    };
    let clock = (Instant::now(), unix_ms_now());
    let (mut desk, warnings) =
        AccountDesk::load(config, account_key, Box::new(worker.queue()), clock);
    desk.set_sink(Box::new(worker.saver()));
    for error in warnings {
        event::record(&Event::Warning {
            what: ACCOUNTS_FILE,
            error,
        });
    }
    desk
}

/// Loads the names file (one warning if it is damaged or unusable) and
/// starts the thread that saves it, unless the file was left unused (a
/// FIFO, a device, a file too large: not ours to replace).
fn load_names(args: &ServeArgs) -> (Names, Option<Saver>) {
    let path = args.names_path();
    let (names, warning) = Names::load(&path, args.names_max as usize);
    let mut save = true;
    if let Some(warning) = warning {
        save = !warning.file_unused();
        event::record(&Event::Warning {
            what: NAMES_FILE,
            error: warning.to_string(),
        });
    }
    if !save {
        return (names, None);
    }
    match Saver::spawn(path) {
        Ok(saver) => (names, Some(saver)),
        Err(e) => {
            event::record(&Event::Warning {
                what: NAMES_FILE,
                error: format!("cannot start the saver thread: {e}; names are not saved this run"),
            });
            (names, None)
        }
    }
}

/// Logs `listen` and prints `NAME listening on ADDR`, and for an
/// unspecified address (`0.0.0.0`, `::`) one `  NAME reachable at IP:PORT`
/// line per interface address (`reach.rs`): the program's output, not log
/// lines, so they are printed at any console level. A closed stdout
/// (`| head`) must not panic the server, as `println!` would: the lines are
/// best effort.
fn announce(service: &'static str, addr: SocketAddr, interfaces: &[IpAddr]) {
    event::record(&Event::Listen { service, addr });
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{service} listening on {addr}");
    for at in reach::reachable(addr, interfaces) {
        let _ = writeln!(out, "  {service} reachable at {at}");
    }
}

/// The machine's interface addresses, asked only when some service binds
/// an unspecified address; a failure is one warning and no extra lines.
fn reachable_interfaces(args: &ServeArgs) -> Vec<IpAddr> {
    if !args.host.is_unspecified() && !args.http_host.is_unspecified() {
        return Vec::new();
    }
    reach::interface_addrs().unwrap_or_else(|e| {
        event::record(&Event::Warning {
            what: INTERFACES,
            error: format!("cannot list the interface addresses: {e}"),
        });
        Vec::new()
    })
}

fn log_config(args: &ServeArgs) -> LogConfig {
    LogConfig {
        dir: args.log_dir.clone(),
        file_name: args.log_file.clone(),
        policy: RotatePolicy {
            max_size: args.log_max_size.bytes(),
            keep: args.log_keep,
            every: args.log_rotate_every.and_then(|d| d.non_zero()),
        },
        file_level: args.log_level.to_filter(),
        console_level: args.effective_console_level().to_filter(),
        explain: args.explain,
        traffic_rate: args.log_traffic_rate,
    }
}

/// Compares `--max-clients` with the descriptor limit, raising the soft
/// limit to the hard one first. Every connection is a descriptor, so a
/// limit that does not fit would surface as `EMFILE` at the worst time.
fn fit_descriptor_limit(max_clients: usize) -> usize {
    let nofile = sys::raise_nofile_limit().now;
    if nofile == 0 {
        return max_clients; // unknown limit: nothing to compare with
    }
    let fits = usize::try_from(nofile.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
    if max_clients > fits {
        let lowered = fits.max(1);
        event::record(&Event::Limit {
            requested: max_clients,
            max_clients: lowered,
            nofile,
        });
        return lowered;
    }
    max_clients
}
