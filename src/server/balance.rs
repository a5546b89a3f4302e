//! Which worker process takes the next connection. Every worker waits on
//! the same listening sockets and whichever is first to look takes what is
//! there, so without a rule one worker can end up with most connections:
//! 32 keep-alive connections opened together (a request on each, both
//! workers warm) split 1/31, 3/29 and 5/27 in ten bursts, 9/23 at the
//! median, and wrk's 64 to two Django workers just started went 63/1. The
//! rules here read the other workers' counts from the scoreboard and leave
//! a connection to a worker that should have it, while that one is taking
//! connections.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Lifecycle;
use crate::exchange::{Occupancy, ServiceTime};

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
    occupancy: Arc<Occupancy>,
    /// With the app on the I/O thread, how long it takes. Until a few
    /// requests are timed they run on the pool's thread, which then counts
    /// as busy though the requests after them will not wait for it: the
    /// busy-threads rule waits until the app is timed (else a burst of
    /// connections to workers just started went to whichever had not yet
    /// had one, 30 to 2).
    inline_service: Option<Arc<ServiceTime>>,
    /// This worker's open connections.
    connections: Arc<Lifecycle>,
    /// The others'.
    siblings: Arc<dyn Siblings>,
    /// Until when connections are not left to a less crowded worker: one
    /// that did not take one for a timer turn is not looking (its I/O
    /// thread is starved of CPU, or in a long request of its app).
    unanswered_until: std::sync::Mutex<Option<Instant>>,
}

impl AcceptDeferral {
    /// Deferral for a worker with these threads, connections and (with
    /// the app on its I/O thread) app timing, among these siblings.
    pub fn new(
        occupancy: Arc<Occupancy>,
        inline_service: Option<Arc<ServiceTime>>,
        connections: Arc<Lifecycle>,
        siblings: Arc<dyn Siblings>,
    ) -> Self {
        AcceptDeferral {
            occupancy,
            inline_service,
            connections,
            siblings,
            unanswered_until: std::sync::Mutex::new(None),
        }
    }
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

/// The longest a worker leaves a connection to less crowded ones that go
/// on taking others.
pub const BALANCE_DEFER: Duration = Duration::from_millis(10);

/// How long a worker leaves no connection to a less crowded one after
/// that one took none in a timer turn. Waiting on a worker that is not
/// looking throttled this one's accepting to one connection per
/// [`BALANCE_DEFER`]: with 1,000 connections at once to two workers of
/// 500 threads, p99 went from 240-265 ms to 360-370.
const UNANSWERED: Duration = Duration::from_millis(50);

/// How often a crowded worker looks again: the timer's granularity.
const BALANCE_RECHECK: Duration = Duration::from_millis(1);

impl AcceptDeferral {
    /// Returns when this worker should accept the next connection: at once
    /// unless a rule above leaves it to another worker, else once no rule
    /// does, the less crowded worker stopped taking connections, or each
    /// rule's longest wait ([`ACCEPT_DEFER`], [`BALANCE_DEFER`]) has
    /// passed.
    pub async fn turn(&self) {
        let start = Instant::now();
        let mut shown = Leaving {
            siblings: &*self.siblings,
            now: false,
        };
        // The fewest connections another worker had a timer turn ago.
        let mut before: Option<usize> = None;
        loop {
            let waited = start.elapsed();
            let full = waited < ACCEPT_DEFER && self.another_has_fewer_requests();
            shown.show(full);
            if full {
                let left = ACCEPT_DEFER - waited;
                self.occupancy
                    .wait_for_thread(left.min(DEFER_RECHECK))
                    .await;
                continue;
            }
            let Some(fewest) = self.less_crowded() else {
                return;
            };
            if before.is_some_and(|before| fewest <= before) {
                // It took none since the last look: not looking now.
                *self
                    .unanswered_until
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + UNANSWERED);
                return;
            }
            if waited >= BALANCE_DEFER {
                return;
            }
            before = Some(fewest);
            tokio::time::sleep((BALANCE_DEFER - waited).min(BALANCE_RECHECK)).await;
        }
    }

    /// Every thread here is busy and another worker has fewer requests.
    fn another_has_fewer_requests(&self) -> bool {
        let untimed = self
            .inline_service
            .as_ref()
            .is_some_and(|service| service.mean().is_none());
        !untimed
            && self.occupancy.full()
            && self
                .siblings
                .least_load()
                .is_some_and(|least| least < self.occupancy.load())
    }

    /// The fewest connections another worker has open, when that is
    /// [`CONNECTION_SLACK`] fewer than this one has and no other worker
    /// recently left one untaken.
    fn less_crowded(&self) -> Option<usize> {
        let until = *self
            .unanswered_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if until.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        let mine = self.connections.active();
        self.siblings
            .fewest_connections()
            .filter(|&fewest| mine >= fewest + CONNECTION_SLACK)
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
        let deferral = AcceptDeferral::new(occupancy, None, lifecycle, other);
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
    async fn a_crowded_worker_waits_while_the_other_takes_connections() {
        // The other takes one per timer turn; level after three.
        let other = other(&[1, 2, 3, 4]);
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
    async fn a_crowded_worker_waits_at_most_its_longest_wait() {
        let other = other(&(0..100).collect::<Vec<_>>());
        let (deferral, _open) = deferral(other.clone(), 200, false);
        let began = std::time::Instant::now();
        deferral.turn().await;
        assert!(began.elapsed() >= BALANCE_DEFER);
    }

    #[tokio::test]
    async fn a_worker_that_takes_nothing_for_a_timer_turn_is_not_left_more_for_a_while() {
        let other = other(&[0]);
        let (deferral, _open) = deferral(other.clone(), 8, false);
        deferral.turn().await;
        assert_eq!(
            other.asked.load(Ordering::Relaxed),
            2,
            "looked twice, a turn apart"
        );
        // The next connections are taken at once, without asking.
        deferral.turn().await;
        deferral.turn().await;
        assert_eq!(other.asked.load(Ordering::Relaxed), 2);
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

    #[tokio::test]
    async fn a_worker_that_has_not_timed_its_app_yet_takes_connections_though_its_thread_is_busy() {
        let other = Arc::new(Other {
            load: Some(0),
            ..Other::default()
        });
        let (mut deferral, _open) = deferral(other.clone(), 0, true);
        let service = Arc::new(ServiceTime::default());
        deferral.inline_service = Some(service.clone());
        let mut turn = Box::pin(deferral.turn());
        assert!(
            futures_poll_once(turn.as_mut()).await.is_some(),
            "accepts at once"
        );
        assert_eq!(other.leaving.load(Ordering::Relaxed), 0);
        drop(turn);
        // Timed, the busy thread counts again.
        for _ in 0..4 {
            service.record(Duration::from_micros(50));
        }
        let mut turn = Box::pin(deferral.turn());
        assert!(futures_poll_once(turn.as_mut()).await.is_none());
        assert_eq!(other.leaving.load(Ordering::Relaxed), 1);
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
