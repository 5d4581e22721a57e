//! Relaying an SSE stream event by event: usage is read from the events that carry it (never by
//! parsing every chunk), the usage-only chunk the gateway asked for on the client's behalf is
//! dropped, an idle upstream is cut after the idle timeout with a final error event, and the
//! request is settled when the stream ends.
//!
//! Billing: a stream that ends cleanly is billed at the upstream's reported usage (an estimate only
//! when it reported none). A stream that ends early — the client went away, the upstream broke or
//! idled out, the server shut down — is billed for the larger of the upstream's reported output and
//! the tokens of the text it delivered: upstreams report output at the end (Anthropic's
//! `message_start` says `output_tokens: 1`, Gemini's early events only the prompt), so a partial
//! report must never cap the bill. Dropping the relay (client gone) settles that way too.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{BoxStream, Stream};

use super::error::GatewayError;
use super::settlement::Settlement;
use crate::domain::pricing::Usage;
use crate::domain::tokenizer::{Tally, TokenRule};
use crate::providers::sse::{EventSplitter, data_payload};
use crate::providers::{StreamConverter, openai};

pub struct StreamRelay {
    upstream: BoxStream<'static, reqwest::Result<Bytes>>,
    splitter: EventSplitter,
    pending: VecDeque<Bytes>,
    settlement: Option<Settlement>,
    strip_usage_only: bool,
    idle: Duration,
    prompt_estimate: i64,
    /// The model family's rule for turning delivered text into tokens.
    rule: TokenRule,
    /// Text delivered so far (same-protocol streams; a converter keeps its own).
    text: Tally,
    /// The latest usage the upstream reported (same-protocol streams; a converter keeps its own).
    reported: Option<Usage>,
    /// Set once the upstream has ended: `Some(true)` when it ended early (broke, idled out).
    interrupted: Option<bool>,
    failure_class: Option<&'static str>,
    /// Set when the upstream speaks another protocol than the client (or only its usage is read).
    converter: Option<Box<StreamConverter>>,
    /// The client speaks Anthropic's protocol: a failure ends the stream with `event: error`.
    anthropic_client: bool,
    /// A mapped model: the upstream's name, and the client's to put back in each event.
    rename: Option<(String, String)>,
}

impl StreamRelay {
    pub fn new(
        upstream: BoxStream<'static, reqwest::Result<Bytes>>,
        settlement: Settlement,
        strip_usage_only: bool,
        idle: Duration,
        prompt_estimate: i64,
        rule: TokenRule,
        converter: Option<Box<StreamConverter>>,
    ) -> Self {
        Self {
            upstream,
            splitter: EventSplitter::default(),
            pending: VecDeque::new(),
            settlement: Some(settlement),
            strip_usage_only,
            idle,
            prompt_estimate,
            rule,
            text: Tally::default(),
            reported: None,
            interrupted: None,
            failure_class: None,
            converter,
            anthropic_client: false,
            rename: None,
        }
    }

    /// Failures mid-stream are reported in Anthropic's shape.
    pub fn for_anthropic_client(mut self) -> Self {
        self.anthropic_client = true;
        self
    }

    /// Events name the model `to` where the upstream said `from` (a mapped model).
    pub fn renaming(mut self, from: &str, to: &str) -> Self {
        self.rename = Some((from.to_string(), to.to_string()));
        self
    }

    /// Queues events for the client, the model renamed where it is mapped.
    fn queue(&mut self, events: impl IntoIterator<Item = Bytes>) {
        match &self.rename {
            None => self.pending.extend(events),
            Some((from, to)) => {
                for event in events {
                    let renamed = crate::providers::body::rename_model(&event, from, to);
                    self.pending.push_back(renamed.unwrap_or(event));
                }
            }
        }
    }

    fn absorb(&mut self, chunk: Bytes) {
        if let Some(converter) = self.converter.as_mut().filter(|c| c.is_binary()) {
            let mut converted = Vec::new();
            converter.push_bytes(&chunk, &mut converted);
            self.queue(converted);
            return;
        }
        let mut events = Vec::new();
        self.splitter.push(chunk, &mut events);
        for event in events {
            self.take(event);
        }
    }

    /// Queues one upstream event for the client (converted first, when the protocols differ).
    fn take(&mut self, event: Bytes) {
        let Some(converter) = self.converter.as_mut() else {
            if self.keep(&event) {
                self.queue([event]);
            }
            return;
        };
        let mut converted = Vec::new();
        converter.convert(&event, &mut converted);
        self.queue(converted);
    }

    /// Records what the event says about usage and the text it carries; false when the event is
    /// to be dropped (the usage-only chunk the gateway asked for on the client's behalf).
    fn keep(&mut self, event: &[u8]) -> bool {
        let Some(data) = data_payload(event) else { return true };
        if data == b"[DONE]" {
            return true;
        }
        if let Some(reported) = openai::event_usage(data) {
            // The upstream's figures win, including an explicit 0.
            self.reported = Some(reported.usage);
            if reported.usage_only {
                return !self.strip_usage_only;
            }
        }
        openai::tally_text(data, &mut self.text);
        true
    }

    /// What to bill: the upstream's report when the stream ended cleanly; after an early end, the
    /// larger of its reported output and the tokens of the text delivered.
    fn usage(&self, interrupted: bool) -> Usage {
        let (reported, delivered) = match self.converter.as_deref() {
            Some(converter) => (converter.usage(), converter.text_tokens()),
            None => (self.reported, self.text.tokens()),
        };
        let delivered = self.rule.apply(delivered);
        match reported {
            Some(reported) if !interrupted => reported,
            Some(reported) => Usage {
                prompt_tokens: if reported.prompt_tokens > 0 { reported.prompt_tokens } else { self.prompt_estimate },
                completion_tokens: reported.completion_tokens.max(delivered),
                ..reported
            },
            None => Usage { prompt_tokens: self.prompt_estimate, completion_tokens: delivered, ..Usage::default() },
        }
    }

