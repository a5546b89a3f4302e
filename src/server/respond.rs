//! Writes a response to the socket as the app's [`Event`]s arrive: encodes
//! the head for the connection's protocol, frames the body (Content-Length,
//! chunked, or close-delimited), coalesces small pieces into one write and
//! sends files with sendfile.

use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;

use super::date::http_date;
use super::spare::{self, Kind};
use super::stream::{sendfile, write_two_within, write_within, Stream};
use crate::exchange::Event;
use crate::protocol::response::{
    encode_chunk_header, encode_head, Encoded, Framing, Head, RequestShape, LAST_CHUNK,
};

/// Pieces larger than this are written straight from the app's buffer
/// instead of being copied into the coalescing buffer.
const COPY_LIMIT: usize = 16 * 1024;

/// Room a response buffer starts with: a usual head and a small body.
const HEAD_ROOM: usize = 1024;

/// The state of one response being written.
#[derive(Debug)]
pub struct ResponseWriter {
    /// What the request implies for the head (protocol, HEAD, version).
    shape: RequestShape,
    /// Bytes waiting to be written, flushed when no event is ready.
    out: BytesMut,
    /// Body framing, chosen when the head arrives.
    framing: Option<Framing>,
    /// Body bytes the framing still allows (Content-Length responses).
    remaining: u64,
    /// Whether the connection may be reused after this response.
    pub keep_alive: bool,
    /// The status code, for the access log (0 until the head arrives).
    pub status: u16,
    /// Body bytes written, for the access log.
    pub body_bytes: u64,
    /// The app sent more than its Content-Length: the excess was dropped.
    pub overflowed: bool,
    /// How long a write may wait for the client to take bytes.
    write_timeout: Duration,
    /// Writes of buffered bytes so far.
    writes: u32,
    /// Small writes are being gathered by the kernel (Nagle on) until the
    /// response ends: see [`ResponseWriter::before_write`].
    gathering: bool,
}

/// What a connection should do after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait for the next event.
    More,
    /// The response is complete.
    Done,
    /// The app failed after the head was sent: close the connection.
    Abort,
}

impl ResponseWriter {
    /// A writer for a response to a request of `shape`.
    pub fn new(shape: RequestShape, write_timeout: Duration) -> Self {
        let mut out = spare::take(Kind::Write);
        out.reserve(HEAD_ROOM);
        ResponseWriter {
            shape,
            out,
            framing: None,
            remaining: 0,
            keep_alive: false,
            status: 0,
            body_bytes: 0,
            overflowed: false,
            write_timeout,
            writes: 0,
            gathering: false,
        }
    }

    /// How long a write may wait for the client.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// The connection's protocol.
    pub fn protocol(&self) -> crate::protocol::Protocol {
        self.shape.protocol
    }

    /// Whether anything has reached (or is about to reach) the client.
    pub fn head_sent(&self) -> bool {
        self.framing.is_some()
    }

    /// Applies the events that only add to the write buffer (a head, a
    /// body piece small enough to coalesce), in order, until one needs the
    /// socket; `Err` gives that one back, with the rest of `events` left.
    pub fn buffer(&mut self, events: &mut impl Iterator<Item = Event>) -> Result<(), Event> {
        for event in events {
            match event {
                Event::Head { head, known_length } => self.head(&head, known_length),
                Event::Data(data) if data.len() <= COPY_LIMIT => self.small_body(data),
                other => return Err(other),
            }
        }
        Ok(())
    }

