//! The one trait the connection code needs from a socket, so one generic
//! connection handler serves TCP and Unix streams alike.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};

/// A connected stream socket: TCP or Unix.
pub trait Stream: AsyncRead + AsyncWrite + AsRawFd + Unpin + Send + 'static {
    /// Waits until the socket is writable.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Waits until the socket has bytes (or EOF) to read.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Writes what the socket takes now, without waiting (`WouldBlock`
    /// when it takes nothing).
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Runs a non-blocking write-side syscall, clearing readiness on
    /// `WouldBlock` (tokio's `try_io`).
    fn try_write_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
    /// Lets the kernel gather small writes into full segments (Nagle:
    /// TCP_NODELAY off) while a streamed body is written; turned back on,
    /// whatever waits is pushed out at once. A no-op on Unix sockets,
    /// which have no segments.
    fn gather_writes(&self, on: bool) -> io::Result<()>;
}

/// Whether a socket type is TCP (and so has TCP_NODELAY).
pub trait SocketKind {
    /// True for TCP.
    const TCP: bool;
}

impl SocketKind for std::net::TcpStream {
    const TCP: bool = true;
}

impl SocketKind for std::os::unix::net::UnixStream {
    const TCP: bool = false;
}

/// An accepted, non-blocking socket (TCP or Unix) that joins the event
/// loop only when it has to wait.
///
/// Behind nginx a connection carries one request that is usually there by
/// the time it is accepted, and its response fits the socket buffer: it is
/// read, written and closed without ever waiting. Registering it with
/// epoll up front (as tokio's socket types do) and removing it again cost
/// two `epoll_ctl` calls per request, two of the seven syscalls a request
/// took. So reads and writes go straight to the socket, and the first one
/// that would block registers it (epoll reports what is already ready when
/// a socket is added, so nothing that arrived in between is missed).
pub struct Conn<S> {
    /// Declared before the socket: dropped (deregistered) before it closes.
    registered: OnceLock<AsyncFd<RawFd>>,
    sock: S,
}

impl<S: AsRawFd> Conn<S> {
    /// Wraps `sock`, which must be in non-blocking mode.
    pub fn new(sock: S) -> Self {
        Conn {
            registered: OnceLock::new(),
            sock,
        }
    }

    /// Whether the socket has joined the event loop (it had to wait).
    #[cfg(test)]
    pub fn is_registered(&self) -> bool {
        self.registered.get().is_some()
    }

    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// The event-loop registration, made on first use.
    fn registration(&self) -> io::Result<&AsyncFd<RawFd>> {
        if let Some(registered) = self.registered.get() {
            return Ok(registered);
        }
        // SAFETY: `registered` is dropped before `sock` (field order), so
        // the fd stays open, and the same, for the AsyncFd's whole life.
        let fd = unsafe {
            AsyncFd::register_with_interest(self.fd(), Interest::READABLE | Interest::WRITABLE)
        }?;
        Ok(self.registered.get_or_init(|| fd))
    }
}

/// `read(2)` into the unfilled part of `buf`.
fn read_into(fd: RawFd, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: read(2) only writes initialized bytes, and we mark exactly
    // the `n` it reports as filled.
    unsafe {
        let unfilled: &mut [MaybeUninit<u8>] = buf.unfilled_mut();
        let n = libc::read(fd, unfilled.as_mut_ptr().cast(), unfilled.len());
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        buf.assume_init(n);
        buf.advance(n);
        Ok(n)
    }
}

