//! Environ snapshots by request shape. The requests a thread serves mostly
//! repeat the variables of the one before: the same names in the same
//! order (nginx's params, one kind of client's headers) and mostly the same
//! values (the method, the protocol, the server, the Host and User-Agent).
//! Setting each of them into a fresh dict (a hash lookup and an insert per
//! variable) was the largest part of building an environ. A thread keeps
//! the environ of the last few shapes it saw, without the request's own
//! objects, as a snapshot; a request of the same shape sets only the values
//! that changed into it and takes a copy (CPython copies such a dict with
//! one memcpy of its table).
//!
//! Credentials (`Cookie`, `Authorization`, `Proxy-Authorization`) are never
//! kept: their place in a snapshot holds `None`, and each request sets its
//! own value into its copy.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::environ::{key_str, known_index, latin1, same_short, value_str, WorkerFacts, KNOWN};
use crate::protocol::Request;

/// Shapes kept per thread (most recent first).
const KEPT: usize = 2;
/// A request with more variables than this is built afresh.
const MAX_VARS: usize = 64;
/// A request whose names and values together are longer than this is
/// built afresh: what a snapshot keeps stays small.
const MAX_BYTES: usize = 4096;

/// One shape: its names, the values its snapshot holds, and the snapshot.
struct Shape {
    facts: WorkerFacts,
    /// The names laid end to end; name `i` ends at `name_ends[i]`.
    names: Vec<u8>,
    name_ends: Vec<u32>,
    /// The value the snapshot holds for each variable (empty for a
    /// credential, whose value is never kept).
    values: Vec<Vec<u8>>,
    /// Each variable's name as a str.
    keys: Vec<Py<PyString>>,
    /// Which variables are credentials.
    secret: Vec<bool>,
    /// The environ without the request's own objects.
    snapshot: Py<PyDict>,
}

thread_local! {
    /// Per Python thread, most recent first.
    static SHAPES: RefCell<Vec<Shape>> = const { RefCell::new(Vec::new()) };
}

/// The environ for `request` with every variable set, from the thread's
/// snapshot of its shape when there is one. `None`: the request is too
/// large to keep a shape of; build it the plain way.
pub(super) fn environ<'py>(
    py: Python<'py>,
    request: &Request,
    facts: WorkerFacts,
    template: &Bound<'py, PyDict>,
) -> Option<PyResult<Bound<'py, PyDict>>> {
    let vars = &request.vars;
    let bytes: usize = vars.iter().map(|(k, v)| k.len() + v.len()).sum();
    if vars.len() > MAX_VARS || bytes > MAX_BYTES {
        return None;
    }
    // A Python call below could, through a finalizer, come back here: such
    // a nested build goes the plain way instead of borrowing twice.
    SHAPES.with(|cell| {
        let mut shapes = cell.try_borrow_mut().ok()?;
        Some(
            match shapes.iter().position(|s| s.matches(request, facts)) {
                Some(at) => {
                    shapes[..=at].rotate_right(1);
                    shapes[0].refresh(py, request)
                }
                None => fresh(py, &mut shapes, request, facts, template),
            },
        )
    })
}

impl Shape {
    /// Whether `request` has exactly this shape's names, in order.
    fn matches(&self, request: &Request, facts: WorkerFacts) -> bool {
        if self.facts != facts || self.name_ends.len() != request.vars.len() {
            return false;
        }
        let mut start = 0;
        request
            .vars
            .iter()
            .zip(&self.name_ends)
            .all(|((key, _), &end)| {
                let name = &self.names[start..end as usize];
                start = end as usize;
                same_short(name, key)
            })
    }

    /// Sets the values that changed since the last request of this shape
    /// into the snapshot; returns a copy with this request's credentials.
    fn refresh<'py>(&mut self, py: Python<'py>, request: &Request) -> PyResult<Bound<'py, PyDict>> {
        let snapshot = self.snapshot.bind(py);
        for (i, (key, value)) in request.vars.iter().enumerate() {
            if self.secret[i] || same_short(&self.values[i], value) {
                continue;
            }
            snapshot.set_item(
                self.keys[i].bind(py),
                value_str(py, known_index(key), value),
            )?;
            self.values[i].clear();
            self.values[i].extend_from_slice(value);
        }
        let environ = snapshot.copy()?;
        self.set_secrets(py, &environ, request)?;
        Ok(environ)
    }

    /// Sets this request's credentials into its own environ.
    fn set_secrets(
        &self,
        py: Python<'_>,
        environ: &Bound<'_, PyDict>,
        request: &Request,
    ) -> PyResult<()> {
        for (i, (_, value)) in request.vars.iter().enumerate() {
            if self.secret[i] {
                environ.set_item(self.keys[i].bind(py), latin1(py, value))?;
            }
        }
        Ok(())
    }
}

