//! The HTTP API's JSON request bodies: any bytes, decoded as every body type the way
//! the handlers receive them (`spool_formats::api::decode_body`), must give a body or
//! an error, never a panic. A payload the handlers keep (`input`, `output`, `details`:
//! stored as `value.to_string()`) must be JSON again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use spool_formats::api::*;

fn payload(value: &Option<Value>) {
    if let Some(value) = value {
        let text = value.to_string();
        if let Err(e) = serde_json::from_str::<Value>(&text) {
            panic!("payload {text:?} does not parse again: {e}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = decode_body::<StartBody>(data) {
        payload(&b.input);
    }
    let _ = decode_body::<RepinBody>(data);
    if let Ok(b) = decode_body::<SignalBody>(data) {
        payload(&b.input);
    }
    if let Ok(b) = decode_body::<SignalWithStartBody>(data) {
        payload(&b.input);
        payload(&b.signal_input);
    }
    let _ = decode_body::<ReasonBody>(data);
    if let Ok(b) = decode_body::<UpdateBody>(data) {
        payload(&b.input);
    }
    let _ = decode_body::<PollBody>(data);
    if let Ok(b) = decode_body::<HeartbeatBody>(data) {
        payload(&b.details);
    }
    if let Ok(b) = decode_body::<CompleteBody>(data) {
        payload(&b.output);
    }
    if let Ok(b) = decode_body::<FailBody>(data) {
        payload(&b.details);
    }
    let _ = decode_body::<CreateNamespaceBody>(data);
    let _ = decode_body::<PatchNamespaceBody>(data);
    let _ = decode_body::<CreateKeyBody>(data);
});
