//! The rows of the table: for each, our side (an echochat setup, the load
//! that drives it, and what else runs meanwhile) and the side it is
//! compared with (a reference server, or another echochat setup).
//!
//! The rows per issue: #7 `echo-1k-500-*` (before/after a refactor),
//! #8 `flood-*`, `nick-storm-*`, `idle-chat-joined-2000`, #10 `log-*`,
//! #11 `login-*`, #12 `udp-*`, `framed-*`, #13 `status-*`, `trace-*`,
//! #14 `scale-*`, `chat-1000x1`, `connect-*`.

/// One row of the table.
pub struct Scenario {
    pub name: &'static str,
    pub ours: Side,
    /// What `ours` is compared with (`None`: a row alone).
    pub other: Option<Side>,
    /// Figures printed beside the usual ones.
    pub notes: &'static [Note],
}

/// One side of a row: a server, the measured load, and what runs beside it.
pub struct Side {
    pub label: &'static str,
    pub server: Server,
    pub load: Load,
    /// Started before the load, stopped after it; not measured as
    /// messages, only reported in the notes.
    pub background: Vec<Background>,
}

pub enum Server {
    /// `echochat serve` with these options beyond ports and log dir;
    /// `names > 0`: a names file with that many remembered IPs.
    Echochat {
        args: Vec<&'static str>,
        names: usize,
    },
    Reference(Reference),
}

#[derive(Clone, Copy)]
pub enum Reference {
    TokioEcho,
    /// The tokio echo server plus the exit word (echo the `exit` line, then
    /// close), which `echochat load connect` relies on.
    TokioEchoExit,
    TokioChat,
    /// `benches/ref/udp_echo.c`: blocking `recvfrom`/`sendto`, one thread.
    CUdpEcho,
}

impl Reference {
    pub fn label(self) -> &'static str {
        match self {
            Reference::TokioEcho => "tokio echo",
            Reference::TokioEchoExit => "tokio echo+exit",
            Reference::TokioChat => "tokio chat",
            Reference::CUdpEcho => "C recvfrom/sendto",
        }
    }
}

#[derive(Clone)]
pub enum Load {
    Echo {
        clients: usize,
        size: &'static str,
        secs: u64,
    },
    Chat {
        users: usize,
        rate: f64,
        secs: u64,
    },
    /// `echochat load connect`: at most `clients` cycles at once (connect,
    /// one round trip, the server closes), as fast as possible.
    Connect {
        clients: usize,
        secs: u64,
    },
    /// Hold N idle connections and read the server's RSS growth per
    /// connection. Echo: connected. Chat: connected and greeted, idle at
    /// the name prompt.
    Idle {
        conns: usize,
        chat: bool,
    },
    /// Chat users who joined (the join notices drained), then sit idle.
    IdleJoined {
        users: usize,
    },
    /// `echochat load echo --framed`: closed-loop echo to the framed echo
    /// service, each message with its 4-byte length header.
    Framed {
        clients: usize,
        size: &'static str,
        secs: u64,
    },
    /// The minimal echo client (`minimal.rs`): 1 KiB messages, one send
    /// and one recv each.
    Minimal {
        clients: usize,
        secs: u64,
    },
    /// `echochat load udp-echo`: open loop, `rate` datagrams a second over
    /// `clients` sockets.
    Udp {
        clients: usize,
        size: &'static str,
        rate: f64,
        secs: u64,
    },
}

impl Load {
    /// Memory rows: measured once, not alternated.
    pub fn is_idle(&self) -> bool {
        matches!(self, Load::Idle { .. } | Load::IdleJoined { .. })
    }
}

/// What runs beside the measured load (`background.rs`).
#[derive(Clone, Copy)]
pub enum Background {
    /// `echochat load chat`: users sending `rate` lines a second each.
    ChatUsers { users: usize, rate: f64 },
    /// One chat user writing short lines as fast as the server reads them.
    Flooder,
    /// One chat user changing its name with `/nick` as fast as allowed.
    NickStorm,
    /// Chat logins with a password (Argon2id on the worker thread), this
    /// many a second, each a new connection.
    Logins { per_sec: f64 },
    /// The status page open: `/api/status` and `/api/conns` polled and
    /// `/metrics` scraped once a second, an `/api/events` stream held.
    StatusPage,
}

