//! Helpers for `tests/deploy.rs`: the shipped `nginx/` files rendered for
//! a test and run by a real nginx (`site`), rwsgi instances started and
//! killed by pid and steady load through nginx (`process`), the
//! deployment files read as data through the test virtualenv (`files`),
//! and the Compose services run without Docker (`compose`).
//!
//! # Rendering
//!
//! The files in `nginx/` are real configs with real-looking paths and
//! ports. A test changes nothing in them but these values, by plain string
//! replacement ([`Rendering::pairs`]):
//!
//! | shipped | in the test |
//! |---|---|
//! | `listen 80;` | `listen 127.0.0.1:<free port>;` |
//! | `/run/rwsgi/` | `<temp dir>/run/` |
//! | `/srv/myproject/static/` | `<temp dir>/static/` |
//! | `127.0.0.1:8000` (HTTP) | `127.0.0.1:<free port>` |
//! | `127.0.0.1:3031` (uwsgi) | `127.0.0.1:<free port>` |
//! | `127.0.0.1:9000` (SCGI) | `127.0.0.1:<free port>` |
//!
//! The rendered file is included, as `conf.d/` would be, from a minimal
//! `nginx.conf` (events, an `http` block with every temp path in the temp
//! dir). nginx's own `uwsgi_params`, `scgi_params` and `mime.types` are
//! copied next to it, so `include uwsgi_params;` resolves as it does under
//! `/etc/nginx`.
#![allow(dead_code, unused_imports)]

mod compose;
mod files;
mod process;
mod site;

pub use compose::*;
pub use files::*;
pub use process::*;
pub use site::*;
