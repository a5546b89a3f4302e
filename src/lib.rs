//! rwsgi: a uWSGI-style application server for Python WSGI apps.
//!
//! Requests arrive over HTTP/1.1, the uwsgi protocol or SCGI, on TCP or Unix
//! sockets; they run on a pool of Python threads in an embedded CPython.
//!
//! # Layout
//!
//! - [`protocol`]: pure codecs, bytes into a common [`protocol::Request`],
//!   response heads back into bytes. No I/O, no Python.
//! - [`server`]: listeners, connections, bodies, response writing. Tokio;
//!   no parsing by hand, no Python.
//! - [`exchange`]: the types that cross from the I/O side to the Python
//!   side and back (jobs, body pieces, response events).
//! - [`wsgi`]: the embedded interpreter, app loading and PEP 3333. No
//!   sockets.
//! - [`master`]: the master process and its workers (fork, respawn,
//!   reload, stop, recycling).
//! - [`stats`]: the uWSGI-compatible stats server and Prometheus metrics.
//! - [`logging`]: log output (text or JSON, stderr or a reopenable file).
//! - [`config`]: the command line.

pub mod config;
pub mod exchange;
pub mod logging;
pub mod master;
pub mod protocol;
pub mod server;
pub mod stats;
pub mod wsgi;
