//! Gateway-made answers: errors with a stable code, and writing a [`Reply`] to the client.

use crate::policy::exchange::Reply;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

pub const ERROR_HEADER: &str = "x-switchyard-error";

/// An error answer: `X-Switchyard-Error: CODE` and a short body naming the endpoint and the
/// reason, as JSON when the client accepts JSON.
pub fn error_reply(
    status: StatusCode,
    code: &str,
    endpoint: Option<&str>,
    reason: &str,
    wants_json: bool,
) -> Reply {
    let mut reply = Reply::new(status);
    reply.headers.insert(
        ERROR_HEADER,
        HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static("SWY_ERROR")),
    );
    let body = if wants_json {
        reply.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        serde_json::json!({
            "error": code,
            "status": status.as_u16(),
            "endpoint": endpoint,
            "message": reason,
        })
        .to_string()
            + "\n"
    } else {
        reply.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        match endpoint {
            Some(ep) => format!("{} {code}: {reason} (endpoint {ep})\n", status.as_u16()),
            None => format!("{} {code}: {reason}\n", status.as_u16()),
        }
    };
    reply.body = Bytes::from(body);
    reply
}

pub fn wants_json(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// Builds Pingora's response header for a reply (content-length set from the body).
pub fn response_header(reply: &Reply) -> pingora::Result<ResponseHeader> {
    let mut h = ResponseHeader::build(reply.status, Some(reply.headers.len() + 1))?;
    for (k, v) in &reply.headers {
        h.append_header(k.clone(), v.clone())?;
    }
    h.insert_header(http::header::CONTENT_LENGTH, reply.body.len())?;
    Ok(h)
}

pub async fn write(session: &mut Session, reply: &Reply) -> pingora::Result<()> {
    let header = response_header(reply)?;
    let head_only = session.req_header().method == http::Method::HEAD || reply.body.is_empty();
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(reply.body.clone()), true)
            .await?;
    }
    Ok(())
}
