//! Keeps the heap memory that request bodies use mapped between requests.
//!
//! glibc gives memory back to the kernel when more than `M_TRIM_THRESHOLD`
//! (128 KiB until it tunes itself) is free at the top of the heap. A
//! worker with a few large bodies in flight (each a read buffer and a
//! Python `bytes` copy for `wsgi.input.read()`) frees more than that when
//! they end, so the heap is trimmed and the next requests fault the same
//! pages back in, zeroed by the kernel: 118 faults per round of eight
//! 64 KiB POSTs here, about 9 % of the worker's time in the 64 KiB echo
//! benchmark. Its own tuning (raising both thresholds after an mmap'd
//! chunk is freed) never starts for bodies under 128 KiB.
//!
//! So each worker sets the two thresholds for the sizes it buffers: a
//! body up to `--post-buffering` comes from the heap instead of its own
//! mmap, and up to four times that may stay free at the heap's top. That
//! is memory a worker already used once and is likely to use again; it is
//! the cost (a few MiB per malloc arena after a burst) of not faulting.
//! An operator's own glibc malloc settings (`MALLOC_TRIM_THRESHOLD_`,
//! `MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`) are left alone.

/// glibc's own starting mmap threshold; a worker never goes below it.
const GLIBC_MMAP_THRESHOLD: usize = 128 * 1024;
/// glibc refuses a larger mmap threshold (`HEAP_MAX_SIZE / 2` on 64-bit).
const MAX_MMAP_THRESHOLD: usize = 32 * 1024 * 1024;
/// Room over `--post-buffering` for a buffer's slack (a request head read
/// with the body, a `bytes` object's header).
const SLACK: usize = 64 * 1024;

/// The thresholds for a worker that buffers bodies of up to
/// `post_buffering` bytes: `(mmap, trim)`.
pub fn thresholds(post_buffering: usize) -> (usize, usize) {
    let mmap = post_buffering
        .saturating_add(SLACK)
        .clamp(GLIBC_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD);
    (mmap, mmap * 4)
}

/// Whether the environment carries the operator's own malloc settings.
fn operator_tuned(env: impl Fn(&str) -> Option<String>) -> bool {
    env("MALLOC_TRIM_THRESHOLD_").is_some()
        || env("MALLOC_MMAP_THRESHOLD_").is_some()
        || env("GLIBC_TUNABLES").is_some_and(|t| t.contains("glibc.malloc."))
}

/// Sets this process's malloc thresholds for bodies of up to
/// `post_buffering` bytes (see the module documentation).
pub fn keep_body_memory(post_buffering: usize) {
    if operator_tuned(|name| std::env::var(name).ok()) {
        tracing::debug!("malloc thresholds come from the environment; not setting them");
        return;
    }
    let (mmap, trim) = thresholds(post_buffering);
    set(mmap, trim);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set(mmap: usize, trim: usize) {
    let as_int = |n: usize| libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt changes glibc's allocation parameters under its own
    // lock; no memory is touched.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, as_int(mmap)) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, as_int(trim)) == 1
    };
    if !ok {
        tracing::warn!("cannot set malloc thresholds (mmap {mmap}, trim {trim} bytes)");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set(_mmap: usize, _trim: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_follow_post_buffering_within_glibc_bounds() {
        assert_eq!(thresholds(1024 * 1024), (1088 * 1024, 4352 * 1024));
        assert_eq!(thresholds(0), (128 * 1024, 512 * 1024));
        assert_eq!(thresholds(usize::MAX).0, 32 * 1024 * 1024);
    }

    #[test]
    fn the_operators_malloc_settings_win() {
        let env = |set: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                set.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!operator_tuned(env(&[])));
        assert!(operator_tuned(env(&[("MALLOC_TRIM_THRESHOLD_", "0")])));
        assert!(operator_tuned(env(&[("MALLOC_MMAP_THRESHOLD_", "65536")])));
        assert!(operator_tuned(env(&[(
            "GLIBC_TUNABLES",
            "glibc.malloc.trim_threshold=1"
        )])));
        assert!(!operator_tuned(env(&[(
            "GLIBC_TUNABLES",
            "glibc.pthread.rseq=0"
        )])));
    }
}
