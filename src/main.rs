//! The `rwsgi` command.

fn main() {
    // Kept before anything can overwrite the argv area (process titles):
    // a reload re-executes the master with the same arguments.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Reads --ini / --config / RWSGI_* too, and sets the app's --env.
    let rwsgi::config::Loaded { cli, notes } = rwsgi::config::load_or_exit(&argv);
    if let Err(e) = rwsgi::logging::init(cli.log_format == "json", cli.logto.as_deref()) {
        eprintln!("rwsgi: cannot open the log file: {e}");
        std::process::exit(1);
    }
    notes.log();
    rwsgi::master::title::configure(rwsgi::master::title::Names {
        prefix: match (&cli.procname_prefix, &cli.procname_prefix_spaced) {
            (_, Some(spaced)) => format!("{spaced} "),
            (Some(prefix), None) => prefix.clone(),
            (None, None) => String::new(),
        },
        append: cli.procname_append.clone().unwrap_or_default(),
        all: cli.procname.clone(),
        master: cli.procname_master.clone(),
    });
    std::process::exit(rwsgi::master::run(cli, argv));
}
