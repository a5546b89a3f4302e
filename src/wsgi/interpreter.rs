//! Starting the embedded CPython and loading the app: `--chdir`,
//! `--pythonpath`, `--home`, then `--module` / `--wsgi-file` (or the
//! built-in demo app). A failure here is fatal, with the Python traceback:
//! better than a server that answers 500 forever.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyModule};

use super::file_wrapper::FileWrapper;

/// The built-in demo app, served when no app is given.
const DEMO_APP: &str = include_str!("demo_app.py");
const MOUNT_DISPATCHER: &str = include_str!("mount.py");

/// Where the app comes from and what it imports from.
#[derive(Debug, Clone, Default)]
pub struct AppSpec {
    /// `package.module[:callable]`.
    pub module: Option<String>,
    /// A Python file defining the app.
    pub wsgi_file: Option<PathBuf>,
    /// The callable's name (default `application`, then `app`).
    pub callable: Option<String>,
    /// Directory to change to first; also put on sys.path.
    pub chdir: Option<PathBuf>,
    /// Extra sys.path entries.
    pub pythonpath: Vec<PathBuf>,
    /// A virtualenv whose site-packages are added.
    pub home: Option<PathBuf>,
    /// Modules (or files) imported before the app (`--import`).
    pub imports: Vec<String>,
    /// `--mount /PREFIX=TARGET`: more apps, by mountpoint.
    pub mounts: Vec<(String, String)>,
    /// `--manage-script-name`: mounts are chosen by PATH_INFO, which then
    /// moves the mountpoint to SCRIPT_NAME.
    pub manage_script_name: bool,
}

impl AppSpec {
    /// A short description for logs: `myproject.wsgi:application`.
    pub fn describe(&self) -> String {
        match (&self.module, &self.wsgi_file) {
            (Some(m), _) => m.clone(),
            (None, Some(f)) => f.display().to_string(),
            (None, None) => "built-in demo app".to_string(),
        }
    }
}

/// The loaded app and the objects every request shares.
pub struct LoadedApp {
    /// The WSGI callable.
    pub callable: Py<PyAny>,
    /// The `wsgi.file_wrapper` type.
    pub file_wrapper: Py<PyAny>,
}

/// Starts the interpreter (once per process), inside the virtualenv
/// `home` when that is one.
///
/// CPython finds its standard library from its program name; embedded, the
/// default name is `python3`, looked up on PATH, which may be another
/// Python than the libpython rwsgi links. So the program name is the
/// interpreter rwsgi was built against, when that file exists;
/// `sys.executable` then names a real Python too, for apps that start
/// subprocesses with it.
///
/// With `--home` naming a virtualenv of this Python version, the program
/// name is the virtualenv's `bin/python` instead, and CPython reads its
/// `pyvenv.cfg` as that python would: `sys.prefix` is the virtualenv, its
/// site-packages (and their `.pth` files) are on `sys.path`, and the base
/// installation's site-packages are not, unless the virtualenv says
/// `include-system-site-packages = true`.
pub fn start(home: Option<&Path>) {
    let python = home.and_then(venv_python).or_else(|| {
        option_env!("BUILD_PYTHON_EXECUTABLE")
            .map(PathBuf::from)
            .filter(|p| p.exists())
    });
    match python {
        Some(python) => initialize_as(&python),
        None => Python::initialize(),
    }
}

/// `home/bin/python` if `home` is a virtualenv (it has a `pyvenv.cfg`)
/// made by the same Python minor version as the libpython rwsgi runs.
fn venv_python(home: &Path) -> Option<PathBuf> {
    let home = std::path::absolute(home).ok()?;
    let cfg = std::fs::read_to_string(home.join("pyvenv.cfg")).ok()?;
    let python = home.join("bin").join("python");
    if !python.exists() {
        return None;
    }
    // SAFETY: Py_GetVersion only formats compile-time strings into a
    // static buffer; it needs no initialized interpreter.
    let linked = unsafe { std::ffi::CStr::from_ptr(pyo3::ffi::Py_GetVersion()) };
    let linked = minor_version(&linked.to_string_lossy())?;
    let made_by = cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| minor_version(value.trim()))?
    })?;
    (made_by == linked).then_some(python)
}

/// `"3.11"` of `"3.11.7 (main, ...)"` or `"3.11.7.final.0"`.
fn minor_version(version: &str) -> Option<String> {
    let mut parts = version.split_whitespace().next()?.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (numeric(major) && numeric(minor)).then(|| format!("{major}.{minor}"))
}

