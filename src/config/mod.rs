//! Configuration: the command line, with option names a uWSGI user already
//! knows (`--http-socket`, `--module`, `--threads`...), and the other
//! places options come from.
//!
//! Every source is turned into command-line words and parsed by the one
//! clap definition in [`cli`], so there is one list of options, one set of
//! value checks and one set of defaults:
//!
//! ```text
//!  --ini FILE[:SECTION]  ─ ini ─▶ uwsgi (what each uWSGI option means) ─┐
//!  --config FILE.toml    ─ toml_file ──────────────────────────────────┤ records + settings
//!  RWSGI_* variables     ─ env ────────────────────────────────────────┘
//!                                         │ merge: later wins, CLI last
//!                                         ▼
//!             rwsgi <file args> <env args> <command line>  ─ clap ─▶ Cli
//! ```
//!
//! Precedence is command line > `RWSGI_*` > files (later files and later
//! lines over earlier ones) for single-valued options; repeatable options
//! (sockets, `--pythonpath`, `--touch-reload`, `--env`) add up across all
//! of them, as in uWSGI. Each configuration line keeps a [`record::Record`]
//! of how it was taken, for `--check-config` and the startup log.
//!
//! # Layout
//!
//! - `cli`: the clap definition.
//! - `options`: the option list read back from it (kinds, defaults, value checks).
//! - `ini`, `placeholders`: reading uWSGI ini files.
//! - `uwsgi_table`, `uwsgi`: what each uWSGI option means to rwsgi, and
//!   applying that to ini lines; `uwsgi_names`: every option name uWSGI
//!   has and how it reads its value (generated from uWSGI's source by
//!   `uwsgi_names.py`).
//! - `toml_file`, `env`: the native file and `RWSGI_*` variables.
//! - `record`, `check`: per-line outcomes, the report, the log.
//! - `daemon`: the attached daemons' option values.
//! - `cron`: cron entries and when one is due.
//! - `hooks`: hook actions and the phases they run at.
//! - `process`: `--umask` and `--max-fd`, applied before anything starts.

mod check;
mod cli;
mod cron;
mod daemon;
pub(crate) mod env;
mod hooks;
mod ini;
mod options;
mod placeholders;
mod process;
mod record;
mod toml_file;
mod uwsgi;
mod uwsgi_names;
mod uwsgi_table;
mod uwsgi_value;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::FromArgMatches;

pub use check::ConfigNotes;
pub use cli::Cli;
pub use cron::{CronSpec, CronTime};
pub use daemon::DaemonSpec;
pub use hooks::{Hook, HookAction, HookPhase};

use options::{clap_message, Kind, OptionTable};
use record::{Collector, Val};

/// The options to run with, and what was made of the configuration.
pub struct Loaded {
    pub cli: Cli,
    /// Call [`ConfigNotes::log`] once logging is set up.
    pub notes: ConfigNotes,
}

/// Reads the command line, the config files it (or `RWSGI_INI` /
/// `RWSGI_CONFIG`) names and the `RWSGI_*` variables, and sets the `--env`
/// variables. Exits for `--help`, `--version`, `--check-config` and on any
/// configuration error (status 2), naming the file, line and option.
///
/// Call it first thing in `main`, while the process has one thread.
pub fn load_or_exit(argv: &[OsString]) -> Loaded {
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let resolved = match resolve(argv, &vars) {
        Ok(resolved) => resolved,
        Err(e) => e.exit(),
    };
    let problems = resolved.problems();
    if resolved.check {
        print!("{}", resolved.report());
        std::process::exit(if problems.is_empty() { 0 } else { 1 });
    }
    let Some(cli) = resolved.cli.filter(|_| problems.is_empty()) else {
        for p in &problems {
            eprintln!("rwsgi: {p}");
        }
        eprintln!("rwsgi: not starting; add --check-config to see how each line is taken");
        std::process::exit(2);
    };
    for warning in process::apply(&cli) {
        eprintln!("rwsgi: {warning}");
    }
    for assignment in &cli.env {
        if let Some((key, value)) = assignment.split_once('=') {
            // Single-threaded here, before Python starts: the app sees it.
            std::env::set_var(key.trim(), value);
        }
    }
    Loaded {
        cli,
        notes: resolved.notes,
    }
}

