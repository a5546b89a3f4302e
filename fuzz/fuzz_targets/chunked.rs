//! Any bytes as back-to-back chunked bodies: decoded whole, split and byte
//! by byte must give the same body bytes and the same end, without a panic
//! or an endless loop.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rwsgi_fuzz::check_chunked(data));
