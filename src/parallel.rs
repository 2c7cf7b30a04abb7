//! The one place that fans work out over cores: hashing, compression and
//! decompression all call these helpers, and nothing else in the crate
//! starts a thread.
//!
//! The work runs on a rayon pool of this crate's own, one thread per core,
//! started the first time a job is large enough to share. Not rayon's
//! global pool, because:
//!
//! - the writer thread waits, blocked, for the next chunk in file order
//!   ([`ordered`]); a caller that is itself a worker of the pool the chunks
//!   were queued on (a save inside the application's `par_iter`) could be
//!   waiting on work queued behind it. On a pool of our own the caller is
//!   never one of its workers, so the wait always ends;
//! - the bound on memory of a high-level zstd save (README "Compression")
//!   is stated in workers, which must not depend on how the application
//!   sized its pool.
//!
//! The cost is one idle thread per core once a large archive has been
//! handled, and work that can exceed the cores when the application keeps
//! them busy too (the scheduler shares them; no job here waits on another).

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;

/// The crate's pool, started on first use.
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores())
            .thread_name(|i| format!("achronyme-env-{i}"))
            .build()
            .expect("a thread pool can be started")
    })
}

/// Cores this process may use (1 when the platform cannot tell).
pub(crate) fn cores() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Fills `out[k]` with `f(k)` for every `k`, on every core.
pub(crate) fn fill<T: Send>(out: &mut [T], f: impl Fn(usize) -> T + Sync) {
    if out.len() <= 1 || cores() <= 1 {
        for (k, slot) in out.iter_mut().enumerate() {
            *slot = f(k);
        }
        return;
    }
    pool().install(|| {
        out.par_iter_mut()
            .enumerate()
            .for_each(|(k, slot)| *slot = f(k))
    });
}

/// `f(item)` for every item, on every core; the results in item order.
pub(crate) fn map<I: Send, R: Send>(items: Vec<I>, f: impl Fn(I) -> R + Sync) -> Vec<R> {
    if items.len() <= 1 || cores() <= 1 {
        return items.into_iter().map(f).collect();
    }
    pool().install(|| items.into_par_iter().map(&f).collect())
}

/// Runs `here` on the calling thread while the other cores run `help`,
/// then runs `help` on the calling thread too, so that every core works on
/// the shared job once `here` is done. `help` takes work from something
/// shared until none is left (a counter of chunks to hash); it runs on one
/// thread per core, so the writer and the hashers never outnumber the
/// cores. `here` need not be `Send`: it stays on the calling thread (the
/// writer writing, the reader checking a table while it is hashed).
pub(crate) fn help_while<B>(help: impl Fn() + Sync, here: impl FnOnce() -> B) -> B {
    if cores() <= 1 {
        let b = here();
        help();
        return b;
    }
    let help = &help;
    pool().in_place_scope(|s| {
        for _ in 1..cores() {
            s.spawn(move |_| help());
        }
        let b = here();
        help();
        b
    })
}

