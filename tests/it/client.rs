//! The interactive clients, run as users run them: the built binary in a
//! pipe (or with a file or /dev/null on stdin) against the real
//! `echochat serve` on loopback. Stdout must carry exactly the payload;
//! lifecycle messages go to stderr; failures are one `error:` line and
//! exit code 1.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{DEADLINE, Server, User, bin, english_locale, wait_until};

/// What the client's stdin is.
pub(crate) enum Input {
    /// A pipe we write these bytes into, then close.
    Pipe(Vec<u8>),
    /// A regular file (epoll refuses those: the client's fallback path).
    File(PathBuf),
    /// `/dev/null`: end of input at once.
    Null,
}

/// A finished client run.
pub(crate) struct Run {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
}

/// Runs `echochat ARGS` with `input` on stdin and waits (with a deadline)
/// for it to exit; the client is killed and the test fails if it hangs.
/// It runs in the C locale, so its messages are English unless `--lang`.
#[track_caller]
pub(crate) fn run_client(args: &[&str], input: Input) -> Run {
    run_client_env(args, input, &[])
}

/// [`run_client`] with these environment variables set (after the C
/// locale), e.g. `LANG=uk_UA.UTF-8`.
#[track_caller]
pub(crate) fn run_client_env(args: &[&str], input: Input, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    english_locale(&mut cmd);
    cmd.envs(env.iter().copied());
    let mut feed = None;
    match input {
        Input::Pipe(bytes) => {
            cmd.stdin(Stdio::piped());
            feed = Some(bytes);
        }
        Input::File(path) => {
            cmd.stdin(File::open(path).expect("open input file"));
        }
        Input::Null => {
            cmd.stdin(Stdio::null());
        }
    }
    let mut child = cmd.spawn().expect("spawn echochat client");
    // Writer and readers run in threads: a client echoing a large input
    // fills the stdout pipe while we are still writing its stdin.
    let writer = feed.map(|bytes| {
        let mut stdin = child.stdin.take().unwrap();
        thread::spawn(move || {
            // The client may stop reading early (after `exit`): a broken
            // pipe here is expected, not a failure.
            let _ = stdin.write_all(&bytes);
        })
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    if let Some(w) = writer {
        w.join().unwrap();
    }
    let stdout = out_reader.join().unwrap();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    let Some(status) = status else {
        panic!("client did not exit in time; stderr so far:\n{stderr}");
    };
    Run {
        status,
        stdout,
        stderr,
    }
}

fn port_arg(addr: SocketAddr) -> String {
    addr.port().to_string()
}

/// `n` bytes covering every byte value, with no line that is `exit` (so
/// the echo client sends all of it).
fn binary_payload(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    let data: Vec<u8> = (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    assert!(
        !data.windows(6).any(|w| w == b"\nexit\n") && !data.starts_with(b"exit\n"),
        "payload must not contain the exit line"
    );
    data
}

#[test]
fn echo_in_a_pipe_prints_exactly_hi() {
    let server = Server::builder().no_chat().start();
    let addr = server.echo_addr();
    let run = run_client(
        &["echo", "--port", &port_arg(addr)],
        Input::Pipe(b"hi\n".to_vec()),
    );
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert_eq!(run.stdout, b"hi\n", "stderr:\n{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("connected to {addr} from 127.0.0.1:"))
    );
    assert!(run.stderr.contains("sent 3 bytes"), "{}", run.stderr);
    assert!(run.stderr.contains("received 3 bytes"), "{}", run.stderr);
    assert!(
        run.stderr.contains("disconnected (end of input)"),
        "{}",
        run.stderr
    );
}

#[test]
fn echo_round_trips_a_large_binary_input() {
    let server = Server::builder().no_chat().start();
    let data = binary_payload(1 << 20);
    let run = run_client(
        &["echo", "--port", &port_arg(server.echo_addr())],
        Input::Pipe(data.clone()),
    );
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert_eq!(run.stdout.len(), data.len());
    assert!(run.stdout == data, "echoed bytes differ from the input");
    assert!(
        run.stderr
            .contains("sent 1048576 bytes, received 1048576 bytes in total"),
        "{}",
        run.stderr
    );
}

#[test]
fn echo_reads_a_regular_file_and_dev_null() {
    let server = Server::builder().no_chat().start();
    let port = port_arg(server.echo_addr());
    // A file on stdin cannot be registered with epoll (EPERM): the client
    // reads it in turn instead. The last line has no newline.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.bin");
    let mut data = binary_payload(300 * 1024);
    data.extend_from_slice(b"\nlast line, no newline");
    std::fs::write(&path, &data).unwrap();
    let run = run_client(&["echo", "--port", &port], Input::File(path));
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert!(run.stdout == data, "echoed file differs from the input");

    let run = run_client(&["echo", "--port", &port], Input::Null);
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("end of input"), "{}", run.stderr);
}

#[test]
fn typing_exit_ends_the_echo_session_cleanly() {
    let server = Server::builder().no_chat().start();
    let run = run_client(
        &["echo", "--port", &port_arg(server.echo_addr())],
        Input::Pipe(b"one\nexit\ntwo\n".to_vec()),
    );
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    // The server echoes the exit line like any other, then closes.
    assert_eq!(run.stdout, b"one\nexit\n", "stderr:\n{}", run.stderr);
    assert!(run.stderr.contains("you typed 'exit'"), "{}", run.stderr);
    // The server saw the exit word (not just our FIN).
    let line = server.wait_log("disconnect with reason=exit", |e| {
        e.is("disconnect", "service", "echo")
    });
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
}

#[test]
fn nobody_listening_is_one_error_line_and_exit_1() {
    // A port that was free a moment ago and now has no listener.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = run_client(&["echo", "--port", &port.to_string()], Input::Null);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    let line = errors[0];
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.contains("connection refused"), "{line}");
    assert!(line.contains("echochat serve"), "{line}");
}

#[test]
fn chat_in_a_pipe_registers_says_hello_and_leaves() {
    let server = Server::start();
    let addr = server.chat_addr();
    // bob is already in the room and watches what ann does.
    let mut bob = User::join(&server, 2, "bob", &mut []);

    let run = run_client(
        &["chat", "--port", &port_arg(addr)],
        Input::Pipe(b"ann\nhello\n".to_vec()),
    );
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("what is your name?"), "{stdout}");
    assert!(stdout.contains("* hello, ann"), "{stdout}");
    assert!(
        run.stderr.contains("disconnected (end of input)"),
        "{}",
        run.stderr
    );

    bob.expect("* ann joined");
    bob.expect("ann: hello");
    bob.expect("* ann left");
}

