//! SIP over TCP (RFC 3261 §18.3), and over TLS on its own port: one task per connection cuts
//! the byte stream into messages by Content-Length and hands them to the signalling loop;
//! responses go back on the same connection, found by the peer's address. A TLS connection's
//! handshake must finish within the time a whole message has.
//!
//! A public server's TCP port is a target: connections are capped in total (the descriptor
//! budget) and per source address, so one client cannot take every slot; a connection must
//! deliver each whole message within a short time (slow senders are dropped), and may stay
//! quiet between messages only as long as a phone's keep-alive interval. When accept fails
//! (no descriptors left) the loop backs off instead of spinning.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::sip::{Peer, TransportKind, framing};

const WRITE_QUEUE: usize = 256;
/// A connection that says nothing between messages for this long is closed (phones send
/// keep-alives far more often).
const IDLE: Duration = Duration::from_secs(15 * 60);
/// Accept failures (out of descriptors) back off from this, doubling, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What TCP may take.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Connections in all (from the descriptor budget).
    pub total: usize,
    /// Connections from one IP address (a NAT may hide an office of phones).
    pub per_ip: usize,
    /// From a message's first byte (or the connection's start) to its last.
    pub whole_message: Duration,
}

#[derive(Default)]
struct Table {
    writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Table {
    /// Takes a slot for `peer`, or says why not.
    fn admit(
        &mut self,
        peer: SocketAddr,
        tx: mpsc::Sender<Vec<u8>>,
        limits: &TcpLimits,
    ) -> Result<(), &'static str> {
        // One connection per address: a second one (a peer connecting from the address we
        // dialled) would share its entry and be released with the first.
        if self.writers.contains_key(&peer) {
            return Err("a connection with this address is already open");
        }
        if self.writers.len() >= limits.total {
            return Err("the server's TCP connections are all taken");
        }
        let mine = self.per_ip.entry(peer.ip()).or_default();
        if *mine >= limits.per_ip {
            return Err("this address has its share of TCP connections");
        }
        *mine += 1;
        self.writers.insert(peer, tx);
        Ok(())
    }

    fn release(&mut self, peer: SocketAddr) {
        if self.writers.remove(&peer).is_none() {
            return;
        }
        if let Some(n) = self.per_ip.get_mut(&peer.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&peer.ip());
            }
        }
    }
}

pub struct Connections {
    /// Touched on connect/disconnect and once per outgoing message; the lock is never held
    /// across an await.
    table: Arc<Mutex<Table>>,
    accept: Option<tokio::task::JoinHandle<()>>,
    inbound: mpsc::Sender<(Peer, Vec<u8>)>,
    limits: TcpLimits,
    dialer: Option<Dialer>,
}

/// How connections of our own are opened, for a message to a peer we have none with: a trunk
/// that takes calls over TCP or TLS, a phone at a fixed URI. RFC 3261 §18.1.1.
#[derive(Clone)]
pub struct Dialer {
    /// None: plain TCP.
    pub tls: Option<TlsDialer>,
}

#[derive(Clone)]
pub struct TlsDialer {
    pub connector: tokio_rustls::TlsConnector,
    /// The name a peer's certificate must carry, where it is not the peer's IP address.
    pub names: Arc<HashMap<SocketAddr, String>>,
}

impl Dialer {
    fn transport(&self) -> TransportKind {
        if self.tls.is_some() {
            TransportKind::Tls
        } else {
            TransportKind::Tcp
        }
    }
}

impl Connections {
    /// Serve SIP on `listener` (if any): plain TCP, or TLS when `tls` gives the acceptor;
    /// open connections of our own with `dialer` (if any).
    pub fn start(
        listener: Option<TcpListener>,
        inbound: mpsc::Sender<(Peer, Vec<u8>)>,
        limits: TcpLimits,
        tls: Option<tokio_rustls::TlsAcceptor>,
        dialer: Option<Dialer>,
    ) -> Connections {
        let table: Arc<Mutex<Table>> = Arc::default();
        let accept = listener.map(|listener| {
            accept_loop(listener, Arc::clone(&table), inbound.clone(), limits, tls)
        });
        Connections {
            table,
            accept,
            inbound,
            limits,
            dialer,
        }
    }

