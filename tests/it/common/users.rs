//! Chat users as the tests see them: a connection from a loopback address
//! of its own, and the steps every chat test repeats (greeting, joining,
//! expecting the next line).
//!
//! Each user connects from its own `127.0.0.N`: chat remembers names by
//! client IP, so users sharing `127.0.0.1` would be welcomed back under
//! each other's names and the tests would depend on join order.

use std::io::Write;
use std::net::TcpStream;

use super::net::{connect_from, read_line, read_to_eof};
use super::server::Server;

/// The first line a client whose IP the server does not know gets.
pub const GREETING: &str = "* welcome to echochat; what is your name?";

/// One chat connection.
pub struct User {
    pub s: TcpStream,
    /// For failure messages (and the name the user has, once joined).
    pub name: String,
}

impl User {
    /// Connects from `127.0.0.{host}` and reads nothing yet.
    #[track_caller]
    pub fn connect(server: &Server, host: u8) -> User {
        User {
            s: connect_from(server.chat_addr(), host, None),
            name: format!("127.0.0.{host}"),
        }
    }

    /// Connects and expects the name question.
    #[track_caller]
    pub fn at_prompt(server: &Server, host: u8) -> User {
        let mut u = User::connect(server, host);
        u.expect(GREETING);
        u
    }

    /// Connects from a fresh IP, answers the question with `name`, and
    /// checks that every user in `others` hears `* NAME joined`.
    #[track_caller]
    pub fn join(server: &Server, host: u8, name: &str, others: &mut [&mut User]) -> User {
        let mut u = User::at_prompt(server, host);
        u.send(name);
        u.expect(&format!("* hello, {name}"));
        u.name = name.to_string();
        for o in others.iter_mut() {
            o.expect(&format!("* {name} joined"));
        }
        u
    }

    pub fn send(&mut self, text: &str) {
        self.send_raw(format!("{text}\n").as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write to server");
    }

    /// The next line (fails on timeout or EOF).
    #[track_caller]
    pub fn line(&mut self) -> String {
        read_line(&mut self.s)
    }

    /// The next line must be `want`.
    #[track_caller]
    pub fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{} got an unexpected line", self.name);
    }

    /// The next line must start with `prefix`; returns it.
    #[track_caller]
    pub fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.line();
        assert!(
            got.starts_with(prefix),
            "{} expected a line starting {prefix:?}, got {got:?}",
            self.name
        );
        got
    }

    /// Asks `/who` and returns the reply, which must be the very next line:
    /// so nothing else was queued for this user before it.
    #[track_caller]
    pub fn who(&mut self) -> String {
        self.send("/who");
        self.expect_prefix("* online: ")
    }

    /// The server closed the connection and sent nothing more.
    #[track_caller]
    pub fn expect_eof(&mut self) {
        let rest = read_to_eof(&mut self.s);
        assert!(
            rest.is_empty(),
            "{} expected EOF, got {:?}",
            self.name,
            String::from_utf8_lossy(&rest)
        );
    }

    /// This connection's local address, as the server logs it in `peer=`.
    pub fn peer(&self) -> String {
        self.s.local_addr().unwrap().to_string()
    }
}

/// The usual start of a chat test: one user per name joins, from
/// `127.0.0.2`, `127.0.0.3`, ... in order, and each earlier user hears
/// every later one join. `let [mut ann, mut ben] = room(&server, ["ann", "ben"]);`
#[track_caller]
pub fn room<const N: usize>(server: &Server, names: [&str; N]) -> [User; N] {
    let mut users: Vec<User> = Vec::with_capacity(N);
    for (i, name) in names.into_iter().enumerate() {
        let host = u8::try_from(2 + i).expect("at most 253 users from 127.0.0.2 on");
        let mut others: Vec<&mut User> = users.iter_mut().collect();
        let u = User::join(server, host, name, &mut others);
        users.push(u);
    }
    match users.try_into() {
        Ok(all) => all,
        Err(_) => unreachable!("N users were pushed"),
    }
}
