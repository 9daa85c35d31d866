//! The rows of the table: which echochat setup, against which reference,
//! under which load.

/// One row of the table: a server setup and the load that drives it.
pub struct Scenario {
    pub name: &'static str,
    /// `echochat serve` options beyond ports and log dir.
    pub ours: Vec<&'static str>,
    /// The reference server (`None`: compare echochat setups instead).
    pub reference: Option<Reference>,
    /// A second echochat setup compared against `ours` (when no reference).
    pub alt: Option<(&'static str, Vec<&'static str>)>,
    pub load: Load,
}

#[derive(Clone, Copy)]
pub enum Reference {
    TokioEcho,
    /// The tokio echo server plus the exit word (echo the `exit` line, then
    /// close), which `echochat load connect` relies on.
    TokioEchoExit,
    TokioChat,
    /// Not a server: a minimal echo client (one send and one recv per
    /// message, nothing else) against echochat, beside `echochat load`.
    MinimalClient,
}

impl Reference {
    pub fn label(self) -> &'static str {
        match self {
            Reference::TokioEcho => "tokio echo",
            Reference::TokioEchoExit => "tokio echo+exit",
            Reference::TokioChat => "tokio chat",
            Reference::MinimalClient => "minimal client",
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
}

impl Load {
    /// Memory rows: measured once, not alternated.
    pub fn is_idle(&self) -> bool {
        matches!(self, Load::Idle { .. } | Load::IdleJoined { .. })
    }
}

fn echo(clients: usize, size: &'static str, secs: u64) -> Load {
    Load::Echo {
        clients,
        size,
        secs,
    }
}

fn row(name: &'static str, reference: Reference, load: Load) -> Scenario {
    Scenario {
        name,
        ours: vec!["--log-level", "info"],
        reference: Some(reference),
        alt: None,
        load,
    }
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

pub fn all() -> Vec<Scenario> {
    use Reference::{MinimalClient, TokioChat, TokioEcho, TokioEchoExit};
    let mut all = vec![
        row("echo-1k-1", TokioEcho, echo(1, "1KiB", 4)),
        row("echo-1k-50", TokioEcho, echo(50, "1KiB", 4)),
        row("echo-1k-500-info", TokioEcho, echo(500, "1KiB", 5)),
        Scenario {
            ours: vec!["--log-level", "debug"],
            ..row("echo-1k-500-debug", TokioEcho, echo(500, "1KiB", 5))
        },
        row("echo-1k-2000", TokioEcho, echo(2000, "1KiB", 5)),
        row("load-vs-minimal-500", MinimalClient, echo(500, "1KiB", 4)),
        Scenario {
            name: "echo-64k-50-chunk",
            ours: vec!["--log-level", "info", "--read-chunk", "64KiB"],
            reference: None,
            alt: Some((
                "read-chunk 1KiB",
                vec!["--log-level", "info", "--read-chunk", "1KiB"],
            )),
            load: echo(50, "64KiB", 4),
        },
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
            reference: None,
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
    all
}
