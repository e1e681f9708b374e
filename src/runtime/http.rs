//! The back-end client of `lookup` nodes: plain HTTP/1.1, one short connection per request
//! (`Connection: close`), JSON in and out, a hard time limit around the whole exchange. Small
//! on purpose: look-ups are a few requests per call, made off the signalling loop, so
//! connection pooling would buy little and cost a dependency tree.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::flow::{LookupRequest, LookupResult, Method};

/// A back-end answer larger than this is refused: a look-up returns a few fields.
const MAX_RESPONSE: usize = 1 << 20;

pub async fn fetch(request: &LookupRequest) -> LookupResult {
    match tokio::time::timeout(request.timeout, exchange(request)).await {
        Ok(result) => result,
        Err(_) => LookupResult::Failed(format!(
            "no answer within {} ms",
            request.timeout.as_millis()
        )),
    }
}

async fn exchange(request: &LookupRequest) -> LookupResult {
    let target = match Url::parse(&request.url) {
        Ok(u) => u,
        Err(e) => return LookupResult::Failed(e),
    };
    let mut stream = match TcpStream::connect((target.host.as_str(), target.port)).await {
        Ok(s) => s,
        Err(e) => {
            return LookupResult::Failed(format!("connect {}:{}: {e}", target.host, target.port));
        }
    };
    let _ = stream.set_nodelay(true);
    let head = build_request(request, &target);
    if let Err(e) = stream.write_all(&head).await {
        return LookupResult::Failed(format!("send: {e}"));
    }
    let mut response = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&chunk[..n]);
                if response.len() > MAX_RESPONSE {
                    return LookupResult::Failed("answer larger than 1 MB".into());
                }
                // Stop as soon as a Content-Length body is complete; some servers keep the
                // connection open despite `Connection: close`.
                if let Ok(Some(_)) = parse_response(&response, false) {
                    break;
                }
            }
            Err(e) => return LookupResult::Failed(format!("receive: {e}")),
        }
    }
    match parse_response(&response, true) {
        Ok(Some((status, body))) => interpret(status, &body),
        Ok(None) => LookupResult::Failed("the back end closed the connection mid-answer".into()),
        Err(e) => LookupResult::Failed(e),
    }
}

fn interpret(status: u16, body: &[u8]) -> LookupResult {
    match status {
        404 => LookupResult::NotFound,
        200..=299 => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return LookupResult::Ok(serde_json::Value::Null);
            }
            match serde_json::from_slice(body) {
                Ok(v) => LookupResult::Ok(v),
                Err(e) => LookupResult::Failed(format!("answer is not JSON: {e}")),
            }
        }
        other => LookupResult::Failed(format!("HTTP status {other}")),
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Url {
    host: String,
    port: u16,
    /// Path and query, at least "/".
    target: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_string()
        };
        // "[::1]:8080", "[::1]", "host:8080", "host".
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, rest) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("{url:?}: unclosed ["))?;
                match rest.strip_prefix(':') {
                    Some(p) => (h, p.parse().map_err(|_| format!("{url:?}: bad port"))?),
                    None if rest.is_empty() => (h, 80),
                    None => return Err(format!("{url:?}: bad address")),
                }
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| format!("{url:?}: bad port"))?),
                None => (authority, 80),
            },
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        if target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!("{url:?}: spaces or control characters in the path"));
        }
        Ok(Url {
            host: host.to_string(),
            port,
            target,
        })
    }
}

