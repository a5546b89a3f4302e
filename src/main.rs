//! The `rwsgi` command.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    // Kept before anything can overwrite the argv area (process titles):
    // a reload re-executes the master with the same arguments.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = rwsgi::config::Cli::parse_from(&argv);
    let filter = EnvFilter::try_from_env("RWSGI_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    std::process::exit(rwsgi::master::run(cli, argv));
}