    /// The upstream is done (or failed): flush what is left and queue the error event, if any.
    /// Settlement follows once the client has been sent everything.
    fn end(&mut self, failure: Option<GatewayError>) {
        if let Some(tail) = self.splitter.finish() {
            self.take(tail);
        }
        if failure.is_none()
            && let Some(converter) = self.converter.as_mut()
        {
            let mut closing = Vec::new();
            converter.finish(&mut closing);
            self.pending.extend(closing);
        }
        self.interrupted = Some(failure.is_some());
        self.failure_class = failure.as_ref().map(|f| match f {
            GatewayError::UpstreamTimeout => "stream_idle_timeout",
            GatewayError::ShuttingDown => "shutdown",
            _ => "stream_interrupted",
        });
        if let Some(error) = failure {
            let event = if self.anthropic_client {
                format!("event: error\ndata: {}\n\n", error.anthropic_body())
            } else {
                format!("data: {}\n\n", error.body())
            };
            self.pending.push_back(Bytes::from(event));
        }
    }

    fn settle(&mut self) {
        let usage = self.usage(self.interrupted.unwrap_or(true));
        if let Some(mut settlement) = self.settlement.take() {
            settlement.usage = usage;
            settlement.finish(200, self.failure_class);
        }
    }
}

impl Drop for StreamRelay {
    /// The stream was dropped before it was settled (the client went away, or the server shut
    /// down): the settlement, dropped next, bills what this says.
    fn drop(&mut self) {
        if self.settlement.is_some() {
            let usage = self.usage(self.interrupted.unwrap_or(true));
            if let Some(settlement) = self.settlement.as_mut() {
                settlement.usage = usage;
            }
        }
    }
}

/// Events queued between the relay's task and the client's connection: enough to ride out
/// scheduling jitter, few enough that a client that stops reading is noticed at once.
const QUEUE_EVENTS: usize = 16;

/// Why a stream stops before the upstream ends it.
enum Stop {
    /// The client's connection is gone: dropping the relay settles what was delivered.
    ClientGone,
    /// The client took nothing for the stall timeout (a slow-read attack holds a slot and a hold).
    ClientStalled,
    /// The shutdown grace period is over.
    Shutdown,
}

/// How a relay's task learns to stop early.
pub struct Cut {
    /// Cancelled when the shutdown grace period ends.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// A client that takes no event for this long is cut.
    pub client_stall: Duration,
}

/// The client-facing stream: the first chunk (already received), then the rest. The relay runs
/// in a task of its own on the app's tracker, so the request is settled even when the client
/// stops reading (the connection no longer polls its body), and shutdown can cut it.
pub fn relay_events(
    relay: StreamRelay,
    first: Bytes,
    tasks: &tokio_util::task::TaskTracker,
    cut: Cut,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + use<> {
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE_EVENTS);
    tasks.spawn(pump(relay, first, tx, cut));
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|event| (Ok(event), rx)) })
}

async fn pump(mut relay: StreamRelay, first: Bytes, tx: tokio::sync::mpsc::Sender<Bytes>, cut: Cut) {
    use tokio::sync::mpsc::error::SendTimeoutError;
    relay.absorb(first);
    let mut done = false;
    loop {
        while let Some(event) = relay.pending.pop_front() {
            let sent = tokio::select! {
                biased;
                () = cut.shutdown.cancelled() => Err(Stop::Shutdown),
                sent = tx.send_timeout(event, cut.client_stall) => sent.map_err(|e| match e {
                    SendTimeoutError::Timeout(_) => Stop::ClientStalled,
                    SendTimeoutError::Closed(_) => Stop::ClientGone,
                }),
            };
            if let Err(stop) = sent {
                return relay.stop(stop, &tx);
            }
        }
        if done {
            return relay.settle();
        }
        tokio::select! {
            biased;
            () = cut.shutdown.cancelled() => return relay.stop(Stop::Shutdown, &tx),
            () = tx.closed() => return relay.stop(Stop::ClientGone, &tx),
            next = tokio::time::timeout(relay.idle, relay.upstream.next()) => match next {
                Ok(Some(Ok(chunk))) => relay.absorb(chunk),
                Ok(None) => {
                    relay.end(None);
                    done = true;
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "upstream stream broke");
                    relay.end(Some(GatewayError::UpstreamUnavailable));
                    done = true;
                }
                Err(_) => {
                    tracing::warn!("upstream stream idle past the timeout");
                    relay.end(Some(GatewayError::UpstreamTimeout));
                    done = true;
                }
            },
        }
    }
}

impl StreamRelay {
    /// Ends the stream early and settles it for what it delivered.
    fn stop(mut self, stop: Stop, tx: &tokio::sync::mpsc::Sender<Bytes>) {
        match stop {
            // Dropping the relay settles (a 499 in the log).
            Stop::ClientGone => {}
            Stop::ClientStalled => {
                tracing::warn!("client stopped reading the stream: cut");
                self.interrupted = Some(true);
                self.failure_class = Some("client_stalled");
                self.settle();
            }
            Stop::Shutdown => {
                self.end(Some(GatewayError::ShuttingDown));
                // Best effort: the error event goes out if the client's queue has room.
                while let Some(event) = self.pending.pop_front() {
                    if tx.try_send(event).is_err() {
                        break;
                    }
                }
                self.settle();
            }
        }
    }
}
