//! What the clients tell their user on stderr — connected, sent N bytes,
//! received N bytes, disconnected and why — in the `--lang` language, and
//! who prints it ([`Tell`], which `-q` silences).
//!
//! Every message is one [`Msg`] variant with its values, and
//! [`Msg::text`] has its three versions side by side (`lang/mod.rs` says
//! why tables in code). Counts go through [`Count`], so a message says
//! `1 byte` and `2 bytes`, `1 байт`, `2 байти`, `5 байтів`.
//!
//! Stdout is never written here: it carries only the payload, so the
//! clients work in a pipe.

use std::fmt::Display;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use crate::lang::{Count, DATAGRAM, Form, Lang, READ, REPLY, bytes, tr};

/// Why a TCP session ended, as the final message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// The user typed `exit` or `/quit`.
    Typed(&'static str),
    /// Standard input ended.
    EndOfInput,
    /// The server closed first.
    Server,
}

/// One lifecycle message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Msg {
    Connected {
        peer: SocketAddr,
        local: SocketAddr,
    },
    HintEcho,
    HintChat,
    OfferToken,
    TokenSaved {
        path: String,
    },
    TokenNotSaved {
        error: String,
    },
    TokenRefused,
    PasswordUnread {
        error: String,
    },
    /// `first`: the first one of the session explains what a read is.
    Received {
        n: u64,
        first: bool,
    },
    Sent {
        n: u64,
        first: bool,
    },
    QuitTyped {
        word: &'static str,
    },
    /// `--reset`: the quit word is not sent; the connection is aborted.
    QuitTypedReset {
        word: &'static str,
    },
    IgnoredAfterQuit {
        n: u64,
        word: &'static str,
    },
    EndOfInput,
    EndOfInputChat,
    StdinClosed,
    HalfClosed,
    Disconnected {
        why: Why,
        sent: u64,
        received: u64,
    },
    ResetClose {
        sent: u64,
        received: u64,
    },
    SlowReader {
        delay: Duration,
    },
    PromptHost,
    PromptPort {
        service: &'static str,
    },
    BadPort {
        answer: String,
    },
    UdpOpened {
        local: SocketAddr,
        peer: SocketAddr,
    },
    UdpHintEcho,
    DatagramTooLong {
        max: usize,
    },
    UdpExit,
    UdpSent {
        n: u64,
    },
    UdpNoReply {
        secs: u64,
    },
    UdpDone {
        sent: u64,
        replies: u64,
    },
    UdpReceived {
        n: u64,
    },
    UdpIgnored {
        n: u64,
    },
    UdpChatHint,
    UdpJoined,
    UdpLeft,
    UdpForgotten,
    UdpDropped,
    PromptName,
    PromptPassword {
        name: String,
    },
    UdpEndBeforeJoin,
    UdpLeaving,
    UdpKeepalive,
    UdpNoGoodbye,
    UdpSendBufferFull,
    FramedConnected {
        peer: SocketAddr,
    },
    FramedHint,
    LineTooLong {
        max: usize,
    },
    FramedExit,
    FramedSent {
        total: u64,
        len: u64,
    },
    FramedReceived {
        len: u64,
        reads: u64,
    },
    FramedDisconnected,
}

