//! Links against the Python that `python3` on PATH (or PYO3_PYTHON) names,
//! records its library directory as an rpath so the binary finds libpython
//! at run time without LD_LIBRARY_PATH, and records its executable so the
//! embedded interpreter finds the matching standard library (not whatever
//! `python3` comes first on PATH at run time).

fn main() {
    let config = pyo3_build_config::get();
    if let Some(dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    if let Some(python) = config.executable() {
        println!("cargo:rustc-env=BUILD_PYTHON_EXECUTABLE={python}");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
