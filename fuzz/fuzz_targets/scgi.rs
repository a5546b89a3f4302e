//! Any bytes on an SCGI socket: netstrings, each followed by its
//! CONTENT_LENGTH body. Decoded whole, in three pieces and byte by byte,
//! under default and small limits, the outcome must be the same, without a
//! panic or an endless loop.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rwsgi::protocol::Protocol;

fuzz_target!(|data: &[u8]| rwsgi_fuzz::check_connection(Protocol::Scgi, data));