impl Msg {
    /// The message in `lang`, without the `-- ` prefix.
    pub(super) fn text(&self, lang: Lang) -> String {
        let b = |n: u64| bytes(lang, n);
        match self {
            Msg::Connected { peer, local } => tr!(
                lang,
                "connected to {peer} from {local} (the TCP handshake is done: connect() returned)",
                "підключено до {peer} з {local} (TCP-рукостискання завершено: connect() повернув керування)",
                "подключено к {peer} с {local} (TCP-рукопожатие завершено: connect() вернул управление)",
            ),
            Msg::HintEcho => tr!(
                lang,
                "type lines to send them; 'exit' or Ctrl-D disconnects",
                "вводьте рядки, щоб надіслати їх; 'exit' або Ctrl-D — відключитися",
                "вводите строки, чтобы отправить их; 'exit' или Ctrl-D — отключиться",
            ),
            Msg::HintChat => tr!(
                lang,
                "type lines to chat; /help lists commands; 'exit' or /quit leaves",
                "пишіть рядки в чат; /help — список команд; 'exit' або /quit — вийти",
                "пишите строки в чат; /help — список команд; 'exit' или /quit — выйти",
            ),
            Msg::OfferToken => tr!(
                lang,
                "offering the session token saved for this server (no password needed while it is valid)",
                "надсилаємо токен сесії, збережений для цього сервера (поки він дійсний, пароль не потрібен)",
                "отправляем токен сессии, сохранённый для этого сервера (пока он действителен, пароль не нужен)",
            ),
            Msg::TokenSaved { path } => tr!(
                lang,
                "saved the session token in {path}; next time this client logs in by itself",
                "токен сесії збережено в {path}; наступного разу клієнт увійде сам",
                "токен сессии сохранён в {path}; в следующий раз клиент войдёт сам",
            ),
            Msg::TokenNotSaved { error } => tr!(
                lang,
                "could not save the session token: {error}",
                "не вдалося зберегти токен сесії: {error}",
                "не удалось сохранить токен сессии: {error}",
            ),
            Msg::TokenRefused => tr!(
                lang,
                "the saved token was refused (it expired or was ended), so it is forgotten; type your name",
                "збережений токен відхилено (строк минув або сесію завершено), його забуто; введіть ім'я",
                "сохранённый токен отклонён (истёк или сессия завершена), он забыт; введите имя",
            ),
            Msg::PasswordUnread { error } => tr!(
                lang,
                "could not read the password from the terminal: {error}",
                "не вдалося прочитати пароль з терміналу: {error}",
                "не удалось прочитать пароль с терминала: {error}",
            ),
            Msg::Received { n, first: true } => {
                let got = ru_past(*n, "получен", "получено");
                let n = b(*n);
                tr!(
                    lang,
                    "received {n} (read() returned what had arrived; TCP may split or join what was sent, so reads need not match lines)",
                    "отримано {n} (read() повернув те, що вже надійшло; TCP може розбивати й склеювати дані, тож читання не обов'язково збігаються з рядками)",
                    "{got} {n} (read() вернул то, что уже пришло; TCP может разбивать и склеивать данные, так что чтения не обязаны совпадать со строками)",
                )
            }
            Msg::Received { n, first: false } => {
                let got = ru_past(*n, "получен", "получено");
                let n = b(*n);
                tr!(lang, "received {n}", "отримано {n}", "{got} {n}")
            }
            Msg::Sent { n, first: true } => {
                let sent = ru_past(*n, "отправлен", "отправлено");
                let n = b(*n);
                tr!(
                    lang,
                    "sent {n} (write() copied them into the kernel's send buffer; TCP delivers them)",
                    "надіслано {n} (write() скопіював їх у буфер надсилання ядра; доставляє їх TCP)",
                    "{sent} {n} (write() скопировал их в буфер отправки ядра; доставляет их TCP)",
                )
            }
            Msg::Sent { n, first: false } => {
                let sent = ru_past(*n, "отправлен", "отправлено");
                let n = b(*n);
                tr!(lang, "sent {n}", "надіслано {n}", "{sent} {n}")
            }
            Msg::QuitTyped { word } => tr!(
                lang,
                "you typed '{word}': sending it, then nothing more",
                "ви ввели '{word}': надсилаємо його, і більше нічого",
                "вы ввели '{word}': отправляем его, и больше ничего",
            ),
            Msg::QuitTypedReset { word } => tr!(
                lang,
                "you typed '{word}': with --reset it is not sent; the connection is aborted instead",
                "ви ввели '{word}': з --reset його не надсилаємо, а обриваємо з'єднання",
                "вы ввели '{word}': с --reset его не отправляем, а обрываем соединение",
            ),
            Msg::IgnoredAfterQuit { n, word } => {
                let dropped = ru_past(*n, "отброшен", "отброшено");
                let n = b(*n);
                tr!(
                    lang,
                    "ignoring {n} of input after '{word}'",
                    "після '{word}' відкинуто ще {n} введення",
                    "после '{word}' {dropped} ещё {n} ввода",
                )
            }
            Msg::EndOfInput => tr!(
                lang,
                "end of input: nothing more to send",
                "кінець введення: більше нічого надсилати",
                "конец ввода: больше нечего отправлять",
            ),
            Msg::EndOfInputChat => tr!(
                lang,
                "end of input: sending 'exit' to leave the room",
                "кінець введення: надсилаємо 'exit', щоб вийти з чату",
                "конец ввода: отправляем 'exit', чтобы выйти из чата",
            ),
            Msg::StdinClosed => tr!(
                lang,
                "stdin is not open; treating it as end of input",
                "stdin не відкрито; вважаємо це кінцем введення",
                "stdin не открыт; считаем это концом ввода",
            ),
            Msg::HalfClosed => tr!(
                lang,
                "half-closed: shutdown(SHUT_WR) sent our FIN, so the server sees end of input; still reading until it closes",
                "напівзакрито: shutdown(SHUT_WR) надіслав наш FIN, сервер бачить кінець даних; читаємо, доки він не закриє",
                "полузакрыто: shutdown(SHUT_WR) отправил наш FIN, сервер видит конец данных; читаем, пока он не закроет",
            ),
            Msg::Disconnected {
                why,
                sent,
                received,
            } => {
                let why = why_text(lang, *why);
                let ru_s = ru_past(*sent, "отправлен", "отправлено");
                let ru_r = ru_past(*received, "получен", "получено");
                let (s, r) = (b(*sent), b(*received));
                tr!(
                    lang,
                    "disconnected ({why}): the server closed the connection (read() returned 0: its FIN arrived); sent {s}, received {r} in total",
                    "відключено ({why}): сервер закрив з'єднання (read() повернув 0: прийшов його FIN); усього надіслано {s}, отримано {r}",
                    "отключено ({why}): сервер закрыл соединение (read() вернул 0: пришёл его FIN); всего {ru_s} {s}, {ru_r} {r}",
                )
            }
            Msg::ResetClose { sent, received } => {
                let ru_s = ru_past(*sent, "отправлен", "отправлено");
                let ru_r = ru_past(*received, "получен", "получено");
                let (s, r) = (b(*sent), b(*received));
                tr!(
                    lang,
                    "aborted with RST (--reset: SO_LINGER 0, then close()), no FIN: the server logs reason=reset; sent {s}, received {r} in total",
                    "з'єднання обірвано через RST (--reset: SO_LINGER 0, потім close()), без FIN: сервер запише reason=reset; усього надіслано {s}, отримано {r}",
                    "соединение оборвано через RST (--reset: SO_LINGER 0, затем close()), без FIN: сервер запишет reason=reset; всего {ru_s} {s}, {ru_r} {r}",
                )
            }
            Msg::SlowReader { delay } => {
                let d = humantime::format_duration(*delay);
                tr!(
                    lang,
                    "--read-delay {d}: a slow reader, one read of at most 1 KiB every {d}; unread replies fill the buffers",
                    "--read-delay {d}: повільний читач, одне читання (до 1 КіБ) раз на {d}; непрочитані відповіді заповнюють буфери",
                    "--read-delay {d}: медленный читатель, одно чтение (до 1 КиБ) раз в {d}; непрочитанные ответы заполняют буферы",
                )
            }
            Msg::PromptHost => tr!(lang, "server host", "хост сервера", "хост сервера"),
            Msg::PromptPort { service } => tr!(
                lang,
                "{service} port",
                "порт служби {service}",
                "порт службы {service}",
            ),
            Msg::BadPort { answer } => tr!(
                lang,
                "'{answer}' is not a port: type a number from 1 to 65535",
                "'{answer}' — не порт: введіть число від 1 до 65535",
                "'{answer}' — не порт: введите число от 1 до 65535",
            ),
            Msg::UdpOpened { local, peer } => tr!(
                lang,
                "UDP socket {local} -> {peer}: connect() only noted the server's address; no handshake, nothing sent yet",
                "UDP-сокет {local} -> {peer}: connect() лише запам'ятав адресу сервера; рукостискання немає, нічого ще не надіслано",
                "UDP-сокет {local} -> {peer}: connect() только запомнил адрес сервера; рукопожатия нет, ничего ещё не отправлено",
            ),
            Msg::UdpHintEcho => tr!(
                lang,
                "type lines: each is sent as one datagram; 'exit' or Ctrl-D stops",
                "вводьте рядки: кожен іде однією датаграмою; 'exit' або Ctrl-D — завершити",
                "вводите строки: каждая уходит одной датаграммой; 'exit' или Ctrl-D — завершить",
            ),
            // "over N bytes" takes the genitive plural in Ukrainian and
            // Russian whatever N is, so no `Count` here.
            Msg::DatagramTooLong { max } => tr!(
                lang,
                "a line over {max} bytes cannot be one UDP datagram; not sent",
                "рядок довший за {max} байтів не вміщується в одну UDP-датаграму; не надіслано",
                "строка длиннее {max} байт не помещается в одну UDP-датаграмму; не отправлена",
            ),
            Msg::UdpExit => tr!(
                lang,
                "you typed 'exit': nothing to close, since UDP has no connection",
                "ви ввели 'exit': закривати нічого, адже в UDP немає з'єднання",
                "вы ввели 'exit': закрывать нечего, ведь в UDP нет соединения",
            ),
            Msg::UdpSent { n } => {
                let sent = ru_past(*n, "отправлен", "отправлено");
                let n = b(*n);
                tr!(
                    lang,
                    "sent {n} in one datagram",
                    "надіслано {n} однією датаграмою",
                    "{sent} {n} одной датаграммой",
                )
            }
            Msg::UdpNoReply { secs } => tr!(
                lang,
                "no reply within {secs} s: the datagram or its echo was lost, and UDP does not resend",
                "відповіді немає за {secs} с: датаграму або її відлуння втрачено, а UDP не надсилає повторно",
                "ответа нет за {secs} с: датаграмма или её эхо потеряны, а UDP не отправляет повторно",
            ),
            Msg::UdpDone { sent, replies } => {
                // Ukrainian and Russian put the counts after a label
                // ("датаграм: 3"), where no case agreement is needed.
                let lost = sent.saturating_sub(*replies);
                let s = Count(lang, *sent, &DATAGRAM);
                let r = Count(lang, *replies, &REPLY);
                tr!(
                    lang,
                    "done: sent {s}, got {r}; lost: {lost}",
                    "готово: надіслано датаграм: {sent}, відповідей: {replies}, втрачено: {lost}",
                    "готово: отправлено датаграмм: {sent}, ответов: {replies}, потеряно: {lost}",
                )
            }
            Msg::UdpReceived { n } => {
                let got = ru_past(*n, "получен", "получено");
                let n = b(*n);
                tr!(
                    lang,
                    "received {n}: one datagram, the whole reply",
                    "отримано {n}: одна датаграма, уся відповідь",
                    "{got} {n}: одна датаграмма, весь ответ",
                )
            }
            Msg::UdpIgnored { n } => {
                let n = b(*n);
                tr!(
                    lang,
                    "ignored a datagram ({n}) that is not this line's echo (a late reply?)",
                    "пропущено датаграму ({n}): це не відлуння цього рядка (запізніла відповідь?)",
                    "пропущена датаграмма ({n}): это не эхо этой строки (запоздавший ответ?)",
                )
            }
            Msg::UdpChatHint => tr!(
                lang,
                "over UDP the server asks nothing: the first line you type is your name (/join NAME)",
                "через UDP сервер нічого не питає: перший введений рядок — ваше ім'я (/join NAME)",
                "по UDP сервер ничего не спрашивает: первая введённая строка — ваше имя (/join NAME)",
            ),
            Msg::UdpJoined => tr!(
                lang,
                "joined: the server now knows our address; no connection exists",
                "приєдналися: тепер сервер знає нашу адресу; з'єднання немає",
                "присоединились: теперь сервер знает наш адрес; соединения нет",
            ),
            Msg::UdpLeft => tr!(
                lang,
                "left the room; no connection to close",
                "вийшли з чату; з'єднання закривати не треба",
                "вышли из чата; соединение закрывать не нужно",
            ),
            Msg::UdpForgotten => tr!(
                lang,
                "the server no longer knows us (we were silent too long, or it restarted)",
                "сервер нас більше не знає (ми надто довго мовчали або його перезапущено)",
                "сервер нас больше не знает (мы слишком долго молчали или его перезапустили)",
            ),
            Msg::UdpDropped => tr!(
                lang,
                "the server dropped us from the room",
                "сервер вилучив нас із чату",
                "сервер удалил нас из чата",
            ),
            Msg::PromptName => tr!(lang, "your name: ", "ваше ім'я: ", "ваше имя: "),
            Msg::PromptPassword { name } => tr!(
                lang,
                "password for {name} (not shown): ",
                "пароль для {name} (не показується): ",
                "пароль для {name} (не отображается): ",
            ),
            Msg::UdpEndBeforeJoin => tr!(
                lang,
                "end of input before joining: nothing more to do",
                "кінець введення до приєднання: більше нічого робити",
                "конец ввода до присоединения: больше делать нечего",
            ),
            Msg::UdpLeaving => tr!(
                lang,
                "leaving: sending /leave (no FIN over UDP: the server must be told)",
                "виходимо: надсилаємо /leave (у UDP немає FIN: серверу треба сказати)",
                "выходим: отправляем /leave (в UDP нет FIN: серверу надо сказать)",
            ),
            Msg::UdpKeepalive => tr!(
                lang,
                "sending an empty datagram so the server knows we are still here",
                "надсилаємо порожню датаграму, щоб сервер знав, що ми ще тут",
                "отправляем пустую датаграмму, чтобы сервер знал, что мы ещё здесь",
            ),
            Msg::UdpNoGoodbye => tr!(
                lang,
                "no goodbye came (lost?); leaving anyway",
                "прощання не прийшло (втрачено?); однаково виходимо",
                "прощание не пришло (потеряно?); всё равно выходим",
            ),
            Msg::UdpSendBufferFull => tr!(
                lang,
                "the socket's send buffer is full: this datagram is dropped",
                "буфер надсилання сокета повний: цю датаграму відкинуто",
                "буфер отправки сокета полон: эта датаграмма отброшена",
            ),
            Msg::FramedConnected { peer } => tr!(
                lang,
                "connected to {peer} (the TCP handshake is done); each line goes out as a 4-byte length + its bytes",
                "підключено до {peer} (TCP-рукостискання завершено); кожен рядок іде як 4-байтова довжина + його байти",
                "подключено к {peer} (TCP-рукопожатие завершено); каждая строка уходит как 4-байтовая длина + её байты",
            ),
            Msg::FramedHint => tr!(
                lang,
                "type lines to send them as messages with a length header; 'exit' or Ctrl-D disconnects",
                "вводьте рядки, щоб надіслати їх повідомленнями із заголовком довжини; 'exit' або Ctrl-D — відключитися",
                "вводите строки, чтобы отправить их сообщениями с заголовком длины; 'exit' или Ctrl-D — отключиться",
            ),
            Msg::LineTooLong { max } => tr!(
                lang,
                "a line over {max} bytes is not sent",
                "рядок довший за {max} байтів не надсилається",
                "строка длиннее {max} байт не отправляется",
            ),
            Msg::FramedExit => tr!(
                lang,
                "you typed 'exit': closing the connection",
                "ви ввели 'exit': закриваємо з'єднання",
                "вы ввели 'exit': закрываем соединение",
            ),
            Msg::FramedSent { total, len } => {
                let sent = ru_past(*total, "отправлен", "отправлено");
                let (t, n) = (b(*total), b(*len));
                tr!(
                    lang,
                    "sent {t}: a header saying {len} and the line's {n}",
                    "надіслано {t}: заголовок зі значенням {len} і {n} рядка",
                    "{sent} {t}: заголовок со значением {len} и {n} строки",
                )
            }
            Msg::FramedReceived { len, reads } => {
                let (n, r) = (b(*len), Count(lang, *reads, &READ));
                tr!(
                    lang,
                    "received one message of {n} in {r}: the header said where it ends",
                    "отримано одне повідомлення ({n}) за {r}: заголовок сказав, де воно закінчується",
                    "получено одно сообщение ({n}) за {r}: заголовок сказал, где оно кончается",
                )
            }
            Msg::FramedDisconnected => tr!(
                lang,
                "disconnected: the server closed its side too",
                "відключено: сервер теж закрив свій бік з'єднання",
                "отключено: сервер тоже закрыл свою сторону соединения",
            ),
        }
    }
}

