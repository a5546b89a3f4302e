//! The Python side: the embedded interpreter, app loading, and PEP 3333.
//! Python threads never touch sockets: requests arrive as
//! [`Job`](crate::exchange::Job)s, bodies and responses travel over bounded
//! channels, and every wait on them releases the GIL.
//!
//! # Layout
//!
//! - `interpreter`: starting CPython, sys.path, loading the app.
//! - `pool`: the fixed pool of Python threads behind a bounded queue.
//! - `inline`: running the app on the I/O thread when there is one Python
//!   thread.
//! - `call`: one request: call the app, iterate its body, `close()` it.
//! - `panics`: rwsgi's own panics on a request, caught and logged.
//! - `environ`: the environ dict from a request's CGI variables.
//! - `shapes`: per-thread environ snapshots by request shape.
//! - `input`: `wsgi.input`.
//! - `pending`: the unread part of a request body, a queue of pieces.
//! - `responder`: `start_response` and `write()`.
//! - `file_wrapper`: `wsgi.file_wrapper`.
//! - `errors`: `wsgi.errors`, written to the server log.
//! - `recycle`: reuse of those per-request objects on their thread.

mod call;
mod environ;
mod errors;
mod file_wrapper;
mod inline;
mod input;
pub mod interpreter;
mod panics;
mod pending;
pub mod pool;
mod recycle;
mod responder;
mod shapes;

pub use environ::WorkerFacts;
pub use inline::InlineApp;
pub use interpreter::{AppSpec, LoadedApp};
pub use pool::ThreadPool;
