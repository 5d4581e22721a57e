//! Admission control: caps on the requests in flight per API key, per user, per user on one model
//! (a group's per-model limit) and in all, so one tenant cannot take every slot (or every hold the
//! billing writer keeps unsettled) from the others. A request over a cap waits a bounded time for a slot, then is refused; it never
//! queues without a deadline. In-process counters only: nothing here reads the database.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Which cap refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Key,
    User,
    /// A user's on one model.
    Model,
    /// The whole gateway's.
    Server,
}

/// A refusal: the cap that was full for the whole wait, and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub scope: Scope,
    pub limit: usize,
}

/// The caps one request is admitted under (read from the settings per request).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub per_key: usize,
    pub per_user: usize,
    pub wait: Duration,
}

/// The gateway's counters. The global cap is fixed at start-up; per-key and per-user counters
/// exist only while a request of theirs is in flight or waiting, so the maps stay as small as
/// the traffic (bounded by the open connections), whatever the number of keys.
#[derive(Debug)]
pub struct Admission {
    keys: Arc<Slots<i64>>,
    users: Arc<Slots<i64>>,
    /// (user, model name hashed).
    models: Arc<Slots<(i64, u64)>>,
    global: Arc<Semaphore>,
    global_limit: usize,
}

#[derive(Debug)]
struct Slots<K> {
    map: Mutex<HashMap<K, Arc<Semaphore>>>,
}

impl<K> Default for Slots<K> {
    fn default() -> Self {
        Self { map: Mutex::new(HashMap::new()) }
    }
}

impl Admission {
    pub fn new(global_limit: usize) -> Self {
        let global_limit = global_limit.max(1);
        Self {
            keys: Arc::default(),
            users: Arc::default(),
            models: Arc::default(),
            global: Arc::new(Semaphore::new(global_limit)),
            global_limit,
        }
    }

