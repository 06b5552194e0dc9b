//! A minimal, bounded HTTP/1.1 client for loopback only, enough for an example to talk
//! to a server it started itself (`token_issuer`'s self-check).
//!
//! It refuses any address that is not loopback, sets connect/read/write timeouts, sends
//! `Connection: close`, caps the response head and body before parsing, and refuses what
//! it does not implement (chunked bodies) instead of guessing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::ExampleError;
use crate::error::clip;

/// Largest response head (status line and headers), in bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest response body, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most response headers.
pub const MAX_HEADERS: usize = 64;
/// Largest request body, in bytes.
pub const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;
/// Connect, read and write timeout.
pub const TIMEOUT: Duration = Duration::from_secs(5);

fn http(msg: impl Into<String>) -> ExampleError {
    ExampleError::Http(msg.into())
}

/// A response read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    ///
    /// # Errors
    /// [`ExampleError::Http`] when the body is not UTF-8.
    pub fn text(&self) -> Result<&str, ExampleError> {
        core::str::from_utf8(&self.body).map_err(|_| http("the response body is not UTF-8"))
    }
}

/// `GET path` on a loopback server.
///
/// # Errors
/// As [`request`].
pub fn get(addr: SocketAddr, path: &str) -> Result<Response, ExampleError> {
    request(addr, "GET", path, None)
}

/// `POST path` with a body of type `content_type` on a loopback server.
///
/// # Errors
/// As [`request`].
pub fn post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Response, ExampleError> {
    request(addr, "POST", path, Some((content_type, body)))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_printable(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// One request on a fresh connection to a loopback address.
///
/// # Errors
/// [`ExampleError::Http`] for a non-loopback address, a bad method, path or content
/// type, an oversize request body, a connection or timeout failure, or a response
/// [`parse_response`] refuses.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> Result<Response, ExampleError> {
    if !addr.ip().is_loopback() {
        return Err(http(format!(
            "refusing to connect to {}: this client talks to loopback addresses only (127.0.0.0/8, ::1)",
            addr.ip()
        )));
    }
    if !is_token(method) {
        return Err(http("the method must be an HTTP token such as GET or POST"));
    }
    if !path.starts_with('/') || path.len() > 2048 || !is_printable(path) {
        return Err(http(
            "the path must start with '/', be at most 2048 bytes and contain no space or control character",
        ));
    }
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    if let Some((content_type, bytes)) = body {
        if content_type.is_empty()
            || content_type.len() > 128
            || !content_type.bytes().all(|b| (0x20..=0x7e).contains(&b))
        {
            return Err(http(
                "the content type must be 1 to 128 printable ASCII characters",
            ));
        }
        if bytes.len() > MAX_REQUEST_BODY_BYTES {
            return Err(http(format!(
                "request body of {} bytes is over the {MAX_REQUEST_BODY_BYTES}-byte cap",
                bytes.len()
            )));
        }
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        ));
    }
    head.push_str("\r\n");

    let io = |what: &str, e: std::io::Error| http(format!("{what} {addr}: {e}"));
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| io("cannot connect to", e))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| io("cannot set timeouts on the connection to", e))?;
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.map_or(&[][..], |(_, b)| b)))
        .and_then(|()| stream.flush())
        .map_err(|e| io("cannot send the request to", e))?;
    let mut raw = Vec::new();
    (&mut stream)
        .take((MAX_HEAD_BYTES + MAX_BODY_BYTES + 1) as u64)
        .read_to_end(&mut raw)
        .map_err(|e| io("cannot read the response from", e))?;
    parse_response(&raw)
}