#[test]
fn chat_quits_at_the_name_prompt_and_on_quit() {
    let server = Server::start();
    let port = port_arg(server.chat_addr());
    // End of input before any name (the names file is still empty, so the
    // server asks): the client's `exit` disconnects at the name prompt.
    let run = run_client(&["chat", "--port", &port], Input::Null);
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert!(String::from_utf8_lossy(&run.stdout).contains("what is your name?"));
    assert!(
        run.stderr.contains("disconnected (end of input)"),
        "{}",
        run.stderr
    );
    // `/quit` after joining: nothing after it is sent.
    let run = run_client(
        &["chat", "--port", &port],
        Input::Pipe(b"cat\n/quit\nnever sent\n".to_vec()),
    );
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert!(run.stderr.contains("you typed '/quit'"), "{}", run.stderr);
    assert!(String::from_utf8_lossy(&run.stdout).contains("* hello, cat"));
    let exits = || {
        server.count_events(|e| {
            e.is("disconnect", "service", "chat") && e.get("reason") == Some("exit")
        })
    };
    wait_until("two chat disconnects with reason=exit", || exits() == 2);
}

#[test]
fn quiet_keeps_only_the_payload_and_errors() {
    let server = Server::builder().no_chat().start();
    let port = port_arg(server.echo_addr());
    let run = run_client(
        &["echo", "-q", "--port", &port],
        Input::Pipe(b"hi\n".to_vec()),
    );
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert_eq!(run.stdout, b"hi\n");
    assert_eq!(run.stderr, "", "-q prints no lifecycle message");
    // An error is still said, as one line.
    let free = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let run = run_client(&["echo", "--quiet", "--port", &free], Input::Null);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: cannot connect"),
        "{}",
        run.stderr
    );
}

