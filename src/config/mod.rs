//! Configuration: the command line, with option names a uWSGI user already
//! knows (`--http-socket`, `--module`, `--threads`...).

mod cli;

pub use cli::Cli;
