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
            if outcome == call::Outcome::Panicked {
                o.thread_panicked(thread);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::exchange::{Event, EventSink};
    use crate::wsgi::file_wrapper::FileWrapper;

    /// Tells the test what the pool reported.
    struct Reports(Mutex<std_mpsc::Sender<&'static str>>);

    impl PoolObserver for Reports {
        fn job_started(&self, _thread: usize) {}
        fn job_finished(&self, _thread: usize, _app_error: bool) {
            self.0.lock().unwrap().send("finished").unwrap();
        }
        fn queue_depth(&self, _depth: usize) {}
        fn thread_panicked(&self, _thread: usize) {
            self.0.lock().unwrap().send("panicked").unwrap();
        }
    }

    fn hello_app() -> Arc<LoadedApp> {
        Python::initialize();
        Python::attach(|py| {
            let module = pyo3::types::PyModule::from_code(
                py,
                c"def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'hello']\n",
                c"hello.py",
                c"hello",
            )
            .unwrap();
            Arc::new(LoadedApp {
                callable: module.getattr("application").unwrap().unbind(),
                file_wrapper: py.get_type::<FileWrapper>().into_any().unbind(),
            })
        })
    }

    /// Dispatches a GET of `path`; returns the status of its response
    /// once the pool finished it, and what the pool reported.
    fn serve(
        pool: &ThreadPool,
        reports: &std_mpsc::Receiver<&'static str>,
        path: &'static [u8],
    ) -> (Option<u16>, Vec<&'static str>) {
        let mut job = Job::get_for_tests_at(path);
        let (sink, events) = EventSink::buffer();
        job.events = sink;
        pool.dispatch(job).map_err(|_| "queue full").unwrap();
        let mut said = vec![reports
            .recv_timeout(Duration::from_secs(10))
            .expect("the job finished")];
        while let Ok(more) = reports.recv_timeout(Duration::from_millis(100)) {
            said.push(more);
        }
        let events = std::mem::take(&mut *events.lock().unwrap());
        let status = events.iter().find_map(|e| match e {
            Event::Head { head, .. } => Some(head.code()),
            _ => None,
        });
        assert!(
            matches!(events.last(), Some(Event::End)),
            "the response ended"
        );
        (status, said)
    }

    /// A panic fails its request with a 500 and asks for the worker to be
    /// replaced; the thread lives on and serves the next request.
    #[test]
    fn a_panic_on_a_pool_thread_fails_its_request_and_the_thread_serves_on() {
        let (tx, reports) = std_mpsc::channel();
        let observer: Arc<dyn PoolObserver> = Arc::new(Reports(Mutex::new(tx)));
        let facts = WorkerFacts {
            multithread: false,
            multiprocess: false,
        };
        let service = Arc::new(ServiceTime::default());
        let pool = ThreadPool::start(hello_app(), 1, 4, facts, Some(observer), service).unwrap();
        let (status, said) = serve(&pool, &reports, b"/rwsgi-unit-test-panic");
        assert_eq!(status, Some(500));
        assert_eq!(said, ["finished", "panicked"]);
        let (status, said) = serve(&pool, &reports, b"/");
        assert_eq!(status, Some(200), "the thread survived its panic");
        assert_eq!(said, ["finished"]);
    }
}
