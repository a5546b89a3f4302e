//! One serving process: start Python, load the app, bind the listeners,
//! start the thread pool and serve until a stop signal.

use std::sync::Arc;

use crate::config::Cli;
use crate::server::listener::{accept_loop, bind, BoundSocket, ListenSpec};
use crate::server::Shared;
use crate::wsgi::{interpreter, AppSpec, ThreadPool, WorkerFacts};

/// Why the server could not start (printed, then exit code 1).
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// The app-loading options of the command line.
pub fn app_spec(cli: &Cli) -> AppSpec {
    AppSpec {
        module: cli.module.clone(),
        wsgi_file: cli.wsgi_file.clone(),
        callable: cli.callable.clone(),
        chdir: cli.chdir.clone(),
        pythonpath: cli.pythonpath.clone(),
        home: cli.home.clone(),
    }
}

/// Runs the server described by `cli` until SIGINT or SIGTERM.
pub fn serve(cli: Cli) -> Result<(), StartError> {
    let spec = app_spec(&cli);
    interpreter::start();
    let app = interpreter::load(&spec)
        .map_err(|e| StartError(format!("cannot load the app ({}): {e}", spec.describe())))?;
    let listeners: Vec<(ListenSpec, BoundSocket)> = cli
        .listeners()
        .into_iter()
        .map(|spec| {
            bind(&spec, cli.listen)
                .map(|socket| (spec.clone(), socket))
                .map_err(|e| StartError(format!("cannot bind {spec}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let facts = WorkerFacts {
        multithread: cli.threads > 1,
        multiprocess: false,
    };
    let pool = ThreadPool::start(Arc::new(app), cli.threads as usize, cli.queue_size(), facts)
        .map_err(|e| StartError(format!("cannot start Python threads: {e}")))?;
    let shared = Arc::new(Shared {
        limits: cli.limits(),
        post_buffering: cli.post_buffering,
        dispatcher: Arc::new(pool),
        access_log: !cli.disable_logging,
        retry_after: cli.retry_after,
    });
    tracing::info!(
        "rwsgi {} serving {} with {} Python thread(s), pid {}",
        env!("CARGO_PKG_VERSION"),
        spec.describe(),
        cli.threads,
        std::process::id()
    );
    for (spec, _) in &listeners {
        tracing::info!("listening on {spec}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError(format!("cannot start the I/O runtime: {e}")))?;
    runtime.block_on(async move {
        for (spec, socket) in listeners {
            let shared = shared.clone();
            tokio::spawn(async move {
                let name = spec.to_string();
                if let Err(e) = accept_loop(socket, spec, shared).await {
                    tracing::error!(listener = %name, "listener failed: {e}");
                }
            });
        }
        wait_for_stop().await;
    });
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
}
