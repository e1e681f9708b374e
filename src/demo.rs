//! `hotline demo-backend`: a stand-in for the CRM and billing systems the demo flow looks
//! callers up in, so the demo hotline runs end to end on one machine. Plain HTTP/1.1, JSON,
//! a handful of made-up customers and accounts, and one account whose back end is too slow.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Looking this account up takes longer than any sensible lookup timeout.
const SLOW_ACCOUNT: &str = "99999999";
const SLOW_FOR: Duration = Duration::from_secs(10);

/// Serve until the process ends.
pub fn run(bind: SocketAddr) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(bind).await?;
        eprintln!(
            "demo back end on http://{}: /customers/<phone>, /accounts/<number>",
            listener.local_addr()?
        );
        accept(listener).await
    })
}

/// Serve on a thread of its own (for tests); returns the address it listens on.
pub fn spawn(bind: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(bind)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("demo-backend".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the demo back end");
            runtime.block_on(async move {
                if let Ok(listener) = TcpListener::from_std(listener) {
                    let _ = accept(listener).await;
                }
            });
        })?;
    Ok(addr)
}

async fn accept(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve(stream));
    }
}

async fn serve(mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    let (status, body) = answer(&path).await;
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

async fn answer(path: &str) -> (u16, String) {
    let path = path.split('?').next().unwrap_or(path);
    let mut parts = path.trim_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some("customers"), Some(phone)) => match phone {
            "13800000001" => (200, r#"{"name": "Li Wei", "tier": "vip"}"#.into()),
            "13800000002" => (200, r#"{"name": "Anna Smith", "tier": "standard"}"#.into()),
            _ => (404, r#"{"error": "unknown caller"}"#.into()),
        },
        (Some("accounts"), Some(account)) => match account {
            SLOW_ACCOUNT => {
                tokio::time::sleep(SLOW_FOR).await;
                (200, r#"{"balance": "1.00", "due": "2026-12-31"}"#.into())
            }
            "12345678" => (200, r#"{"balance": "1234.50", "due": "2026-12-31"}"#.into()),
            "87654321" => (200, r#"{"balance": "0.35", "due": "2027-01-15"}"#.into()),
            _ => (404, r#"{"error": "unknown account"}"#.into()),
        },
        _ => (404, r#"{"error": "no such resource"}"#.into()),
    }
}
