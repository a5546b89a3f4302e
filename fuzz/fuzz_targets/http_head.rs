//! Any bytes on an HTTP connection: heads, then each body by its framing
//! (Content-Length or chunked), then the next pipelined head. Decoded whole,
//! in three pieces and byte by byte, under default and small limits, the
//! outcome must be the same, without a panic or an endless loop.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rwsgi::protocol::Protocol;

fuzz_target!(|data: &[u8]| rwsgi_fuzz::check_connection(Protocol::Http, data));
