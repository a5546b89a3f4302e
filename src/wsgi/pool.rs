//! The fixed pool of Python threads behind a bounded queue. Each thread
//! waits for a job with the GIL released, runs the app, and waits again.
//! A full queue gives the job back, so the connection answers 503.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use pyo3::prelude::*;

use super::call;
use super::environ::WorkerFacts;
use super::interpreter::LoadedApp;
use crate::exchange::{Dispatch, Job};

/// A pool of Python threads running the app.
pub struct ThreadPool {
    /// The queue of jobs waiting for a free thread.
    queue: Sender<Job>,
    /// Threads running a request right now (for stats and overload logs).
    busy: Arc<AtomicUsize>,
}

impl ThreadPool {
    /// Starts `threads` Python threads serving `app`, with room for
    /// `queue_size` waiting jobs.
    pub fn start(
        app: Arc<LoadedApp>,
        threads: usize,
        queue_size: usize,
        facts: WorkerFacts,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = crossbeam_channel::bounded(queue_size);
        let busy = Arc::new(AtomicUsize::new(0));
        for n in 0..threads {
            let jobs = jobs.clone();
            let app = app.clone();
            let busy = busy.clone();
            std::thread::Builder::new()
                .name(format!("rwsgi-py-{n}"))
                .spawn(move || serve_jobs(jobs, &app, facts, &busy))?;
        }
        Ok(ThreadPool { queue, busy })
    }

    /// Threads running a request now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }
}

impl Dispatch for ThreadPool {
    fn dispatch(&self, job: Job) -> Result<(), Box<Job>> {
        match self.queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                Err(Box::new(job))
            }
        }
    }
}

/// One Python thread's life: wait (GIL released), run, repeat.
fn serve_jobs(jobs: Receiver<Job>, app: &LoadedApp, facts: WorkerFacts, busy: &AtomicUsize) {
    Python::attach(|py| loop {
        let Ok(job) = py.detach(|| jobs.recv()) else {
            return;
        };
        busy.fetch_add(1, Ordering::Relaxed);
        call::run(py, app, facts, job);
        busy.fetch_sub(1, Ordering::Relaxed);
    });
}
