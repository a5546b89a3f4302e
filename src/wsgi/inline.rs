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
        let mut call = Box::new(Call {
            call: None,
            outcome: None,
            observer: self.observer.clone(),
            service: self.service.clone(),
            busy: std::time::Duration::ZERO,
        });
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
        (!done).then_some(call as Box<dyn InlineCall>)
    }
}

/// One inline app call.
struct Call {
    call: Option<AppCall>,
    /// How the call ended, until it is reported.
    outcome: Option<Outcome>,
    observer: Option<Arc<dyn PoolObserver>>,
    service: Arc<ServiceTime>,
    /// Time spent in the app so far (not in writes that had to wait).
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
        }
    }
}

impl InlineCall for Call {
    fn step(&mut self, sent: &mut dyn FnMut() -> bool) -> bool {
        // One clock reading around the whole run of pieces (writes that did
        // not wait included), rather than two per piece.
        let began = std::time::Instant::now();
        let done = Python::attach(|py| loop {
            if self.advance(py) {
                return true;
            }
            if !sent() {
                return false;
            }
        });
        self.busy += began.elapsed();
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
