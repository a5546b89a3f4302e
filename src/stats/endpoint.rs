//! The stats and metrics sockets: non-blocking listeners the master polls.

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use crate::server::listener::{remove_stale_socket, ListenAddr};

/// How long a stats client may take to send its request or take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(200);

/// What an endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// uWSGI stats JSON, written as soon as a client connects.
    RawStats,
    /// uWSGI stats JSON as an HTTP response (`--stats-http`).
    HttpStats,
    /// Prometheus text as an HTTP response.
    Metrics,
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A listening stats or metrics socket.
pub struct Endpoint {
    socket: Socket,
    /// What it answers with.
    pub kind: EndpointKind,
    /// Where it listens, for logs.
    pub addr: ListenAddr,
}

impl Endpoint {
    /// Binds `addr`. A stale Unix socket file is replaced; a live one, or a
    /// path that is not a socket, is an error (the file is left alone).
    pub fn bind(addr: &ListenAddr, kind: EndpointKind) -> io::Result<Endpoint> {
        let socket = match addr {
            ListenAddr::Tcp(a) => {
                let l = TcpListener::bind(a)?;
                l.set_nonblocking(true)?;
                Socket::Tcp(l)
            }
            ListenAddr::Unix(path) => {
                remove_stale_socket(path)?;
                let l = UnixListener::bind(path)?;
                l.set_nonblocking(true)?;
                Socket::Unix(l, path.clone())
            }
        };
        Ok(Endpoint {
            socket,
            kind,
            addr: addr.clone(),
        })
    }

    /// Wraps a socket a previous master image bound at `addr` and handed
    /// over through a reload's re-exec (after `--uid` the new image may not
    /// be allowed to bind it again).
    pub fn adopt(fd: RawFd, addr: &ListenAddr, kind: EndpointKind) -> io::Result<Endpoint> {
        // SAFETY: the fd was passed to this image open; it is ours now and
        // goes back to close-on-exec.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let socket = match addr {
            ListenAddr::Tcp(_) => {
                // SAFETY: as above, owned once.
                let l = unsafe { TcpListener::from_raw_fd(fd) };
                l.local_addr()?;
                l.set_nonblocking(true)?;
                Socket::Tcp(l)
            }
            ListenAddr::Unix(path) => {
                // SAFETY: as above, owned once.
                let l = unsafe { UnixListener::from_raw_fd(fd) };
                l.local_addr()?;
                l.set_nonblocking(true)?;
                Socket::Unix(l, path.clone())
            }
        };
        Ok(Endpoint {
            socket,
            kind,
            addr: addr.clone(),
        })
    }

    /// The Unix socket file, if any (removed by `--vacuum`).
    pub fn path(&self) -> Option<&PathBuf> {
        match &self.socket {
            Socket::Unix(_, p) => Some(p),
            Socket::Tcp(_) => None,
        }
    }

    /// Answers every client waiting to be accepted, rendering the body with
    /// `render` once if there is any.
    pub fn poll(&self, render: &mut dyn FnMut(EndpointKind) -> String) {
        let mut body: Option<String> = None;
        loop {
            let result = match &self.socket {
                Socket::Tcp(l) => l.accept().map(|(s, _)| Box::new(s) as Box<dyn Client>),
                Socket::Unix(l, _) => l.accept().map(|(s, _)| Box::new(s) as Box<dyn Client>),
            };
            let mut client = match result {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("stats accept failed: {e}");
                    return;
                }
            };
            let body = body.get_or_insert_with(|| render(self.kind));
            if let Err(e) = answer(client.as_mut(), self.kind, body) {
                tracing::debug!("stats client: {e}");
            }
        }
    }
}

impl AsRawFd for Endpoint {
    fn as_raw_fd(&self) -> RawFd {
        match &self.socket {
            Socket::Tcp(l) => l.as_raw_fd(),
            Socket::Unix(l, _) => l.as_raw_fd(),
        }
    }
}

/// A connected stats client (TCP or Unix).
trait Client: Read + Write {
    fn prepare(&self) -> io::Result<()>;
}

impl Client for std::net::TcpStream {
    fn prepare(&self) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        self.set_write_timeout(Some(CLIENT_TIMEOUT))
    }
}

impl Client for std::os::unix::net::UnixStream {
    fn prepare(&self) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        self.set_write_timeout(Some(CLIENT_TIMEOUT))
    }
}

fn answer(client: &mut dyn Client, kind: EndpointKind, body: &str) -> io::Result<()> {
    client.prepare()?;
    match kind {
        EndpointKind::RawStats => client.write_all(body.as_bytes()),
        EndpointKind::HttpStats | EndpointKind::Metrics => {
            read_request_head(client)?;
            let content_type = if kind == EndpointKind::Metrics {
                "text/plain; version=0.0.4; charset=utf-8"
            } else {
                "application/json"
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            client.write_all(head.as_bytes())?;
            client.write_all(body.as_bytes())
        }
    }
}

/// Reads (and ignores) an HTTP request head, up to 8 KiB.
fn read_request_head(client: &mut dyn Client) -> io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(())
}
