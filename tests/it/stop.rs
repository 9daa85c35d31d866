//! Stopping (DESIGN.md, "Stopping"): SIGTERM, SIGINT and `exit` on the
//! console each stop the server gracefully, exit 0 with `stop` logged, and
//! connected clients get EOF with `reason=shutdown`.

use std::io::Write;

use crate::common::*;

/// The last line of the log must be `stop reason=WANT`.
#[track_caller]
fn assert_stopped(server: &Server, want: &str) {
    let events = server.events();
    let last = events.last().expect("log is empty");
    assert_eq!(
        last.event,
        "stop",
        "last line is not stop:\n{}",
        server.log()
    );
    assert_eq!(last.get("reason"), Some(want), "{last:?}");
    assert!(last.get("uptime").is_some(), "{last:?}");
    assert_eq!(events.iter().filter(|e| e.event == "stop").count(), 1);
}

/// Waits for the server to exit and checks the code is 0.
#[track_caller]
fn assert_exits_0(server: &mut Server) {
    let status = server.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?} stderr={}",
        server.stderr_text()
    );
}

#[test]
fn sigterm_exits_0_with_stop_logged() {
    let mut server = Server::builder().no_chat().start();
    server.signal(libc::SIGTERM);
    assert_exits_0(&mut server);
    assert_stopped(&server, "signal");
}

#[test]
fn sigint_exits_0_with_stop_logged() {
    let mut server = Server::builder().no_chat().start();
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit().code(), Some(0));
    assert_stopped(&server, "signal");
}

#[test]
fn console_exit_stops_the_server() {
    let mut server = Server::builder().no_chat().start();
    server.console("exit");
    assert_exits_0(&mut server);
    assert_stopped(&server, "console");
}

#[test]
fn end_of_console_input_does_not_stop_the_server() {
    let mut server = Server::builder().no_chat().start();
    server.close_console(); // EOF on the server's stdin
    // Still serving after it noticed (a round trip through the loop).
    let mut s = connect(server.echo_addr());
    s.write_all(b"still up\n").unwrap();
    assert_eq!(read_line(&mut s), "still up");
    assert!(server.is_running(), "server exited on stdin EOF");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0));
}

#[test]
fn connected_client_gets_eof_and_reason_shutdown() {
    let mut server = Server::builder().no_chat().start();
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    s.write_all(b"before stop\n").unwrap();
    assert_eq!(read_line(&mut s), "before stop");
    server.signal(libc::SIGTERM);
    assert!(read_to_eof(&mut s).is_empty(), "bytes after the stop");
    assert_eq!(server.wait_exit().code(), Some(0));
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("shutdown"), "{line}");
    assert_stopped(&server, "signal");
}

#[test]
fn listener_is_closed_after_stop() {
    let mut server = Server::builder().no_chat().start();
    let addr = server.echo_addr();
    server.console("exit");
    assert_eq!(server.wait_exit().code(), Some(0));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting on {addr} after exit"
    );
}

/// The `listening` line tells a supervisor (or a test) the server is up; a
/// SIGTERM sent right after it must already be a graceful stop, not the
/// default action of the signal (death by signal, no `stop` logged).
#[test]
fn sigterm_right_after_the_listening_line_is_graceful() {
    for round in 0..5 {
        let mut server = Server::builder().no_chat().start();
        server.signal(libc::SIGTERM);
        let status = server.wait_exit();
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}: {status:?} (killed by the signal before its handler was installed?)"
        );
        assert_stopped(&server, "signal");
    }
}
