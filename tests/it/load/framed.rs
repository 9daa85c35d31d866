//! `echochat load echo --framed` against the real framed echo service:
//! every reply one frame equal to what was sent, `--size` payload bytes
//! plus the 4-byte header on the wire — checked from the server's side
//! too — also when the server reads 100 bytes at a time and reassembles
//! each message from pieces.

use super::common::Server;
use super::{load, load_json, n};

/// A server whose framed echo reads `--read-chunk CHUNK`; its address.
fn frame_server(chunk: &str) -> (Server, std::net::SocketAddr) {
    let server = Server::builder()
        .no_chat()
        .args(["--read-chunk", chunk])
        .start();
    let addr = server.addr("frame");
    (server, addr)
}

/// The `bytes_in` and `bytes_out` of every framed-echo disconnect.
fn frame_disconnects(server: &Server) -> Vec<(u64, u64)> {
    server
        .events()
        .iter()
        .filter(|e| e.event == "disconnect" && e.get("service") == Some("frame"))
        .map(|e| {
            let get = |k| e.get(k).and_then(|v| v.parse().ok()).expect(k);
            (get("bytes_in"), get("bytes_out"))
        })
        .collect()
}

#[test]
fn framed_echo_verifies_every_frame_and_sends_the_size_asked() {
    // The server reads 100 bytes at a time: each 1,004-byte frame is
    // reassembled from eleven pieces before it is answered.
    let (server, addr) = frame_server("100");
    let v = load_json(&format!(
        "echo --framed --port {} --clients 4 --threads 2 --size 1000 --duration 1s",
        addr.port()
    ));
    assert_eq!(v["scenario"], "echo");
    assert_eq!(v["framed"], true, "{v}");
    assert_eq!(n(&v, "size"), 1000);
    assert_eq!(n(&v, "connected"), 4, "{v}");
    assert_eq!(n(&v, "served"), 4, "{v}");
    assert_eq!(n(&v, "verify_errors"), 0, "{v}");
    assert_eq!(n(&v, "io_errors"), 0, "{v}");
    assert_eq!(n(&v, "incomplete"), 0, "{v}");
    let messages = n(&v, "messages");
    assert!(messages > 4, "{v}");
    // Payload is what was verified; the headers travel as well.
    assert_eq!(n(&v, "bytes"), messages * 1000);
    assert_eq!(n(&v, "bytes_sent"), messages * 1004);
    assert_eq!(n(&v, "bytes_received"), messages * 1004);
    // The server's side: four connections, each a whole number of
    // 1,004-byte frames in, the same out, adding up to what we sent.
    super::common::wait_until("four framed disconnects", || {
        frame_disconnects(&server).len() == 4
    });
    let conns = frame_disconnects(&server);
    for (bytes_in, bytes_out) in &conns {
        assert_eq!(bytes_in % 1004, 0, "{conns:?}");
        assert_eq!(bytes_in, bytes_out, "{conns:?}");
    }
    assert_eq!(conns.iter().map(|c| c.0).sum::<u64>(), messages * 1004);
    assert_eq!(server.log().matches("reason=bad-frame").count(), 0);
}

#[test]
fn framed_open_loop_and_large_frames_sent_in_pieces() {
    // 200 KiB frames do not fit a socket buffer: the reply starts before
    // the message is all sent, and arrives in many reads.
    let (_server, addr) = frame_server("64KiB");
    let v = load_json(&format!(
        "echo --framed --port {} --clients 2 --size 200KiB --rate 40 --duration 1s",
        addr.port()
    ));
    assert_eq!(n(&v, "verify_errors"), 0, "{v}");
    assert_eq!(n(&v, "io_errors"), 0, "{v}");
    assert_eq!(v["rate"], 40.0, "{v}");
    let messages = n(&v, "messages");
    assert!(messages >= 20, "{v}");
    assert_eq!(n(&v, "bytes"), messages * 200 * 1024);
}

#[test]
fn framed_human_summary_and_the_plain_port_are_told_apart() {
    let (server, addr) = frame_server("16KiB");
    let out = load(&format!(
        "echo --framed --port {} --clients 2 --size 64 --duration 500ms",
        addr.port()
    ));
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("echochat load echo --framed -> "),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 clients, 64 B messages in frames (+4 B header), closed loop"),
        "{stdout}"
    );
    assert!(
        stdout.contains("errors:      0 verification, 0 io"),
        "{stdout}"
    );
    assert!(stdout.lines().count() <= 8, "{stdout}");

    // Plain messages sent to the framed port by mistake: their first four
    // bytes read as a header announcing more than --max-frame, so the
    // server closes (reason=bad-frame) and the run fails.
    let out = load(&format!(
        "echo --port {} --clients 1 --size 64 --duration 500ms",
        addr.port()
    ));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    server.wait_log("a bad-frame disconnect", |e| {
        e.is("disconnect", "reason", "bad-frame")
    });
}
