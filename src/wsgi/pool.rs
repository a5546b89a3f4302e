//! The fixed pool of Python threads behind a bounded queue. Each thread
//! waits for a job with the GIL released, runs the app, and waits again.
//! A full queue gives the job back, so the connection answers 503.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use pyo3::prelude::*;

use super::call;
use super::environ::WorkerFacts;
use super::interpreter::LoadedApp;
use crate::exchange::{Dispatch, Job, Occupancy, PoolObserver, ServiceTime};

/// A pool of Python threads running the app.
pub struct ThreadPool {
    /// The queue of jobs waiting for a free thread.
    queue: Sender<Job>,
    /// Told about queue depth, for stats.
    observer: Option<Arc<dyn PoolObserver>>,
    /// Requests the threads have, counted for the accept loops.
    occupancy: Arc<Occupancy>,
}

impl ThreadPool {
    /// Starts `threads` Python threads serving `app`, with room for
    /// `queue_size` waiting jobs; `observer` hears about each job.
    pub fn start(
        app: Arc<LoadedApp>,
        threads: usize,
        queue_size: usize,
        facts: WorkerFacts,
        observer: Option<Arc<dyn PoolObserver>>,
        service: Arc<ServiceTime>,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = crossbeam_channel::bounded(queue_size);
        let occupancy = Arc::new(Occupancy::new(threads));
        for n in 0..threads {
            let jobs = jobs.clone();
            let app = app.clone();
            let observer = observer.clone();
            let service = service.clone();
            let occupancy = occupancy.clone();
            std::thread::Builder::new()
                .name(format!("rwsgi-py-{n}"))
                .spawn(move || {
                    let observer = observer.as_deref();
                    serve_jobs(n, jobs, &app, facts, observer, &service, &occupancy)
                })?;
        }
        Ok(ThreadPool {
            queue,
            observer,
            occupancy,
        })
    }

    /// How busy the threads are.
    pub fn occupancy(&self) -> Arc<Occupancy> {
        self.occupancy.clone()
    }
}

impl Dispatch for ThreadPool {
    fn dispatch(&self, job: Job) -> Result<(), Box<Job>> {
        // Counted before the send: the thread may finish it at once.
        self.occupancy.took();
        match self.queue.try_send(job) {
            Ok(()) => {
                if let Some(observer) = &self.observer {
                    observer.queue_depth(self.queue.len());
                }
                Ok(())
            }
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                self.occupancy.released();
                Err(Box::new(job))
            }
        }
    }
}

/// One Python thread's life: wait (GIL released), run, repeat.
fn serve_jobs(
    thread: usize,
    jobs: Receiver<Job>,
    app: &LoadedApp,
    facts: WorkerFacts,
    observer: Option<&dyn PoolObserver>,
    service: &ServiceTime,
    occupancy: &Occupancy,
) {
    Python::attach(|py| loop {
        let Ok(job) = py.detach(|| jobs.recv()) else {
            return;
        };
        if let Some(o) = observer {
            o.queue_depth(jobs.len());
            o.job_started(thread);
        }
        let began = std::time::Instant::now();
        let (outcome, waited) = call::run(py, app, facts, job);
        // A slow client is not a slow app: a stream that waited for its
        // reader must not keep the worker off the inline path.
        service.record(began.elapsed().saturating_sub(waited));
        occupancy.released();
        if let Some(o) = observer {
            o.job_finished(thread, outcome == call::Outcome::AppError);
        }
    });
}