/// Everything [`resolve`] worked out.
struct Resolved {
    /// `None` when the merged arguments do not parse.
    cli: Option<Cli>,
    notes: ConfigNotes,
    check: bool,
    table: OptionTable,
    /// The real command line (without the program name).
    command_line: Vec<String>,
    /// Every argument clap parsed (files, variables, command line).
    effective: Vec<String>,
    /// Errors that belong to no line (a missing file, a clash).
    errors: Vec<String>,
    /// systemd passed the listening sockets (`LISTEN_FDS`).
    socket_activation: bool,
}

impl Resolved {
    /// What keeps rwsgi from starting.
    fn problems(&self) -> Vec<String> {
        let mut out = check::fatal_lines(&self.notes);
        out.extend(self.errors.iter().cloned());
        out.extend(self.listener_problem());
        out
    }

    fn report(&self) -> String {
        let effective = self.cli.as_ref().map(|_| self.effective.as_slice());
        let mut errors = self.errors.clone();
        errors.extend(self.listener_problem());
        check::report(
            &self.notes,
            &self.table,
            &self.command_line,
            effective,
            self.listeners().as_deref(),
            &errors,
        )
    }

    /// What the server will listen on, from the same parsed options the
    /// master binds (`Cli::listeners`), for the report.
    fn listeners(&self) -> Option<String> {
        let cli = self.cli.as_ref()?;
        if self.socket_activation {
            return Some("the sockets systemd passes (LISTEN_FDS)".into());
        }
        let shown: Vec<String> = cli.listeners().iter().map(|l| l.to_string()).collect();
        let default = if cli.names_a_listener() {
            ""
        } else {
            " (the built-in default: nothing names a listener)"
        };
        Some(format!("{}{default}", shown.join(", ")))
    }

    /// A configuration file was read and yet nothing names a listener:
    /// uWSGI would refuse to start ("the -s/--socket option is missing"),
    /// and the built-in default address is surely not what the file meant.
    fn listener_problem(&self) -> Option<String> {
        let cli = self.cli.as_ref()?;
        if self.socket_activation || cli.names_a_listener() || self.notes.sources.is_empty() {
            return None;
        }
        let lines: Vec<String> = self
            .notes
            .records
            .iter()
            .filter(|r| {
                let key = r.text.split('=').next().unwrap_or_default();
                let key = key.trim().to_ascii_lowercase().replace('_', "-");
                uwsgi_table::LISTENER_OPTIONS.contains(&key.as_str())
            })
            .map(|r| format!("{} `{}` ({})", r.place, r.text, r.outcome.label()))
            .collect();
        let why = if lines.is_empty() {
            "no line names one (socket, http-socket, http11-socket, scgi-socket...)".to_string()
        } else {
            format!("none of its listener lines was taken: {}", lines.join("; "))
        };
        Some(format!(
            "no listener could be taken from this configuration: {why}; rwsgi does not fall back to 127.0.0.1:8000 when a file is read"
        ))
    }
}