/// Initializes CPython with `python` as its program name, then releases the
/// GIL (as `Python::initialize` does).
fn initialize_as(python: &Path) {
    use pyo3::ffi;
    // SAFETY: the PyConfig API used as CPython documents it: init, set,
    // initialize, clear; all on this thread before any other Python call.
    unsafe {
        if ffi::Py_IsInitialized() != 0 {
            return;
        }
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.install_signal_handlers = 0;
        // The command line belongs to rwsgi, not to Python.
        config.parse_argv = 0;
        let name = CString::new(python.as_os_str().as_encoded_bytes()).unwrap_or_default();
        let status =
            ffi::PyConfig_SetBytesString(&mut config, &mut config.program_name, name.as_ptr());
        let status = if ffi::PyStatus_Exception(status) == 0 {
            ffi::Py_InitializeFromConfig(&config)
        } else {
            status
        };
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            tracing::warn!(
                "cannot start Python as {}; falling back to the default search",
                python.display()
            );
            Python::initialize();
            return;
        }
        ffi::PyEval_SaveThread();
    }
}

/// Changes to `--chdir` and prepares sys.path (the virtualenv,
/// `--pythonpath`): before the pre-app hooks, which may import from
/// there, and before [`load`].
pub fn prepare(spec: &AppSpec) -> Result<(), String> {
    Python::attach(|py| {
        prepare_paths(py, spec)
            .map_err(|e| format!("cannot prepare sys.path: {}", format_traceback(py, &e)))
    })
}

/// Imports the app (after [`prepare`]). The error is a complete message
/// (which module or callable failed, and the traceback).
pub fn load(spec: &AppSpec) -> Result<LoadedApp, String> {
    Python::attach(|py| {
        import_extra(py, &spec.imports);
        let callable = if spec.mounts.is_empty() {
            import_app(py, spec)?
        } else {
            mounted_apps(py, spec)?
        };
        let file_wrapper = py.get_type::<FileWrapper>().into_any().unbind();
        Ok(LoadedApp {
            callable,
            file_wrapper,
        })
    })
}

fn prepare_paths(py: Python<'_>, spec: &AppSpec) -> PyResult<()> {
    let sys = py.import("sys")?;
    sys.setattr("argv", PyList::new(py, ["rwsgi"])?)?;
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    // Relative paths given on the command line mean the directory rwsgi was
    // started in, not --chdir.
    let home = spec
        .home
        .as_ref()
        .map(|h| std::path::absolute(h).unwrap_or_else(|_| h.clone()));
    let pythonpath: Vec<PathBuf> = spec
        .pythonpath
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    if let Some(dir) = &spec.chdir {
        std::env::set_current_dir(dir).map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!("cannot chdir to {}: {e}", dir.display()))
        })?;
    }
    if let Some(home) = &home {
        if !is_prefix(py, home)? {
            add_venv(py, home)?;
        }
    }
    for dir in pythonpath.iter().rev() {
        path.insert(0, dir.to_string_lossy().as_ref())?;
    }
    // Like uWSGI and Gunicorn: the working directory is importable.
    let cwd = std::env::current_dir().map(|d| d.to_string_lossy().into_owned())?;
    path.insert(0, cwd)?;
    Ok(())
}

/// Whether the interpreter already runs inside `home` (started as its
/// virtualenv's python, so its site-packages are on sys.path already).
fn is_prefix(py: Python<'_>, home: &Path) -> PyResult<bool> {
    let prefix: PathBuf = py.import("sys")?.getattr("prefix")?.extract()?;
    Ok(match (prefix.canonicalize(), home.canonicalize()) {
        (Ok(prefix), Ok(home)) => prefix == home,
        _ => false,
    })
}

/// Adds a virtualenv's site-packages (and its .pth files) to sys.path: a
/// virtualenv the interpreter could not start in (no `pyvenv.cfg`, as
/// old virtualenvs, or a prefix installed by hand).
fn add_venv(py: Python<'_>, home: &Path) -> PyResult<()> {
    let version = py.version_info();
    let site_packages = home
        .join("lib")
        .join(format!("python{}.{}", version.major, version.minor))
        .join("site-packages");
    if !site_packages.is_dir() {
        return Err(pyo3::exceptions::PyOSError::new_err(format!(
            "--home {}: no {} (is it a Python {}.{} virtualenv?)",
            home.display(),
            site_packages.display(),
            version.major,
            version.minor
        )));
    }
    py.import("site")?
        .call_method1("addsitedir", (site_packages.to_string_lossy().as_ref(),))?;
    Ok(())
}

