//! `wsgi.errors`: a text stream whose lines go to the server log, tagged
//! with the request that wrote them.

use pyo3::prelude::*;

use crate::exchange::RequestLabel;
use std::sync::Mutex;

/// The `wsgi.errors` object of one request.
#[pyclass(module = "rwsgi")]
pub struct ErrorStream {
    /// The request, to name it on each log line.
    label: RequestLabel,
    /// A partial line waiting for its newline.
    pending: Mutex<String>,
}

impl ErrorStream {
    /// A stream whose lines name `label`.
    pub fn new(label: &RequestLabel) -> Self {
        ErrorStream {
            label: label.clone(),
            pending: Mutex::new(String::new()),
        }
    }

    fn emit(&self, line: &str) {
        tracing::warn!(target: "wsgi.errors", request = %self.label, "{line}");
    }
}

impl ErrorStream {
    /// Logs a partial line and lets go of the label (slices of the
    /// request's bytes), for reuse by the thread's next request.
    pub(super) fn clear_for_reuse(&mut self) {
        self.flush();
        self.label = RequestLabel::default();
    }
}

#[pymethods]
impl ErrorStream {
    /// Writes text; each complete line becomes one log line.
    fn write(&self, text: &str) -> usize {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.push_str(text);
        while let Some(pos) = pending.find('\n') {
            let line: String = pending.drain(..=pos).collect();
            self.emit(line.trim_end_matches(['\n', '\r']));
        }
        text.chars().count()
    }

    /// Writes each string of `lines`.
    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(line?.extract::<&str>()?);
        }
        Ok(())
    }

    /// Logs a partial line, if any.
    fn flush(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.is_empty() {
            let line = std::mem::take(&mut *pending);
            self.emit(&line);
        }
    }
}

impl Drop for ErrorStream {
    fn drop(&mut self) {
        let pending = self
            .pending
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        if !pending.is_empty() {
            self.emit(&pending);
        }
    }
}
