//! The `--explain` sentences: one plain sentence per event, saying what
//! happened at the socket level, for a class watching the console — in the
//! `--lang` language (English, Ukrainian or Russian; `lang/mod.rs` says how
//! translations are kept).
//!
//! They live together here, one `match` arm per event with its three
//! versions side by side, so a sentence cannot be added in one language and
//! forgotten in another, and the events themselves carry no text. Each
//! sentence stays within 100 characters with everyday values in every
//! language (a test below checks), so it fits one line of a projector.
//!
//! A sentence must be true on every path that logs its event: `leave` is
//! logged when a user quits (the others were told first), after a reset or
//! idle `disconnect`, and at shutdown (when nobody is told); `resume`
//! follows an echo backlog or a chat rate pause. Where the paths differ,
//! the sentence says what holds for all of them, or the arm splits on a
//! field that tells them apart.

use super::{AuthHow, AuthResult, Direction, DisconnectReason, Event, PauseWhy, UdpLeaveReason};
use crate::lang::{self, Lang, bytes, tr};

/// The sentence for `event` in the language set for the process
/// (`lang::set_current`).
pub(super) fn sentence(event: &Event) -> Option<String> {
    Some(sentence_in(lang::current(), event))
}

/// The sentence for `event` in `lang`.
pub(super) fn sentence_in(lang: Lang, event: &Event) -> String {
    match event {
        Event::Start { .. } => tr!(
            lang,
            "the process started; no socket is open yet",
            "процес запущено; жодного сокета ще не відкрито",
            "процесс запущен; ни один сокет ещё не открыт",
        ),
        Event::Listen { service, .. } if service.starts_with("udp-") => tr!(
            lang,
            "socket() and bind() on UDP: no listen(), no accept(), no connections; datagrams just arrive",
            "socket() і bind() для UDP: без listen() і accept(), без з'єднань; датаграми просто надходять",
            "socket() и bind() для UDP: без listen() и accept(), без соединений; датаграммы просто приходят",
        ),
        Event::Listen { addr, .. } => tr!(
            lang,
            "socket(), bind() and listen() worked: the kernel now queues handshakes on {addr}",
            "socket(), bind() і listen() виконано: тепер ядро ставить у чергу підключення до {addr}",
            "socket(), bind() и listen() выполнены: теперь ядро ставит в очередь подключения к {addr}",
        ),
        Event::BindRetry { addr, .. } => tr!(
            lang,
            "bind() to {addr} failed (port taken or not allowed), so the next port is tried",
            "bind() до {addr} не вдався (порт зайнятий або заборонений), пробуємо наступний порт",
            "bind() к {addr} не удался (порт занят или запрещён), пробуем следующий порт",
        ),
        Event::Accept { peer, slot, .. } => tr!(
            lang,
            "accept() returned a new socket for {peer}; its state lives in slab slot {slot}",
            "accept() повернув новий сокет для {peer}; його стан зберігається в комірці slab {slot}",
            "accept() вернул новый сокет для {peer}; его состояние хранится в ячейке slab {slot}",
        ),
        Event::Recv {
            service: "frame",
            bytes: n,
            ..
        } => {
            let n = bytes(lang, *n);
            tr!(
                lang,
                "recv() gave {n}: part of a message or parts of two; the length headers split them",
                "recv() дав {n}: частину повідомлення або частини двох; їх розділяють заголовки довжини",
                "recv() дал {n}: часть сообщения или части двух; их разделяют заголовки длины",
            )
        }
        Event::Recv { bytes: n, .. } => {
            let n = bytes(lang, *n);
            tr!(
                lang,
                "recv() copied {n} from the socket's receive buffer; it never waits for more",
                "recv() скопіював {n} з буфера прийому сокета, не чекаючи решти",
                "recv() скопировал {n} из буфера приёма сокета, не дожидаясь остального",
            )
        }
        Event::Send { bytes: n, .. } => {
            let n = bytes(lang, *n);
            tr!(
                lang,
                "send() copied {n} into the kernel's send buffer; TCP takes it from there",
                "send() скопіював {n} у буфер надсилання ядра; далі справа за TCP",
                "send() скопировал {n} в буфер отправки ядра; дальше дело за TCP",
            )
        }
        Event::Traffic { suppressed: s, .. } => tr!(
            lang,
            "recv/send lines past --log-traffic-rate were only counted ({s}); this line sums the second",
            "рядки recv/send понад --log-traffic-rate лише пораховано ({s}); цей рядок підсумовує секунду",
            "строки recv/send сверх --log-traffic-rate только посчитаны ({s}); эта строка — итог секунды",
        ),
        Event::Pause {
            why: PauseWhy::Backlog,
            ..
        } => tr!(
            lang,
            "the client is not reading its replies, so the server stops reading it (backpressure)",
            "клієнт не читає відповіді, тож сервер перестає читати його (зворотний тиск, backpressure)",
            "клиент не читает ответы, поэтому сервер перестаёт читать его (обратное давление, backpressure)",
        ),
        Event::Pause {
            why: PauseWhy::Rate,
            ..
        } => tr!(
            lang,
            "this user sends faster than --chat-rate, so the server stops reading it for a while",
            "цей користувач пише частіше за --chat-rate, тож сервер на час перестає його читати",
            "этот пользователь пишет чаще --chat-rate, поэтому сервер на время перестаёт его читать",
        ),
        // Chat pauses only for the rate; echo and framed echo only for
        // the backlog.
        Event::Resume {
            service: "chat", ..
        } => tr!(
            lang,
            "the user's --chat-rate allowance refilled, so the server reads it again",
            "ліміт --chat-rate користувача відновився, тож сервер знову його читає",
            "лимит --chat-rate пользователя восстановился, поэтому сервер снова его читает",
        ),
        Event::Resume { .. } => tr!(
            lang,
            "its unsent replies drained to half of --max-backlog, so the server reads it again",
            "його ненадіслані відповіді зменшилися до половини --max-backlog: сервер знову його читає",
            "его неотправленные ответы уменьшились до половины --max-backlog: сервер снова его читает",
        ),
        Event::Disconnect { reason, .. } => disconnect(lang, *reason),
        Event::Request { status, .. } => tr!(
            lang,
            "an HTTP request head arrived on this connection; the server answered {status}",
            "цим з'єднанням надійшов заголовок HTTP-запиту; сервер відповів {status}",
            "по этому соединению пришёл заголовок HTTP-запроса; сервер ответил {status}",
        ),
        // A name chosen at the prompt, welcomed back, or logged in with a
        // password or a token: all are joins.
        Event::Join { name, .. } => tr!(
            lang,
            "{name} is in the room: from now on its lines go to the others",
            "{name} у чаті: відтепер його рядки отримують інші",
            "{name} в чате: теперь его строки получают остальные",
        ),
        Event::Leave { name, .. } => tr!(
            lang,
            "{name} is out of the room; unless the server is stopping, the others see '* {name} left'",
            "{name} більше не в чаті; якщо сервер не зупиняється, інші бачать '* {name} left'",
            "{name} больше не в чате; если сервер не останавливается, остальные видят '* {name} left'",
        ),
        Event::Nick { old, new, .. } => tr!(
            lang,
            "{old} is now called {new}; the others were told",
            "{old} тепер зветься {new}; інших повідомлено",
            "{old} теперь зовётся {new}; остальным сообщили",
        ),
        Event::Auth { how, result, .. } => auth(lang, *how, *result),
        Event::Datagram {
            dir: Direction::In, ..
        } => tr!(
            lang,
            "recvfrom() gave one whole datagram and its sender: no connection, no accept, no byte stream",
            "recvfrom() дав одну цілу датаграму та її відправника: без з'єднання, accept і потоку байтів",
            "recvfrom() дал одну целую датаграмму и её отправителя: без соединения, accept и потока байтов",
        ),
        Event::Datagram {
            dir: Direction::Out,
            ..
        } => tr!(
            lang,
            "sendto() sent one datagram: if it is lost, nobody resends it; datagrams may arrive out of order",
            "sendto() надіслав одну датаграму: якщо її втрачено, ніхто не повторить; порядок не гарантовано",
            "sendto() отправил одну датаграмму: если она потеряется, никто не повторит; порядок не гарантирован",
        ),
        Event::UdpJoin { .. } => tr!(
            lang,
            "a /join datagram made this address a member: UDP has no connection, only a known address",
            "датаграма /join зробила цю адресу учасником: у UDP немає з'єднання, лише відома адреса",
            "датаграмма /join сделала этот адрес участником: в UDP нет соединения, только известный адрес",
        ),
        Event::UdpLeave {
            reason: UdpLeaveReason::Idle,
            ..
        } => tr!(
            lang,
            "UDP has no FIN: a member is known gone only when it stays silent too long",
            "у UDP немає FIN: що учасник пішов, видно лише з того, що він надто довго мовчить",
            "в UDP нет FIN: что участник ушёл, видно только по тому, что он слишком долго молчит",
        ),
        Event::UdpLeave {
            reason: UdpLeaveReason::Shutdown,
            ..
        } => tr!(
            lang,
            "the server is stopping: UDP members were told so, and their addresses are forgotten",
            "сервер зупиняється: учасникам UDP про це сказано, їхні адреси забуто",
            "сервер останавливается: участникам UDP об этом сказано, их адреса забыты",
        ),
        Event::UdpLeave { name, .. } => tr!(
            lang,
            "{name} left; no connection to close: the server forgets the address",
            "{name} виходить; з'єднання закривати не треба: сервер забуває адресу",
            "{name} выходит; соединение закрывать не нужно: сервер забывает адрес",
        ),
        Event::Stop { .. } => tr!(
            lang,
            "the server is exiting: its listening sockets and connections are closed",
            "сервер завершує роботу: сокети прослуховування та з'єднання закрито",
            "сервер завершает работу: слушающие сокеты и соединения закрыты",
        ),
        // `--log-keep 0`: the old lines were not kept anywhere.
        Event::Rotate { file } if file == "(deleted)" => tr!(
            lang,
            "the log file reached its size or age limit; with --log-keep 0 its old lines were deleted",
            "лог-файл досяг межі розміру або віку; з --log-keep 0 його старі рядки видалено",
            "лог-файл достиг предела размера или возраста; с --log-keep 0 его старые строки удалены",
        ),
        Event::Rotate { file } => tr!(
            lang,
            "the log file reached its size or age limit: its lines moved to {file}; a fresh file goes on",
            "лог-файл досяг межі розміру або віку: рядки перенесено до {file}; далі новий файл",
            "лог-файл достиг предела размера или возраста: строки перенесены в {file}; дальше новый файл",
        ),
        Event::Reopen { file } => tr!(
            lang,
            "SIGUSR1 asked to reopen the log: lines now go to the file named {file}",
            "SIGUSR1 попросив заново відкрити лог: тепер рядки йдуть у файл {file}",
            "SIGUSR1 попросил заново открыть лог: теперь строки идут в файл {file}",
        ),
        Event::LogError { lost: 0, .. } => tr!(
            lang,
            "the log could not be rotated for a while, but no line was lost; serving went on",
            "лог деякий час не вдавалося ротувати, але жоден рядок не втрачено; робота тривала",
            "лог какое-то время не удавалось ротировать, но ни одна строка не потеряна; работа шла",
        ),
        Event::LogError { lost, .. } => tr!(
            lang,
            "the log could not be written for a while (lines lost: {lost}); serving went on",
            "лог деякий час не записувався (втрачено рядків: {lost}); обслуговування тривало",
            "лог какое-то время не записывался (потеряно строк: {lost}); обслуживание продолжалось",
        ),
        Event::AcceptError { .. } => tr!(
            lang,
            "accept() failed (often: out of descriptors); the server waits for one, not spinning",
            "accept() не вдався (часто: скінчилися дескриптори); сервер чекає, не крутячись вхолосту",
            "accept() не удался (часто: кончились дескрипторы); сервер ждёт, не крутясь вхолостую",
        ),
        Event::AcceptResume { .. } => tr!(
            lang,
            "a descriptor is free again, so the server accepts new connections again",
            "дескриптор знову вільний, тож сервер знову приймає нові з'єднання",
            "дескриптор снова свободен, поэтому сервер снова принимает новые соединения",
        ),
        Event::Limit {
            max_clients: max,
            nofile,
            ..
        } => tr!(
            lang,
            "each connection needs a descriptor and only {nofile} are allowed: --max-clients {max}",
            "кожне з'єднання потребує дескриптора, а дозволено лише {nofile}: --max-clients {max}",
            "каждому соединению нужен дескриптор, а разрешено только {nofile}: --max-clients {max}",
        ),
        Event::Console { .. } => tr!(
            lang,
            "a line typed on the server's stdin, watched like a socket, went to every chat user",
            "рядок, введений у stdin сервера (за ним стежать, як за сокетом), пішов усім у чаті",
            "строка, введённая в stdin сервера (за ним следят, как за сокетом), ушла всем в чате",
        ),
        Event::Warning { what, .. } => warning(lang, what),
    }
}

