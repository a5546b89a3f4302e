//! Listening sockets: parsing `--*-socket` addresses, binding them, and the
//! accept loop that starts one task per connection.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::connection::serve_connection;
use super::stream::Stream;
use super::{ListenerContext, Peer, Shared};
use crate::protocol::Protocol;

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address (`127.0.0.1:8000`, `[::1]:8000`; `:8000` is every
    /// IPv4 interface, as in uWSGI).
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("empty socket address".into());
        }
        if s.contains('/') || !s.contains(':') {
            return Ok(ListenAddr::Unix(PathBuf::from(s)));
        }
        let full = if s.starts_with(':') {
            format!("0.0.0.0{s}")
        } else {
            s.to_string()
        };
        if let Ok(addr) = full.parse::<SocketAddr>() {
            return Ok(ListenAddr::Tcp(addr));
        }
        full.to_socket_addrs()
            .map_err(|e| format!("cannot resolve socket address {s:?}: {e}"))?
            .next()
            .map(ListenAddr::Tcp)
            .ok_or_else(|| format!("socket address {s:?} resolves to nothing"))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A listener to open: its protocol and address.
#[derive(Debug, Clone)]
pub struct ListenSpec {
    /// What the peers on this socket speak.
    pub protocol: Protocol,
    /// Where to listen.
    pub addr: ListenAddr,
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.protocol.name(), self.addr)
    }
}

/// A bound, listening socket (std types, so a master can hand them to the
/// workers it starts).
#[derive(Debug)]
pub enum BoundSocket {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A Unix listener and its path.
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

/// Binds `spec` with a listen backlog of `backlog`. A stale Unix socket file
/// (nobody accepting on it) is replaced; a live one is an error.
pub fn bind(spec: &ListenSpec, backlog: i32) -> io::Result<BoundSocket> {
    let socket = match &spec.addr {
        ListenAddr::Tcp(addr) => BoundSocket::Tcp(std::net::TcpListener::bind(addr)?),
        ListenAddr::Unix(path) => {
            remove_stale_socket(path)?;
            BoundSocket::Unix(std::os::unix::net::UnixListener::bind(path)?, path.clone())
        }
    };
    let fd = match &socket {
        BoundSocket::Tcp(l) => l.as_raw_fd(),
        BoundSocket::Unix(l, _) => l.as_raw_fd(),
    };
    // SAFETY: fd is a bound socket we own; listen() again only resizes the
    // backlog (std uses 128).
    if unsafe { libc::listen(fd, backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by a running server", path.display()),
        ));
    }
    std::fs::remove_file(path)
}

/// Accepts connections on `socket`, one task per connection, until the
/// server drains (the socket itself stays open in the master).
pub async fn accept_loop(
    socket: BoundSocket,
    spec: ListenSpec,
    shared: Arc<Shared>,
) -> io::Result<()> {
    match socket {
        BoundSocket::Tcp(std_listener) => {
            std_listener.set_nonblocking(true)?;
            let local = std_listener.local_addr()?;
            let ctx = ListenerContext {
                protocol: spec.protocol,
                name: spec.to_string(),
                server_name: Bytes::from(local.ip().to_string()),
                server_port: Bytes::from(local.port().to_string()),
                shared,
            };
            serve_listener(TcpListener::from_std(std_listener)?, Arc::new(ctx)).await
        }
        BoundSocket::Unix(std_listener, _path) => {
            std_listener.set_nonblocking(true)?;
            let ctx = ListenerContext {
                protocol: spec.protocol,
                name: spec.to_string(),
                server_name: Bytes::from_static(b"localhost"),
                server_port: Bytes::from_static(b"80"),
                shared,
            };
            serve_listener(UnixListener::from_std(std_listener)?, Arc::new(ctx)).await
        }
    }
}

/// A listening socket the accept loop takes connections from.
trait Acceptor {
    /// The connected socket.
    type Conn: Stream + Sync;
    /// Waits for the next connection and says who is on the other end.
    fn accept_peer(&self) -> impl Future<Output = io::Result<(Self::Conn, Peer)>>;
}

impl Acceptor for TcpListener {
    type Conn = TcpStream;

    async fn accept_peer(&self) -> io::Result<(TcpStream, Peer)> {
        let (stream, addr) = self.accept().await?;
        // Responses go out in one write, but a streamed body's chunks must
        // not wait for the previous chunk's ACK (Nagle).
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            addr: Bytes::from(addr.ip().to_string()),
            port: Bytes::from(addr.port().to_string()),
        };
        Ok((stream, peer))
    }
}

impl Acceptor for UnixListener {
    type Conn = UnixStream;

    async fn accept_peer(&self) -> io::Result<(UnixStream, Peer)> {
        let (stream, _) = self.accept().await?;
        let peer = Peer {
            addr: Bytes::new(),
            port: Bytes::new(),
        };
        Ok((stream, peer))
    }
}

/// The accept loop proper, the same for every kind of socket.
async fn serve_listener<A: Acceptor>(listener: A, ctx: Arc<ListenerContext>) -> io::Result<()> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept_peer() => accepted,
            _ = ctx.shared.lifecycle.drained() => return Ok(()),
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(permit) = connection_slot(&ctx).await else {
                    return Ok(());
                };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    serve_connection(stream, peer, ctx).await;
                    drop(permit);
                });
                // One accept per scheduler turn: the new connection's first
                // request and every other ready task run before the next
                // accept. Every worker wakes on the same listening socket,
                // so a burst of connections spreads across the workers by
                // how busy each is, instead of the first one awake taking
                // them all (and serving them on one core).
                tokio::task::yield_now().await;
            }
            Err(e) => accept_failed(&ctx.name, e).await,
        }
    }
}

/// Waits for room under `--max-connections` before a just-accepted
/// connection is served (and before the next accept). At most one
/// connection per listener waits like this: the rest stay in the kernel's
/// backlog. Not cut short by a drain: a connection once accepted is served
/// (dropping it would reset a request the client already sent).
async fn connection_slot(ctx: &ListenerContext) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let slots = ctx.shared.connection_slots.clone();
    if slots.available_permits() == 0 {
        tracing::warn!(listener = %ctx.name, "max-connections reached; new connections wait in the backlog");
    }
    slots.acquire_owned().await.ok()
}

/// Accept errors (out of fds, aborted handshakes) are logged and retried
/// after a pause rather than ending the listener.
async fn accept_failed(name: &str, e: io::Error) {
    tracing::warn!(listener = %name, "accept failed: {e}; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_like_uwsgi() {
        assert_eq!(
            "127.0.0.1:8000".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("127.0.0.1:8000".parse().unwrap())
        );
        assert_eq!(
            ":9000".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("0.0.0.0:9000".parse().unwrap())
        );
        assert_eq!(
            "[::1]:8000".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("[::1]:8000".parse().unwrap())
        );
        assert_eq!(
            "/tmp/app.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/tmp/app.sock".into())
        );
        assert_eq!(
            "app.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("app.sock".into())
        );
    }
}
