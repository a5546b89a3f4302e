//! One stats or metrics client: its request head read and its answer
//! written a step at a time on a non-blocking socket, so the master can
//! advance it each tick and never wait on it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::EndpointKind;

/// Longest request head read; the rest is ignored.
const MAX_HEAD: usize = 8192;

/// A connected client socket (TCP or Unix), non-blocking.
pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a client's exchange stands after a step.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// It waits on the client (more of the head, or room to write).
    Pending,
    /// The whole answer is written: close it.
    Done,
}

/// A client in the middle of its exchange.
pub(super) struct Client {
    stream: Stream,
    /// When it is closed, answered or not: a client that trickles its
    /// request or reads slowly holds a place for this long at most.
    pub(super) deadline: Instant,
    /// The request head so far (HTTP endpoints only); read to know the
    /// request is complete, then ignored.
    head: Vec<u8>,
    /// The answer once rendered, and how much of it is written.
    answer: Option<(Vec<u8>, usize)>,
}

impl Client {
    /// A client just accepted; `stream` must be non-blocking.
    pub(super) fn new(stream: Stream, deadline: Instant) -> Client {
        Client {
            stream,
            deadline,
            head: Vec::new(),
            answer: None,
        }
    }

    /// Reads and writes what the socket allows now without waiting.
    /// `body` renders the answer's body, called once the request is in.
    pub(super) fn advance(
        &mut self,
        kind: EndpointKind,
        body: &mut dyn FnMut() -> String,
    ) -> io::Result<Progress> {
        if self.answer.is_none() {
            if kind != EndpointKind::RawStats && !self.read_head()? {
                return Ok(Progress::Pending);
            }
            self.answer = Some((respond(kind, &body()), 0));
        }
        let Some((out, written)) = &mut self.answer else {
            return Ok(Progress::Done);
        };
        while *written < out.len() {
            match self.stream.write(&out[*written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Progress::Done)
    }

    /// Reads what has arrived of the request head; true once it is whole
    /// (or the client stopped sending, or it reached [`MAX_HEAD`]).
    fn read_head(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 1024];
        loop {
            if self.head.len() >= MAX_HEAD || self.head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(true),
                Ok(n) => self.head.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The bytes that answer a client of `kind`.
fn respond(kind: EndpointKind, body: &str) -> Vec<u8> {
    let content_type = match kind {
        EndpointKind::RawStats => return body.as_bytes().to_vec(),
        EndpointKind::HttpStats => "application/json",
        EndpointKind::Metrics => "text/plain; version=0.0.4; charset=utf-8",
    };
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (Client, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        (Client::new(Stream::Unix(ours), deadline), theirs)
    }

    #[test]
    fn an_http_client_waits_for_its_whole_head_without_blocking() {
        let (mut client, mut peer) = pair();
        let mut body = || "{}".to_string();
        peer.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let step = client.advance(EndpointKind::HttpStats, &mut body);
        assert_eq!(step.unwrap(), Progress::Pending);
        peer.write_all(b"Host: x\r\n\r\n").unwrap();
        let step = client.advance(EndpointKind::HttpStats, &mut body);
        assert_eq!(step.unwrap(), Progress::Done);
        drop(client);
        let mut answer = String::new();
        peer.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n{}"), "{answer}");
    }

    #[test]
    fn a_raw_stats_client_is_answered_without_a_request() {
        let (mut client, mut peer) = pair();
        let step = client.advance(EndpointKind::RawStats, &mut || "{\"a\":1}".into());
        assert_eq!(step.unwrap(), Progress::Done);
        drop(client);
        let mut answer = String::new();
        peer.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "{\"a\":1}");
    }

    #[test]
    fn an_answer_larger_than_the_socket_buffer_is_written_over_several_steps() {
        let (mut client, mut peer) = pair();
        let big = "x".repeat(4 << 20);
        let mut body = || big.clone();
        let step = client.advance(EndpointKind::RawStats, &mut body).unwrap();
        assert_eq!(step, Progress::Pending);
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            peer.read_to_end(&mut all).unwrap();
            all.len()
        });
        while client.advance(EndpointKind::RawStats, &mut body).unwrap() == Progress::Pending {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(client);
        assert_eq!(reader.join().unwrap(), 4 << 20);
    }
}