/// Why a connection ended, in a sentence.
fn disconnect(lang: Lang, reason: DisconnectReason) -> String {
    match reason {
        DisconnectReason::Eof => tr!(
            lang,
            "recv() returned 0: the peer sent FIN, so after what it was owed the server closed too",
            "recv() повернув 0: клієнт надіслав FIN, тож сервер дослав належне й теж закрив з'єднання",
            "recv() вернул 0: клиент прислал FIN, поэтому сервер дослал положенное и тоже закрыл соединение",
        ),
        DisconnectReason::Reset => tr!(
            lang,
            "the peer reset the connection (TCP RST): it vanished without a goodbye",
            "клієнт скинув з'єднання (TCP RST): зник, не попрощавшись",
            "клиент сбросил соединение (TCP RST): исчез, не попрощавшись",
        ),
        DisconnectReason::Exit => tr!(
            lang,
            "the client asked to leave, so the server closed after sending what it was owed",
            "клієнт попросив завершити, тож сервер дослав належне й закрив з'єднання",
            "клиент попросил завершить, поэтому сервер дослал положенное и закрыл соединение",
        ),
        DisconnectReason::Idle => tr!(
            lang,
            "no bytes moved for --idle-timeout, so the server closed it to free its descriptor",
            "за --idle-timeout не пройшло жодного байта, тож сервер закрив з'єднання й звільнив дескриптор",
            "за --idle-timeout не прошло ни байта, поэтому сервер закрыл соединение и освободил дескриптор",
        ),
        DisconnectReason::Backlog => tr!(
            lang,
            "the client stopped reading and its unsent data passed --max-backlog, so it was dropped",
            "клієнт перестав читати, його ненадіслані дані перевищили --max-backlog, тож його відключено",
            "клиент перестал читать, его неотправленные данные превысили --max-backlog, и его отключили",
        ),
        DisconnectReason::Full => tr!(
            lang,
            "over --max-clients (or --max-per-ip): the client was told the server is full, and closed",
            "понад --max-clients (або --max-per-ip): клієнту сказано, що сервер заповнений, і з'єднання закрито",
            "сверх --max-clients (или --max-per-ip): клиенту сказано, что сервер заполнен, и соединение закрыто",
        ),
        DisconnectReason::Shutdown => tr!(
            lang,
            "the server is stopping, so it closed this connection",
            "сервер зупиняється, тож закрив це з'єднання",
            "сервер останавливается, поэтому закрыл это соединение",
        ),
        DisconnectReason::Kicked => tr!(
            lang,
            "the teacher removed this user from the server's console",
            "викладач вилучив цього користувача з консолі сервера",
            "преподаватель удалил этого пользователя с консоли сервера",
        ),
        DisconnectReason::BadFrame => tr!(
            lang,
            "the frame header announced more than --max-frame bytes: closed before reading them",
            "заголовок повідомлення оголосив більше за --max-frame байтів: закрито, не читаючи їх",
            "заголовок сообщения объявил больше --max-frame байт: закрыто, не читая их",
        ),
        DisconnectReason::Done => tr!(
            lang,
            "the HTTP answer was sent and the exchange is over",
            "HTTP-відповідь надіслано, обмін завершено",
            "HTTP-ответ отправлен, обмен завершён",
        ),
        DisconnectReason::Error => tr!(
            lang,
            "the socket reported an error, so the server closed it",
            "сокет повідомив про помилку, тож сервер його закрив",
            "сокет сообщил об ошибке, поэтому сервер его закрыл",
        ),
    }
}

