//! `wsgi.file_wrapper`: wraps a file-like object. When the app returns one
//! around a regular file with a `fileno()`, the connection sends it with
//! sendfile; otherwise it is an ordinary iterable of blocks.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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
    /// The wrapped object as a sendfile-able regular file, if it is one;
    /// `None` sends it by iteration instead.
    ///
    /// `fileno()` is asked last: any Python code run between learning the
    /// descriptor's number and duplicating it (the app's `flush()` or
    /// `tell()`) could close that descriptor, and a file opened meanwhile
    /// would get its number: the response would be another file.
    pub fn sendable(&self, py: Python<'_>) -> Option<SendableFile> {
        let filelike = self.filelike.bind(py);
        // Flush Python-side write buffers and learn the logical position
        // (a buffered reader may have read ahead of it).
        let _ = filelike.call_method0(pyo3::intern!(py, "flush"));
        let offset: Option<u64> = filelike
            .call_method0(pyo3::intern!(py, "tell"))
            .ok()
            .and_then(|t| t.extract().ok());
        let fd: RawFd = filelike
            .call_method0(pyo3::intern!(py, "fileno"))
            .ok()?
            .extract()
            .ok()?;
        let file = std::fs::File::from(dup_cloexec(fd)?);
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

/// A duplicate of the app's descriptor `fd`, close-on-exec: the response
/// is sent from it even if the app closes its file meanwhile, and it does
/// not leak into a process the app (or a hook) starts. `None` if `fd` is
/// not an open descriptor: a negative `fileno()` means "none", and a
/// number may be stale.
fn dup_cloexec(fd: RawFd) -> Option<OwnedFd> {
    if fd < 0 {
        return None;
    }
    // SAFETY: fcntl only reads the number; on a closed or invalid one it
    // fails with EBADF. (A `BorrowedFd` would promise an open descriptor,
    // which the app's word does not make true.)
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    // SAFETY: a new descriptor, owned by nothing else.
    (dup >= 0).then(|| unsafe { OwnedFd::from_raw_fd(dup) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapper(py: Python<'_>, code: &std::ffi::CStr) -> FileWrapper {
        let filelike = py.eval(code, None, None).unwrap().unbind();
        FileWrapper::new(filelike, 8192)
    }

    #[test]
    fn a_negative_fileno_is_no_descriptor() {
        Python::initialize();
        Python::attach(|py| {
            let negative = wrapper(
                py,
                c"type('F', (), {'fileno': lambda self: -1, 'read': lambda self, n: b''})()",
            );
            assert!(negative.sendable(py).is_none());
        });
    }

    /// The duplicate must not outlive an exec: a child the app starts
    /// would hold the file open.
    #[test]
    fn the_duplicated_descriptor_is_closed_on_exec() {
        Python::initialize();
        let path = std::env::temp_dir().join(format!("rwsgi-fw-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        Python::attach(|py| {
            let code =
                std::ffi::CString::new(format!("open({:?}, 'rb')", path.display().to_string()))
                    .unwrap();
            let file = wrapper(py, &code);
            let sendable = file.sendable(py).expect("a regular file");
            assert_eq!((sendable.offset, sendable.len), (0, 10));
            // SAFETY: F_GETFD on a descriptor the test owns.
            let flags = unsafe { libc::fcntl(sendable.file.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
            file.close(py).unwrap();
        });
        std::fs::remove_file(&path).unwrap();
    }
}
