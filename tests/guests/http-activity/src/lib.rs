//! An activity component (world `spool:activity/activity`) that POSTs JSON over WASI 0.2
//! outgoing HTTP, so tests can exercise uploaded activities and the host's HTTP
//! allow-list.
//!
//! Input `{"url": "http://host:port/path", "body": <any JSON>}`; output `{"status": N}`
//! for any HTTP status. Bad input is a non-retryable `invalid_input` error, a request the
//! host's allow-list refuses a non-retryable `http_denied`, and a transport failure a
//! retryable `http_error`.

use serde::Deserialize;
use serde_json::json;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

wit_bindgen::generate!({
    path: "../../../wit/activity",
    world: "spool:activity/activity",
});

#[derive(Deserialize)]
struct Input {
    url: String,
    body: serde_json::Value,
}

struct HttpActivity;

impl Guest for HttpActivity {
    fn execute(input: String) -> Result<String, ActivityError> {
        let input: Input = serde_json::from_str(&input)
            .map_err(|e| fatal("invalid_input", format!("input did not deserialize: {e}")))?;
        let url = Url::parse(&input.url).map_err(|m| fatal("invalid_input", m))?;
        let status = post_json(&url, input.body.to_string().as_bytes())?;
        Ok(json!({ "status": status }).to_string())
    }
}

export!(HttpActivity);

fn fatal(error_type: &str, message: String) -> ActivityError {
    ActivityError {
        error_type: error_type.to_owned(),
        message,
        non_retryable: true,
    }
}

fn transient(message: String) -> ActivityError {
    ActivityError {
        error_type: "http_error".to_owned(),
        message,
        non_retryable: false,
    }
}

/// The parts of an `http://` or `https://` URL that an outgoing request needs.
struct Url<'a> {
    scheme: Scheme,
    authority: &'a str,
    /// Always starts with `/`.
    path_with_query: String,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Result<Self, String> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else {
            return Err(format!("`{url}` is not an http:// or https:// URL"));
        };
        let (authority, path_with_query) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        Ok(Url {
            scheme,
            authority,
            path_with_query,
        })
    }
}

/// Sends one POST with a JSON body and returns the response status.
fn post_json(url: &Url<'_>, body: &[u8]) -> Result<u16, ActivityError> {
    let headers = Fields::new();
    headers
        .append("content-type", b"application/json")
        .map_err(|e| fatal("invalid_input", format!("bad header: {e:?}")))?;
    let request = OutgoingRequest::new(headers);
    let refused = |what: &str| fatal("invalid_input", format!("request refused {what}"));
    request
        .set_method(&Method::Post)
        .map_err(|()| refused("method"))?;
    request
        .set_scheme(Some(&url.scheme))
        .map_err(|()| refused("scheme"))?;
    request
        .set_authority(Some(url.authority))
        .map_err(|()| refused("authority"))?;
    request
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|()| refused("path"))?;

    let outgoing_body = request.body().map_err(|()| refused("body"))?;
    let response = outgoing_handler::handle(request, None)
        .map_err(|e| transient(format!("request failed: {e:?}")))?;
    // If the host refuses the request (e.g. the allow-list), writing the body fails
    // with a bare "closed"; the response then carries the real reason, so look there
    // before reporting the write error.
    let sent = write_body(outgoing_body, body);
    response.subscribe().block();
    match response.get() {
        Some(Ok(Ok(response))) => sent.map(|()| response.status()),
        Some(Ok(Err(ErrorCode::HttpRequestDenied))) => Err(fatal(
            "http_denied",
            "request denied by the host's HTTP allow-list".to_owned(),
        )),
        Some(Ok(Err(e))) => Err(transient(format!("request failed: {e:?}"))),
        Some(Err(())) | None => Err(transient("response was lost".to_owned())),
    }
}

fn write_body(outgoing_body: OutgoingBody, body: &[u8]) -> Result<(), ActivityError> {
    {
        let stream = outgoing_body
            .write()
            .map_err(|()| fatal("invalid_input", "request refused body stream".to_owned()))?;
        // `blocking-write-and-flush` takes at most 4096 bytes per call.
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| transient(format!("writing the body failed: {e:?}")))?;
        }
        // The stream is a child of the body and must be dropped before `finish`.
    }
    OutgoingBody::finish(outgoing_body, None)
        .map_err(|e| transient(format!("finishing the body failed: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (bool, String, String) {
        let url = Url::parse(url).unwrap();
        (
            matches!(url.scheme, Scheme::Https),
            url.authority.to_owned(),
            url.path_with_query,
        )
    }

    #[test]
    fn urls_split_into_request_parts() {
        assert_eq!(
            parts("http://127.0.0.1:8080/hook?x=1"),
            (false, "127.0.0.1:8080".into(), "/hook?x=1".into())
        );
        assert_eq!(
            parts("https://example.com"),
            (true, "example.com".into(), "/".into())
        );
        assert_eq!(parts("http://h?q"), (false, "h".into(), "/?q".into()));
    }

    #[test]
    fn other_schemes_and_empty_hosts_are_refused() {
        assert!(Url::parse("ftp://h/").is_err());
        assert!(Url::parse("http:///path").is_err());
    }
}