/// What an account command cost, and where it ran.
fn auth(lang: Lang, how: AuthHow, result: AuthResult) -> String {
    match (how, result) {
        (_, AuthResult::Locked) => tr!(
            lang,
            "too many wrong passwords from this address: refused without hashing",
            "забагато неправильних паролів з цієї адреси: відмовлено без хешування",
            "слишком много неверных паролей с этого адреса: отказ без хеширования",
        ),
        (AuthHow::Token, _) => tr!(
            lang,
            "the token was checked by its SHA-256 on the loop's thread: a microsecond",
            "токен перевірено за його SHA-256 у потоці циклу: це мікросекунда",
            "токен проверен по его SHA-256 в потоке цикла: это микросекунда",
        ),
        (AuthHow::Logout, _) => tr!(
            lang,
            "this session's token ended; the user stays in the room",
            "токен цієї сесії скасовано; користувач лишається в чаті",
            "токен этой сессии аннулирован; пользователь остаётся в чате",
        ),
        _ => tr!(
            lang,
            "Argon2id ran on the worker thread while the loop served everyone; a Waker brought the answer",
            "Argon2id працював у робочому потоці, поки цикл обслуговував усіх; відповідь приніс Waker",
            "Argon2id работал в рабочем потоке, пока цикл обслуживал всех; ответ принёс Waker",
        ),
    }
}