    /// Writes what is buffered if the socket takes it all now. `Ok(false)`:
    /// some is left (it goes out with the next [`ResponseWriter::flush`]).
    pub fn try_flush<S: Stream>(&mut self, stream: &S) -> std::io::Result<bool> {
        if !self.out.is_empty() {
            self.before_write(stream);
        }
        while !self.out.is_empty() {
            match stream.try_write(&self.out) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes::Buf::advance(&mut self.out, n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn head(&mut self, head: &Head, known_length: Option<u64>) {
        self.status = head.code();
        let Encoded {
            framing,
            keep_alive,
        } = encode_head(&mut self.out, head, known_length, self.shape, &http_date());
        self.keep_alive = keep_alive;
        self.remaining = match framing {
            Framing::Length(n) => n,
            _ => u64::MAX,
        };
        self.framing = Some(framing);
    }

    /// Applies one event, writing to `stream` only when a piece is too large
    /// to coalesce or a file is to be sent.
    pub async fn apply<S: Stream>(
        &mut self,
        stream: &mut S,
        event: Event,
    ) -> std::io::Result<Next> {
        match event {
            Event::Head { head, known_length } => {
                self.head(&head, known_length);
                Ok(Next::More)
            }
            Event::Data(data) => {
                self.body(stream, data).await?;
                Ok(Next::More)
            }
            Event::File { file, offset, len } => {
                self.file(stream, file, offset, len).await?;
                Ok(Next::More)
            }
            Event::End => {
                match self.framing {
                    Some(Framing::Chunked) => self.out.put_slice(LAST_CHUNK),
                    Some(Framing::Length(_)) if self.remaining > 0 => {
                        // Shorter than announced: the client would wait for
                        // the rest, so the connection must close.
                        self.keep_alive = false;
                    }
                    _ => {}
                }
                self.flush(stream).await?;
                self.end_gathering(stream)?;
                Ok(Next::Done)
            }
            Event::Abort => {
                self.flush(stream).await?;
                self.keep_alive = false;
                Ok(Next::Abort)
            }
        }
    }

    /// A response that writes a second time is a stream of pieces: from
    /// then on the kernel may gather small pieces into full segments
    /// (Nagle), as it does for uWSGI and bjoern, whose sockets keep Nagle
    /// on. Each 1 KiB piece was its own packet through the network stack:
    /// 100 of them cost a response 1,030 us of kernel time here against
    /// bjoern's 420. A piece still leaves at once when nothing sent is
    /// unacknowledged, so pieces a slow generator yields apart (server-sent
    /// events) are not held; and the response's end turns Nagle off again
    /// ([`ResponseWriter::end_gathering`]), which pushes the last piece out
    /// instead of leaving it to wait for a delayed ACK.
    fn before_write<S: Stream>(&mut self, stream: &S) {
        self.writes = self.writes.saturating_add(1);
        if self.writes == 2 {
            match stream.gather_writes(true) {
                Ok(()) => self.gathering = true,
                Err(e) => tracing::debug!("cannot turn Nagle on for a stream: {e}"),
            }
        }
    }

    /// Pushes out what the kernel gathered and sends later writes at once
    /// again (the connection may serve another response).
    fn end_gathering<S: Stream>(&mut self, stream: &S) -> std::io::Result<()> {
        if std::mem::take(&mut self.gathering) {
            stream.gather_writes(false)?;
        }
        Ok(())
    }

    /// Writes out whatever is buffered.
    pub async fn flush<S: Stream>(&mut self, stream: &mut S) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.before_write(stream);
            write_within(stream, &self.out, self.write_timeout).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Whether the response's bytes are all known: nothing the app still
    /// sends can reach the client (a Content-Length that is filled, or a
    /// response that has no body).
    pub fn body_complete(&self) -> bool {
        match self.framing {
            Some(Framing::Length(_)) => self.remaining == 0,
            Some(Framing::Empty) => true,
            _ => false,
        }
    }

    /// The whole response, for one write by someone else (the round's
    /// writer, see `server::round`): when nothing of it was written yet, its
    /// body is complete, and the connection is kept after it. The writer
    /// then counts it as sent.
    pub fn take_whole(&mut self) -> Option<BytesMut> {
        let whole = self.body_complete() && self.writes == 0 && !self.gathering;
        (whole && self.keep_alive).then(|| std::mem::take(&mut self.out))
    }

    /// Takes back what [`ResponseWriter::take_whole`] gave, unwritten.
    pub fn put_back(&mut self, whole: BytesMut) {
        self.out = whole;
    }

    /// Whether bytes are waiting to be written.
    pub fn has_pending(&self) -> bool {
        !self.out.is_empty()
    }

    async fn body<S: Stream>(&mut self, stream: &mut S, data: Bytes) -> std::io::Result<()> {
        if data.len() <= COPY_LIMIT {
            self.small_body(data);
            return Ok(());
        }
        let Some((framing, data)) = self.frame(data) else {
            return Ok(());
        };
        if framing == Framing::Chunked {
            encode_chunk_header(&mut self.out, data.len());
        }
        if self.out.is_empty() {
            write_within(stream, &data, self.write_timeout).await?;
        } else {
            // The head (or a chunk header) and the piece in one syscall.
            self.before_write(stream);
            write_two_within(stream, &self.out, &data, self.write_timeout).await?;
            self.out.clear();
        }
        if framing == Framing::Chunked {
            self.out.put_slice(b"\r\n");
        }
        Ok(())
    }

    /// A body piece that is copied into the write buffer.
    fn small_body(&mut self, data: Bytes) {
        let Some((framing, data)) = self.frame(data) else {
            return;
        };
        if framing == Framing::Chunked {
            encode_chunk_header(&mut self.out, data.len());
            self.out.put_slice(&data);
            self.out.put_slice(b"\r\n");
        } else {
            self.out.put_slice(&data);
        }
    }

    /// Counts a body piece against the framing: what of it may be sent
    /// (none for an empty piece or a body-less response; no more than the
    /// Content-Length left).
    fn frame(&mut self, mut data: Bytes) -> Option<(Framing, Bytes)> {
        let framing = self.framing.unwrap_or(Framing::Close);
        if framing == Framing::Empty || data.is_empty() {
            return None;
        }
        if (data.len() as u64) > self.remaining {
            self.overflowed = true;
            data.truncate(self.remaining as usize);
        }
        if let Framing::Length(_) = framing {
            self.remaining -= data.len() as u64;
        }
        self.body_bytes += data.len() as u64;
        Some((framing, data))
    }

    async fn file<S: Stream>(
        &mut self,
        stream: &mut S,
        file: std::fs::File,
        offset: u64,
        len: u64,
    ) -> std::io::Result<()> {
        let framing = self.framing.unwrap_or(Framing::Close);
        let len = len.min(self.remaining);
        if framing == Framing::Empty || len == 0 {
            return Ok(());
        }
        if framing == Framing::Chunked {
            encode_chunk_header(&mut self.out, len as usize);
        }
        self.flush(stream).await?;
        let sent = sendfile(stream, &file, offset, len, self.write_timeout).await?;
        tracing::debug!("sent {sent} bytes of a file with sendfile");
        if sent < len {
            // The file shrank under us: the framing can no longer be kept.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("file ended after {sent} of {len} bytes"),
            ));
        }
        if let Framing::Length(_) = framing {
            self.remaining -= sent;
        }
        self.body_bytes += sent;
        if framing == Framing::Chunked {
            self.out.put_slice(b"\r\n");
        }
        Ok(())
    }
}

impl Drop for ResponseWriter {
    /// The buffer goes back to this thread's spares for the next response.
    fn drop(&mut self) {
        spare::give(Kind::Write, std::mem::take(&mut self.out));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::protocol::Protocol;
    use crate::server::stream::{tcp_option, Conn};

    /// A streamed response lets the kernel gather its pieces from the
    /// second write on, and its end sends later writes at once again (the
    /// keep-alive connection's next response must not wait on Nagle).
    #[test]
    fn a_stream_of_pieces_is_gathered_until_the_response_ends() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        server.set_nodelay(true).unwrap();
        let mut conn = Conn::new(server);
        let shape = RequestShape {
            protocol: Protocol::Http,
            head: false,
            http10: false,
            keep_alive: true,
            extra: b"",
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut writer = ResponseWriter::new(shape, Duration::from_secs(5));
            let mut first = vec![Event::Head {
                head: Head::new(b"200 OK"),
                known_length: None,
            }];
            first.push(Event::Data(Bytes::from_static(b"one")));
            writer.buffer(&mut first.drain(..)).unwrap();
            assert!(writer.try_flush(&conn).unwrap());
            assert_eq!(
                tcp_option(conn.as_raw_fd(), libc::TCP_NODELAY),
                1,
                "the first write goes out as is"
            );
            writer
                .buffer(&mut vec![Event::Data(Bytes::from_static(b"two"))].drain(..))
                .unwrap();
            assert!(writer.try_flush(&conn).unwrap());
            assert_eq!(
                tcp_option(conn.as_raw_fd(), libc::TCP_NODELAY),
                0,
                "later pieces are gathered"
            );
            let next = writer.apply(&mut conn, Event::End).await.unwrap();
            assert_eq!(next, Next::Done);
            assert_eq!(
                tcp_option(conn.as_raw_fd(), libc::TCP_NODELAY),
                1,
                "the end sends at once again"
            );
        });
        drop(conn);
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        assert!(
            reply.ends_with("3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"),
            "{reply:?}"
        );
    }

    /// A response's buffer is the one the response before it on this
    /// thread used: no malloc and free per response.
    #[test]
    fn a_response_reuses_the_buffer_of_the_one_before() {
        let shape = RequestShape {
            protocol: Protocol::Http,
            head: false,
            http10: false,
            keep_alive: true,
            extra: b"",
        };
        let first = ResponseWriter::new(shape, Duration::from_secs(5));
        let at = first.out.as_ptr();
        drop(first);
        let spare = spare::take(Kind::Write);
        assert_eq!(spare.as_ptr(), at, "the buffer went back to the spares");
        assert!(spare.capacity() >= HEAD_ROOM);
        spare::give(Kind::Write, spare);
        let second = ResponseWriter::new(shape, Duration::from_secs(5));
        assert_eq!(second.out.as_ptr(), at);
        assert!(
            spare::take(Kind::Write).capacity() == 0,
            "and was taken again"
        );
    }
}
