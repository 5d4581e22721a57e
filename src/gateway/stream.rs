//! Relaying an SSE stream event by event: usage is read from the events that carry it (never by
//! parsing every chunk), the usage-only chunk the gateway asked for on the client's behalf is
//! dropped, an idle upstream is cut after the idle timeout with a final error event, and the
//! request is settled when the stream ends. If the client goes away, dropping the stream drops
//! the [`Settlement`], which settles what was delivered.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{BoxStream, Stream};

use super::error::GatewayError;
use super::relay::estimate_tokens;
use super::settlement::Settlement;
use super::sse::{EventSplitter, data_payload};
use crate::domain::pricing::Usage;
use crate::providers::{StreamConverter, openai};

pub struct StreamRelay {
    upstream: BoxStream<'static, reqwest::Result<Bytes>>,
    splitter: EventSplitter,
    pending: VecDeque<Bytes>,
    settlement: Option<Settlement>,
    strip_usage_only: bool,
    idle: Duration,
    prompt_estimate: i64,
    text_bytes: usize,
    upstream_usage: bool,
    failure_class: Option<&'static str>,
    /// Set when the upstream speaks another protocol than the client (or only its usage is read).
    converter: Option<Box<StreamConverter>>,
    /// The client speaks Anthropic's protocol: a failure ends the stream with `event: error`.
    anthropic_client: bool,
}

impl StreamRelay {
    pub fn new(
        upstream: BoxStream<'static, reqwest::Result<Bytes>>,
        settlement: Settlement,
        strip_usage_only: bool,
        idle: Duration,
        prompt_estimate: i64,
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
            text_bytes: 0,
            upstream_usage: false,
            failure_class: None,
            converter,
            anthropic_client: false,
        }
    }

    /// Failures mid-stream are reported in Anthropic's shape.
    pub fn for_anthropic_client(mut self) -> Self {
        self.anthropic_client = true;
        self
    }

    fn absorb(&mut self, chunk: Bytes) {
        if let Some(converter) = self.converter.as_mut().filter(|c| c.is_binary()) {
            let mut converted = Vec::new();
            converter.push_bytes(&chunk, &mut converted);
            self.pending.extend(converted);
            self.note_converted_usage();
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
                self.pending.push_back(event);
            }
            return;
        };
        let mut converted = Vec::new();
        converter.convert(&event, &mut converted);
        self.pending.extend(converted);
        self.note_converted_usage();
    }

    /// With a converter, usage comes from the converter: the upstream's figures when it reported
    /// them, else an estimate from the text generated so far.
    fn note_converted_usage(&mut self) {
        let (Some(converter), Some(settlement)) = (self.converter.as_ref(), self.settlement.as_mut()) else {
            return;
        };
        settlement.usage = converter.usage().unwrap_or(Usage {
            prompt_tokens: self.prompt_estimate,
            completion_tokens: estimate_tokens(converter.text_bytes()),
            ..Usage::default()
        });
    }

    /// Records what the event says about usage; false when the event is to be dropped.
    fn keep(&mut self, event: &[u8]) -> bool {
        let Some(data) = data_payload(event) else { return true };
        if data == b"[DONE]" {
            return true;
        }
        let Some(settlement) = self.settlement.as_mut() else {
            return true;
        };
        if let Some(reported) = openai::event_usage(data) {
            // The upstream's figures win, including an explicit 0.
            settlement.usage = reported.usage;
            self.upstream_usage = true;
            return !(reported.usage_only && self.strip_usage_only);
        }
        if !self.upstream_usage {
            self.text_bytes += openai::event_text_len(data);
            settlement.usage = Usage {
                prompt_tokens: self.prompt_estimate,
                completion_tokens: estimate_tokens(self.text_bytes),
                ..Usage::default()
            };
        }
        true
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
        self.failure_class = failure.as_ref().map(|f| match f {
            GatewayError::UpstreamTimeout => "stream_idle_timeout",
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
        if let Some(settlement) = self.settlement.take() {
            settlement.finish(200, self.failure_class);
        }
    }
}

/// The client-facing stream: the first chunk (already received), then the rest.
pub fn relay_events(mut relay: StreamRelay, first: Bytes) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    relay.absorb(first);
    futures_util::stream::unfold((relay, false), |(mut relay, mut done)| async move {
        loop {
            if let Some(event) = relay.pending.pop_front() {
                return Some((Ok(event), (relay, done)));
            }
            if done {
                relay.settle();
                return None;
            }
            match tokio::time::timeout(relay.idle, relay.upstream.next()).await {
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
            }
        }
    })
}