/// Extra figures a row prints.
#[derive(Clone, Copy, PartialEq)]
pub enum Note {
    /// Log bytes written per second of the load (echochat sides).
    LogRate,
    /// `disconnect ... reason=backlog` lines in the server's log.
    BacklogCuts,
    /// The server's largest RSS seen during the load.
    PeakRss,
    /// The server's CPU time during the load, by thread name.
    ThreadCpu,
}

fn echo(clients: usize, size: &'static str, secs: u64) -> Load {
    Load::Echo {
        clients,
        size,
        secs,
    }
}

fn ours(args: Vec<&'static str>, load: Load) -> Side {
    Side {
        label: "echochat",
        server: Server::Echochat { args, names: 0 },
        load,
        background: Vec::new(),
    }
}

fn reference(r: Reference, load: Load) -> Side {
    Side {
        label: r.label(),
        server: Server::Reference(r),
        load,
        background: Vec::new(),
    }
}

/// echochat at `--log-level info` beside a reference under the same load.
fn row(name: &'static str, r: Reference, load: Load) -> Scenario {
    Scenario {
        name,
        ours: ours(vec!["--log-level", "info"], load.clone()),
        other: Some(reference(r, load)),
        notes: &[],
    }
}

/// Two echochat setups under the same load: `ours` with, `without` the
/// thing the row is about.
fn versus(
    name: &'static str,
    ours: Side,
    without: &'static str,
    other: Side,
    notes: &'static [Note],
) -> Scenario {
    Scenario {
        name,
        ours,
        other: Some(Side {
            label: without,
            ..other
        }),
        notes,
    }
}

fn info() -> Vec<&'static str> {
    vec!["--log-level", "info"]
}

/// The scaling table: CPU per message and msgs/s as the number of
/// connections grows, 1 KiB closed-loop echo. The run includes connecting
/// (at most half of it), so the 10,000-client row runs longer.
fn scaling() -> Vec<Scenario> {
    [
        ("scale-echo-1", 1, 3),
        ("scale-echo-10", 10, 3),
        ("scale-echo-100", 100, 3),
        ("scale-echo-1000", 1000, 4),
        ("scale-echo-10000", 10_000, 8),
    ]
    .into_iter()
    .map(|(name, clients, secs)| row(name, Reference::TokioEcho, echo(clients, "1KiB", secs)))
    .collect()
}

/// Round two's rows (issues #8, #10–#13): each compares echochat with
/// itself, with and without one thing, under 500 echo clients.
fn round_two() -> Vec<Scenario> {
    use Background::{ChatUsers, Flooder, Logins, NickStorm, StatusPage};
    let echo500 = || echo(500, "1KiB", 5);
    let with = |args: Vec<&'static str>, bg: Vec<Background>| Side {
        background: bg,
        ..ours(args, echo500())
    };
    let chat100 = ChatUsers {
        users: 100,
        rate: 1.0,
    };
    let chat10 = ChatUsers {
        users: 10,
        rate: 1.0,
    };
    // The /nick storm: rate limits out of the way, 20,000 names on file.
    let storm_args = || {
        vec![
            "--log-level",
            "info",
            "--chat-rate",
            "100000",
            "--chat-burst",
            "100000",
        ]
    };
    let storm_side = |args: Vec<&'static str>, bg: Vec<Background>| Side {
        server: Server::Echochat {
            args,
            names: 20_000,
        },
        ..with(Vec::new(), bg)
    };
    vec![
        versus(
            "flood-echo-500",
            with(info(), vec![chat100, Flooder]),
            "no flooder",
            with(info(), vec![chat100]),
            &[Note::BacklogCuts, Note::PeakRss],
        ),
        versus(
            "nick-storm-20k-echo-500",
            storm_side(storm_args(), vec![chat10, NickStorm]),
            "no /nick storm",
            storm_side(storm_args(), vec![chat10]),
            &[Note::BacklogCuts],
        ),
        // The same storm at the default --chat-rate (20/s, burst 40): what
        // a server left at its defaults sees.
        versus(
            "nick-storm-20k-rate20",
            storm_side(info(), vec![chat10, NickStorm]),
            "no /nick storm",
            storm_side(info(), vec![chat10]),
            &[Note::BacklogCuts],
        ),
        versus(
            "log-debug-vs-info-500",
            with(vec!["--log-level", "debug"], Vec::new()),
            "--log-level info",
            with(info(), Vec::new()),
            &[Note::LogRate],
        ),
        versus(
            "login-20ps-echo-500",
            with(info(), vec![Logins { per_sec: 20.0 }]),
            "no logins",
            with(info(), Vec::new()),
            &[Note::ThreadCpu],
        ),
        Scenario {
            name: "udp-echo-64-50",
            ours: ours(info(), udp()),
            other: Some(reference(Reference::CUdpEcho, udp())),
            notes: &[],
        },
        versus(
            "framed-vs-plain-500",
            ours(info(), framed("1KiB")),
            "plain echo",
            ours(info(), echo(500, "1KiB", 4)),
            &[],
        ),
        // The same with 1 KiB on the wire (1020 + 4): one 1 KiB read per
        // message at the default --read-chunk, as plain echo's.
        versus(
            "framed-1020-vs-plain-500",
            ours(info(), framed("1020B")),
            "plain echo",
            ours(info(), echo(500, "1KiB", 4)),
            &[],
        ),
        // Both at --read-chunk 2KiB: a 1028-byte frame in one read.
        versus(
            "framed-2k-chunk-500",
            ours(chunk2k(), framed("1KiB")),
            "plain echo",
            ours(chunk2k(), echo(500, "1KiB", 4)),
            &[],
        ),
        versus(
            "status-page-echo-500",
            with(info(), vec![StatusPage]),
            "page closed",
            with(info(), Vec::new()),
            &[],
        ),
        versus(
            "trace-echo-500",
            with(vec!["--log-level", "info", "--trace"], Vec::new()),
            "--trace off",
            with(info(), Vec::new()),
            &[],
        ),
    ]
}

