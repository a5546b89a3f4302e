//! `wsgi.file_wrapper`: wraps a file-like object. When the app returns one
//! around a regular file with a `fileno()`, the connection sends it with
//! sendfile; otherwise it is an ordinary iterable of blocks.

use std::os::fd::{AsRawFd, BorrowedFd};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The object `environ['wsgi.file_wrapper'](filelike, blksize)` returns.
#[pyclass(module = "rwsgi")]
pub struct FileWrapper {
    /// The app's file-like object.
    filelike: Py<PyAny>,
    /// Bytes per block when iterated.
    blksize: usize,
}

/// A regular file ready for sendfile: a duplicated fd, where to start and
/// how many bytes are left.
pub struct SendableFile {
    /// A dup of the app's fd (the app may close its own at `close()`).
    pub file: std::fs::File,
    /// The file position the app left it at.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub len: u64,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1(pyo3::intern!(py, "read"), (self.blksize,))?;
        let empty = block
            .cast::<PyBytes>()
            .map(|b| b.as_bytes().is_empty())
            .unwrap_or_else(|_| block.is_truthy().map(|t| !t).unwrap_or(true));
        Ok((!empty).then_some(block))
    }

    /// Closes the wrapped object, if it can be closed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let filelike = self.filelike.bind(py);
        if filelike.hasattr(pyo3::intern!(py, "close"))? {
            filelike.call_method0(pyo3::intern!(py, "close"))?;
        }
        Ok(())
    }
}

impl FileWrapper {
    /// The wrapped object as a sendfile-able regular file, if it is one.
    pub fn sendable(&self, py: Python<'_>) -> Option<SendableFile> {
        let filelike = self.filelike.bind(py);
        let fd: i32 = filelike
            .call_method0(pyo3::intern!(py, "fileno"))
            .ok()?
            .extract()
            .ok()?;
        // Flush Python-side write buffers and learn the logical position
        // (a buffered reader may have read ahead of it).
        let _ = filelike.call_method0(pyo3::intern!(py, "flush"));
        let offset: Option<u64> = filelike
            .call_method0(pyo3::intern!(py, "tell"))
            .ok()
            .and_then(|t| t.extract().ok());
        // SAFETY: fd is the app's open descriptor, borrowed only to dup it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let owned = borrowed.try_clone_to_owned().ok()?;
        let file = std::fs::File::from(owned);
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let offset = match offset {
            Some(o) => o,
            None => {
                // SAFETY: lseek on a descriptor we own.
                let pos = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_CUR) };
                u64::try_from(pos).ok()?
            }
        };
        let len = meta.len().saturating_sub(offset);
        Some(SendableFile { file, offset, len })
    }
}
