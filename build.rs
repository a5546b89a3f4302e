//! Links against the Python that `python3` on PATH (or PYO3_PYTHON) names,
//! and records its library directory as an rpath so the binary finds
//! libpython at run time without LD_LIBRARY_PATH.

fn main() {
    let config = pyo3_build_config::get();
    if let Some(dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