/// 64-byte datagrams from 50 sockets at a rate both servers can answer,
/// so CPU per datagram compares like with like.
fn udp() -> Load {
    Load::Udp {
        clients: 50,
        size: "64B",
        rate: 40_000.0,
        secs: 4,
    }
}

fn framed(size: &'static str) -> Load {
    Load::Framed {
        clients: 500,
        size,
        secs: 4,
    }
}

fn chunk2k() -> Vec<&'static str> {
    vec!["--log-level", "info", "--read-chunk", "2KiB"]
}

pub fn all() -> Vec<Scenario> {
    use Reference::{TokioChat, TokioEcho, TokioEchoExit};
    let mut all = vec![
        row("echo-1k-1", TokioEcho, echo(1, "1KiB", 4)),
        row("echo-1k-50", TokioEcho, echo(50, "1KiB", 4)),
        row("echo-1k-500-info", TokioEcho, echo(500, "1KiB", 5)),
        Scenario {
            ours: ours(vec!["--log-level", "debug"], echo(500, "1KiB", 5)),
            ..row("echo-1k-500-debug", TokioEcho, echo(500, "1KiB", 5))
        },
        row("echo-1k-2000", TokioEcho, echo(2000, "1KiB", 5)),
        Scenario {
            name: "load-vs-minimal-500",
            ours: Side {
                label: "echochat load",
                ..ours(info(), echo(500, "1KiB", 4))
            },
            other: Some(Side {
                label: "minimal client",
                ..ours(
                    info(),
                    Load::Minimal {
                        clients: 500,
                        secs: 4,
                    },
                )
            }),
            notes: &[],
        },
        versus(
            "echo-64k-50-chunk",
            ours(
                vec!["--log-level", "info", "--read-chunk", "64KiB"],
                echo(50, "64KiB", 4),
            ),
            "read-chunk 1KiB",
            ours(
                vec!["--log-level", "info", "--read-chunk", "1KiB"],
                echo(50, "64KiB", 4),
            ),
            &[],
        ),
        row(
            "chat-100x20",
            TokioChat,
            Load::Chat {
                users: 100,
                rate: 20.0,
                secs: 5,
            },
        ),
        row(
            "chat-1000x1",
            TokioChat,
            Load::Chat {
                users: 1000,
                rate: 1.0,
                secs: 8,
            },
        ),
        row(
            "idle-echo-10000",
            TokioEcho,
            Load::Idle {
                conns: 10_000,
                chat: false,
            },
        ),
        row(
            "idle-chat-10000",
            TokioChat,
            Load::Idle {
                conns: 10_000,
                chat: true,
            },
        ),
        row(
            "idle-chat-joined-2000",
            TokioChat,
            Load::IdleJoined { users: 2000 },
        ),
        Scenario {
            other: None,
            ..row("echo-1k-19000", TokioEcho, echo(19_000, "1KiB", 4))
        },
        row(
            "connect-50",
            TokioEchoExit,
            Load::Connect {
                clients: 50,
                secs: 4,
            },
        ),
    ];
    all.extend(scaling());
    all.extend(round_two());
    all
}