/// Produces items `0..n` on the pool and consumes them on the calling
/// thread, in order, as soon as each is ready: a compressed chunk is
/// written while later ones are still being compressed.
///
/// `produce(state, k)` runs with one of `states` (one per worker, so at
/// most `states.len()` run at once: a zstd context each). At most twice
/// that many items are started and not yet consumed, which bounds the
/// memory of finished items waiting for a slow one before them. The first
/// error from `consume` stops the run: no more items are started, and
/// those under way are finished and dropped before this returns.
pub(crate) fn ordered<S: Send, T: Send, E>(
    states: &mut [S],
    n: usize,
    produce: impl Fn(&mut S, usize) -> T + Sync,
    mut consume: impl FnMut(usize, T) -> Result<(), E>,
) -> Result<(), E> {
    let workers = states.len();
    assert!(workers >= 1, "at least one worker state");
    if workers == 1 || n <= 1 || cores() <= 1 {
        for k in 0..n {
            let t = produce(&mut states[0], k);
            consume(k, t)?;
        }
        return Ok(());
    }
    let window = 2 * workers;
    let idle = Mutex::new(states.iter_mut().collect::<Vec<&mut S>>());
    let (tx, rx) = mpsc::channel::<(usize, std::thread::Result<T>)>();
    let (produce, idle) = (&produce, &idle);
    pool().in_place_scope(|scope| {
        // Items `written .. written + ready.len()`: Some once produced.
        let mut ready: VecDeque<Option<T>> = VecDeque::with_capacity(window);
        let (mut written, mut started, mut running) = (0, 0, 0);
        while written < n {
            while started < n && running < workers && started < written + window {
                let tx = tx.clone();
                let k = started;
                scope.spawn(move |_| {
                    // Fewer than `workers` items run at once, so a state
                    // is always free.
                    let state = idle.lock().expect("not poisoned").pop();
                    let state = state.expect("a free worker state");
                    // A panic is sent on instead of lost, so the consumer
                    // never waits for an item that will not come.
                    let r = panic::catch_unwind(AssertUnwindSafe(|| produce(state, k)));
                    idle.lock().expect("not poisoned").push(state);
                    // The receiver is gone only after an error; the item is
                    // dropped with it.
                    let _ = tx.send((k, r));
                });
                ready.push_back(None);
                started += 1;
                running += 1;
            }
            if let Some(t) = ready.front_mut().and_then(Option::take) {
                ready.pop_front();
                consume(written, t)?;
                written += 1;
                continue;
            }
            let (k, r) = rx.recv().expect("every started item reports");
            running -= 1;
            let t = r.unwrap_or_else(|payload| panic::resume_unwind(payload));
            ready[k - written] = Some(t);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn fill_and_map_keep_item_order() {
        let mut out = vec![0usize; 1000];
        fill(&mut out, |k| k * 3);
        assert!(out.iter().enumerate().all(|(k, &v)| v == k * 3));
        let squares = map((0..500).collect(), |i: usize| i * i);
        assert_eq!(squares, (0..500).map(|i| i * i).collect::<Vec<_>>());
    }

    #[test]
    fn help_while_keeps_here_on_this_thread_and_helps_after() {
        let me = std::thread::current().id();
        let helpers = AtomicUsize::new(0);
        let here = help_while(
            || {
                helpers.fetch_add(1, Ordering::Relaxed);
            },
            || std::thread::current().id(),
        );
        assert_eq!(here, me);
        // One helper per other core, and the calling thread once more.
        assert_eq!(helpers.load(Ordering::Relaxed), cores());
    }

    #[test]
    fn ordered_consumes_in_order_with_a_bounded_window() {
        for workers in [1, 2, 3, 8] {
            let mut states: Vec<usize> = vec![0; workers];
            let started = AtomicUsize::new(0);
            let mut seen = Vec::new();
            let r: Result<(), ()> = ordered(
                &mut states,
                100,
                |uses, k| {
                    *uses += 1;
                    started.fetch_add(1, Ordering::SeqCst);
                    // Later items finish first now and then.
                    if k % 7 == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    k
                },
                |k, t| {
                    assert_eq!(k, t);
                    // Never more than twice the workers started ahead of
                    // the one being consumed.
                    let ahead = started.load(Ordering::SeqCst) - k;
                    assert!(ahead <= 2 * workers, "{ahead} ahead with {workers}");
                    seen.push(k);
                    Ok(())
                },
            );
            assert_eq!(r, Ok(()));
            assert_eq!(seen, (0..100).collect::<Vec<_>>());
            assert_eq!(states.iter().sum::<usize>(), 100);
        }
    }

    #[test]
    fn ordered_stops_at_the_first_error_and_passes_panics_on() {
        let mut states = [(), (), ()];
        let produced = AtomicUsize::new(0);
        let r = ordered(
            &mut states,
            1000,
            |_, k| {
                produced.fetch_add(1, Ordering::SeqCst);
                k
            },
            |k, _| if k == 5 { Err(k) } else { Ok(()) },
        );
        assert_eq!(r, Err(5));
        assert!(produced.load(Ordering::SeqCst) <= 5 + 1 + 6);

        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            let _ = ordered(
                &mut states,
                50,
                |_, k| assert_ne!(k, 20, "item 20 fails"),
                |_, ()| Ok::<(), ()>(()),
            );
        }));
        assert!(caught.is_err());
    }
}
