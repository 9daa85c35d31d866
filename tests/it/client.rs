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

use crate::common::{DEADLINE, Server, User, bin, wait_until};

/// What the client's stdin is.
enum Input {
    /// A pipe we write these bytes into, then close.
    Pipe(Vec<u8>),
    /// A regular file (epoll refuses those: the client's fallback path).
    File(PathBuf),
    /// `/dev/null`: end of input at once.
    Null,
}

/// A finished client run.
struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `echochat ARGS` with `input` on stdin and waits (with a deadline)
/// for it to exit; the client is killed and the test fails if it hangs.
#[track_caller]
fn run_client(args: &[&str], input: Input) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
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