/// A Russian past participle agreeing with a count of bytes: `получен
/// 1 байт`, `получено 2 байта`, `получено 5 байт` (the neuter form is
/// right for every count but those ending in 1). Ukrainian's `-но` form
/// (`отримано 1 байт`) agrees with any count.
fn ru_past(n: u64, one: &'static str, other: &'static str) -> &'static str {
    if Form::of(Lang::Ru, n) == Form::One {
        one
    } else {
        other
    }
}

fn why_text(lang: Lang, why: Why) -> String {
    match why {
        Why::Typed(word) => tr!(
            lang,
            "you typed '{word}'",
            "ви ввели '{word}'",
            "вы ввели '{word}'"
        ),
        Why::EndOfInput => tr!(lang, "end of input", "кінець введення", "конец ввода"),
        Why::Server => tr!(
            lang,
            "the server ended it",
            "сервер завершив сеанс",
            "сервер завершил сеанс"
        ),
    }
}

/// Prints lifecycle messages on stderr, in one language; `-q` silences
/// them (errors are `main`'s, and prompts are questions, not messages: they
/// are never silenced).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tell {
    pub(crate) lang: Lang,
    pub(crate) quiet: bool,
}

impl Tell {
    /// `-- message` on stderr, unless quiet.
    pub(super) fn say(self, msg: Msg) {
        if !self.quiet {
            eprintln!("-- {}", msg.text(self.lang));
        }
    }

