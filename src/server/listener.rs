//! Listening sockets: parsing `--*-socket` addresses, binding them, and the
//! accept loop that starts one task per connection.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::unix::AsyncFd;

use super::connection::serve_connection;
use super::stream::{set_tcp_option, Conn, Stream};
use super::{AcceptDeferral, ListenerContext, Peer, Shared};
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

impl std::os::fd::AsRawFd for BoundSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            BoundSocket::Tcp(l) => l.as_raw_fd(),
            BoundSocket::Unix(l, _) => l.as_raw_fd(),
        }
    }
}

/// How long (seconds) a TCP listener with deferred accept holds a connection
/// that has sent nothing before handing it over anyway. Linux counts it in
/// SYN-ACK retransmissions, and one second is one: a client that connects
/// and waits (none of HTTP, uwsgi or SCGI's do) is accepted after about a
/// second and then meets `--header-timeout` as usual.
pub const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// Binds `spec` with a listen backlog of `backlog`; a TCP socket with
/// `defer_accept` becomes readable only when a connection's first bytes
/// have arrived (TCP_DEFER_ACCEPT), so a worker woken for it can read the
/// request at once. A stale Unix socket file (nobody accepting on it) is
/// replaced; a live one is an error.
pub fn bind(spec: &ListenSpec, backlog: i32, defer_accept: bool) -> io::Result<BoundSocket> {
    let socket = match &spec.addr {
        ListenAddr::Tcp(addr) => BoundSocket::Tcp(std::net::TcpListener::bind(addr)?),
        ListenAddr::Unix(path) => {
            remove_stale_socket(path)?;
            BoundSocket::Unix(std::os::unix::net::UnixListener::bind(path)?, path.clone())
        }
    };
    let fd = match &socket {
        BoundSocket::Tcp(l) => {
            if defer_accept {
                set_tcp_option(l, libc::TCP_DEFER_ACCEPT, DEFER_ACCEPT_SECS)?;
            }
            l.as_raw_fd()
        }
        BoundSocket::Unix(l, _) => l.as_raw_fd(),
    };
    // SAFETY: fd is a bound socket we own; listen() again only resizes the
    // backlog (std uses 128).
    if unsafe { libc::listen(fd, backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// Clears the way for binding a Unix socket at `path`: removes a stale
/// socket file, and refuses anything else (a live socket, or a file that is
/// not a socket and may matter to someone).
pub(crate) fn remove_stale_socket(path: &Path) -> io::Result<()> {
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
            // Accepted sockets inherit TCP_NODELAY from the listener (Linux
            // copies it): set once here, not once per connection. Responses
            // go out in one write, but a streamed body's chunks must not
            // wait for the previous chunk's ACK (Nagle).
            set_tcp_option(&std_listener, libc::TCP_NODELAY, 1)?;
            let local = std_listener.local_addr()?;
            let ctx = ListenerContext {
                protocol: spec.protocol,
                name: spec.to_string(),
                server_name: Bytes::from(local.ip().to_string()),
                server_port: Bytes::from(local.port().to_string()),
                shared,
            };
            serve_listener(register(std_listener)?, Arc::new(ctx)).await
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
            serve_listener(register(std_listener)?, Arc::new(ctx)).await
        }
    }
}

/// Registers a listening socket with the event loop.
fn register<L: AsRawFd>(listener: L) -> io::Result<AsyncFd<L>> {
    // SAFETY: the AsyncFd owns the listener, so its fd stays open and the
    // same for the AsyncFd's whole life.
    Ok(unsafe { AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE) }?)
}

/// A listening socket the accept loop takes connections from.
trait Acceptor {
    /// The connected socket.
    type Conn: Stream + Sync;
    /// Waits for the next connection and says who is on the other end;
    /// with a `deferral`, takes it only when it is this worker's turn.
    fn accept_peer(
        &self,
        deferral: Option<&AcceptDeferral>,
    ) -> impl Future<Output = io::Result<(Self::Conn, Peer)>>;
}