    pub fn send(&self, to: SocketAddr, data: Vec<u8>) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        if let Some(tx) = table.writers.get(&to) {
            if tx.try_send(data).is_err() {
                tracing::warn!(%to, "TCP connection backlogged or closed; message dropped");
            }
            return;
        }
        // A response goes back on the request's connection; if that is gone, the peer's
        // retransmission will bring a new one. Only requests open connections, so an answer
        // to whoever once connected from some port never dials that port.
        let Some(dialer) = self
            .dialer
            .clone()
            .filter(|_| !data.starts_with(b"SIP/2.0"))
        else {
            tracing::debug!(%to, "no TCP connection to this peer");
            return;
        };
        // The message waits in the new connection's queue while it is opened.
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let _ = tx.try_send(data);
        if let Err(why) = table.admit(to, tx, &self.limits) {
            tracing::warn!(%to, why, "no connection opened");
            return;
        }
        drop(table);
        let (inbound, limits, table) = (self.inbound.clone(), self.limits, Arc::clone(&self.table));
        tokio::spawn(async move {
            dial(to, dialer, inbound, rx, limits).await;
            if let Ok(mut t) = table.lock() {
                t.release(to);
            }
        });
    }

    pub fn stop(&self) {
        if let Some(accept) = &self.accept {
            accept.abort();
        }
    }
}

/// Open a connection to `to` and serve it like an accepted one; it may then stay quiet as
/// long as any (our requests are what it answers).
async fn dial(
    to: SocketAddr,
    dialer: Dialer,
    inbound: mpsc::Sender<(Peer, Vec<u8>)>,
    outbound: mpsc::Receiver<Vec<u8>>,
    limits: TcpLimits,
) {
    let from = Peer {
        addr: to,
        transport: dialer.transport(),
    };
    let stream = match tokio::time::timeout(limits.whole_message, TcpStream::connect(to)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return tracing::warn!(%to, %error, "cannot connect for SIP"),
        Err(_) => return tracing::warn!(%to, "SIP connection attempt timed out"),
    };
    let _ = stream.set_nodelay(true);
    let Some(tls) = dialer.tls else {
        return serve_connection(stream, from, inbound, outbound, limits.whole_message, IDLE).await;
    };
    let name = match tls.names.get(&to) {
        Some(name) => rustls::pki_types::ServerName::try_from(name.clone()),
        None => Ok(rustls::pki_types::ServerName::IpAddress(to.ip().into())),
    };
    let Ok(name) = name else {
        return tracing::warn!(%to, "the configured TLS name is not a valid server name");
    };
    match tokio::time::timeout(limits.whole_message, tls.connector.connect(name, stream)).await {
        Ok(Ok(stream)) => {
            serve_connection(stream, from, inbound, outbound, limits.whole_message, IDLE).await
        }
        Ok(Err(error)) => tracing::warn!(%to, %error, "TLS to this peer failed"),
        Err(_) => tracing::warn!(%to, "TLS handshake timed out"),
    }
}

