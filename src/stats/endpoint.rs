//! The stats and metrics sockets: non-blocking listeners the master polls
//! each tick, and the clients it holds between ticks (at most
//! [`MAX_CLIENTS`] each, for at most [`CLIENT_DEADLINE`]).

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::client::{Client, Progress, Stream};
use crate::server::listener::{remove_stale_socket, ListenAddr};

/// Clients one endpoint holds at once; more wait in the kernel's backlog
/// until a place frees up. Bounds the master's work per tick.
const MAX_CLIENTS: usize = 16;
/// How long a client has, from accept, to send its request and take the
/// whole answer; then it is closed, answered or not.
const CLIENT_DEADLINE: Duration = Duration::from_secs(2);

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
    /// Clients accepted and not yet fully answered.
    clients: Vec<Client>,
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
            clients: Vec::new(),
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
            clients: Vec::new(),
        })
    }

    /// The Unix socket file, if any (removed by `--vacuum`).
    pub fn path(&self) -> Option<&PathBuf> {
        match &self.socket {
            Socket::Unix(_, p) => Some(p),
            Socket::Tcp(_) => None,
        }
    }

    /// Accepts waiting clients (up to [`MAX_CLIENTS`] held) and moves each
    /// held client's exchange on as far as its socket allows, without
    /// waiting; closes the finished and those past their deadline. The
    /// body is rendered with `render` once, if any client needs it.
    pub fn poll(&mut self, render: &mut dyn FnMut(EndpointKind) -> String) {
        let now = Instant::now();
        self.clients.retain(|client| {
            let late = now >= client.deadline;
            if late {
                tracing::debug!("stats client too slow: closed");
            }
            !late
        });
        self.accept_waiting();
        let kind = self.kind;
        let mut body: Option<String> = None;
        self.clients.retain_mut(|client| {
            let mut render_once = || body.get_or_insert_with(|| render(kind)).clone();
            match client.advance(kind, &mut render_once) {
                Ok(Progress::Pending) => true,
                Ok(Progress::Done) => false,
                Err(e) => {
                    tracing::debug!("stats client: {e}");
                    false
                }
            }
        });
    }

    /// Whether a client is in the middle of its exchange (the master then
    /// comes back sooner than its usual tick).
    pub fn busy(&self) -> bool {
        !self.clients.is_empty()
    }

    fn accept_waiting(&mut self) {
        while self.clients.len() < MAX_CLIENTS {
            let accepted = match &self.socket {
                Socket::Tcp(l) => l
                    .accept()
                    .and_then(|(s, _)| s.set_nonblocking(true).map(|()| Stream::Tcp(s))),
                Socket::Unix(l, _) => l
                    .accept()
                    .and_then(|(s, _)| s.set_nonblocking(true).map(|()| Stream::Unix(s))),
            };
            match accepted {
                Ok(stream) => self
                    .clients
                    .push(Client::new(stream, Instant::now() + CLIENT_DEADLINE)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("stats accept failed: {e}");
                    return;
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    #[test]
    fn silent_clients_are_capped_then_closed_at_their_deadline() {
        let dir = std::env::temp_dir().join(format!("rwsgi-endpoint-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let addr = ListenAddr::Unix(dir.join("stats.sock"));
        let mut endpoint = Endpoint::bind(&addr, EndpointKind::HttpStats).unwrap();
        let mut silent: Vec<UnixStream> = (0..MAX_CLIENTS + 4)
            .map(|_| UnixStream::connect(dir.join("stats.sock")).unwrap())
            .collect();
        let mut render = |_| String::from("{}");
        endpoint.poll(&mut render);
        assert_eq!(endpoint.clients.len(), MAX_CLIENTS);
        std::thread::sleep(CLIENT_DEADLINE + Duration::from_millis(100));
        endpoint.poll(&mut render);
        // The first ones are closed unanswered; the rest take their place.
        assert_eq!(endpoint.clients.len(), 4);
        let mut buf = Vec::new();
        silent[0].read_to_end(&mut buf).unwrap();
        assert!(buf.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