#[test]
fn reset_makes_the_server_log_reason_reset() {
    let server = Server::start();
    // Echo: the reply is read first (a pipe still prints it), then RST.
    let run = run_client(
        &["echo", "--reset", "--port", &port_arg(server.echo_addr())],
        Input::Pipe(b"hi\n".to_vec()),
    );
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert_eq!(run.stdout, b"hi\n");
    assert!(run.stderr.contains("aborted with RST"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("half-closed"),
        "no FIN: {}",
        run.stderr
    );
    let line = server.wait_log("echo disconnect", |e| e.is("disconnect", "service", "echo"));
    assert_eq!(line.get("reason"), Some("reset"), "{line}");
    assert_eq!(line.get("bytes_in"), Some("3"), "{line}");

    // Chat: even `exit` typed is not sent; the room sees the user go.
    let mut bob = User::join(&server, 2, "bob", &mut []);
    let run = run_client(
        &["chat", "--reset", "--port", &port_arg(server.chat_addr())],
        Input::Pipe(b"ann\nhello\nexit\n".to_vec()),
    );
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert!(
        run.stderr.contains("with --reset it is not sent"),
        "{}",
        run.stderr
    );
    bob.expect("* ann joined");
    bob.expect("ann: hello");
    bob.expect("* ann left");
    let line = server.wait_log("chat disconnect", |e| e.is("disconnect", "service", "chat"));
    assert_eq!(line.get("reason"), Some("reset"), "{line}");
}

#[test]
fn framed_reset_is_logged_as_reset_too() {
    let server = Server::builder().no_chat().start();
    let run = run_client(
        &[
            "echo",
            "--framed",
            "--reset",
            "--port",
            &port_arg(server.addr("frame")),
        ],
        Input::Pipe(b"abc\n".to_vec()),
    );
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert_eq!(run.stdout, b"abc\n");
    let line = server.wait_log("frame disconnect", |e| {
        e.is("disconnect", "service", "frame")
    });
    assert_eq!(line.get("reason"), Some("reset"), "{line}");
}

#[test]
fn read_delay_makes_the_echo_server_pause_for_backlog() {
    let server = Server::builder()
        .no_chat()
        .args(["--max-backlog", "16KiB"])
        .start();
    let port = port_arg(server.echo_addr());
    let mut child = Command::new(bin())
        .args(["echo", "-q", "--read-delay", "20ms", "--port", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn echochat echo");
    // A flood on stdin, bounded: more than the loopback buffers hold, so
    // the server's unsent replies pass 16 KiB while the client reads 1 KiB
    // every 20 ms. The writer stops when the client is gone.
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        let line = [b"0123456789abcdef".repeat(4), b"\n".to_vec()].concat();
        let chunk = line.repeat(1000);
        let mut written = 0;
        while written < 32 << 20 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            written += chunk.len();
        }
    });
    let pause = server.wait_log("pause why=backlog for the slow reader", |e| {
        e.is("pause", "service", "echo")
    });
    assert_eq!(pause.get("why"), Some("backlog"), "{pause}");
    // Ending the lesson: the client we started is killed by its PID.
    let _ = child.kill();
    let _ = child.wait();
    writer.join().unwrap();
    let conn = pause.get("conn").unwrap_or_default().to_string();
    let bye = server.wait_log("the slow reader's disconnect", |e| {
        e.is("disconnect", "conn", &conn)
    });
    // Killed with unread data in its receive buffer: the kernel resets.
    assert_eq!(bye.get("reason"), Some("reset"), "{bye}");
}

#[test]
fn chat_is_not_noisy_around_every_line() {
    let server = Server::start();
    let mut input = b"quinn\n".to_vec();
    for i in 0..5 {
        input.extend_from_slice(format!("line {i}\n").as_bytes());
    }
    let run = run_client(
        &["chat", "--port", &port_arg(server.chat_addr())],
        Input::Pipe(input),
    );
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    let count = |prefix: &str| run.stderr.lines().filter(|l| l.starts_with(prefix)).count();
    // The first of each explains what a read and a write are; then only
    // the totals at the end.
    assert_eq!(count("-- sent "), 1, "{}", run.stderr);
    assert_eq!(count("-- received "), 1, "{}", run.stderr);
    assert!(
        run.stderr.lines().count() <= 7,
        "a handful of lines in all:\n{}",
        run.stderr
    );
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("-- disconnected (end of input)"), "{last}");
    assert!(last.ends_with("in total"), "{last}");
}