fn import_app(py: Python<'_>, spec: &AppSpec) -> Result<Py<PyAny>, String> {
    let (module, source, attr) = match (&spec.module, &spec.wsgi_file) {
        (Some(target), _) => {
            let (module_name, attr) = match target.split_once(':') {
                Some((m, a)) => (m, Some(a.to_string())),
                None => (target.as_str(), None),
            };
            let module = py.import(module_name).map_err(|e| {
                format!(
                    "cannot import module {module_name:?}: {}",
                    format_traceback(py, &e)
                )
            })?;
            (
                module,
                module_name.to_string(),
                attr.or_else(|| spec.callable.clone()),
            )
        }
        (None, Some(file)) => {
            let module = load_file(py, file).map_err(|e| {
                format!(
                    "cannot load wsgi-file {}: {}",
                    file.display(),
                    format_traceback(py, &e)
                )
            })?;
            (module, file.display().to_string(), spec.callable.clone())
        }
        (None, None) => {
            let module = PyModule::from_code(
                py,
                &CString::new(DEMO_APP).expect("demo app has no NUL"),
                c"rwsgi_demo_app.py",
                c"rwsgi_demo_app",
            )
            .map_err(|e| format!("cannot load the demo app: {}", format_traceback(py, &e)))?;
            (module, "the demo app".to_string(), None)
        }
    };
    resolve_callable(py, &module, &source, attr.as_deref())
}

/// The dispatcher over `--mount` apps (see `mount.py`), with the main app
/// (`--module` / `--wsgi-file`), if any, for paths no mount takes.
fn mounted_apps(py: Python<'_>, spec: &AppSpec) -> Result<Py<PyAny>, String> {
    let mut apps = Vec::with_capacity(spec.mounts.len());
    for (mountpoint, target) in &spec.mounts {
        let mut one = AppSpec {
            module: None,
            wsgi_file: None,
            callable: spec.callable.clone(),
            chdir: None,
            pythonpath: Vec::new(),
            home: None,
            imports: Vec::new(),
            mounts: Vec::new(),
            manage_script_name: false,
        };
        if target.ends_with(".py") || target.ends_with(".wsgi") {
            one.wsgi_file = Some(PathBuf::from(target));
        } else {
            one.module = Some(target.clone());
        }
        let app = import_app(py, &one).map_err(|e| format!("mount {mountpoint}: {e}"))?;
        tracing::info!("mounted {} at {mountpoint:?}", one.describe());
        apps.push((mountpoint.trim_end_matches('/').to_string(), app));
    }
    let default = if spec.module.is_some() || spec.wsgi_file.is_some() {
        Some(import_app(py, spec)?)
    } else {
        None
    };
    let make = || -> PyResult<Py<PyAny>> {
        let module = PyModule::from_code(
            py,
            &CString::new(MOUNT_DISPATCHER).expect("no NUL"),
            c"rwsgi_mount.py",
            c"rwsgi_mount",
        )?;
        let apps: Vec<(String, Py<PyAny>)> = apps;
        Ok(module
            .getattr("make")?
            .call1((apps, default, spec.manage_script_name))?
            .unbind())
    };
    make().map_err(|e| format!("cannot mount the apps: {}", format_traceback(py, &e)))
}

/// Calls the Python callable `module.function` for a `pycall:` hook.
pub fn call_hook(target: &str) -> Result<(), String> {
    let (module, function) = target
        .rsplit_once('.')
        .ok_or_else(|| format!("{target:?} is not module.function"))?;
    Python::attach(|py| {
        py.import(module)
            .and_then(|m| m.getattr(function))
            .and_then(|f| f.call0())
            .map(drop)
            .map_err(|e| format_traceback(py, &e))
    })
}

/// `--import`: each module by name, or a file (a name with a `/` or
/// ending in `.py`) run as a module, in order. As in uWSGI, one that fails
/// is logged with its traceback and the rest, and the app, still load.
fn import_extra(py: Python<'_>, imports: &[String]) {
    for name in imports {
        let result = if name.contains('/') || name.ends_with(".py") {
            load_file(py, Path::new(name)).map(drop)
        } else {
            py.import(name.as_str()).map(drop)
        };
        match result {
            Ok(()) => tracing::info!("imported {name} (--import)"),
            Err(e) => tracing::error!(
                source = "app",
                "cannot import {name} (--import): {}",
                format_traceback(py, &e)
            ),
        }
    }
}

