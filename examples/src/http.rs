//! A small loopback-only HTTP client for the examples that check a server they started
//! themselves (`host_app`, `token_issuer`), on `reqwest`'s blocking client (features
//! `host_app`, `token_issuer`).
//!
//! What it adds to reqwest: it refuses any address that is not loopback, never follows
//! redirects, sets a connect and a whole-request timeout, and reads at most
//! [`MAX_BODY_BYTES`] of a body, so an example cannot hang on, or buffer without bound,
//! what a misbehaving server sends.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use crate::ExampleError;
use crate::error::clip;

/// Largest response body, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest request body, in bytes.
pub const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;
/// Connect timeout, and the timeout of a whole request.
pub const TIMEOUT: Duration = Duration::from_secs(5);

fn http(msg: impl Into<String>) -> ExampleError {
    ExampleError::Http(msg.into())
}

/// The one client of the process (built once: its connection pool and TLS setup are not
/// per request).
fn client() -> Result<&'static reqwest::blocking::Client, ExampleError> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::blocking::Client, String>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::blocking::Client::builder()
                .connect_timeout(TIMEOUT)
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| http(format!("no HTTP client: {e}")))
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

/// One request to a loopback address.
///
/// # Errors
/// [`ExampleError::Http`] for a non-loopback address, a bad method, path or content
/// type, an oversize request body, a connection or timeout failure, or a response body
/// over [`MAX_BODY_BYTES`].
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
    if !path.starts_with('/') {
        return Err(http(format!(
            "the path {:?} must start with '/'",
            clip(path)
        )));
    }
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| http(format!("{:?} is not an HTTP method", clip(method))))?;
    let url = reqwest::Url::parse(&format!("http://{addr}{path}")).map_err(|e| {
        http(format!(
            "the path {:?} does not make a URL: {e}",
            clip(path)
        ))
    })?;
    if url.path() != path.split('?').next().unwrap_or_default() {
        return Err(http(format!(
            "the path {:?} is not in its canonical form (spaces, dot segments or characters that need escaping)",
            clip(path)
        )));
    }
    let mut req = client()?.request(method, url);
    if let Some((content_type, bytes)) = body {
        if bytes.len() > MAX_REQUEST_BODY_BYTES {
            return Err(http(format!(
                "a request body of {} bytes is over the {MAX_REQUEST_BODY_BYTES}-byte cap",
                bytes.len()
            )));
        }
        let value = reqwest::header::HeaderValue::from_str(content_type).map_err(|_| {
            http(format!(
                "{:?} is not a valid Content-Type value",
                clip(content_type)
            ))
        })?;
        req = req
            .header(reqwest::header::CONTENT_TYPE, value)
            .body(bytes.to_vec());
    }
    let resp = req
        .send()
        .map_err(|e| http(format!("{addr}{}: {e}", clip(path))))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // One byte past the cap tells an oversize body from one exactly at the cap.
    let mut body = Vec::new();
    resp.take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| http(format!("reading the response body: {e}")))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(http(format!(
            "the response body is over the {MAX_BODY_BYTES}-byte cap"
        )));
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    /// A one-shot server answering `response` to the first request; returns what it read.
    fn serve_once(response: Vec<u8>) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            loop {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "client closed early");
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (n, v) = l.split_once(':')?;
                            n.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if rest.len() >= len {
                        break;
                    }
                }
            }
            s.write_all(&response).unwrap();
            String::from_utf8(got).unwrap()
        });
        (addr, server)
    }

    #[test]
    fn round_trip_with_a_loopback_server() {
        let (addr, server) =
            serve_once(b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\nX-A: b\r\n\r\nyes".to_vec());
        let r = post(addr, "/token", "text/plain", b"hello").unwrap();
        assert_eq!((r.status, r.text().unwrap()), (201, "yes"));
        assert_eq!(r.header("x-a"), Some("b"));
        let sent = server.join().unwrap();
        assert!(sent.starts_with("POST /token HTTP/1.1\r\n"), "{sent}");
        assert!(
            sent.to_ascii_lowercase()
                .contains("\r\ncontent-length: 5\r\n"),
            "{sent}"
        );
        assert!(sent.ends_with("hello"), "{sent}");
    }

    #[test]
    fn refuses_non_loopback_and_bad_requests() {
        let remote: SocketAddr = "192.0.2.1:80".parse().unwrap();
        let e = get(remote, "/").unwrap_err();
        assert!(e.to_string().contains("loopback addresses only"), "{e}");
        let local: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(
            get(local, "no-slash")
                .unwrap_err()
                .to_string()
                .contains("start with '/'")
        );
        assert!(
            get(local, "/a b")
                .unwrap_err()
                .to_string()
                .contains("canonical")
        );
        assert!(
            request(local, "GE T", "/", None)
                .unwrap_err()
                .to_string()
                .contains("method")
        );
        let e = post(local, "/", "text/plain\r\nX: y", b"").unwrap_err();
        assert!(e.to_string().contains("Content-Type"), "{e}");
        let big = vec![0u8; MAX_REQUEST_BODY_BYTES + 1];
        let e = post(local, "/", "text/plain", &big).unwrap_err();
        assert!(e.to_string().contains("over the"), "{e}");
    }

    #[test]
    fn caps_the_response_body() {
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        )
        .into_bytes();
        resp.resize(resp.len() + MAX_BODY_BYTES + 1, b'x');
        let (addr, server) = serve_once(resp);
        let e = get(addr, "/big").unwrap_err();
        assert!(e.to_string().contains("byte cap"), "{e}");
        let _ = server.join();
    }

    #[test]
    fn does_not_follow_redirects() {
        let (addr, server) = serve_once(
            b"HTTP/1.1 302 Found\r\nLocation: http://192.0.2.1/\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        );
        let r = get(addr, "/moved").unwrap();
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some("http://192.0.2.1/"));
        server.join().unwrap();
    }
}