/// A trouble the server survives, by its `what=`.
fn warning(lang: Lang, what: &str) -> String {
    match what {
        "names-file" => tr!(
            lang,
            "a problem with the names file (see error=); the server goes on serving",
            "проблема з файлом імен (див. error=); сервер працює далі",
            "проблема с файлом имён (см. error=); сервер работает дальше",
        ),
        "accounts-file" => tr!(
            lang,
            "a problem with the accounts file (see error=); the server goes on serving",
            "проблема з файлом облікових записів (див. error=); сервер працює далі",
            "проблема с файлом учётных записей (см. error=); сервер работает дальше",
        ),
        "register" => tr!(
            lang,
            "epoll would not watch the new socket, so it was closed; the server goes on",
            "epoll відмовився стежити за новим сокетом, тож його закрито; сервер працює далі",
            "epoll отказался следить за новым сокетом, поэтому его закрыли; сервер работает дальше",
        ),
        _ => tr!(
            lang,
            "something failed that the server survives (see error=); it goes on serving",
            "щось не вдалося, але сервер це переживе (див. error=); він працює далі",
            "что-то не удалось, но сервер это переживёт (см. error=); он работает дальше",
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::{AuthHow, AuthResult, Direction, StopReason};

    /// One of each event with everyday values (IPv6 peers, five-digit
    /// ports, a 12-character name).
    fn samples() -> Vec<Event> {
        let peer = "[::1]:51234".parse().unwrap();
        let name = "alexandra_01".to_string();
        let mut v = vec![
            Event::Start {
                version: "0.1.0",
                pid: 4_194_304,
            },
            Event::Listen {
                service: "chat",
                addr: peer,
            },
            Event::BindRetry {
                service: "chat",
                addr: peer,
                error: "x".into(),
            },
            Event::Accept {
                service: "chat",
                conn: 123_456,
                slot: 10_000,
                peer,
            },
            Event::Recv {
                service: "echo",
                conn: 1,
                bytes: 16 << 20,
            },
            Event::Send {
                service: "echo",
                conn: 1,
                bytes: 16 << 20,
            },
            Event::Traffic {
                service: "echo",
                recv: 1,
                send: 1,
                bytes_in: 1,
                bytes_out: 1,
                conns: 1,
                suppressed: 1_000_000,
            },
            Event::Pause {
                service: "echo",
                conn: 1,
                why: PauseWhy::Backlog,
            },
            Event::Pause {
                service: "chat",
                conn: 1,
                why: PauseWhy::Rate,
            },
            Event::Resume {
                service: "echo",
                conn: 1,
            },
            Event::Request {
                service: "http",
                conn: 1,
                method: "GET".into(),
                path: "/".into(),
                status: 404,
                bytes: 1,
            },
            Event::Join {
                service: "chat",
                conn: 1,
                name: name.clone(),
            },
            Event::Leave {
                service: "chat",
                conn: 1,
                name: name.clone(),
            },
            Event::Nick {
                service: "chat",
                conn: 1,
                old: name.clone(),
                new: name.clone(),
            },
            Event::Auth {
                service: "chat",
                conn: 1,
                name: name.clone(),
                how: AuthHow::Register,
                result: AuthResult::Expired,
            },
            Event::Datagram {
                service: "udp-echo",
                peer,
                bytes: 65_507,
                dir: Direction::In,
            },
            Event::Datagram {
                service: "udp-chat",
                peer,
                bytes: 65_507,
                dir: Direction::Out,
            },
            Event::UdpJoin {
                peer,
                name: name.clone(),
            },
            Event::UdpLeave {
                peer,
                name: "abcdefghijklmnopqrstuvwxyz012345".into(),
                reason: UdpLeaveReason::Leave,
            },
            Event::UdpLeave {
                peer,
                name,
                reason: UdpLeaveReason::Idle,
            },
            Event::Listen {
                service: "udp-chat",
                addr: peer,
            },
            Event::Recv {
                service: "frame",
                conn: 1,
                bytes: 16 << 20,
            },
            Event::Stop {
                reason: StopReason::Signal,
                uptime: Duration::ZERO,
            },
            Event::Rotate {
                file: "echochat.log.1".into(),
            },
            Event::Reopen {
                file: "echochat.log".into(),
            },
            Event::LogError {
                error: "x".into(),
                lost: 1_000_000,
            },
            Event::AcceptError {
                service: "echo",
                error: "x".into(),
            },
            Event::AcceptResume { service: "echo" },
            Event::Limit {
                requested: 10_000,
                max_clients: 1_000_000,
                nofile: 1_048_576,
            },
            Event::Console { text: "hi".into() },
            Event::Resume {
                service: "chat",
                conn: 1,
            },
            Event::UdpLeave {
                peer,
                name: "abc".into(),
                reason: UdpLeaveReason::Shutdown,
            },
            Event::Rotate {
                file: "(deleted)".into(),
            },
            Event::LogError {
                error: "x".into(),
                lost: 0,
            },
            Event::Auth {
                service: "chat",
                conn: 1,
                name: "bob".into(),
                how: AuthHow::Token,
                result: AuthResult::Ok,
            },
            Event::Auth {
                service: "chat",
                conn: 1,
                name: "bob".into(),
                how: AuthHow::Logout,
                result: AuthResult::Ok,
            },
            Event::Auth {
                service: "chat",
                conn: 1,
                name: "bob".into(),
                how: AuthHow::Password,
                result: AuthResult::Locked,
            },
        ];
        for what in ["names-file", "accounts-file", "register", "stdin"] {
            v.push(Event::Warning {
                what,
                error: "x".into(),
            });
        }
        for reason in [
            DisconnectReason::Eof,
            DisconnectReason::Reset,
            DisconnectReason::Exit,
            DisconnectReason::Idle,
            DisconnectReason::Backlog,
            DisconnectReason::Full,
            DisconnectReason::Shutdown,
            DisconnectReason::Kicked,
            DisconnectReason::BadFrame,
            DisconnectReason::Done,
            DisconnectReason::Error,
        ] {
            v.push(Event::Disconnect {
                service: "echo",
                conn: 1,
                peer,
                reason,
                bytes_in: 0,
                bytes_out: 0,
                duration: Duration::ZERO,
            });
        }
        v
    }

    #[test]
    fn every_sentence_fits_a_projector_line_in_every_language() {
        let mut long = Vec::new();
        for lang in Lang::ALL {
            for event in samples() {
                let s = sentence_in(lang, &event);
                let chars = s.chars().count();
                if chars > 100 {
                    long.push(format!("{} ({lang:?}, {chars}): {s}", event.name()));
                }
                assert!(!s.is_empty() && !s.contains('\n'), "{s}");
            }
        }
        assert!(long.is_empty(), "over 100 characters:\n{}", long.join("\n"));
    }

    #[test]
    fn every_event_has_a_sentence() {
        for event in samples() {
            assert!(sentence(&event).is_some(), "{}", event.name());
        }
    }

    #[test]
    fn translations_differ_from_english_and_keep_the_values() {
        for event in samples() {
            let en = sentence_in(Lang::En, &event);
            for lang in [Lang::Uk, Lang::Ru] {
                let s = sentence_in(lang, &event);
                assert_ne!(s, en, "{} is not translated to {lang:?}", event.name());
                // Names, addresses, counts and option names are shown in
                // every language: a translation must not drop one.
                for token in en.split([' ', ';', ',', '(', ')', ':']) {
                    let is_value = token.starts_with("--")
                        || token.contains("51234")
                        || token.chars().any(|c| c.is_ascii_digit()) && !token.contains('-');
                    if is_value && !token.ends_with("()") {
                        assert!(s.contains(token), "{lang:?} lost {token:?}: {s} / {en}");
                    }
                }
            }
        }
    }

    #[test]
    fn counts_take_their_plural_form() {
        let recv = |n| Event::Recv {
            service: "echo",
            conn: 1,
            bytes: n,
        };
        assert!(sentence_in(Lang::En, &recv(1)).starts_with("recv() copied 1 byte from"));
        assert!(sentence_in(Lang::En, &recv(2)).starts_with("recv() copied 2 bytes from"));
        assert!(sentence_in(Lang::Uk, &recv(2)).contains(" 2 байти "));
        assert!(sentence_in(Lang::Uk, &recv(5)).contains(" 5 байтів "));
        assert!(sentence_in(Lang::Ru, &recv(2)).contains(" 2 байта "));
        assert!(sentence_in(Lang::Ru, &recv(1024)).contains(" 1024 байта "));
    }

    #[test]
    fn leave_is_true_at_shutdown_too() {
        // `leave` is also logged at shutdown, when nobody is told, and
        // after a reset's `disconnect`: the sentence claims neither.
        let leave = Event::Leave {
            service: "chat",
            conn: 1,
            name: "ann".into(),
        };
        let en = sentence_in(Lang::En, &leave);
        assert!(en.contains("unless the server is stopping"), "{en}");
        assert!(!en.contains("before the socket closed"), "{en}");
    }
}