/// Builds the snapshot of a shape not seen lately, keeps it if it can serve
/// the next request of its shape, and returns the request's environ.
fn fresh<'py>(
    py: Python<'py>,
    shapes: &mut Vec<Shape>,
    request: &Request,
    facts: WorkerFacts,
    template: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    let snapshot = template.copy()?;
    let n = request.vars.len();
    let mut shape = Shape {
        facts,
        names: Vec::new(),
        name_ends: Vec::with_capacity(n),
        values: Vec::with_capacity(n),
        keys: Vec::with_capacity(n),
        secret: Vec::with_capacity(n),
        snapshot: snapshot.clone().unbind(),
    };
    for (key, value) in request.vars.iter() {
        let known = known_index(key);
        let secret = known.is_some_and(|i| !KNOWN[i].1);
        let name = key_str(py, key, known);
        if secret {
            snapshot.set_item(&name, py.None())?;
        } else {
            snapshot.set_item(&name, value_str(py, known, value))?;
        }
        shape.names.extend_from_slice(key);
        shape.name_ends.push(shape.names.len() as u32);
        shape
            .values
            .push(if secret { Vec::new() } else { value.to_vec() });
        shape.secret.push(secret);
        shape.keys.push(name.unbind());
    }
    let environ = snapshot.copy()?;
    shape.set_secrets(py, &environ, request)?;
    // A name given twice (or one of the template's own) leaves fewer
    // entries than variables: a later value then wins over an earlier one,
    // which refreshing by position would not reproduce.
    if snapshot.len() == template.len() + n {
        shapes.insert(0, shape);
        shapes.truncate(KEPT);
    }
    Ok(environ)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::protocol::{Decoder, Limits, Protocol};

    const FACTS: WorkerFacts = WorkerFacts {
        multithread: false,
        multiprocess: false,
    };

    fn request(head: &str) -> Request {
        let mut buf = BytesMut::from(head);
        Decoder::new(Protocol::Http, Limits::default())
            .decode(&mut buf)
            .unwrap()
            .unwrap()
    }

    fn template(py: Python<'_>) -> Bound<'_, PyDict> {
        let template = PyDict::new(py);
        template.set_item("wsgi.run_once", false).unwrap();
        template
    }

    /// The environ of the request `head`, which has a shape of its own.
    fn build<'py>(
        py: Python<'py>,
        head: &str,
        template: &Bound<'py, PyDict>,
    ) -> Bound<'py, PyDict> {
        environ(py, &request(head), FACTS, template)
            .unwrap()
            .unwrap()
    }

    fn get(environ: &Bound<'_, PyDict>, key: &str) -> String {
        let value = environ.get_item(key).unwrap().unwrap();
        value
            .extract()
            .unwrap_or_else(|_| value.repr().unwrap().to_string())
    }

    #[test]
    fn a_snapshot_keeps_no_credential() {
        Python::initialize();
        Python::attach(|py| {
            let template = template(py);
            let req = request("GET /a HTTP/1.1\r\nHost: x\r\nCookie: secret=1\r\n\r\n");
            let environ = environ(py, &req, FACTS, &template).unwrap().unwrap();
            assert_eq!(get(&environ, "HTTP_COOKIE"), "secret=1");
            assert_eq!(get(&environ, "PATH_INFO"), "/a");
            SHAPES.with_borrow(|shapes| {
                let shape = &shapes[0];
                let snapshot = shape.snapshot.bind(py);
                assert_eq!(get(snapshot, "HTTP_COOKIE"), "None");
                assert_eq!(get(snapshot, "PATH_INFO"), "/a");
                let at = shape.secret.iter().position(|s| *s).unwrap();
                assert!(shape.values[at].is_empty());
            });
        });
    }

    #[test]
    fn a_repeated_shape_refreshes_its_snapshot_and_copies_it() {
        Python::initialize();
        Python::attach(|py| {
            let template = template(py);
            let first = build(py, "GET /a?1 HTTP/1.1\r\nHost: x\r\n\r\n", &template);
            first.set_item("PATH_INFO", "changed by the app").unwrap();
            let snapshot = SHAPES.with_borrow(|shapes| shapes[0].snapshot.as_ptr());
            let second = build(py, "GET /b?2 HTTP/1.1\r\nHost: x\r\n\r\n", &template);
            assert_eq!(get(&second, "PATH_INFO"), "/b");
            assert_eq!(get(&second, "QUERY_STRING"), "2");
            assert_eq!(get(&second, "HTTP_HOST"), "x");
            assert!(!second.is(&first));
            // What an app changes in its copy stays there, also for a
            // value the next request repeats.
            second.set_item("PATH_INFO", "changed by the app").unwrap();
            assert_eq!(
                get(
                    &build(py, "GET /b?2 HTTP/1.1\r\nHost: x\r\n\r\n", &template),
                    "PATH_INFO"
                ),
                "/b"
            );
            SHAPES.with_borrow(|shapes| {
                assert_eq!(shapes.len(), 1);
                assert_eq!(
                    shapes[0].snapshot.as_ptr(),
                    snapshot,
                    "the same snapshot, refreshed"
                );
            });
        });
    }

    #[test]
    fn only_the_latest_shapes_are_kept() {
        Python::initialize();
        Python::attach(|py| {
            let template = template(py);
            for header in ["A", "B", "C", "D"] {
                let req = request(&format!(
                    "GET / HTTP/1.1\r\nHost: x\r\nX-{header}: 1\r\n\r\n"
                ));
                let environ = environ(py, &req, FACTS, &template).unwrap().unwrap();
                assert_eq!(get(&environ, &format!("HTTP_X_{header}")), "1");
            }
            SHAPES.with_borrow(|shapes| {
                assert_eq!(shapes.len(), KEPT);
                assert!(shapes[0].names.ends_with(b"HTTP_X_D"));
            });
        });
    }

    #[test]
    fn a_request_too_large_for_a_snapshot_is_built_the_plain_way() {
        Python::initialize();
        Python::attach(|py| {
            let fields: String = (0..MAX_VARS).map(|i| format!("X-{i}: 1\r\n")).collect();
            let req = request(&format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n"));
            assert!(environ(py, &req, FACTS, &template(py)).is_none());
        });
    }
}
