//! [`SigningPool`]: the threads that compute RSA signatures.
//!
//! An RS256 signature costs 0.25–1 ms of CPU, too long to hold an async
//! worker. Tokio's blocking pool was the first home (`spawn_blocking`), but
//! there every concurrent request gets a thread of its own: with 32 token
//! requests in flight on two cores, 32 threads time-sliced one another and
//! a signature preempted mid-way waited whole scheduler slices, so a few
//! requests took three times the median (token RS256 p99 13.3–14.8 ms at a
//! 4.8 ms median). Capping the blocking pool with a semaphore restored the
//! order but cost 35 % of the throughput: every hand-over went through two
//! wake-ups (the next waiter's task, then its blocking thread) while the
//! core stood idle. Here one thread per core takes the next signature from
//! one FIFO queue the moment it finishes the last, so requests are served
//! in arrival order and the threads never wait while work is queued.
//!
//! Each thread yields its core after every signature. Under load both
//! threads always have work, and the tokio worker that a finished signature
//! wakes (to write that response, then read the client's next request)
//! otherwise waited for the signing thread's scheduler slice to run out:
//! requests took up to twice the mean. With the yield (a system call,
//! nothing to give up when no other thread is runnable), 32 connections on
//! two cores: p99 8.8–9.0 → 6.0–8.8 ms direct and 9.7–9.9 → 7.6–8.7 ms
//! through nginx and TLS (p90 7.4–8.0 → 5.4–6.5 ms), for 3–6 % fewer
//! tokens per second at saturation; at 4 connections, 12–14 % more tokens
//! per second and p99 1.4 → 1.0 ms (BENCHMARKS.md, issue 15, fourth
//! session).

use std::sync::{Arc, Mutex, PoisonError, mpsc};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of signing threads fed by one FIFO queue. Cloning shares the
/// pool; the threads end when the last clone is dropped.
#[derive(Clone)]
pub struct SigningPool {
    queue: mpsc::Sender<Job>,
    threads: usize,
}

impl std::fmt::Debug for SigningPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningPool")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// The pool's threads are gone (only when the process is going down).
#[derive(Debug, thiserror::Error)]
#[error("the signing threads are gone")]
pub struct PoolClosed;

impl SigningPool {
    /// Starts `threads` (at least one) threads named `rsa-sign-N`.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("rsa-sign-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next
                        // job: one thread waits on the queue, the others on
                        // the lock, and each job goes to exactly one.
                        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => {
                                job();
                                // Lets the thread this job's answer just
                                // woke run now (see the module docs).
                                std::thread::yield_now();
                            }
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Self { queue, threads })
    }

    /// One thread per core (`available_parallelism`).
    pub fn per_core() -> std::io::Result<Self> {
        Self::new(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
    }

    /// How many threads sign.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `work` on a pool thread after the work queued before it.
    /// Work whose caller has gone away by its turn is skipped.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolClosed> {
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            if !done.is_closed() {
                let _ = done.send(work());
            }
        });
        self.queue.send(job).map_err(|_| PoolClosed)?;
        answer.await.map_err(|_| PoolClosed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn work_runs_on_the_pool_threads() {
        let pool = SigningPool::new(2).unwrap();
        assert_eq!(pool.threads(), 2);
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("rsa-sign-"));
    }

    /// One thread: the queue is served strictly in the order work arrived.
    #[tokio::test]
    async fn work_is_served_in_arrival_order() {
        let pool = SigningPool::new(1).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (gate, hold) = std::sync::mpsc::channel::<()>();
        // `run` queues its work when first polled: `join!` polls in order,
        // so `first` (which keeps the only thread busy until released) is
        // queued, then the 20 in order.
        let first = pool.run(move || hold.recv().unwrap());
        let rest = futures::future::join_all((0..20).map(|i| {
            let order = order.clone();
            pool.run(move || order.lock().unwrap().push(i))
        }));
        let release = async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            gate.send(()).unwrap();
        };
        let (first, (), rest) = tokio::join!(first, release, rest);
        first.unwrap();
        assert!(rest.iter().all(Result::is_ok));
        assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
    }

    /// A request that gave up before its turn costs no signature.
    #[tokio::test]
    async fn work_of_a_caller_that_left_is_skipped() {
        let pool = SigningPool::new(1).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let (gate, hold) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || hold.recv().unwrap()).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let left = {
            let ran = ran.clone();
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || ran.fetch_add(1, Ordering::SeqCst)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        left.abort();
        let _ = left.await;
        gate.send(()).unwrap();
        first.await.unwrap().unwrap();
        // The queue is FIFO: once this runs, the abandoned job had its turn.
        pool.run(|| ()).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
