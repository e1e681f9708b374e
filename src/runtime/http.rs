//! The back-end client of `lookup` nodes: hyper's HTTP/1.1 client over one short connection
//! per request, plain or over TLS (rustls, the server's certificate checked against the
//! system's authorities or `flows.lookup_ca`), JSON in and out, a hard time limit around the
//! whole exchange. Look-ups are a few requests per call, made off the signalling loop, so
//! connection pooling would buy little.

use std::path::Path;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::tls::{self, TlsError};
use crate::flow::{LookupRequest, LookupResult, Method};

/// A back-end answer larger than this is refused: a look-up returns a few fields.
const MAX_RESPONSE: usize = 1 << 20;

/// What every look-up shares: the TLS connector for https:// back ends.
#[derive(Clone)]
pub struct Client {
    tls: tokio_rustls::TlsConnector,
}

impl Client {
    /// Trusting the authorities in `ca` (PEM), or the system's when None.
    pub fn new(ca: Option<&Path>) -> Result<Client, TlsError> {
        Ok(Client {
            tls: tls::connector(ca)?,
        })
    }

    pub async fn fetch(&self, request: &LookupRequest) -> LookupResult {
        match tokio::time::timeout(request.timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => LookupResult::Failed(format!(
                "no answer within {} ms",
                request.timeout.as_millis()
            )),
        }
    }

    async fn exchange(&self, request: &LookupRequest) -> LookupResult {
        let target = match Url::parse(&request.url) {
            Ok(u) => u,
            Err(e) => return LookupResult::Failed(e),
        };
        let stream = match TcpStream::connect((target.host.as_str(), target.port)).await {
            Ok(s) => s,
            Err(e) => {
                return LookupResult::Failed(format!(
                    "connect {}:{}: {e}",
                    target.host, target.port
                ));
            }
        };
        let _ = stream.set_nodelay(true);
        if !target.tls {
            return send(stream, request, &target).await;
        }
        let name = match rustls::pki_types::ServerName::try_from(target.host.clone()) {
            Ok(n) => n,
            Err(e) => return LookupResult::Failed(format!("{}: {e}", target.host)),
        };
        match self.tls.connect(name, stream).await {
            Ok(stream) => send(stream, request, &target).await,
            Err(e) => LookupResult::Failed(format!("TLS with {}: {e}", target.host)),
        }
    }
}

/// One request and its answer over `io`; the connection ends with it.
async fn send<S>(io: S, request: &LookupRequest, target: &Url) -> LookupResult
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(io)).await {
            Ok(pair) => pair,
            Err(e) => return LookupResult::Failed(format!("HTTP: {e}")),
        };
    let driver = tokio::spawn(connection);
    let host = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let (method, body) = match (request.method, &request.body) {
        (Method::Post, Some(body)) => (hyper::Method::POST, Bytes::from(body.clone())),
        (Method::Post, None) => (hyper::Method::POST, Bytes::new()),
        (Method::Get, _) => (hyper::Method::GET, Bytes::new()),
    };
    let mut builder = hyper::Request::builder()
        .method(method.clone())
        .uri(target.target.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::USER_AGENT, "hotline")
        .header(hyper::header::CONNECTION, "close");
    if method == hyper::Method::POST {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let outcome = match builder.body(Full::new(body)) {
        Err(e) => LookupResult::Failed(format!("request: {e}")),
        Ok(req) => match sender.send_request(req).await {
            Err(e) => LookupResult::Failed(format!("HTTP: {e}")),
            Ok(response) => {
                let status = response.status().as_u16();
                match Limited::new(response.into_body(), MAX_RESPONSE)
                    .collect()
                    .await
                {
                    Ok(body) => interpret(status, &body.to_bytes()),
                    Err(e) => LookupResult::Failed(format!("answer: {e}")),
                }
            }
        },
    };
    driver.abort();
    outcome
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
    /// https: the exchange runs over TLS and the certificate must carry `host`.
    tls: bool,
    host: String,
    port: u16,
    /// Path and query, at least "/".
    target: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, String> {
        let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => {
                return Err(format!(
                    "{url:?}: a look-up URL starts with http:// or https://"
                ));
            }
        };
        let default_port = if tls { 443 } else { 80 };
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
                    None if rest.is_empty() => (h, default_port),
                    None => return Err(format!("{url:?}: bad address")),
                }
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| format!("{url:?}: bad port"))?),
                None => (authority, default_port),
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
            tls,
            host: host.to_string(),
            port,
            target,
        })
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
        let u = Url::parse("https://bank.example/cards?n=1").unwrap();
        assert_eq!(
            (u.tls, u.port, u.target.as_str()),
            (true, 443, "/cards?n=1")
        );
        assert!(!Url::parse("http://x/").unwrap().tls);
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("http://:80/").is_err());
        assert!(Url::parse("http://x/a b").is_err());
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
}
