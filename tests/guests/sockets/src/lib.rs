//! A valid workflow that uses a TCP socket, so the component imports `wasi:sockets/*`.
//! The host must refuse it at upload: workflows may not talk to the network directly.

use std::net::TcpStream;

use spool_sdk::{Context, WorkflowError};

fn sockets(_ctx: &Context, _input: serde_json::Value) -> Result<String, WorkflowError> {
    match TcpStream::connect("127.0.0.1:1") {
        Ok(_) => Ok("connected".to_owned()),
        Err(e) => Err(WorkflowError::new("connect_failed", e.to_string())),
    }
}

spool_sdk::workflow!(sockets);