/// `accept4(2)` of a non-blocking, close-on-exec socket (one syscall: no
/// `fcntl` after it), with the peer's address when `addr` is given.
fn accept4(
    listener: RawFd,
    addr: Option<&mut libc::sockaddr_storage>,
) -> io::Result<std::os::fd::OwnedFd> {
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let (addr_ptr, len_ptr) = match addr {
        Some(a) => (
            (a as *mut libc::sockaddr_storage).cast(),
            &mut len as *mut _,
        ),
        None => (std::ptr::null_mut(), std::ptr::null_mut()),
    };
    loop {
        // SAFETY: the address buffer, when given, is a sockaddr_storage of
        // the length we pass; the fd returned is ours to own.
        let fd = unsafe {
            libc::accept4(
                listener,
                addr_ptr,
                len_ptr,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: accept4 just returned this fd to us.
            return Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        // A signal, or a client that gave up in the backlog: take the next.
        if !matches!(e.raw_os_error(), Some(libc::EINTR | libc::ECONNABORTED)) {
            return Err(e);
        }
    }
}

/// The IP address and port in `addr` (as accept4 filled it).
fn socket_addr(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}

/// Waits until `listener` has a connection and accepts it with `accept`.
/// The `deferral` is asked once a connection is waiting, not before the
/// wait: the worker's load when it arrives is what counts. If another
/// worker took it meanwhile, the accept finds none and this waits again.
async fn accept_ready<L: AsRawFd, T>(
    listener: &AsyncFd<L>,
    deferral: Option<&AcceptDeferral>,
    mut accept: impl FnMut(RawFd) -> io::Result<T>,
) -> io::Result<T> {
    loop {
        let mut ready = listener.readable().await?;
        if ready.ready().is_read_closed() {
            // The master shut the socket down (a stop). The readiness
            // stays set for good, so waiting again would spin.
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if let Some(deferral) = deferral {
            deferral.turn().await;
        }
        if let Ok(result) = ready.try_io(|l| accept(l.as_raw_fd())) {
            return result;
        }
    }
}

impl Acceptor for AsyncFd<std::net::TcpListener> {
    type Conn = Conn<std::net::TcpStream>;

    async fn accept_peer(
        &self,
        deferral: Option<&AcceptDeferral>,
    ) -> io::Result<(Self::Conn, Peer)> {
        // SAFETY: all-zero bytes are a valid sockaddr_storage.
        let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let fd = accept_ready(self, deferral, |l| accept4(l, Some(&mut addr))).await?;
        let peer = match socket_addr(&addr) {
            Some(addr) => Peer {
                addr: Bytes::from(addr.ip().to_string()),
                port: Bytes::from(addr.port().to_string()),
            },
            None => Peer {
                addr: Bytes::new(),
                port: Bytes::new(),
            },
        };
        Ok((Conn::new(std::net::TcpStream::from(fd)), peer))
    }
}

impl Acceptor for AsyncFd<std::os::unix::net::UnixListener> {
    type Conn = Conn<std::os::unix::net::UnixStream>;

    async fn accept_peer(
        &self,
        deferral: Option<&AcceptDeferral>,
    ) -> io::Result<(Self::Conn, Peer)> {
        let fd = accept_ready(self, deferral, |l| accept4(l, None)).await?;
        let peer = Peer {
            addr: Bytes::new(),
            port: Bytes::new(),
        };
        Ok((Conn::new(std::os::unix::net::UnixStream::from(fd)), peer))
    }
}

/// The accept loop proper, the same for every kind of socket.
async fn serve_listener<A: Acceptor>(listener: A, ctx: Arc<ListenerContext>) -> io::Result<()> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept_peer(ctx.shared.defer_accepts.as_ref()) => accepted,
            _ = ctx.shared.lifecycle.drained() => return Ok(()),
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(permit) = connection_slot(&ctx).await else {
                    return Ok(());
                };
                let ctx = ctx.clone();
                // Boxed: the connection's future is several KiB, and
                // tokio's spawn moves it from frame to frame on its way
                // into the task (callgrind: five copies, 1,700 instructions
                // per connection); a box moves as a pointer.
                tokio::spawn(Box::pin(async move {
                    serve_connection(stream, peer, ctx).await;
                    drop(permit);
                }));
                // One accept per scheduler turn: the new connection's first
                // request and every other ready task run before the next
                // accept. Every worker wakes on the same listening socket,
                // so a burst of connections spreads across the workers by
                // how busy each is, instead of the first one awake taking
                // them all (and serving them on one core).
                tokio::task::yield_now().await;
            }
            // The master shut the socket down: the server is stopping.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(()),
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
    use crate::server::stream::tcp_option;
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::server::stream::test_runtime as runtime;

    fn bind_tcp(defer_accept: bool) -> std::net::TcpListener {
        let spec = ListenSpec {
            protocol: Protocol::Http,
            addr: ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
        };
        match bind(&spec, 16, defer_accept).unwrap() {
            BoundSocket::Tcp(l) => l,
            BoundSocket::Unix(..) => unreachable!(),
        }
    }

    /// The local port of whatever `accept` hands over next, if anything.
    fn next_accepted_peer_port(listener: &std::net::TcpListener) -> Option<u16> {
        match listener.accept() {
            Ok((_, peer)) => Some(peer.port()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => panic!("accept: {e}"),
        }
    }

    /// With deferred accept (the default) the listener hands over only
    /// connections that have sent something: a client that connected
    /// first but is silent stays with the kernel.
    #[test]
    fn deferred_accept_hands_over_a_connection_only_once_it_has_sent_bytes() {
        let listener = bind_tcp(true);
        assert!(tcp_option(listener.as_raw_fd(), libc::TCP_DEFER_ACCEPT) > 0);
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = std::net::TcpStream::connect(addr).unwrap();
        let mut talker = std::net::TcpStream::connect(addr).unwrap();
        talker.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let talker_port = talker.local_addr().unwrap().port();
        assert_eq!(next_accepted_peer_port(&listener), Some(talker_port));
        assert_eq!(
            next_accepted_peer_port(&listener),
            None,
            "the silent one was handed over"
        );
        drop(silent);
    }

    /// `--no-defer-accept`: every completed handshake is handed over, in
    /// the order the clients connected.
    #[test]
    fn without_deferred_accept_a_silent_connection_is_handed_over_at_once() {
        let listener = bind_tcp(false);
        assert_eq!(tcp_option(listener.as_raw_fd(), libc::TCP_DEFER_ACCEPT), 0);
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let silent_port = silent.local_addr().unwrap().port();
        assert_eq!(next_accepted_peer_port(&listener), Some(silent_port));
    }

    /// TCP_NODELAY is set once on the listener and relied on to be
    /// inherited; and a connection whose request is already there is
    /// served without joining the event loop.
    #[test]
    fn accepted_tcp_connections_have_nodelay_and_skip_epoll_when_nothing_waits() {
        runtime().block_on(async {
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            std_listener.set_nonblocking(true).unwrap();
            set_tcp_option(&std_listener, libc::TCP_NODELAY, 1).unwrap();
            let addr = std_listener.local_addr().unwrap();
            let listener = register(std_listener).unwrap();
            let mut client = std::net::TcpStream::connect(addr).unwrap();
            client.write_all(b"ping").unwrap();
            let (mut conn, peer) = listener.accept_peer(None).await.unwrap();
            assert_eq!(
                tcp_option(conn.as_raw_fd(), libc::TCP_NODELAY),
                1,
                "TCP_NODELAY not inherited"
            );
            assert_eq!(peer.addr.as_ref(), b"127.0.0.1");
            assert_eq!(peer.port, client.local_addr().unwrap().port().to_string());
            let mut buf = [0u8; 4];
            conn.read_exact(&mut buf).await.unwrap();
            conn.write_all(b"pong").await.unwrap();
            assert!(!conn.is_registered(), "nothing waited, yet it joined epoll");
            let mut reply = [0u8; 4];
            client.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"pong");
        });
    }

    /// A read that would block registers the connection and still sees the
    /// bytes that arrive later; a peer that closes reads as EOF.
    #[test]
    fn a_connection_that_must_wait_joins_the_event_loop_and_gets_its_bytes() {
        let dir = std::env::temp_dir().join(format!("rwsgi-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        runtime().block_on(async {
            let std_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
            std_listener.set_nonblocking(true).unwrap();
            let listener = register(std_listener).unwrap();
            let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
            let (mut conn, _) = listener.accept_peer(None).await.unwrap();
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                client.write_all(b"late").unwrap();
                client
            });
            let mut buf = [0u8; 4];
            conn.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"late");
            assert!(conn.is_registered());
            drop(writer.join().unwrap());
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

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
