//! SIP over TCP (RFC 3261 §18.3): one task per connection cuts the byte stream into messages
//! by Content-Length and hands them to the signalling loop; responses go back on the same
//! connection, found by the peer's address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::sip::framing;

const WRITE_QUEUE: usize = 256;
/// Phones keep one connection each; far more than that is a leak or an attack.
const MAX_CONNECTIONS: usize = 4096;
/// A connection that says nothing for this long is closed (phones send keep-alives).
const IDLE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

pub struct Connections {
    /// Writers by peer address. Touched on connect/disconnect and once per outgoing message;
    /// the lock is never held across an await.
    writers: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Connections {
    pub fn start(
        listener: TcpListener,
        inbound: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    ) -> Connections {
        let writers: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>> = Arc::default();
        let table = Arc::clone(&writers);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                if table.lock().map_or(0, |m| m.len()) >= MAX_CONNECTIONS {
                    tracing::warn!(%peer, "too many SIP TCP connections; refusing one");
                    continue;
                }
                let (tx, rx) = mpsc::channel(WRITE_QUEUE);
                if let Ok(mut map) = table.lock() {
                    map.insert(peer, tx);
                }
                let inbound = inbound.clone();
                let table = Arc::clone(&table);
                tokio::spawn(async move {
                    serve_connection(stream, peer, inbound, rx).await;
                    if let Ok(mut map) = table.lock() {
                        map.remove(&peer);
                    }
                });
            }
        });
        Connections { writers, accept }
    }

    pub fn send(&self, to: SocketAddr, data: Vec<u8>) {
        let tx = self.writers.lock().ok().and_then(|m| m.get(&to).cloned());
        match tx {
            Some(tx) => {
                if tx.try_send(data).is_err() {
                    tracing::warn!(%to, "TCP connection backlogged or closed; message dropped");
                }
            }
            None => tracing::debug!(%to, "no TCP connection to this peer"),
        }
    }

    pub fn stop(&self) {
        self.accept.abort();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    inbound: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    mut outbound: mpsc::Receiver<Vec<u8>>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        while let Some(data) = outbound.recv().await {
            if writer.write_all(&data).await.is_err() {
                break;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let n = match tokio::time::timeout(IDLE, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match framing::stream_message_len(&buf) {
                Ok(Some(0)) => break,
                Ok(Some(len)) => {
                    let message: Vec<u8> = buf.drain(..len).collect();
                    if !framing::is_keepalive(&message)
                        && inbound.send((peer, message)).await.is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "closing TCP connection with unframeable data");
                    write.abort();
                    return;
                }
            }
        }
    }
    write.abort();
}
