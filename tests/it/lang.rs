//! `--lang` (DESIGN.md, "echochat serve" and "Clients"): what echochat says
//! to people — `--explain` sentences, `--trace` lines, the clients'
//! lifecycle messages — in English, Ukrainian or Russian, by option or from
//! the locale; the log file and the wire stay English whatever the language.

use crate::client::{Input, run_client, run_client_env};
use crate::common::*;

/// The console line after the first stdout line containing `event_text`.
fn sentence_after(server: &Server, event_text: &str) -> Option<String> {
    let out = server.stdout_text();
    let mut lines = out.lines();
    while let Some(line) = lines.next() {
        if line.contains(event_text) {
            return lines.next().map(str::to_string);
        }
    }
    None
}

#[track_caller]
fn wait_sentence(server: &Server, event_text: &str) -> String {
    let mut found = None;
    wait_until(&format!("an --explain line after '{event_text}'"), || {
        found = sentence_after(server, event_text);
        found.is_some()
    });
    found.unwrap_or_default()
}

#[test]
fn explain_in_ukrainian_on_the_server_console_while_the_log_stays_english() {
    let server = Server::builder()
        .no_chat()
        .args(["--explain", "--lang", "uk"])
        .start();
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    let peer = s.local_addr().unwrap();
    assert_eq!(send_and_finish(&mut s, b"hi\n"), b"hi\n");
    let c = conn.to_string();
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("eof"), "{line}");

    let accept = wait_sentence(&server, &format!(" accept service=echo conn={c} "));
    assert_eq!(
        accept.trim(),
        format!(
            "-> accept() повернув новий сокет для {peer}; його стан зберігається в комірці slab 0"
        ),
    );
    let bye = wait_sentence(&server, &format!(" disconnect service=echo conn={c} "));
    assert!(
        bye.contains("recv() повернув 0: клієнт надіслав FIN"),
        "{bye}"
    );
    // The log file: the same events, in English, by the contract's grammar
    // (every line was parsed strictly on the way here).
    let events: Vec<String> = server
        .events()
        .into_iter()
        .filter(|e| e.get("conn") == Some(c.as_str()))
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events.first().map(String::as_str),
        Some("accept"),
        "{events:?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("disconnect"),
        "{events:?}"
    );
    assert!(
        !server.log().contains("з'єднання"),
        "the log file must stay English"
    );
}

#[test]
fn explain_in_russian_with_plural_bytes_at_debug() {
    let server = Server::builder()
        .no_chat()
        .args(["--explain", "--lang", "ru", "--console-level", "debug"])
        .start();
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    // One byte, so the sentence needs the singular form.
    assert_eq!(send_and_finish(&mut s, b"x"), b"x");
    server.wait_disconnect(conn);
    let recv = wait_sentence(&server, &format!(" recv service=echo conn={conn} "));
    assert!(
        recv.contains("recv() скопировал 1 байт из буфера приёма сокета"),
        "{recv}"
    );
    let send = wait_sentence(&server, &format!(" send service=echo conn={conn} "));
    assert!(
        send.contains("send() скопировал 1 байт в буфер отправки"),
        "{send}"
    );
    let start = wait_sentence(&server, " start version=");
    assert!(start.contains("процесс запущен"), "{start}");
}

#[test]
fn trace_lines_in_ukrainian() {
    let server = Server::builder()
        .no_chat()
        .args(["--trace", "--lang", "uk"])
        .start();
    let mut s = connect(server.echo_addr());
    assert_eq!(send_and_finish(&mut s, b"hi\n"), b"hi\n");
    wait_until("a --trace line of a turn that read", || {
        server
            .stdout_text()
            .lines()
            .any(|l| l.starts_with("ітерація ") && !l.contains("прочитано 0"))
    });
    let out = server.stdout_text();
    let line = out
        .lines()
        .find(|l| l.starts_with("ітерація "))
        .unwrap_or_default();
    assert!(line.contains(": poll чекав "), "{line}");
    assert!(line.contains("; ітерація тривала "), "{line}");
    assert!(!out.contains("turn "), "no English trace lines:\n{out}");
}

#[test]
fn the_default_language_comes_from_the_locale() {
    // No --lang: LC_ALL, then LC_MESSAGES, then LANG decide. Shown with
    // the client's messages, which follow the same rule as the server's.
    let server = Server::builder().no_chat().start();
    let port = server.echo_addr().port().to_string();
    let run = |env: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec!["echo", "--port", &port];
        args.extend_from_slice(extra);
        let out = run_client_env(&args, Input::Pipe(b"hi\n".to_vec()), env);
        assert!(out.status.success(), "{:?}\n{}", out.status, out.stderr);
        assert_eq!(out.stdout, b"hi\n", "the payload is not translated");
        out.stderr
    };
    let uk = run(&[("LANG", "uk_UA.UTF-8")], &[]);
    assert!(uk.contains("-- підключено до "), "{uk}");
    assert!(uk.contains("-- надіслано 3 байти"), "{uk}");
    let ru = run(
        &[("LANG", "uk_UA.UTF-8"), ("LC_MESSAGES", "ru_RU.UTF-8")],
        &[],
    );
    assert!(ru.contains("-- подключено к "), "{ru}");
    assert!(ru.contains("-- отправлено 3 байта"), "{ru}");
    let all = run(&[("LC_MESSAGES", "ru_RU.UTF-8"), ("LC_ALL", "C")], &[]);
    assert!(all.contains("-- connected to "), "{all}");
    let option = run(&[("LANG", "ru_RU.UTF-8")], &["--lang", "en"]);
    assert!(option.contains("-- sent 3 bytes"), "{option}");
}

#[test]
fn client_messages_take_plural_forms_and_keep_their_order() {
    let server = Server::builder().no_chat().start();
    let port = server.echo_addr().port().to_string();
    // (language, what one byte sent is called, the end-of-input line, the
    // totals)
    let cases = [
        (
            "en",
            "-- sent 1 byte (",
            "-- end of input:",
            "sent 1 byte, received 1 byte in total",
        ),
        (
            "uk",
            "-- надіслано 1 байт (",
            "-- кінець введення:",
            "усього надіслано 1 байт, отримано 1 байт",
        ),
        (
            "ru",
            "-- отправлен 1 байт (",
            "-- конец ввода:",
            "всего отправлен 1 байт, получен 1 байт",
        ),
    ];
    for (lang, sent, end, totals) in cases {
        // One byte, no newline: "1 byte"; and the end of input is read in
        // the same turn as the byte, before it is sent (the ordering case
        // of issue 9, item 10).
        let out = run_client(
            &["echo", "--port", &port, "--lang", lang],
            Input::Pipe(b"x".to_vec()),
        );
        assert!(out.status.success(), "{:?}\n{}", out.status, out.stderr);
        assert_eq!(out.stdout, b"x");
        let err = out.stderr;
        let lines: Vec<&str> = err.lines().collect();
        let at = |prefix: &str| {
            lines
                .iter()
                .position(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{lang}: no line starting {prefix:?} in\n{err}"))
        };
        assert!(
            at(sent) < at(end),
            "{lang}: sent before end of input:\n{err}"
        );
        assert!(
            lines.last().is_some_and(|l| l.ends_with(totals)),
            "{lang}: totals last:\n{err}"
        );
        assert!(!err.contains("1 bytes"), "{err}");
    }
}