/// One `send` of `buf` on the socket `fd` (no SIGPIPE for a closed peer).
pub(super) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe a live slice.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl<S: AsRawFd> Conn<S> {
    /// Runs `op` (a read or a write of at most `want` bytes) straight on the
    /// socket until it would block, then through the event loop.
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        direction: Interest,
        want: usize,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let Some(registered) = self.registered.get() else {
                match op() {
                    Err(e) if would_block(&e) => {
                        self.registration()?;
                        continue;
                    }
                    result => return Poll::Ready(result),
                }
            };
            let ready = if direction.is_writable() {
                registered.poll_write_ready(cx)
            } else {
                registered.poll_read_ready(cx)
            };
            let mut guard = ready!(ready)?;
            match guard.try_io(|_| op()) {
                Ok(Ok(n)) => {
                    // A short read or write emptied or filled the socket:
                    // the next one waits for epoll instead of failing with
                    // EAGAIN first (tokio's sockets do the same).
                    if n > 0 && n < want {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl<S: AsRawFd + Unpin> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let fd = self.fd();
        let want = buf.remaining();
        self.poll_io(cx, Interest::READABLE, want, || read_into(fd, buf))
            .map_ok(drop)
    }
}

impl<S: AsRawFd + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let fd = self.fd();
        self.poll_io(cx, Interest::WRITABLE, buf.len(), || send(fd, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // SAFETY: shutdown(2) on a socket this value owns.
        if unsafe { libc::shutdown(self.fd(), libc::SHUT_WR) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOTCONN) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsRawFd> AsRawFd for Conn<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl<S: AsRawFd + SocketKind + Unpin + Send + Sync + 'static> Stream for Conn<S> {
    async fn writable(&self) -> io::Result<()> {
        // Keep the readiness (dropping the guard does): the write that
        // follows clears it if it would block.
        self.registration()?.writable().await.map(drop)
    }

    async fn readable(&self) -> io::Result<()> {
        // The registration's reader slot, not `AsyncFd::readable`: that
        // queues a waiter in a list and takes the registration's lock again
        // to unlink it when done. One task waits per connection.
        let registered = self.registration()?;
        std::future::poll_fn(|cx| registered.poll_read_ready(cx).map_ok(drop)).await
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self.registered.get() {
            None => send(self.fd(), buf),
            Some(registered) => registered.try_io(Interest::WRITABLE, |_| send(self.fd(), buf)),
        }
    }

    fn try_write_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self.registered.get() {
            None => f(),
            Some(registered) => registered.try_io(Interest::WRITABLE, |_| f()),
        }
    }

    fn gather_writes(&self, on: bool) -> io::Result<()> {
        if !S::TCP {
            return Ok(());
        }
        set_tcp_option(self, libc::TCP_NODELAY, libc::c_int::from(!on))
    }
}

/// Reads what is available into `buf`, failing with `TimedOut` when nothing
/// arrives within `limit`.
pub async fn read_within<S: Stream>(
    stream: &mut S,
    buf: &mut BytesMut,
    limit: Duration,
) -> io::Result<usize> {
    match tokio::time::timeout(limit, stream.read_buf(buf)).await {
        Ok(result) => result,
        Err(_) => Err(timed_out("read", limit)),
    }
}

/// Writes all of `bytes`, failing with `TimedOut` when the peer takes none
/// of them for `limit` (a client that stopped reading).
pub async fn write_within<S: Stream>(
    stream: &mut S,
    bytes: &[u8],
    limit: Duration,
) -> io::Result<()> {
    let mut rest = bytes;
    // Most writes go out at once: only a socket that is full needs a timer.
    while !rest.is_empty() {
        match stream.try_write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    while !rest.is_empty() {
        match tokio::time::timeout(limit, stream.write(rest)).await {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => rest = &rest[n..],
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(timed_out("write", limit)),
        }
    }
    Ok(())
}

/// Writes all of `first` then all of `second`, with one `sendmsg` while
/// both have bytes left (a response head and a large body piece leave in
/// one syscall, not two); the same time limit as [`write_within`].
pub async fn write_two_within<S: Stream>(
    stream: &mut S,
    first: &[u8],
    second: &[u8],
    limit: Duration,
) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let (mut first, mut second) = (first, second);
    while !first.is_empty() && !second.is_empty() {
        match stream.try_write_io(|| send_two(fd, first, second)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) if n < first.len() => first = &first[n..],
            Ok(n) => {
                second = &second[n - first.len()..];
                first = &[];
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(limit, stream.writable()).await {
                    Ok(result) => result?,
                    Err(_) => return Err(timed_out("write", limit)),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    write_within(stream, first, limit).await?;
    write_within(stream, second, limit).await
}

/// `sendmsg(2)` of two buffers, without SIGPIPE for a peer that is gone.
fn send_two(fd: RawFd, first: &[u8], second: &[u8]) -> io::Result<usize> {
    let mut iov = [
        libc::iovec {
            iov_base: first.as_ptr() as *mut libc::c_void,
            iov_len: first.len(),
        },
        libc::iovec {
            iov_base: second.as_ptr() as *mut libc::c_void,
            iov_len: second.len(),
        },
    ];
    // SAFETY: an all-zero msghdr is valid (no address, no control data);
    // the iovecs describe live slices that sendmsg only reads.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len();
        libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn timed_out(what: &str, limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what} timed out after {} s", limit.as_secs_f64()),
    )
}

/// Sends `len` bytes of `file` from `offset` to `sock` with sendfile(2),
/// waiting for writability as needed (up to `limit` each time). Returns the bytes sent (less than
/// `len` only if the file was shorter than announced).
pub async fn sendfile<S: Stream>(
    sock: &S,
    file: &std::fs::File,
    mut offset: u64,
    len: u64,
    limit: Duration,
) -> io::Result<u64> {
    let mut sent = 0u64;
    while sent < len {
        let want = (len - sent).min(1 << 30) as usize;
        let result = sock.try_write_io(|| {
            let mut off = offset as libc::off_t;
            // SAFETY: both fds are open for the duration of the call and
            // `off` is a valid pointer to a local.
            let n = unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match result {
            Ok(0) => break,
            Ok(n) => {
                sent += n;
                offset += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::timeout(limit, sock.writable())
                    .await
                    .map_err(|_| timed_out("write", limit))??
            }
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// Sets the `IPPROTO_TCP` option `name` of `socket` to `value`.
pub(super) fn set_tcp_option(
    socket: &impl AsRawFd,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt on a socket we hold, reading a local c_int.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The `IPPROTO_TCP` option `name` of socket `fd` (for tests).
#[cfg(test)]
pub(super) fn tcp_option(fd: RawFd, name: libc::c_int) -> libc::c_int {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into a local c_int of the length we pass.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0);
    value
}

/// A current-thread runtime with I/O and timers, for the tests.
#[cfg(test)]
pub(super) fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    /// Both buffers arrive whole and in order when the socket takes them
    /// in parts: the first one partly, then the rest of it with the
    /// second, then the second alone after waits for a slow reader.
    #[test]
    fn two_buffers_arrive_in_order_through_partial_writes() {
        let (server, mut client) = std::os::unix::net::UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut conn = Conn::new(server);
        let first = pattern(1 << 20, 0x5a);
        let second = pattern(4 << 20, 0xa5);
        let total = first.len() + second.len();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let mut got = Vec::with_capacity(total);
            let mut buf = [0u8; 65536];
            while got.len() < total {
                let n = io::Read::read(&mut client, &mut buf).unwrap();
                assert!(n > 0, "closed after {} bytes", got.len());
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        test_runtime()
            .block_on(write_two_within(
                &mut conn,
                &first,
                &second,
                Duration::from_secs(10),
            ))
            .unwrap();
        let got = reader.join().unwrap();
        assert!(got[..first.len()] == first[..], "the first buffer changed");
        assert!(
            got[first.len()..] == second[..],
            "the second buffer changed"
        );
    }

    /// A peer that takes nothing fails the write after the limit.
    #[test]
    fn two_buffers_to_a_peer_that_reads_nothing_time_out() {
        let (server, _client) = std::os::unix::net::UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut conn = Conn::new(server);
        let (first, second) = (pattern(1 << 20, 1), pattern(1 << 20, 2));
        let err = test_runtime()
            .block_on(write_two_within(
                &mut conn,
                &first,
                &second,
                Duration::from_millis(200),
            ))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    }
}
