//! The chunked transfer-coding decoder. (Being written: see the helper's task.)

use bytes::{Bytes, BytesMut};

use super::ProtocolError;

/// One step of a chunked body.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Body bytes (de-chunked), possibly part of a wire chunk.
    Data(Bytes),
    /// The last chunk and the trailer section have been consumed.
    End,
}

/// Resumable state machine over a chunked body.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder {}
    }

    /// Decodes the next piece from the front of `buf`, removing what it used.
    /// `Ok(None)`: more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, ProtocolError> {
        let _ = buf;
        unimplemented!()
    }
}