fn build_request(request: &LookupRequest, url: &Url) -> Vec<u8> {
    let method = match request.method {
        Method::Get => "GET",
        Method::Post => "POST",
    };
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {host}:{}\r\nAccept: application/json\r\nUser-Agent: hotline/{}\r\nConnection: close\r\n",
        url.target,
        url.port,
        env!("CARGO_PKG_VERSION")
    );
    let body = request.body.as_deref().unwrap_or("");
    if request.method == Method::Post {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Status and body of a complete response; None while more bytes are needed. `eof`: the
/// connection has closed, so a body without a length ends here.
fn parse_response(data: &[u8], eof: bool) -> Result<Option<(u16, Vec<u8>)>, String> {
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if eof {
            Err("the answer has no complete header".into())
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&data[..end]).map_err(|_| "header is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x answer: {status_line:?}"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    let body = &data[end + 4..];
    if chunked {
        return dechunk(body, eof).map(|b| b.map(|b| (status, b)));
    }
    match length {
        Some(n) if body.len() >= n => Ok(Some((status, body[..n].to_vec()))),
        Some(_) if eof => Err("the answer is shorter than its Content-Length".into()),
        Some(_) => Ok(None),
        None if eof || status == 204 || status == 304 => Ok(Some((status, body.to_vec()))),
        None => Ok(None),
    }
}

fn dechunk(mut body: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return if eof {
                Err("truncated chunked answer".into())
            } else {
                Ok(None)
            };
        };
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        let data_start = line_end + 2;
        if size == 0 {
            return Ok(Some(out));
        }
        let end = data_start
            .checked_add(size)
            .and_then(|e| e.checked_add(2))
            .filter(|e| *e <= MAX_RESPONSE + 64)
            .ok_or("bad chunk size")?;
        if body.len() < end {
            return if eof {
                Err("truncated chunked answer".into())
            } else {
                Ok(None)
            };
        }
        out.extend_from_slice(&body[data_start..data_start + size]);
        body = &body[data_start + size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_target() {
        let u = Url::parse("http://crm.local:8090/customers/123?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("crm.local", 8090, "/customers/123?x=1")
        );
        let u = Url::parse("http://10.0.0.1").unwrap();
        assert_eq!((u.port, u.target.as_str()), (80, "/"));
        let u = Url::parse("http://[::1]:81?q").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 81, "/?q")
        );
        let u = Url::parse("http://[::1]/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        assert!(Url::parse("https://x/").is_err());
        assert!(Url::parse("http://:80/").is_err());
        assert!(Url::parse("http://x/a b").is_err());
    }

    #[test]
    fn responses_by_length_chunks_and_close() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        assert_eq!(
            parse_response(r, false).unwrap(),
            Some((200, b"{\"a\":1}".to_vec()))
        );
        assert_eq!(parse_response(&r[..r.len() - 1], false).unwrap(), None);
        assert!(parse_response(&r[..r.len() - 1], true).is_err());
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(c, false).unwrap(),
            Some((200, b"{\"a\":1}".to_vec()))
        );
        let close = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(parse_response(close, false).unwrap(), None);
        assert_eq!(
            parse_response(close, true).unwrap(),
            Some((404, b"nope".to_vec()))
        );
        assert!(parse_response(b"SIP/2.0 200 OK\r\n\r\n", true).is_err());
        assert!(parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n", true).is_err());
    }

    #[test]
    fn statuses_map_to_results() {
        assert_eq!(interpret(404, b""), LookupResult::NotFound);
        assert_eq!(
            interpret(200, b"{\"t\":\"gold\"}"),
            LookupResult::Ok(serde_json::json!({"t":"gold"}))
        );
        assert!(matches!(interpret(200, b"<html>"), LookupResult::Failed(_)));
        assert!(matches!(interpret(500, b"{}"), LookupResult::Failed(_)));
    }

    #[test]
    fn a_huge_chunk_size_is_an_error_not_an_overflow() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffe\r\nx";
        assert!(parse_response(r, true).is_err());
        assert!(parse_response(r, false).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..3000 {
            let mut data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nA\r\nxyz\r\n0\r\n\r\n".to_vec();
            for _ in 0..rng.usize(1..6) {
                let i = rng.usize(..data.len());
                data[i] = rng.u8(..);
            }
            data.truncate(rng.usize(..=data.len()));
            let _ = parse_response(&data, rng.bool());
        }
    }
}
