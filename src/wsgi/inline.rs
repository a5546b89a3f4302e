//! Running the app on the I/O thread itself, a step at a time, for workers
//! with a single Python thread: the request is served without handing it
//! to another thread and back (two context switches, most of the cost of a
//! small request). The connection writes each step's output before asking
//! for the next, so streaming and client disconnects work as on a pool
//! thread; the request body must be fully buffered (large bodies still go
//! to the pool thread).

use std::sync::Arc;

use pyo3::prelude::*;

use super::call::{AppCall, Outcome, Progress};
use super::environ::WorkerFacts;
use super::interpreter::LoadedApp;
use crate::exchange::{InlineCall, InlineRunner, Job, PoolObserver, ServiceTime};

/// The app, ready to run inline.
pub struct InlineApp {
    app: Arc<LoadedApp>,
    facts: WorkerFacts,
    /// Told about each request, as the pool's threads tell it (thread 0).
    observer: Option<Arc<dyn PoolObserver>>,
    /// Where the time the app takes is recorded.
    service: Arc<ServiceTime>,
}

impl InlineApp {
    /// An inline runner for `app`, recording its service time in `service`.
    pub fn new(
        app: Arc<LoadedApp>,
        facts: WorkerFacts,
        observer: Option<Arc<dyn PoolObserver>>,
        service: Arc<ServiceTime>,
    ) -> Self {
        InlineApp {
            app,
            facts,
            observer,
            service,
        }
    }
}

impl InlineRunner for InlineApp {
    fn start(&self, job: Job) -> Option<Box<dyn InlineCall>> {
        if let Some(o) = &self.observer {
            o.job_started(0);
        }
        // Boxed only if it takes more steps: most calls are over at once.
        let mut call = Call {
            call: None,
            outcome: None,
            observer: self.observer.clone(),
            service: self.service.clone(),
            busy: std::time::Duration::ZERO,
        };
        let began = std::time::Instant::now();
        let done = Python::attach(|py| match AppCall::start(py, &self.app, self.facts, job) {
            Ok(app_call) => {
                call.call = Some(app_call);
                call.advance(py)
            }
            Err(outcome) => {
                call.outcome = Some(outcome);
                true
            }
        });
        call.busy += began.elapsed();
        call.finish_if_over();
        (!done).then(|| Box::new(call) as Box<dyn InlineCall>)
    }
}

/// One inline app call.
struct Call {
    call: Option<AppCall>,
    /// How the call ended, until it is reported.
    outcome: Option<Outcome>,
    observer: Option<Arc<dyn PoolObserver>>,
    service: Arc<ServiceTime>,
    /// Time spent in the app so far (not in writing its pieces).
    busy: std::time::Duration,
}

impl Call {
    /// Sends the next piece; true once the call is over.
    fn advance(&mut self, py: Python<'_>) -> bool {
        let Some(call) = self.call.as_mut() else {
            return true;
        };
        match call.advance(py, true) {
            Progress::More => false,
            Progress::Done(outcome) => {
                self.call = None;
                self.outcome = Some(outcome);
                true
            }
        }
    }

    /// Reports the call's service time and outcome, once it is over.
    fn finish_if_over(&mut self) {
        let Some(outcome) = self.outcome.take() else {
            return;
        };
        self.service.record(self.busy);
        if let Some(o) = &self.observer {
            o.job_finished(0, outcome == Outcome::AppError);
            if outcome == Outcome::Panicked {
                o.thread_panicked(0);
            }
        }
    }
}

impl InlineCall for Call {
    fn step(&mut self, sent: &mut dyn FnMut() -> bool) -> bool {
        // The app's service time is its Python time: the writes between
        // pieces are the I/O thread's own work, which it would do just the
        // same for the pool thread. Counted in, a stream of many small
        // pieces over a socket whose writes are slow (a busy kernel) read
        // as a slow app and went to the pool thread, where each piece then
        // cost a thread hand-off more.
        let began = std::time::Instant::now();
        let mut writing = std::time::Duration::ZERO;
        let done = Python::attach(|py| loop {
            if self.advance(py) {
                return true;
            }
            let write_began = std::time::Instant::now();
            let more = sent();
            writing += write_began.elapsed();
            if !more {
                return false;
            }
        });
        self.busy += began.elapsed().saturating_sub(writing);
        self.finish_if_over();
        done
    }

    fn abandon(mut self: Box<Self>) {
        if let Some(call) = self.call.take() {
            Python::attach(|py| call.abandon(py));
            self.outcome = Some(Outcome::ClientGone);
            self.finish_if_over();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::wsgi::file_wrapper::FileWrapper;

    /// Ten pieces, yielded as fast as Python can.
    const STREAM_APP: &std::ffi::CStr = c"
def application(environ, start_response):
    start_response('200 OK', [])
    for _ in range(10):
        yield b'x' * 1024
";

    fn stream_app() -> Arc<LoadedApp> {
        Python::initialize();
        Python::attach(|py| {
            let module =
                pyo3::types::PyModule::from_code(py, STREAM_APP, c"stream.py", c"stream").unwrap();
            Arc::new(LoadedApp {
                callable: module.getattr("application").unwrap().unbind(),
                file_wrapper: py.get_type::<FileWrapper>().into_any().unbind(),
            })
        })
    }

    /// Writes that take long without waiting on the client (a busy
    /// kernel) are the I/O thread's work, not the app's: a fast app whose
    /// pieces are slow to write still counts as fast and stays inline.
    #[test]
    fn the_time_spent_writing_pieces_is_not_the_apps_service_time() {
        let service = Arc::new(ServiceTime::default());
        let facts = WorkerFacts {
            multithread: false,
            multiprocess: false,
        };
        let runner = InlineApp::new(stream_app(), facts, None, service.clone());
        let slow_write = Duration::from_millis(2);
        for _ in 0..4 {
            let mut call = runner
                .start(Job::get_for_tests())
                .expect("a stream takes steps");
            let mut writes = 0;
            let done = call.step(&mut || {
                std::thread::sleep(slow_write);
                writes += 1;
                true
            });
            assert!(done, "the stream ends within one step");
            assert!(writes >= 9, "{writes} writes");
        }
        let mean = service.mean().expect("four calls measured");
        assert!(
            mean < slow_write * 4,
            "service time {mean:?} counts the 18 ms of writes per call"
        );
    }
}
