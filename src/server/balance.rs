//! Which worker process takes the next connection. Every worker waits on
//! the same listening sockets and whichever is first to look takes what is
//! there, so without a rule one worker can end up with most connections:
//! 32 keep-alive connections opened together (a request on each, both
//! workers warm) split 1/31, 3/29 and 5/27 in ten bursts, 9/23 at the
//! median; a worker that was not looking for 100 ms got none. The rules
//! here read the other workers' counts from the scoreboard and leave a
//! connection to a worker that should have it; one that is left a
//! connection and does not take it soon gets it back.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Lifecycle;
use crate::exchange::Occupancy;

/// The other workers accepting on the same sockets, as far as this one
/// can see them.
pub trait Siblings: Send + Sync + 'static {
    /// The fewest requests (running or queued) any other live worker
    /// has; `None` when there is none.
    fn least_load(&self) -> Option<usize>;

    /// The fewest connections open at any other live worker that is not
    /// leaving connections to the others (by [`Siblings::show_leaving`]);
    /// `None` when there is none.
    fn fewest_connections(&self) -> Option<usize>;

    /// Shows the others that one more (`true`) or one fewer (`false`) of
    /// this worker's accept loops is leaving new connections to them
    /// because its threads are all busy, so none leaves one back.
    fn show_leaving(&self, leaving: bool);
}

/// Whether a turn is showing the others that it leaves connections to
/// them; shows it no more when the turn ends or is dropped (a drain).
struct Leaving<'a> {
    siblings: &'a dyn Siblings,
    now: bool,
}

impl Leaving<'_> {
    fn show(&mut self, leaving: bool) {
        if leaving != self.now {
            self.now = leaving;
            self.siblings.show_leaving(leaving);
        }
    }
}

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.show(false);
    }
}

/// Leaves new connections to the other workers when one of them should
/// have the next:
///
/// - every Python thread here has a request and another worker has fewer
///   requests (without this, one worker could hold more keep-alive
///   connections than it has threads, their requests queuing, while
///   another has threads idle). The least loaded worker always accepts at
///   once, so when all are full requests still queue, or get their 503,
///   without delay;
/// - this worker has [`CONNECTION_SLACK`] connections more than another
///   (one not leaving connections by the first rule), which takes the
///   next one instead. Keep-alive connections opened together spread
///   evenly, so every core serves some of them. A worker whose one thread
///   is in a request still counts: with the app on the I/O thread, that
///   is most of the time, and it accepts between two requests.
pub struct AcceptDeferral {
    /// This worker's threads.
    pub occupancy: Arc<Occupancy>,
    /// This worker's open connections.
    pub connections: Arc<Lifecycle>,
    /// The others'.
    pub siblings: Arc<dyn Siblings>,
}

/// The longest a full worker leaves connections to the others (one may
/// have a free thread by the scoreboard and still not be accepting).
pub const ACCEPT_DEFER: Duration = Duration::from_millis(100);

/// How often a full worker looks again at the others.
const DEFER_RECHECK: Duration = Duration::from_millis(5);

/// How many more open connections than another worker a worker may have
/// before it leaves the next connection to that one.
/// Two, not one: connections that come and go one request at a time
/// (nginx's `uwsgi_pass`) leave the counts a connection apart all the
/// time, and each deferral costs a timer turn.
pub const CONNECTION_SLACK: usize = 2;

/// The longest a worker leaves a connection to a less crowded one (which
/// is busy in a request of its app, say, and not looking).
pub const BALANCE_DEFER: Duration = Duration::from_millis(10);

/// How often a crowded worker looks again: the timer's granularity.
const BALANCE_RECHECK: Duration = Duration::from_millis(1);

impl AcceptDeferral {
    /// Returns when this worker should accept the next connection: at once
    /// unless a rule above leaves it to another worker, else once no rule
    /// does or each rule's longest wait ([`ACCEPT_DEFER`],
    /// [`BALANCE_DEFER`]) has passed.
    pub async fn turn(&self) {
        let start = Instant::now();
        let mut shown = Leaving {
            siblings: &*self.siblings,
            now: false,
        };
        loop {
            let waited = start.elapsed();
            let full = waited < ACCEPT_DEFER && self.another_has_fewer_requests();
            shown.show(full);
            if full {
                let left = ACCEPT_DEFER - waited;
                self.occupancy
                    .wait_for_thread(left.min(DEFER_RECHECK))
                    .await;
            } else if waited < BALANCE_DEFER && self.another_has_fewer_connections() {
                let left = BALANCE_DEFER - waited;
                tokio::time::sleep(left.min(BALANCE_RECHECK)).await;
            } else {
                return;
            }
        }
    }

