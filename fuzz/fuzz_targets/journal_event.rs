//! The journal's events as stored: any text, read back as an event (`decode_event`,
//! what `Journal::events` does) or as an inbox entry's event (`EventKind`), must give
//! an event or an error, never a panic. An event that decodes must survive the journal:
//! written again (`serde_json::to_string`, as `insert_events` does) it reads back equal,
//! since replay compares journaled commands with the guest's field by field; and its
//! JSON tag is the `kind` column (`EventKind::type_name`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool_formats::event::{decode_event, EventKind, EVENT_FORMAT_VERSION};

fn tag(json: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(json).expect("an encoded event is JSON");
    value["type"]
        .as_str()
        .expect("an event has a type")
        .to_owned()
}

fuzz_target!(|data: &[u8]| {
    // The `body` column is TEXT, read as a String.
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let format = i64::from(EVENT_FORMAT_VERSION);
    if let Ok(event) = decode_event(format, body) {
        let json = serde_json::to_string(&event).expect("an event encodes");
        let again = decode_event(format, &json).expect("a written event reads back");
        assert_eq!(again, event, "{json}");
        assert_eq!(tag(&json), event.kind.type_name());
    }
    if let Ok(kind) = serde_json::from_str::<EventKind>(body) {
        let json = serde_json::to_string(&kind).expect("an event kind encodes");
        let again: EventKind = serde_json::from_str(&json).expect("a written kind reads back");
        assert_eq!(again, kind, "{json}");
        assert_eq!(tag(&json), kind.type_name());
    }
});
