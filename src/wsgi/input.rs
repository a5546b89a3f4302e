//! `wsgi.input`: the request body as a binary file-like object. A buffered
//! body is read from memory; a streamed one arrives piece by piece from the
//! connection, and every wait for it releases the GIL.

use bytes::{Bytes, BytesMut};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tokio::sync::mpsc;

use crate::exchange::{Body, BodyMsg};

/// The `wsgi.input` object of one request.
#[pyclass(module = "rwsgi")]
pub struct Input {
    /// Bytes received but not yet read by the app.
    pending: Bytes,
    /// Pieces still to come (`None` for a buffered body or after the end).
    source: Option<mpsc::Receiver<BodyMsg>>,
    /// Why the body could not be read to its end, raised on the next read.
    failed: Option<String>,
}

impl Input {
    /// Lets go of the body's memory and channel, for reuse by the
    /// thread's next request.
    pub(super) fn clear_for_reuse(&mut self) {
        *self = Input::new(Body::Buffered(Bytes::new()));
    }
}

impl Input {
    /// An input over `body`.
    pub fn new(body: Body) -> Self {
        match body {
            Body::Buffered(bytes) => Input {
                pending: bytes,
                source: None,
                failed: None,
            },
            Body::Stream(rx) => Input {
                pending: Bytes::new(),
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
                if self.pending.is_empty() {
                    self.pending = data;
                } else {
                    let mut joined = BytesMut::with_capacity(self.pending.len() + data.len());
                    joined.extend_from_slice(&self.pending);
                    joined.extend_from_slice(&data);
                    self.pending = joined.freeze();
                }
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

    /// Takes up to `n` bytes (all, for `None`) into a bytes object.
    fn take<'py>(&mut self, py: Python<'py>, n: Option<usize>) -> PyResult<Bound<'py, PyBytes>> {
        match n {
            None => {
                while self.fill(py)? {}
                let all = std::mem::take(&mut self.pending);
                Ok(PyBytes::new(py, &all))
            }
            Some(n) => {
                if self.pending.is_empty() && n > 0 {
                    self.fill(py)?;
                }
                let take = n.min(self.pending.len());
                let chunk = self.pending.split_to(take);
                Ok(PyBytes::new(py, &chunk))
            }
        }
    }

    /// Reads one line of at most `limit` bytes.
    fn line<'py>(
        &mut self,
        py: Python<'py>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut searched = 0;
        loop {
            let cap = limit.unwrap_or(usize::MAX);
            if let Some(pos) = self.pending[searched..].iter().position(|&b| b == b'\n') {
                let end = (searched + pos + 1).min(cap);
                let line = self.pending.split_to(end);
                return Ok(PyBytes::new(py, &line));
            }
            if self.pending.len() >= cap {
                let line = self.pending.split_to(cap);
                return Ok(PyBytes::new(py, &line));
            }
            searched = self.pending.len();
            if !self.fill(py)? {
                let rest = std::mem::take(&mut self.pending);
                return Ok(PyBytes::new(py, &rest));
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
        let Some(n) = size_arg(size) else {
            return self.take(py, None);
        };
        while self.pending.len() < n && self.fill(py)? {}
        self.take(py, Some(n))
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
