//! The reference servers, run in a child process of the bench (the bench
//! re-executes itself with [`ENV`] set): a textbook tokio echo server and
//! a tokio chat server in the style of tokio's `examples/chat.rs`; and
//! [`c_udp_echo`], a minimal C UDP echo server (`benches/ref/udp_echo.c`)
//! compiled with the machine's `cc` when the bench first needs it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Set (to `echo` or `chat`) in a child process: serve that reference.
pub const ENV: &str = "ECHOCHAT_BENCH_REFERENCE";

/// The C UDP echo server, compiled (`cc -O2`) beside the bench's own
/// executable under `target/` when missing or older than its source.
pub fn c_udp_echo() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ref/udp_echo.c");
    let exe = std::env::current_exe().expect("bench path");
    let bin = exe.with_file_name("udp_echo_ref");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&bin) < modified(&src) {
        let status = Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .expect("run cc (the C reference needs a C compiler)");
        assert!(status.success(), "cc failed on {}", src.display());
    }
    bin
}

pub fn serve(kind: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("{kind} listening on {}", listener.local_addr().unwrap());
        match kind {
            "echo" => echo(listener).await,
            "echo-exit" => echo_exit(listener).await,
            _ => chat(listener).await,
        }
    });
}

/// Accept forever, one task per connection running `serve`.
async fn accept_each<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(serve(socket));
    }
}

/// The textbook tokio echo server: a task per connection, 1 KiB reads.
async fn echo(listener: TcpListener) {
    accept_each(listener, |mut socket: TcpStream| async move {
        let mut buf = vec![0u8; 1024];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await
}

/// The textbook echo server plus echochat's exit word: a line that is
/// exactly `exit` is echoed, then the connection closes (so the server,
/// not the client, keeps the TIME_WAIT, as with echochat).
async fn echo_exit(listener: TcpListener) {
    accept_each(listener, |mut socket: TcpStream| async move {
        let mut buf = vec![0u8; 1024];
        // The current line so far, while it could still be `exit`.
        let mut line = Vec::with_capacity(8);
        let mut could_be_exit = true;
        loop {
            let n = match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut end = n;
            let mut close = false;
            for (i, &b) in buf[..n].iter().enumerate() {
                if b == b'\n' {
                    if could_be_exit && line == b"exit" {
                        (end, close) = (i + 1, true);
                        break;
                    }
                    line.clear();
                    could_be_exit = true;
                } else if could_be_exit && line.len() < 4 {
                    line.push(b);
                } else {
                    could_be_exit = false;
                }
            }
            if socket.write_all(&buf[..end]).await.is_err() || close {
                return;
            }
        }
    })
    .await
}

type Peers = Arc<Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<String>>>>;

/// In the style of tokio's examples/chat.rs: shared map of peers, an
/// unbounded queue per peer, a String per delivered line.
async fn chat(listener: TcpListener) {
    let peers: Peers = Arc::new(Mutex::new(HashMap::new()));
    loop {
        let Ok((socket, addr)) = listener.accept().await else {
            continue;
        };
        let peers = Arc::clone(&peers);
        tokio::spawn(async move {
            let _ = peer(socket, addr, peers).await;
        });
    }
}

async fn peer(socket: TcpStream, addr: SocketAddr, peers: Peers) -> std::io::Result<()> {
    let _ = socket.set_nodelay(true);
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(b"* welcome to echochat; what is your name?\n")
        .await?;
    let Some(name) = lines.next_line().await? else {
        return Ok(());
    };
    let name = name.trim().to_string();
    write
        .write_all(format!("* hello, {name}\n").as_bytes())
        .await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    broadcast(&peers, addr, &format!("* {name} joined"));
    peers.lock().unwrap().insert(addr, tx);
    let writer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    while let Ok(Some(line)) = lines.next_line().await {
        broadcast(&peers, addr, &format!("{name}: {line}"));
    }
    peers.lock().unwrap().remove(&addr);
    broadcast(&peers, addr, &format!("* {name} left"));
    writer.abort();
    Ok(())
}

fn broadcast(peers: &Peers, from: SocketAddr, msg: &str) {
    for (addr, tx) in peers.lock().unwrap().iter() {
        if *addr != from {
            let _ = tx.send(format!("{msg}\n"));
        }
    }
}
