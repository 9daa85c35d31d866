//! Tokens: how the reactor tells apart what `poll` woke it for.
//!
//! `mio` hands back a `Token` (a `usize`) with every readiness event. A
//! connection's token is its slab slot, so finding its state is an index.
//! Listeners and the control sources (signals, the console) take tokens
//! from the top of the range, where no slot can ever reach.

use mio::Token;

/// Signals (SIGINT, SIGTERM) arrive through a self-pipe registered here.
pub const SIGNALS: Token = Token(usize::MAX - 1);
/// The server's stdin (the console).
pub const CONSOLE: Token = Token(usize::MAX - 2);
/// The password-hashing thread's `Waker`: answers are waiting.
pub const WORKER: Token = Token(usize::MAX - 3);
/// Listener `i` has token `LISTENER_BASE + i`.
const LISTENER_BASE: usize = usize::MAX - 64;

/// Room for this many listeners (one per service).
pub const MAX_LISTENERS: usize = 32;
/// UDP twin `i` has token `UDP_BASE + i`, just above the listeners.
const UDP_BASE: usize = LISTENER_BASE + MAX_LISTENERS;
/// Room for this many UDP twins.
pub const MAX_UDP: usize = 8;

pub fn listener(index: usize) -> Token {
    debug_assert!(index < MAX_LISTENERS);
    Token(LISTENER_BASE + index)
}

pub fn udp(index: usize) -> Token {
    debug_assert!(index < MAX_UDP);
    Token(UDP_BASE + index)
}

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Listener(usize),
    Udp(usize),
    Conn(usize),
    Signals,
    Console,
    Worker,
}

pub fn classify(token: Token) -> Source {
    match token {
        SIGNALS => Source::Signals,
        CONSOLE => Source::Console,
        WORKER => Source::Worker,
        Token(t) if (LISTENER_BASE..LISTENER_BASE + MAX_LISTENERS).contains(&t) => {
            Source::Listener(t - LISTENER_BASE)
        }
        Token(t) if (UDP_BASE..UDP_BASE + MAX_UDP).contains(&t) => Source::Udp(t - UDP_BASE),
        Token(slot) => Source::Conn(slot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_do_not_collide() {
        assert_eq!(classify(Token(0)), Source::Conn(0));
        assert_eq!(classify(Token(19_999)), Source::Conn(19_999));
        assert_eq!(classify(listener(0)), Source::Listener(0));
        assert_eq!(classify(listener(1)), Source::Listener(1));
        assert_eq!(classify(listener(MAX_LISTENERS - 1)), Source::Listener(31));
        assert_eq!(classify(udp(0)), Source::Udp(0));
        assert_eq!(classify(udp(MAX_UDP - 1)), Source::Udp(MAX_UDP - 1));
        assert_eq!(classify(SIGNALS), Source::Signals);
        assert_eq!(classify(CONSOLE), Source::Console);
        assert_eq!(classify(WORKER), Source::Worker);
    }
}
