//! The part of a request body that has arrived but that the app has not
//! read yet: a queue of the pieces as the connection delivered them. A new
//! piece is queued, never joined to the ones before it, so reading a
//! streamed body copies each byte once (into the bytes object the app
//! gets), however many pieces it came in. Joining on every piece copied
//! everything still unread each time: quadratic in the body size, under
//! the GIL. Knows nothing of Python or channels.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};

/// Unread body bytes, in order.
#[derive(Debug, Default)]
pub struct Pending {
    /// The pieces, oldest first; none is empty.
    pieces: VecDeque<Bytes>,
    /// Their total length, so that length checks are not a walk.
    len: usize,
}

impl Pending {
    /// The whole of `body`, unread.
    pub fn of(body: Bytes) -> Self {
        let mut pending = Pending::default();
        pending.push(body);
        pending
    }

    /// Bytes unread.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Queues the next piece (without copying it).
    pub fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len();
            self.pieces.push_back(piece);
        }
    }

    /// Where the first `\n` at or after `from` is, counted from the start
    /// of what is unread. Only the pieces that hold bytes from `from` on
    /// are looked at, so a reader waiting for the end of a line searches
    /// each new piece once.
    pub fn find_newline(&self, from: usize) -> Option<usize> {
        // Walk back from the end to the piece that holds `from`.
        let mut start = self.len;
        let mut first = self.pieces.len();
        while first > 0 && start > from {
            first -= 1;
            start -= self.pieces[first].len();
        }
        for piece in self.pieces.range(first..) {
            let skip = from.saturating_sub(start);
            if let Some(at) = piece[skip.min(piece.len())..]
                .iter()
                .position(|&b| b == b'\n')
            {
                return Some(start + skip + at);
            }
            start += piece.len();
        }
        None
    }

    /// Moves the first `out.len()` unread bytes into `out` (which must not
    /// be longer than what is unread).
    pub fn take_into(&mut self, out: &mut [u8]) {
        assert!(out.len() <= self.len, "taking more than is pending");
        let mut filled = 0;
        while filled < out.len() {
            let piece = self.pieces.front_mut().expect("len counts the pieces");
            let n = piece.len().min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&piece[..n]);
            filled += n;
            if n == piece.len() {
                self.pieces.pop_front();
            } else {
                piece.advance(n);
            }
        }
        self.len -= out.len();
        #[cfg(test)]
        COPIED.with(|c| c.set(c.get() + out.len()));
    }

    /// Drops everything unread.
    pub fn clear(&mut self) {
        self.pieces.clear();
        self.len = 0;
    }
}

#[cfg(test)]
thread_local! {
    /// Bytes this thread copied out of pending bodies, for tests that
    /// check a body is copied once, not once per piece.
    pub(super) static COPIED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(pieces: &[&'static [u8]]) -> Pending {
        let mut p = Pending::default();
        for piece in pieces {
            p.push(Bytes::from_static(piece));
        }
        p
    }

    fn take(p: &mut Pending, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        p.take_into(&mut out);
        out
    }

    #[test]
    fn taking_across_pieces_returns_the_bytes_in_order() {
        let mut p = pending(&[b"ab", b"", b"cde", b"f"]);
        assert_eq!(p.len(), 6);
        assert_eq!(take(&mut p, 1), b"a");
        assert_eq!(take(&mut p, 3), b"bcd");
        assert_eq!(p.len(), 2);
        assert_eq!(take(&mut p, 2), b"ef");
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn a_newline_is_found_in_any_piece_from_the_given_offset() {
        let p = pending(&[b"ab\ncd", b"ef", b"g\nh"]);
        assert_eq!(p.find_newline(0), Some(2));
        assert_eq!(p.find_newline(2), Some(2));
        assert_eq!(p.find_newline(3), Some(8));
        assert_eq!(p.find_newline(5), Some(8));
        assert_eq!(p.find_newline(8), Some(8));
        assert_eq!(p.find_newline(9), None);
        assert_eq!(p.find_newline(100), None);
    }

    #[test]
    fn a_newline_search_after_a_partial_take_counts_from_what_is_left() {
        let mut p = pending(&[b"xx\nyy", b"z\n"]);
        take(&mut p, 3);
        assert_eq!(p.find_newline(0), Some(3));
    }

    #[test]
    fn clearing_drops_every_piece() {
        let mut p = pending(&[b"ab", b"cd"]);
        p.clear();
        assert_eq!(p.len(), 0);
        assert_eq!(p.find_newline(0), None);
    }
}