    /// A question on stderr without a newline (the answer is typed after
    /// it), shown even when quiet.
    pub(super) fn ask(self, question: impl Display) {
        eprint!("{question}");
        let _ = std::io::stderr().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// One of each message, with everyday values.
    fn samples() -> Vec<Msg> {
        let (peer, local) = (addr("127.0.0.1:7000"), addr("127.0.0.1:51234"));
        vec![
            Msg::Connected { peer, local },
            Msg::HintEcho,
            Msg::HintChat,
            Msg::OfferToken,
            Msg::TokenSaved {
                path: "/home/a/.config/echochat/tokens.tsv".into(),
            },
            Msg::TokenNotSaved { error: "x".into() },
            Msg::TokenRefused,
            Msg::PasswordUnread { error: "x".into() },
            Msg::Received { n: 3, first: true },
            Msg::Received { n: 3, first: false },
            Msg::Sent { n: 3, first: true },
            Msg::Sent { n: 3, first: false },
            Msg::QuitTyped { word: "exit" },
            Msg::QuitTypedReset { word: "/quit" },
            Msg::IgnoredAfterQuit { n: 4, word: "exit" },
            Msg::EndOfInput,
            Msg::EndOfInputChat,
            Msg::StdinClosed,
            Msg::HalfClosed,
            Msg::Disconnected {
                why: Why::Typed("exit"),
                sent: 3,
                received: 3,
            },
            Msg::Disconnected {
                why: Why::EndOfInput,
                sent: 1,
                received: 1,
            },
            Msg::Disconnected {
                why: Why::Server,
                sent: 0,
                received: 0,
            },
            Msg::ResetClose {
                sent: 3,
                received: 3,
            },
            Msg::SlowReader {
                delay: Duration::from_millis(100),
            },
            Msg::PromptHost,
            Msg::PromptPort { service: "echo" },
            Msg::BadPort {
                answer: "abc".into(),
            },
            Msg::UdpOpened { local, peer },
            Msg::UdpHintEcho,
            Msg::DatagramTooLong { max: 65_507 },
            Msg::UdpExit,
            Msg::UdpSent { n: 3 },
            Msg::UdpNoReply { secs: 2 },
            Msg::UdpDone {
                sent: 3,
                replies: 2,
            },
            Msg::UdpReceived { n: 3 },
            Msg::UdpIgnored { n: 3 },
            Msg::UdpChatHint,
            Msg::UdpJoined,
            Msg::UdpLeft,
            Msg::UdpForgotten,
            Msg::UdpDropped,
            Msg::PromptName,
            Msg::PromptPassword { name: "ann".into() },
            Msg::UdpEndBeforeJoin,
            Msg::UdpLeaving,
            Msg::UdpKeepalive,
            Msg::UdpNoGoodbye,
            Msg::UdpSendBufferFull,
            Msg::FramedConnected { peer },
            Msg::FramedHint,
            Msg::LineTooLong { max: 16 << 20 },
            Msg::FramedExit,
            Msg::FramedSent { total: 7, len: 3 },
            Msg::FramedReceived { len: 3, reads: 1 },
            Msg::FramedDisconnected,
        ]
    }

    #[test]
    fn every_message_is_one_line_and_translated() {
        for msg in samples() {
            let en = msg.text(Lang::En);
            assert!(!en.is_empty() && !en.contains('\n'), "{msg:?}");
            for lang in [Lang::Uk, Lang::Ru] {
                let t = msg.text(lang);
                assert!(!t.contains('\n'), "{t}");
                // Prompts that are the same words in both ("хост
                // сервера") still differ from English.
                assert_ne!(t, en, "{msg:?} is not translated to {lang:?}");
            }
        }
    }

    #[test]
    fn sent_and_received_take_their_plural_form() {
        let sent = |lang, n| Msg::Sent { n, first: false }.text(lang);
        let got = |lang, n| Msg::Received { n, first: false }.text(lang);
        assert_eq!(sent(Lang::En, 1), "sent 1 byte");
        assert_eq!(sent(Lang::En, 3), "sent 3 bytes");
        assert_eq!(got(Lang::En, 0), "received 0 bytes");
        assert_eq!(sent(Lang::Uk, 1), "надіслано 1 байт");
        assert_eq!(sent(Lang::Uk, 2), "надіслано 2 байти");
        assert_eq!(got(Lang::Uk, 5), "отримано 5 байтів");
        assert_eq!(got(Lang::Uk, 21), "отримано 21 байт");
        assert_eq!(sent(Lang::Ru, 1), "отправлен 1 байт");
        assert_eq!(got(Lang::Ru, 21), "получен 21 байт");
        assert_eq!(sent(Lang::Ru, 2), "отправлено 2 байта");
        assert_eq!(got(Lang::Ru, 5), "получено 5 байт");
        assert_eq!(got(Lang::Ru, 12), "получено 12 байт");
    }

    #[test]
    fn totals_and_datagrams_too() {
        let done = Msg::Disconnected {
            why: Why::EndOfInput,
            sent: 1,
            received: 2,
        };
        assert!(
            done.text(Lang::En)
                .ends_with("sent 1 byte, received 2 bytes in total")
        );
        assert!(
            done.text(Lang::Uk)
                .ends_with("усього надіслано 1 байт, отримано 2 байти")
        );
        assert!(
            done.text(Lang::Ru)
                .ends_with("всего отправлен 1 байт, получено 2 байта")
        );
        let udp = Msg::UdpDone {
            sent: 1,
            replies: 5,
        };
        assert_eq!(
            udp.text(Lang::En),
            "done: sent 1 datagram, got 5 replies; lost: 0"
        );
        assert_eq!(
            udp.text(Lang::Uk),
            "готово: надіслано датаграм: 1, відповідей: 5, втрачено: 0"
        );
        let framed = Msg::FramedReceived { len: 2, reads: 1 };
        assert!(framed.text(Lang::En).contains("of 2 bytes in 1 read:"));
        assert!(framed.text(Lang::Ru).contains("(2 байта) за 1 чтение"));
    }
}
