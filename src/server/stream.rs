//! The one trait the connection code needs from a socket, so one generic
//! connection handler serves TCP and Unix streams alike.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixStream};

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
}

impl Stream for TcpStream {
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::writable(self)
    }
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }
    fn try_write_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.try_io(Interest::WRITABLE, f)
    }
}

impl Stream for UnixStream {
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        UnixStream::writable(self)
    }
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        UnixStream::readable(self)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        UnixStream::try_write(self, buf)
    }
    fn try_write_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.try_io(Interest::WRITABLE, f)
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
