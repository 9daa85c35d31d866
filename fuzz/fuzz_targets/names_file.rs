//! The names file reader (`names/store.rs`): the file is the operator's,
//! but it may be damaged or hand-edited, and what it says is handed back
//! to users by IP (`* welcome back, NAME`). Whatever the bytes: no panic;
//! at most `--names-max` IPs are kept; every kept name passes the name
//! rules (`names::check_name`: no control, bidi or invisible character can
//! reach the room from the file); and saving then loading gives the same
//! file with no damage.

#![no_main]

use echochat::names::{Names, check_name};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    let Some((&max, bytes)) = data.split_first() else {
        return;
    };
    let max = usize::from(max % 16);
    let (names, damage) = Names::parse(bytes, max);
    assert!(names.len() <= max);
    if let Some(d) = &damage {
        assert!(d.lines >= 1 && d.first_line >= 1);
    }
    let saved = names.to_bytes();
    let text = std::str::from_utf8(&saved).expect("the names file is UTF-8");
    assert_eq!(text.lines().count(), names.len());
    for line in text.lines() {
        let (ip, name) = line.split_once('\t').expect("IP<TAB>NAME");
        let ip: IpAddr = ip.parse().expect("an IP");
        if let Err(e) = check_name(name) {
            panic!("{name:?} loaded from the file though {e}");
        }
        assert_eq!(names.get(ip), Some(name));
    }
    let (again, damage) = Names::parse(&saved, max);
    assert!(damage.is_none(), "{damage:?} in a file it wrote");
    assert_eq!(again.to_bytes(), saved);
});