/// Executes a Python file as a module named after it.
fn load_file<'py>(py: Python<'py>, file: &Path) -> PyResult<Bound<'py, PyModule>> {
    let code = std::fs::read_to_string(file)
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("cannot read it: {e}")))?;
    let stem = file
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .replace(|c: char| !c.is_alphanumeric(), "_")
        })
        .unwrap_or_else(|| "wsgi_file".into());
    let module_name = format!("rwsgi_file_{stem}");
    let code = CString::new(code)
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("file contains a NUL byte"))?;
    let file_name = CString::new(file.to_string_lossy().as_bytes())
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("path contains a NUL byte"))?;
    let module_cname = CString::new(module_name).expect("no NUL");
    PyModule::from_code(py, &code, &file_name, &module_cname)
}

/// Finds the callable: the given name (a trailing `()` calls a factory),
/// else `application`, else `app`.
fn resolve_callable(
    py: Python<'_>,
    module: &Bound<'_, PyModule>,
    source: &str,
    attr: Option<&str>,
) -> Result<Py<PyAny>, String> {
    let (name, factory) = match attr {
        Some(a) => match a.strip_suffix("()") {
            Some(f) => (f.to_string(), true),
            None => (a.to_string(), false),
        },
        None => {
            let found = ["application", "app"]
                .into_iter()
                .find(|n| module.hasattr(*n).unwrap_or(false));
            match found {
                Some(n) => (n.to_string(), false),
                None => {
                    return Err(format!(
                        "{source} defines neither `application` nor `app` (use --callable NAME)"
                    ))
                }
            }
        }
    };
    let mut object = module
        .getattr(name.as_str())
        .map_err(|_| format!("{source} has no callable named {name:?}"))?;
    if factory {
        object = object.call0().map_err(|e| {
            format!(
                "factory {source}:{name}() raised: {}",
                format_traceback(py, &e)
            )
        })?;
    }
    if !object.is_callable() {
        return Err(format!("{source}:{name} is not callable"));
    }
    Ok(object.unbind())
}

/// Formats an exception with its traceback, as Python would print it.
pub fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        let lines = tb.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )?;
        let joined: String = lines
            .try_iter()?
            .filter_map(|l| l.ok()?.extract::<String>().ok())
            .collect();
        Ok(joined)
    });
    match formatted {
        Ok(text) => text.trim_end().to_string(),
        Err(_) => err.to_string(),
    }
}

/// Makes signal `signum` print every Python thread's stack to stderr (the
/// log), without needing the GIL: used to show where a harakiri'd request
/// was stuck.
pub fn enable_stack_dumps(signum: i32) {
    Python::attach(|py| {
        let result = py.import("faulthandler").and_then(|fh| {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("all_threads", true)?;
            fh.call_method("register", (signum,), Some(&kwargs))
        });
        if let Err(e) = result {
            tracing::warn!("cannot enable Python stack dumps: {e}");
        }
    });
}

/// Freezes the objects imported so far out of the garbage collector, so
/// forked workers do not touch (and copy) the master's pages when they
/// collect.
pub fn freeze_for_fork() {
    Python::attach(|py| {
        if let Err(e) = py.import("gc").and_then(|gc| gc.call_method0("freeze")) {
            tracing::warn!("gc.freeze() failed: {e}");
        }
    });
}

/// Forks this process the way `os.fork()` does, so CPython's state (the
/// GIL, the import lock, `os.register_at_fork` hooks) is right on both
/// sides. Only safe while the process has a single thread. Returns fork's
/// result: 0 in the child, the child's pid in the parent, -1 on error.
pub fn fork_with_python() -> libc::pid_t {
    Python::attach(|_py| {
        // SAFETY: called with the GIL held, as CPython requires, from a
        // process with no other threads.
        unsafe {
            pyo3::ffi::PyOS_BeforeFork();
            let pid = libc::fork();
            if pid == 0 {
                pyo3::ffi::PyOS_AfterFork_Child();
            } else {
                pyo3::ffi::PyOS_AfterFork_Parent();
            }
            pid
        }
    })
}

#[cfg(test)]
mod tests {
    use super::minor_version;

    #[test]
    fn minor_versions_come_from_py_get_version_and_pyvenv_cfg_alike() {
        assert_eq!(
            minor_version("3.11.7 (main, Nov 2 2026) [GCC 12]").as_deref(),
            Some("3.11")
        );
        assert_eq!(minor_version("3.12.0.final.0").as_deref(), Some("3.12"));
        assert_eq!(minor_version("3.9").as_deref(), Some("3.9"));
        assert_eq!(minor_version("three.eleven"), None);
        assert_eq!(minor_version("3"), None);
        assert_eq!(minor_version(""), None);
    }
}
