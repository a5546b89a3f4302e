//! `wsgi.input`: the request body as a binary file-like object. A buffered
//! body is read from memory; a streamed one arrives piece by piece from the
//! connection, and every wait for it releases the GIL.

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tokio::sync::mpsc;

use super::pending::Pending;
use crate::exchange::{Body, BodyMsg};

/// The `wsgi.input` object of one request.
#[pyclass(module = "rwsgi")]
pub struct Input {
    /// Bytes received but not yet read by the app.
    pending: Pending,
    /// Pieces still to come (`None` for a buffered body or after the end).
    source: Option<mpsc::Receiver<BodyMsg>>,
    /// Why the body could not be read to its end, raised on the next read.
    failed: Option<String>,
}

impl Input {
    /// Lets go of the body's memory and channel, for reuse by the
    /// thread's next request.
    pub(super) fn clear_for_reuse(&mut self) {
        // The queue keeps its capacity for the next request's pieces.
        self.pending.clear();
        self.source = None;
        self.failed = None;
    }
}

impl Input {
    /// An input over `body`.
    pub fn new(body: Body) -> Self {
        match body {
            Body::Buffered(bytes) => Input {
                pending: Pending::of(bytes),
                source: None,
                failed: None,
            },
            Body::Stream(rx) => Input {
                pending: Pending::default(),
                source: Some(rx),
                failed: None,
            },
        }
    }

    /// Waits (without the GIL) for the next piece. Returns false at the end.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        if let Some(why) = &self.failed {
            return Err(PyOSError::new_err(format!(
                "request body incomplete: {why}"
            )));
        }
        let Some(rx) = self.source.as_mut() else {
            return Ok(false);
        };
        let msg = py.detach(|| rx.blocking_recv());
        match msg {
            Some(BodyMsg::Data(data)) => {
                self.pending.push(data);
                Ok(true)
            }
            Some(BodyMsg::End) => {
                self.source = None;
                Ok(false)
            }
            Some(BodyMsg::Failed(why)) => {
                self.source = None;
                self.failed = Some(why.clone());
                Err(PyOSError::new_err(format!(
                    "request body incomplete: {why}"
                )))
            }
            None => {
                self.source = None;
                let why = "the connection closed before the body ended".to_string();
                self.failed = Some(why.clone());
                Err(PyOSError::new_err(format!(
                    "request body incomplete: {why}"
                )))
            }
        }
    }

    /// Takes up to `n` of the pending bytes into a bytes object: the one
    /// copy each byte of the body goes through.
    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        let n = n.min(self.pending.len());
        PyBytes::new_with(py, n, |out| {
            self.pending.take_into(out);
            Ok(())
        })
    }

    /// Reads one line of at most `limit` bytes.
    fn line<'py>(
        &mut self,
        py: Python<'py>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let cap = limit.unwrap_or(usize::MAX);
        // What was searched already holds no newline: each piece is
        // searched once however long the line.
        let mut searched = 0;
        loop {
            if let Some(at) = self.pending.find_newline(searched) {
                return self.take(py, (at + 1).min(cap));
            }
            if self.pending.len() >= cap {
                return self.take(py, cap);
            }
            searched = self.pending.len();
            if !self.fill(py)? {
                return self.take(py, usize::MAX);
            }
        }
    }
}

