//! Password hashing under load. Argon2id with the baseline parameters takes ~19 MB and a core
//! for tens of milliseconds per hash, so unbounded concurrency is unbounded memory: 500 failed
//! logins at once once cost gigabytes. Every hash and verification in the process goes through
//! one gate: one worker thread per core (a semaphore with a permit per core, where the permits
//! are threads) and a bounded queue in front; past it the caller gets [`Busy`] at once (the
//! console answers 503 with `Retry-After`) instead of piling up waiters.
//!
//! Why dedicated threads rather than `spawn_blocking` under a semaphore: the blocking pool
//! hands successive hashes to ever new threads, and the allocator keeps a 19 MB block cached in
//! each thread's arena, so even two hashes at a time grew the process by hundreds of MB under a
//! storm. A fixed set of threads reuses its memory: the peak is about one block per core.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, mpsc};

use crate::domain::password;

/// Callers that may wait for a worker, per worker; more are turned away.
const WAITING_PER_WORKER: usize = 32;

/// Too many hashes are running and waiting: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy; try again in a moment")]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads for CPU- and memory-heavy work, with a bounded queue.
#[derive(Debug)]
pub struct Gate {
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Callers whose work is queued or running.
    admitted: AtomicUsize,
    max_admitted: usize,
    /// Threads that started; with none (the OS refused), work runs on the blocking pool.
    started: usize,
}

/// Gives an admission back when the caller finishes or goes away.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// `workers` threads (at least one) and room for `waiting` more callers.
    pub fn new(workers: usize, waiting: usize) -> Self {
        let workers = workers.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = std::sync::Arc::new(Mutex::new(receiver));
        let mut started = 0;
        for i in 0..workers {
            let receiver = std::sync::Arc::clone(&receiver);
            let spawned = std::thread::Builder::new().name(format!("password-{i}")).spawn(move || {
                loop {
                    // The lock is held only to take the next job, not while it runs.
                    let job = match receiver.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "starting a password-hashing thread failed"),
            }
        }
        Self { jobs: Mutex::new(sender), admitted: AtomicUsize::new(0), max_admitted: workers + waiting, started }
    }

    /// Runs `work` on a worker thread; [`Busy`] at once when the queue is full. A caller that
    /// goes away while queued leaves the queue (its work is skipped); work already started runs
    /// to its end.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let _admission = Admission(&self.admitted);
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.max_admitted {
            return Err(Busy);
        }
        if self.started == 0 {
            return tokio::task::spawn_blocking(work).await.map_err(|_| Busy);
        }
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if !done.is_closed() {
                let _ = done.send(work());
            }
        });
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.send(job),
            Err(poisoned) => poisoned.into_inner().send(job),
        };
        sent.map_err(|_| Busy)?;
        result.await.map_err(|_| Busy)
    }
}

/// The process's gate: one worker per core.
static GATE: LazyLock<Gate> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    Gate::new(cores, cores * WAITING_PER_WORKER)
});

/// A real hash of a random password, checked for unknown emails so they take as long as known ones.
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| password::hash(&password::generate()).unwrap_or_default());

/// Hashes a new password (through the gate). The outer error is [`Busy`], the inner one
/// argon2's (not expected).
pub async fn hash(plain: String) -> Result<Result<String, String>, Busy> {
    GATE.run(move || password::hash(&plain)).await
}

/// Checks a password against a stored hash (through the gate); `None` checks it against a
/// decoy, so an unknown account costs what a known one does, and is never a match.
pub async fn verify(plain: String, phc: Option<String>) -> Result<bool, Busy> {
    GATE.run(move || match phc {
        Some(phc) => password::verify(&plain, &phc),
        None => {
            // The decoy is made on first use, inside the gate like any other hash.
            let _ = password::verify(&plain, &DECOY_HASH);
            false
        }
    })
    .await
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests spawn freely
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_is_bounded_and_the_queue_turns_callers_away() {
        let gate = Arc::new(Gate::new(2, 3));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (gate, running, peak) = (Arc::clone(&gate), Arc::clone(&running), Arc::clone(&peak));
            tasks.push(tokio::spawn(async move {
                gate.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        let mut done = 0;
        for task in tasks {
            if task.await.unwrap().is_ok() {
                done += 1;
            }
        }
        assert_eq!(done, 5, "two running and three waiting; the rest were turned away");
        assert_eq!(peak.load(Ordering::SeqCst), 2, "never more than the permits at once");
        assert_eq!(gate.run(|| 7).await, Ok(7), "the queue empties again");
    }

    #[tokio::test]
    async fn unknown_accounts_never_match() {
        assert_eq!(verify("anything".into(), None).await, Ok(false));
        let phc = hash("correct horse".into()).await.unwrap().unwrap();
        assert_eq!(verify("correct horse".into(), Some(phc)).await, Ok(true));
    }
}