fn accept_loop(
    listener: TcpListener,
    shared: Arc<Mutex<Table>>,
    inbound: mpsc::Sender<(Peer, Vec<u8>)>,
    limits: TcpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> tokio::task::JoinHandle<()> {
    {
        tokio::spawn(async move {
            let mut backoff = Duration::ZERO;
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => {
                        backoff = Duration::ZERO;
                        accepted
                    }
                    Err(error) => {
                        if backoff.is_zero() {
                            tracing::warn!(%error, "cannot accept SIP TCP connections; backing off");
                        }
                        backoff = (backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                };
                let (tx, rx) = mpsc::channel(WRITE_QUEUE);
                let admitted = shared
                    .lock()
                    .map_err(|_| "poisoned")
                    .and_then(|mut t| t.admit(peer, tx, &limits));
                if let Err(why) = admitted {
                    // Dropping the stream closes it; the log is debug because a flood would
                    // otherwise write a line per attempt.
                    tracing::debug!(%peer, why, "SIP TCP connection refused");
                    continue;
                }
                let inbound = inbound.clone();
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let wait = limits.whole_message;
                    let from = |transport| Peer {
                        addr: peer,
                        transport,
                    };
                    match tls {
                        None => {
                            serve_connection(
                                stream,
                                from(TransportKind::Tcp),
                                inbound,
                                rx,
                                wait,
                                wait,
                            )
                            .await
                        }
                        Some(acceptor) => {
                            match tokio::time::timeout(wait, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    serve_connection(
                                        stream,
                                        from(TransportKind::Tls),
                                        inbound,
                                        rx,
                                        wait,
                                        wait,
                                    )
                                    .await
                                }
                                Ok(Err(error)) => {
                                    tracing::debug!(%peer, %error, "TLS handshake failed")
                                }
                                Err(_) => tracing::debug!(%peer, "TLS handshake took too long"),
                            }
                        }
                    }
                    if let Ok(mut t) = shared.lock() {
                        t.release(peer);
                    }
                });
            }
        })
    }
}

async fn serve_connection<S>(
    stream: S,
    from: Peer,
    inbound: mpsc::Sender<(Peer, Vec<u8>)>,
    mut outbound: mpsc::Receiver<Vec<u8>>,
    whole_message: Duration,
    first_due: Duration,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let peer = from.addr;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = tokio::spawn(async move {
        while let Some(data) = outbound.recv().await {
            // TLS holds what it encrypts until flushed.
            if writer.write_all(&data).await.is_err() || writer.flush().await.is_err() {
                break;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    // On a connection we accepted the first message is due soon: a client that connects and
    // sends nothing is holding a slot, not using it.
    let mut deadline = Instant::now() + first_due;
    loop {
        let n = match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Err(_) => {
                tracing::debug!(%peer, pending = buf.len(), "closing a TCP connection that sent no whole message in time");
                break;
            }
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut completed = false;
        loop {
            match framing::stream_message_len(&buf) {
                Ok(Some(0)) => break,
                Ok(Some(len)) => {
                    completed = true;
                    let message: Vec<u8> = buf.drain(..len).collect();
                    if !framing::is_keepalive(&message)
                        && inbound.send((from, message)).await.is_err()
                    {
                        write.abort();
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
        let now = Instant::now();
        if buf.is_empty() {
            deadline = now + IDLE;
        } else if completed || deadline > now + whole_message {
            // A new message has begun: its whole must arrive within the limit.
            deadline = now + whole_message;
        }
    }
    write.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_slot() {
        let limits = TcpLimits {
            total: 5,
            per_ip: 2,
            whole_message: Duration::from_secs(1),
        };
        let mut t = Table::default();
        let (tx, _rx) = mpsc::channel(1);
        let at = |ip: &str, port: u16| SocketAddr::new(ip.parse().unwrap(), port);
        assert!(t.admit(at("10.0.0.1", 1), tx.clone(), &limits).is_ok());
        assert!(
            t.admit(at("10.0.0.1", 1), tx.clone(), &limits).is_err(),
            "the same address twice"
        );
        assert!(t.admit(at("10.0.0.1", 2), tx.clone(), &limits).is_ok());
        assert!(t.admit(at("10.0.0.1", 3), tx.clone(), &limits).is_err());
        assert!(t.admit(at("10.0.0.2", 1), tx.clone(), &limits).is_ok());
        assert!(t.admit(at("10.0.0.3", 1), tx.clone(), &limits).is_ok());
        assert!(t.admit(at("10.0.0.4", 1), tx.clone(), &limits).is_ok());
        assert!(
            t.admit(at("10.0.0.5", 1), tx.clone(), &limits).is_err(),
            "full"
        );
        t.release(at("10.0.0.1", 1));
        t.release(at("10.0.0.1", 1));
        assert_eq!(
            t.per_ip[&"10.0.0.1".parse::<IpAddr>().unwrap()],
            1,
            "released once"
        );
        assert!(t.admit(at("10.0.0.1", 3), tx, &limits).is_ok());
    }
}
