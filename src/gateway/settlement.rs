//! Exactly-once settlement of a request's hold. [`Settlement`] owns the hold from the moment it
//! is taken; `finish` settles it at the known cost, in a tracked background task. If the request ends any other way (client
//! disconnect mid-stream, a panic, a dropped future), `Drop` settles it in the background, on the
//! app's task tracker so shutdown waits for it, at the cost of what was delivered so far.

use std::time::Instant;

use super::admission::AdmissionGuard;
use super::limits::TokenReservation;
use crate::billing::Hold;
use crate::db::request_logs::RequestLog;
use crate::domain::pricing::{Price, Usage};
use crate::services::routing::health::InFlight;
use crate::state::AppState;

pub struct Settlement {
    state: AppState,
    /// The request's concurrency slots: the caller's go back when the answer ends, the global one
    /// after the settlement is written (see `AdmissionGuard`).
    admission: Option<AdmissionGuard>,
    hold: Option<Hold>,
    price: Price,
    multiplier_ppm: i64,
    started: Instant,
    /// The log row written with the settlement; the relay fills it in as it learns more.
    pub log: RequestLog,
    /// Usage known so far (from the upstream, or estimated from what was delivered).
    pub usage: Usage,
    /// Tokens reserved in the key's tokens-per-minute window, trued up to `usage` when settled.
    pub tokens: Option<TokenReservation>,
    /// The answering channel's and key's count of requests in flight: ends with the answer.
    pub in_flight: Option<InFlight>,
}

impl Settlement {
    pub fn new(
        state: AppState,
        hold: Hold,
        price: Price,
        multiplier_ppm: i64,
        log: RequestLog,
        admission: AdmissionGuard,
    ) -> Self {
        state.settlement_opened();
        Self {
            state,
            admission: Some(admission),
            hold: Some(hold),
            price,
            multiplier_ppm,
            started: Instant::now(),
            log,
            usage: Usage::default(),
            tokens: None,
            in_flight: None,
        }
    }

    /// The tokens the request used, as its key's tokens-per-minute window counts them.
    fn tokens_used(&self) -> u64 {
        u64::try_from(self.usage.prompt_tokens.saturating_add(self.usage.completion_tokens)).unwrap_or(0)
    }

    /// The cost of the usage recorded so far.
    pub fn cost(&self) -> i64 {
        self.price.cost(&self.usage, self.multiplier_ppm)
    }

    /// Milliseconds since the request started.
    pub fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Settles at the cost of the recorded usage (0 for a failed request: a full refund), on the
    /// app's task tracker: the answer never waits for the commit, a client that goes away cannot
    /// cancel it half-way, and shutdown waits for it.
    pub fn finish(mut self, status_code: u16, error_class: Option<&'static str>) {
        // The answer has ended: its channel is no longer busy with it.
        drop(self.in_flight.take());
        if let Some(admission) = self.admission.as_mut() {
            admission.answered();
        }
        let tasks = self.state.tasks().clone();
        tasks.spawn(self.settle(status_code, error_class));
    }

    /// Charges the answer at another model's price: a fallback model served the request.
    pub fn reprice(&mut self, price: Price, multiplier_ppm: i64) {
        (self.price, self.multiplier_ppm) = (price, multiplier_ppm);
    }

    async fn settle(mut self, status_code: u16, error_class: Option<&str>) {
        let Some(hold) = self.hold.take() else { return };
        let mut log = self.prepared_log(status_code, error_class);
        let cost = if status_code < 400 || self.usage != Usage::default() { self.cost() } else { 0 };
        if let Some(tokens) = self.tokens.take() {
            tokens.true_up(&self.state, self.tokens_used()).await;
        }
        settle_with_retries(&self.state, hold, cost, &mut log).await;
    }

    fn prepared_log(&self, status_code: u16, error_class: Option<&str>) -> RequestLog {
        let mut log = self.log.clone();
        log.usage = self.usage;
        log.status_code = i64::from(status_code);
        log.error_class = error_class.map(str::to_string);
        log.latency_ms = self.elapsed_ms();
        log
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        let Some(hold) = self.hold.take() else { return };
        // The request ended without `finish`: bill what was delivered (client disconnect policy).
        let mut log = self.prepared_log(499, Some("client_closed"));
        let cost = self.cost();
        let state = self.state.clone();
        let (tokens, used) = (self.tokens.take(), self.tokens_used());
        let mut admission = self.admission.take();
        if let Some(admission) = admission.as_mut() {
            admission.answered();
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            state.tasks().clone().spawn(async move {
                if let Some(tokens) = tokens {
                    tokens.true_up(&state, used).await;
                }
                settle_with_retries(&state, hold, cost, &mut log).await;
                drop(admission);
            });
        } else {
            tracing::error!(request_id = %log.request_id, amount = hold.amount, "hold dropped outside a runtime: not settled");
            self.state.settlement_closed();
        }
    }
}

async fn settle_with_retries(state: &AppState, hold: Hold, cost: i64, log: &mut RequestLog) {
    let (user, amount) = (hold.user_id, hold.amount);
    if let Err(e) = state.billing().settle(hold, cost, log).await {
        tracing::error!(request_id = %log.request_id, amount, user, error = %e, "settlement abandoned: not charged");
    }
    state.settlement_closed();
}