/// Parses a complete HTTP/1.1 response (the connection was closed by the server).
///
/// # Errors
/// [`ExampleError::Http`] for a head over [`MAX_HEAD_BYTES`] or without its blank line,
/// a malformed status line or header, more than [`MAX_HEADERS`] headers, a chunked
/// body, a `Content-Length` that is malformed, duplicated or disagrees with the bytes
/// received, or a body over [`MAX_BODY_BYTES`].
pub fn parse_response(raw: &[u8]) -> Result<Response, ExampleError> {
    let window = &raw[..raw.len().min(MAX_HEAD_BYTES)];
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(if raw.len() >= MAX_HEAD_BYTES {
            http(format!("response head over the {MAX_HEAD_BYTES}-byte cap"))
        } else {
            http("truncated response: no blank line after the headers")
        });
    };
    let head =
        core::str::from_utf8(&raw[..end]).map_err(|_| http("the response head is not UTF-8"))?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0")
        || code.len() != 3
        || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(http(format!(
            "malformed status line {:?}; expected \"HTTP/1.1 NNN reason\"",
            clip(status_line)
        )));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| http("the status code is not a number"))?;
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() == MAX_HEADERS {
            return Err(http(format!("more than {MAX_HEADERS} response headers")));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(http(format!("malformed header line {:?}", clip(line))));
        };
        if !is_token(name) {
            return Err(http(format!("malformed header name {:?}", clip(name))));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let response = |body: &[u8]| Response {
        status,
        headers: headers.clone(),
        body: body.to_vec(),
    };
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && !v.eq_ignore_ascii_case("identity"))
    {
        return Err(http(
            "chunked or encoded response bodies are not supported by this minimal client",
        ));
    }
    let lengths: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    if body.len() > MAX_BODY_BYTES {
        return Err(http(format!(
            "response body over the {MAX_BODY_BYTES}-byte cap"
        )));
    }
    match lengths.as_slice() {
        [] => Ok(response(body)),
        [one] => {
            let len: usize = one
                .parse()
                .map_err(|_| http(format!("malformed Content-Length {:?}", clip(one))))?;
            if len != body.len() {
                return Err(http(format!(
                    "Content-Length says {len} bytes but {} arrived",
                    body.len()
                )));
            }
            Ok(response(body))
        }
        _ => Err(http("several Content-Length headers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_a_response() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("CONTENT-TYPE"), Some("application/json"));
        assert_eq!(r.text().unwrap(), "{}");
        // No Content-Length: the body runs to the end of the connection.
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"nope"[..]));
    }

    #[test]
    fn refuses_malformed_responses() {
        for (raw, why) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"[..],
                "truncated",
            ),
            (b"HTTP/2 200 OK\r\n\r\n", "status line"),
            (b"HTTP/1.1 20x OK\r\n\r\n", "status line"),
            (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "header line"),
            (b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n", "header name"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}",
                "Content-Length says",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "malformed Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\ncontent-length: 0\r\n\r\n",
                "several",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                "chunked",
            ),
            (b"HTTP/1.1 200 OK\r\nX: \xff\r\n\r\n", "not UTF-8"),
        ] {
            let e = parse_response(raw).unwrap_err();
            assert!(e.to_string().contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn caps_head_headers_and_body() {
        let mut raw = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        raw.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
        let e = parse_response(&raw).unwrap_err();
        assert!(e.to_string().contains("head over"), "{e}");

        let mut many = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("x{i}: 1\r\n"));
        }
        many.push_str("\r\n");
        let e = parse_response(many.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("more than 64"), "{e}");

        let mut big = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_BODY_BYTES + 1));
        let e = parse_response(&big).unwrap_err();
        assert!(e.to_string().contains("body over"), "{e}");
    }

    #[test]
    fn refuses_non_loopback_and_bad_requests() {
        let remote: SocketAddr = "192.0.2.1:80".parse().unwrap();
        let e = get(remote, "/").unwrap_err();
        assert!(e.to_string().contains("loopback addresses only"), "{e}");
        let local: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(get(local, "no-slash").is_err());
        assert!(get(local, "/a b").is_err());
        assert!(request(local, "GE T", "/", None).is_err());
        assert!(post(local, "/", "text/plain\r\nX: y", b"").is_err());
        let big = vec![0u8; MAX_REQUEST_BODY_BYTES + 1];
        let e = post(local, "/", "text/plain", &big).unwrap_err();
        assert!(e.to_string().contains("over the"), "{e}");
    }

    #[test]
    fn round_trip_with_a_loopback_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let mut got = Vec::new();
            while !got.ends_with(b"hello") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "client closed early");
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nyes")
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let r = post(addr, "/token", "text/plain", b"hello").unwrap();
        assert_eq!((r.status, r.text().unwrap()), (201, "yes"));
        let sent = server.join().unwrap();
        assert!(sent.starts_with("POST /token HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains("\r\nContent-Length: 5\r\n"), "{sent}");
        assert!(sent.contains("\r\nConnection: close\r\n"), "{sent}");
    }
}