/// Works out the options from `argv` and the environment `vars`. `Err` is
/// clap's own exit (help, version, a bad command line).
fn resolve(argv: &[OsString], vars: &[(String, String)]) -> Result<Resolved, clap::Error> {
    let table = OptionTable::new();
    let first_matches = table.command().try_get_matches_from(argv)?;
    let first = Cli::from_arg_matches(&first_matches)?;
    let from_cli: HashSet<String> = table
        .specs()
        .iter()
        .filter(|s| first_matches.value_source(&s.id) == Some(ValueSource::CommandLine))
        .map(|s| s.id.clone())
        .collect();

    let mut out = Collector::default();
    let mut errors = Vec::new();
    let mut notes = ConfigNotes::default();
    // The environment is read first so RWSGI_INI can name the files; its
    // settings still rank above the files' in the merge.
    let mut env_out = Collector::default();
    let env_files = env::read(&table, vars, &mut env_out);
    let ini_files = if first.ini.is_empty() {
        env_files.ini
    } else {
        first.ini.clone()
    };
    let toml_files: Vec<String> = if first.config.is_empty() {
        env_files.config
    } else {
        first
            .config
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    };

    let mut reader = ini::IniReader::default();
    for spec in &ini_files {
        let (file, section) = ini::split_spec(spec);
        match reader.read(file, section) {
            Ok(()) => notes
                .sources
                .push(format!("{file} [{}]", ini::section_of(section))),
            Err(e) => errors.push(e),
        }
        notes.read_ini = true;
    }
    reader.finish();
    classify_ini(&table, &reader, &mut out);
    for file in &toml_files {
        match toml_file::read(file, &table, &mut out) {
            Ok(()) => notes.sources.push(file.clone()),
            Err(e) => errors.push(e),
        }
    }
    append(&mut out, env_out);

    let file_args = merge(&mut out, &table, &from_cli);
    let mut full: Vec<OsString> = argv.iter().take(1).cloned().collect();
    full.extend(file_args.iter().map(OsString::from));
    full.extend(argv.iter().skip(1).cloned());
    let parsed = table
        .command()
        .try_get_matches_from(&full)
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m));
    let cli = match parsed {
        Ok(cli) => Some(cli),
        Err(e) => {
            errors.push(format!(
                "the options do not go together: {}",
                clap_message(&e)
            ));
            None
        }
    };
    notes.strict = cli.as_ref().map_or(first.strict, |c| c.strict);
    notes.records = out.records;
    let check = first.check_config || cli.as_ref().is_some_and(|c| c.check_config);
    Ok(Resolved {
        cli,
        notes,
        check,
        table,
        command_line: argv
            .iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        effective: full
            .iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        errors,
        socket_activation: vars.iter().any(|(k, _)| k == "LISTEN_FDS"),
    })
}

/// Turns the ini lines read into records and settings.
fn classify_ini(table: &OptionTable, reader: &ini::IniReader, out: &mut Collector) {
    let lines: Vec<&ini::IniLine> = reader
        .items
        .iter()
        .filter_map(|item| match item {
            ini::IniItem::Option(line) => Some(line),
            ini::IniItem::Other(_) => None,
        })
        .collect();
    let classifier = uwsgi::Classifier::new(table, &lines);
    for item in &reader.items {
        match item {
            ini::IniItem::Option(line) => {
                let used = reader.used.get(&line.key).map(String::as_str);
                classifier.line(line, used, out);
            }
            ini::IniItem::Other(record) => {
                out.push(record.clone());
            }
        }
    }
}

/// Moves `more`'s records and settings after `out`'s.
fn append(out: &mut Collector, more: Collector) {
    let offset = out.records.len();
    out.records.extend(more.records);
    out.settings.extend(more.settings.into_iter().map(|mut s| {
        s.record += offset;
        s
    }));
}