    /// Takes a slot for the key, its user and the server, waiting at most `limits.wait` in all
    /// (one deadline for the three). Slots are taken in that fixed order, so waiters never
    /// deadlock; a refused request gives back what it took at once.
    pub async fn admit(&self, key_id: i64, user_id: i64, limits: Limits) -> Result<AdmissionGuard, Refusal> {
        let deadline = Instant::now() + limits.wait;
        let key = Slot::acquire(&self.keys, key_id, limits.per_key, deadline)
            .await
            .ok_or(Refusal { scope: Scope::Key, limit: limits.per_key })?;
        let user = Slot::acquire(&self.users, user_id, limits.per_user, deadline)
            .await
            .ok_or(Refusal { scope: Scope::User, limit: limits.per_user })?;
        let refused = Refusal { scope: Scope::Server, limit: self.global_limit };
        let global = match self.global.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout_at(deadline, self.global.clone().acquire_owned())
                .await
                .map_err(|_| refused)?
                .map_err(|_| refused)?,
        };
        Ok(AdmissionGuard { _global: global, caller: Some((user, key)), model: None })
    }

    /// Takes a slot for the user on one model (`model`: its name hashed), waiting at most `wait`;
    /// held with the request's other slots in `guard`.
    pub async fn admit_model(
        &self,
        guard: &mut AdmissionGuard,
        (user_id, model): (i64, u64),
        cap: usize,
        wait: Duration,
    ) -> Result<(), Refusal> {
        let slot = Slot::acquire(&self.models, (user_id, model), cap, Instant::now() + wait)
            .await
            .ok_or(Refusal { scope: Scope::Model, limit: cap })?;
        guard.model = Some(slot);
        Ok(())
    }

    /// Requests in flight in all.
    pub fn in_flight(&self) -> usize {
        self.global_limit - self.global.available_permits()
    }

    /// How many keys and users have requests in flight or waiting (the maps' sizes).
    pub fn tracked(&self) -> (usize, usize) {
        let len = |slots: &Slots<i64>| slots.map.lock().map(|m| m.len()).unwrap_or(0);
        (len(&self.keys), len(&self.users))
    }

    /// How many (user, model) counters exist.
    pub fn tracked_models(&self) -> usize {
        self.models.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// A request's slots, given back when it is dropped: the settlement owns it. The global slot is
/// held until the request is settled, so the gateway never has more requests in flight than
/// holds the billing writer keeps unsettled. The caller's (its user's and key's) go back as soon
/// as its answer has ended: a caller's concurrency is what it waits on, and while the database is
/// slow or down, settlements queue without holding every caller to a trickle.
#[derive(Debug)]
pub struct AdmissionGuard {
    _global: OwnedSemaphorePermit,
    caller: Option<(Slot<i64>, Slot<i64>)>,
    model: Option<Slot<(i64, u64)>>,
}

impl AdmissionGuard {
    /// The answer has ended: the user's, the key's and the model's slots go back; the global one
    /// stays.
    pub fn answered(&mut self) {
        self.caller = None;
        self.model = None;
    }
}

/// One key's, user's or user-on-a-model's slot; its `Drop` removes the counter once nobody holds
/// or awaits it.
#[derive(Debug)]
struct Slot<K: Eq + Hash + Copy> {
    slots: Arc<Slots<K>>,
    id: K,
    semaphore: Option<Arc<Semaphore>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl<K: Eq + Hash + Copy> Slot<K> {
    /// A slot of `id`'s, waiting until `deadline` at most; `None` when none freed in time.
    async fn acquire(slots: &Arc<Slots<K>>, id: K, cap: usize, deadline: Instant) -> Option<Self> {
        let semaphore = {
            let mut map = slots.map.lock().ok()?;
            // A counter made under an earlier cap keeps it until its last request ends.
            map.entry(id).or_insert_with(|| Arc::new(Semaphore::new(cap.max(1)))).clone()
        };
        // Built before waiting, so a refused or cancelled wait still cleans the counter up.
        let mut slot = Slot { slots: slots.clone(), id, semaphore: Some(semaphore.clone()), permit: None };
        let permit = match semaphore.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await.ok()?.ok()?,
        };
        slot.permit = Some(permit);
        Some(slot)
    }
}

impl<K: Eq + Hash + Copy> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut map = self.slots.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Under the lock, so no request can pick the counter up between the check and the removal.
        self.permit.take();
        self.semaphore.take();
        if map.get(&self.id).is_some_and(|s| Arc::strong_count(s) == 1) {
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests spawn freely
mod tests {
    use super::*;

    fn limits(per_key: usize, per_user: usize, wait_ms: u64) -> Limits {
        Limits { per_key, per_user, wait: Duration::from_millis(wait_ms) }
    }

    #[tokio::test]
    async fn caps_apply_per_key_per_user_and_in_all() {
        let admission = Admission::new(4);
        let l = limits(2, 3, 0);
        let a = admission.admit(1, 10, l).await.unwrap();
        let b = admission.admit(1, 10, l).await.unwrap();
        assert_eq!(admission.admit(1, 10, l).await.unwrap_err(), Refusal { scope: Scope::Key, limit: 2 });
        let c = admission.admit(2, 10, l).await.unwrap();
        assert_eq!(admission.admit(3, 10, l).await.unwrap_err(), Refusal { scope: Scope::User, limit: 3 });
        let d = admission.admit(4, 20, l).await.unwrap();
        assert_eq!(admission.admit(5, 30, l).await.unwrap_err(), Refusal { scope: Scope::Server, limit: 4 });
        assert_eq!(admission.in_flight(), 4);
        drop((a, b, c, d));
        assert_eq!(admission.in_flight(), 0);
        assert_eq!(admission.tracked(), (0, 0), "counters at zero are removed");
    }

    #[tokio::test]
    async fn a_users_slots_on_a_model_are_capped_and_go_with_the_answer() {
        let admission = Admission::new(8);
        let l = limits(8, 8, 0);
        let mut a = admission.admit(1, 10, l).await.unwrap();
        admission.admit_model(&mut a, (10, 77), 1, Duration::ZERO).await.unwrap();
        let mut b = admission.admit(1, 10, l).await.unwrap();
        let refused = admission.admit_model(&mut b, (10, 77), 1, Duration::ZERO).await.unwrap_err();
        assert_eq!(refused, Refusal { scope: Scope::Model, limit: 1 });
        admission.admit_model(&mut b, (10, 78), 1, Duration::ZERO).await.expect("another model has its own");
        a.answered();
        admission.admit_model(&mut b, (10, 77), 1, Duration::ZERO).await.expect("freed with the answer");
        drop((a, b));
        assert_eq!(admission.tracked_models(), 0, "counters at zero are removed");
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_slot_that_frees() {
        let admission = Arc::new(Admission::new(8));
        let held = admission.admit(1, 1, limits(1, 8, 0)).await.unwrap();
        let waiter = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.admit(1, 1, limits(1, 8, 5_000)).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(admission.tracked(), (0, 0));
    }

    #[tokio::test]
    async fn the_wait_is_bounded_and_a_refusal_gives_everything_back() {
        let admission = Admission::new(8);
        let held = admission.admit(1, 1, limits(4, 1, 0)).await.unwrap();
        let started = std::time::Instant::now();
        let refused = admission.admit(2, 1, limits(4, 1, 200)).await.unwrap_err();
        assert_eq!(refused.scope, Scope::User);
        assert!(started.elapsed() >= Duration::from_millis(190) && started.elapsed() < Duration::from_secs(2));
        assert_eq!(admission.in_flight(), 1);
        assert_eq!(admission.tracked(), (1, 1), "key 2's counter went with its refusal");
        drop(held);
        assert_eq!(admission.tracked(), (0, 0));
    }
}
