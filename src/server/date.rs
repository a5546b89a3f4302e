//! The `Date` header value, formatted at most once a second per thread.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The length of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
const LEN: usize = 29;

/// One formatted `Date` value: a copy, so handing it out touches no
/// reference count.
#[derive(Clone, Copy)]
pub struct HttpDate([u8; LEN]);

impl std::ops::Deref for HttpDate {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

thread_local! {
    /// The second last formatted, and its text.
    static CACHE: Cell<(u64, HttpDate)> = const { Cell::new((u64::MAX, HttpDate([0; LEN]))) };
}

/// The current time as an IMF-fixdate.
pub fn http_date() -> HttpDate {
    let secs = coarse_now();
    let (cached, date) = CACHE.get();
    if cached == secs {
        return date;
    }
    let now = UNIX_EPOCH + Duration::from_secs(secs);
    let text = httpdate::fmt_http_date(now);
    let mut date = HttpDate([b' '; LEN]);
    let n = text.len().min(LEN);
    date.0[..n].copy_from_slice(&text.as_bytes()[..n]);
    CACHE.set((secs, date));
    date
}

/// Seconds since the epoch from the kernel's coarse clock: the header has
/// a resolution of a second, and the coarse clock (a few milliseconds
/// behind at most) is read without the time counter, about a quarter of the
/// precise clock's cost, which every response paid.
fn coarse_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc == 0 {
        u64::try_from(ts.tv_sec).unwrap_or(0)
    } else {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_an_imf_fixdate_of_this_second() {
        let before = SystemTime::now();
        let date = http_date();
        let after = SystemTime::now();
        let text = std::str::from_utf8(&date).expect("ASCII");
        assert_eq!(text.len(), LEN);
        assert!(text.ends_with(" GMT"), "{text}");
        let parsed = httpdate::parse_http_date(text).expect("an IMF-fixdate");
        // Whole seconds, from a clock a few milliseconds behind at most.
        assert!(
            parsed + Duration::from_secs(2) > before && parsed <= after,
            "{text}"
        );
    }
}