/// Decides which settings count and returns them as arguments: for a
/// single-valued option the last setting wins, a setting drops earlier
/// ones of options it conflicts with (`--module` and `--wsgi-file`), and
/// the command line (`from_cli`, parsed after these arguments) beats them
/// all. Repeatable options keep every value. Marks what was overridden.
fn merge(out: &mut Collector, table: &OptionTable, from_cli: &HashSet<String>) -> Vec<String> {
    let settings = &out.settings;
    let mut winner: HashMap<&str, usize> = HashMap::new();
    let mut lost: Vec<(usize, String)> = Vec::new();
    for (i, s) in settings.iter().enumerate() {
        let by = out.records[s.record].place.clone();
        if s.spec.kind != Kind::Multi {
            if let Some(prev) = winner.insert(&s.spec.id, i) {
                lost.push((prev, by.clone()));
            }
        }
        if s.val != Val::Off {
            for other in &s.spec.conflicts {
                if let Some(prev) = winner.remove(other.as_str()) {
                    lost.push((prev, by.clone()));
                }
            }
        }
    }
    for spec in table.specs().iter().filter(|s| from_cli.contains(&s.id)) {
        let ids = std::iter::once(&spec.id)
            .filter(|_| spec.kind != Kind::Multi)
            .chain(&spec.conflicts);
        for id in ids {
            if let Some(prev) = winner.remove(id.as_str()) {
                lost.push((prev, "the command line".to_string()));
            }
        }
    }
    let mut dropped = vec![false; settings.len()];
    for (i, by) in lost {
        dropped[i] = true;
        let record = &mut out.records[settings[i].record];
        if record.overridden_by.is_none() {
            record.overridden_by = Some(by);
        }
    }
    settings
        .iter()
        .zip(dropped)
        .filter(|(_, dropped)| !dropped)
        .flat_map(|(s, _)| s.args())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "rwsgi-config-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn run(args: &[&str], vars: &[(&str, &str)]) -> Resolved {
        let argv: Vec<OsString> = std::iter::once("rwsgi")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(&argv, &vars).unwrap()
    }

    #[test]
    fn command_line_beats_environment_beats_file() {
        let d = dir();
        let ini = d.join("a.ini");
        std::fs::write(
            &ini,
            "[uwsgi]\nprocesses = 2\nthreads = 2\nharakiri = 7\nlazy-apps = true\n",
        )
        .unwrap();
        let ini = ini.to_str().unwrap();
        let r = run(
            &["--ini", ini, "--processes", "4"],
            &[("RWSGI_THREADS", "3"), ("RWSGI_LAZY_APPS", "no")],
        );
        let cli = r.cli.as_ref().unwrap();
        assert_eq!((cli.processes, cli.threads, cli.harakiri), (4, 3, 7));
        assert!(!cli.lazy_apps);
        let by = |text: &str| {
            r.notes
                .records
                .iter()
                .find(|r| r.text.starts_with(text))
                .and_then(|r| r.overridden_by.clone())
        };
        assert_eq!(by("processes").as_deref(), Some("the command line"));
        assert_eq!(by("threads").as_deref(), Some("RWSGI_THREADS"));
        assert_eq!(by("harakiri"), None);
    }

    #[test]
    fn repeatable_options_add_up() {
        let d = dir();
        let ini = d.join("a.ini");
        std::fs::write(&ini, "[uwsgi]\nsocket = /tmp/a.sock\npythonpath = /x\n").unwrap();
        let r = run(
            &[
                "--ini",
                ini.to_str().unwrap(),
                "--uwsgi-socket",
                "/tmp/b.sock",
            ],
            &[("RWSGI_PYTHONPATH", "/y")],
        );
        let cli = r.cli.unwrap();
        assert_eq!(cli.uwsgi_socket.len(), 2);
        assert_eq!(
            cli.pythonpath,
            [std::path::PathBuf::from("/x"), "/y".into()]
        );
    }

    #[test]
    fn the_command_line_app_replaces_the_file_app() {
        let d = dir();
        let ini = d.join("a.ini");
        std::fs::write(&ini, "[uwsgi]\nmodule = site.wsgi\n").unwrap();
        let r = run(
            &["--ini", ini.to_str().unwrap(), "--wsgi-file", "app.py"],
            &[],
        );
        let cli = r.cli.unwrap();
        assert_eq!(cli.module, None);
        assert!(cli.wsgi_file.is_some());
    }

    #[test]
    fn unknown_options_warn_unless_strict() {
        let d = dir();
        let ini = d.join("a.ini");
        std::fs::write(&ini, "[uwsgi]\nsocket = :3031\nvacum = true\n").unwrap();
        let ini = ini.to_str().unwrap();
        let r = run(&["--ini", ini], &[]);
        assert!(r.problems().is_empty());
        let r = run(&["--ini", ini, "--strict"], &[]);
        assert_eq!(r.problems().len(), 1, "{:?}", r.problems());
        assert!(r.problems()[0].contains("vacuum"), "{:?}", r.problems());
    }

    #[test]
    fn bad_values_name_file_line_and_option() {
        let d = dir();
        let ini = d.join("a.ini");
        std::fs::write(&ini, "[uwsgi]\n\nharakiri = soon\nsocket = :3031\n").unwrap();
        let r = run(&["--ini", ini.to_str().unwrap()], &[]);
        let p = r.problems();
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("a.ini:3") && p[0].contains("harakiri = soon"),
            "{p:?}"
        );
        assert!(p[0].contains("invalid value 'soon'"), "{p:?}");
    }

    #[test]
    fn values_with_a_comment_after_them_read_as_uwsgi_reads_them() {
        let d = dir();
        let ini = d.join("a.ini");
        std::fs::write(
            &ini,
            "[uwsgi]\nsocket = :3031\nprocesses = 4   ; four workers\nharakiri = 60  # seconds\n\
             vacuum = true ; remove sockets\nlazy-apps = false ; oops\n",
        )
        .unwrap();
        let r = run(&["--ini", ini.to_str().unwrap()], &[]);
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        let cli = r.cli.as_ref().unwrap();
        assert_eq!((cli.processes, cli.harakiri), (4, 60));
        assert!(cli.vacuum);
        // uWSGI compares the whole value with `false`: this one is on.
        assert!(cli.lazy_apps);
        let report = r.report();
        assert!(report.contains("ignores `; four workers`"), "{report}");
        assert!(report.contains("ignores `# seconds`"), "{report}");
    }

    fn ini(text: &str) -> String {
        let path = dir().join("a.ini");
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    #[test]
    fn an_http11_socket_is_an_http_listener_and_the_report_names_it() {
        let file = ini("[uwsgi]\nmodule = app\nhttp11-socket = :8080\n");
        let r = run(&["--ini", &file], &[]);
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        let listeners = r.cli.as_ref().unwrap().listeners();
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].to_string(), "http://0.0.0.0:8080");
        assert!(r.report().contains("listeners: http://0.0.0.0:8080\n"));
    }

    #[test]
    fn a_file_without_a_listener_refuses_to_start_rather_than_use_the_default() {
        let file = ini("[uwsgi]\nmodule = app\n");
        let r = run(&["--ini", &file], &[]);
        let p = r.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("no listener could be taken"), "{p:?}");
        assert!(r.report().contains("rwsgi would refuse to start"));
        // The command line may give it, and systemd may pass it.
        assert!(run(&["--ini", &file, "--http-socket", ":9"], &[])
            .problems()
            .is_empty());
        assert!(run(&["--ini", &file], &[("LISTEN_FDS", "1")])
            .problems()
            .is_empty());
    }

    #[test]
    fn a_listener_rwsgi_cannot_open_is_an_error_that_names_its_line() {
        let file = ini("[uwsgi]\nmodule = app\nhttps-socket = :443,cert.pem,key.pem\n");
        let r = run(&["--ini", &file], &[]);
        let p = r.problems();
        assert!(
            p.iter()
                .any(|p| p.contains("a.ini:3") && p.contains("terminate TLS")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|p| p.contains("no listener could be taken")),
            "{p:?}"
        );
    }

    #[test]
    fn without_any_configuration_the_default_listener_is_used() {
        let r = run(&[], &[]);
        assert!(r.problems().is_empty());
        assert!(r
            .report()
            .contains("listeners: http://127.0.0.1:8000 (the built-in default"));
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let r = run(&["--ini", "/nonexistent/uwsgi.ini"], &[]);
        assert!(r.problems()[0].contains("cannot read ini file /nonexistent/uwsgi.ini"));
    }
}
