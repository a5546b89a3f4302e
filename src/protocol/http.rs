//! HTTP/1.1 request heads (RFC 9112). (Being written: see the helper's task.)

use bytes::BytesMut;

use super::{Limits, ProtocolError, Request};

/// Decodes HTTP/1.x request heads from a connection's read buffer.
#[derive(Debug)]
pub struct HttpCodec {
    limits: Limits,
}

impl HttpCodec {
    /// A codec enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        HttpCodec { limits }
    }

    /// Decodes one request head from the front of `buf`, removing it.
    /// `Ok(None)`: not a whole head yet.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        let _ = (&self.limits, buf);
        unimplemented!()
    }
}