/// A size argument: a negative number or `None` means "everything".
fn size_arg(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    /// Reads up to `size` bytes; all that is left when `size` is omitted,
    /// negative or None. Returns fewer only at the end of the body.
    #[pyo3(signature = (size=None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let n = size_arg(size).unwrap_or(usize::MAX);
        while self.pending.len() < n && self.fill(py)? {}
        self.take(py, n)
    }

    /// Reads one line (ending in `\n`), of at most `size` bytes.
    #[pyo3(signature = (size=None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.line(py, size_arg(size))
    }

    /// Reads lines until the end, or until about `hint` bytes were read.
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let hint = size_arg(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.line(py, None)?;
            let len = line.as_bytes().len();
            if len == 0 {
                break;
            }
            lines.append(line)?;
            total += len;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.line(py, None)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::pending::COPIED;
    use super::*;

    /// An input over a body streamed in `pieces`, all already sent.
    fn streamed(pieces: &[Vec<u8>]) -> Input {
        let (tx, rx) = mpsc::channel(pieces.len() + 1);
        for piece in pieces {
            tx.try_send(BodyMsg::Data(Bytes::copy_from_slice(piece)))
                .unwrap();
        }
        tx.try_send(BodyMsg::End).unwrap();
        Input::new(Body::Stream(rx))
    }

    /// Bytes copied out of pending bodies by `f` on this thread.
    fn copies(f: impl FnOnce()) -> usize {
        let before = COPIED.with(|c| c.get());
        f();
        COPIED.with(|c| c.get()) - before
    }

    /// A thousand 4 KiB pieces without a newline.
    fn many_pieces() -> Vec<Vec<u8>> {
        (0..1000u32)
            .map(|i| vec![b'a' + (i % 26) as u8; 4096])
            .collect()
    }

    #[test]
    fn reading_a_streamed_body_copies_each_byte_once() {
        Python::initialize();
        let pieces = many_pieces();
        let expected = pieces.concat();
        Python::attach(|py| {
            let mut all = streamed(&pieces);
            let copied = copies(|| assert_eq!(all.read(py, None).unwrap().as_bytes(), expected));
            assert_eq!(copied, expected.len(), "read()");

            let mut sized = streamed(&pieces);
            let n = Some(expected.len() as isize);
            let copied = copies(|| assert_eq!(sized.read(py, n).unwrap().as_bytes(), expected));
            assert_eq!(copied, expected.len(), "read(n)");

            let mut line = streamed(&pieces);
            let copied =
                copies(|| assert_eq!(line.readline(py, None).unwrap().as_bytes(), expected));
            assert_eq!(copied, expected.len(), "readline() over one long line");
        });
    }

    /// Lines split across pieces anywhere come out whole, and sizes
    /// still cut them.
    #[test]
    fn lines_split_across_pieces_are_read_whole() {
        Python::initialize();
        let pieces: Vec<Vec<u8>> = [&b"ab\ncd"[..], b"e", b"f\n", b"\ngh", b"ij"]
            .iter()
            .map(|p| p.to_vec())
            .collect();
        Python::attach(|py| {
            let mut input = streamed(&pieces);
            let mut lines = Vec::new();
            loop {
                let line = input.readline(py, None).unwrap().as_bytes().to_vec();
                if line.is_empty() {
                    break;
                }
                lines.push(line);
            }
            assert_eq!(lines, [&b"ab\n"[..], b"cdef\n", b"\n", b"ghij"]);

            let mut input = streamed(&pieces);
            let cut: Vec<Vec<u8>> = [Some(2), Some(2), Some(10), Some(0), None]
                .into_iter()
                .map(|n| input.readline(py, n).unwrap().as_bytes().to_vec())
                .collect();
            assert_eq!(cut, [&b"ab"[..], b"\n", b"cdef\n", b"", b"\n"]);

            let mut input = streamed(&pieces);
            let read: Vec<Vec<u8>> = [Some(1), Some(4), Some(-1)]
                .into_iter()
                .map(|n| input.read(py, n).unwrap().as_bytes().to_vec())
                .collect();
            assert_eq!(read, [&b"a"[..], b"b\ncd", b"ef\n\nghij"]);
            assert!(input.read(py, None).unwrap().as_bytes().is_empty());

            let mut input = streamed(&pieces);
            let lines = input.readlines(py, Some(4)).unwrap();
            assert_eq!(lines.len(), 2, "readlines stops once the hint is reached");
            assert_eq!(input.readline(py, None).unwrap().as_bytes(), b"\n");
        });
    }
}
