//! The `rwsgi` command.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = rwsgi::config::Cli::parse();
    let filter = EnvFilter::try_from_env("RWSGI_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    if let Err(e) = rwsgi::run::serve(cli) {
        tracing::error!("{e}");
        eprintln!("rwsgi: {e}");
        std::process::exit(1);
    }
}