    /// Every thread here is busy and another worker has fewer requests.
    fn another_has_fewer_requests(&self) -> bool {
        self.occupancy.full()
            && self
                .siblings
                .least_load()
                .is_some_and(|least| least < self.occupancy.load())
    }

    /// Another worker has [`CONNECTION_SLACK`] fewer connections open than
    /// this one.
    fn another_has_fewer_connections(&self) -> bool {
        let mine = self.connections.active();
        self.siblings
            .fewest_connections()
            .is_some_and(|fewest| mine >= fewest + CONNECTION_SLACK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use crate::server::ConnectionGuard;

    /// One other worker, whose connection counts a test scripts: each ask
    /// takes the next, the last one repeats.
    #[derive(Default)]
    struct Other {
        connections: Mutex<Vec<usize>>,
        load: Option<usize>,
        asked: AtomicUsize,
        leaving: AtomicIsize,
    }

    impl Siblings for Other {
        fn least_load(&self) -> Option<usize> {
            self.load
        }

        fn fewest_connections(&self) -> Option<usize> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            let mut script = self.connections.lock().unwrap();
            if script.len() > 1 {
                Some(script.remove(0))
            } else {
                script.first().copied()
            }
        }

        fn show_leaving(&self, leaving: bool) {
            self.leaving
                .fetch_add(if leaving { 1 } else { -1 }, Ordering::Relaxed);
        }
    }

    /// A deferral for a worker with `open` connections and one thread,
    /// busy when `full`.
    fn deferral(
        other: Arc<Other>,
        open: usize,
        full: bool,
    ) -> (AcceptDeferral, Vec<ConnectionGuard>) {
        let lifecycle = Arc::new(Lifecycle::default());
        let guards = (0..open).map(|_| lifecycle.enter()).collect();
        let occupancy = Arc::new(Occupancy::new(1));
        if full {
            occupancy.took();
        }
        let deferral = AcceptDeferral {
            occupancy,
            connections: lifecycle,
            siblings: other,
        };
        (deferral, guards)
    }

    fn other(connections: &[usize]) -> Arc<Other> {
        Arc::new(Other {
            connections: Mutex::new(connections.to_vec()),
            ..Other::default()
        })
    }

    #[tokio::test]
    async fn a_worker_within_the_slack_of_the_others_accepts_at_once() {
        let other = other(&[1]);
        let (deferral, _open) = deferral(other.clone(), 1 + CONNECTION_SLACK - 1, false);
        deferral.turn().await;
        assert_eq!(
            other.asked.load(Ordering::Relaxed),
            1,
            "looked once, did not wait"
        );
    }

    #[tokio::test]
    async fn a_crowded_worker_waits_until_the_other_has_taken_connections() {
        // Two connections more than the other for three looks, then level.
        let other = other(&[3, 3, 3, 5]);
        let (deferral, _open) = deferral(other.clone(), 5, false);
        let began = std::time::Instant::now();
        deferral.turn().await;
        assert_eq!(other.asked.load(Ordering::Relaxed), 4);
        assert!(
            began.elapsed() >= 3 * BALANCE_RECHECK,
            "each look is a timer turn apart"
        );
    }

    #[tokio::test]
    async fn a_crowded_worker_takes_the_connection_when_the_other_does_not() {
        let other = other(&[0]);
        let (deferral, _open) = deferral(other.clone(), 8, false);
        let began = std::time::Instant::now();
        deferral.turn().await;
        assert!(began.elapsed() >= BALANCE_DEFER);
    }

    #[tokio::test]
    async fn a_full_worker_shows_it_leaves_connections_until_its_turn_ends() {
        let other = Arc::new(Other {
            load: Some(0),
            ..Other::default()
        });
        let (deferral, _open) = deferral(other.clone(), 0, true);
        let mut turn = Box::pin(deferral.turn());
        // One poll: it waits for a thread, and shows it is leaving.
        assert!(futures_poll_once(turn.as_mut()).await.is_none());
        assert_eq!(other.leaving.load(Ordering::Relaxed), 1);
        // A drain drops the turn: the others must not go on seeing it.
        drop(turn);
        assert_eq!(other.leaving.load(Ordering::Relaxed), 0);
        // Waited out, it accepts after all, and shows nothing any more.
        deferral.turn().await;
        assert_eq!(other.leaving.load(Ordering::Relaxed), 0);
    }

    /// Polls `fut` once: its output if it was ready.
    async fn futures_poll_once<F: std::future::Future>(
        fut: std::pin::Pin<&mut F>,
    ) -> Option<F::Output> {
        let mut fut = Some(fut);
        std::future::poll_fn(|cx| {
            let out = fut.take().unwrap().poll(cx);
            std::task::Poll::Ready(match out {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
