//! Panics in rwsgi's own code while it serves a request on a Python
//! thread. A panic is an rwsgi bug, never the app's: it is caught where
//! the request's responder is still at hand ([`super::call`]), so the
//! request fails with a 500 (or is cut short if its head is out) instead
//! of the thread vanishing with it, and it is logged at error naming the
//! request and the cause. The thread serves on, and the pool tells its
//! observer (`PoolObserver::thread_panicked`), which should have the
//! worker replaced: a thread that panicked may have left shared state half
//! changed.
//!
//! Also owns the test-only way to cause one, since no request can make
//! rwsgi panic on purpose.

use std::any::Any;
use std::sync::OnceLock;

use crate::exchange::RequestLabel;

/// Test only: a request to exactly this path (`REQUEST_URI`, else
/// `PATH_INFO`) makes rwsgi panic after the app was called, before its
/// body is sent. Unset in any real deployment; the integration tests set
/// it to check that a panic fails one request and nothing else.
pub const TEST_ONLY_PANIC_ENV: &str = "RWSGI_TEST_ONLY_PANIC_ON_PATH";

/// The path [`TEST_ONLY_PANIC_ENV`] names, read once. Unit tests use a
/// fixed one (setting an environment variable in a test process races
/// with the other tests).
fn test_only_panic_path() -> Option<&'static [u8]> {
    static PATH: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    PATH.get_or_init(|| {
        if cfg!(test) {
            return Some(b"/rwsgi-unit-test-panic".to_vec());
        }
        use std::os::unix::ffi::OsStringExt;
        std::env::var_os(TEST_ONLY_PANIC_ENV)
            .filter(|p| !p.is_empty())
            .map(|p| p.into_vec())
    })
    .as_deref()
}

/// Whether the request `label` names asked for the test-only panic.
pub fn test_only_panic_requested(label: &RequestLabel) -> bool {
    test_only_panic_path().is_some_and(|path| label.uri().as_ref() == path)
}

/// Panics, because a test asked to (see [`TEST_ONLY_PANIC_ENV`]).
pub fn test_only_panic() -> ! {
    panic!("test-only panic requested by {TEST_ONLY_PANIC_ENV}")
}

/// What a panic said: its message, when it is text.
pub fn cause(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Logs a panic caught while serving the request `label` names.
pub fn log(label: &RequestLabel, cause: &str) {
    tracing::error!(
        source = "rwsgi",
        request = %label,
        "internal error: rwsgi panicked serving {label}: {cause} \
         (a bug; the request failed)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panics_cause_is_its_message() {
        let text = std::panic::catch_unwind(|| panic!("static text")).unwrap_err();
        assert_eq!(cause(&*text), "static text");
        let formatted = std::panic::catch_unwind(|| panic!("{} {}", "made", 2)).unwrap_err();
        assert_eq!(cause(&*formatted), "made 2");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(cause(&*other), "a panic without a message");
    }
}
