//! Server-sent events over `Bytes`: splits an upstream byte stream into whole events without
//! copying them when a chunk already holds whole events (the usual case), so each event can be
//! inspected (usage) and forwarded or dropped as a unit. At most one partial event is buffered.

use bytes::{Bytes, BytesMut};

/// An event larger than this is passed on as it stands (unterminated), so an upstream that never
/// ends its event cannot grow the buffer without bound.
const MAX_EVENT_BYTES: usize = 64 * 1024 * 1024;

#[derive(Default)]
pub struct EventSplitter {
    partial: BytesMut,
    /// How much of `partial` is known to hold no terminator: each chunk is scanned once, so an
    /// event that arrives in many small chunks costs linear time, not quadratic.
    scanned: usize,
}

impl EventSplitter {
    /// Feeds one chunk; pushes every event it completes (each with its blank-line terminator).
    pub fn push(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) {
        if self.partial.is_empty() {
            // The usual case: whole events straight out of the chunk, without a copy.
            let mut start = 0;
            while let Some(len) = event_len(&chunk[start..]) {
                out.push(chunk.slice(start..start + len));
                start += len;
            }
            self.partial.extend_from_slice(&chunk[start..]);
            self.scanned = self.partial.len();
        } else {
            self.partial.extend_from_slice(&chunk);
            // A terminator may straddle the end of what was scanned before.
            while let Some(len) = event_len(&self.partial[self.scanned.saturating_sub(3)..]) {
                let end = self.scanned.saturating_sub(3) + len;
                out.push(self.partial.split_to(end).freeze());
                self.scanned = 0;
            }
            self.scanned = self.partial.len();
        }
        if self.partial.len() > MAX_EVENT_BYTES {
            out.push(self.partial.split().freeze());
            self.scanned = 0;
        }
    }

    /// What is left when the upstream ends: an unterminated last event, if any.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.scanned = 0;
        (!self.partial.is_empty()).then(|| self.partial.split().freeze())
    }
}

/// Length of the first complete event (through its `\n\n` or `\r\n\r\n`).
fn event_len(data: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', data).find_map(|i| match data.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if data.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

/// The payload of an event's `data:` line (the first one), without the optional leading space.
pub fn data_payload(event: &[u8]) -> Option<&[u8]> {
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            return Some(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&str]) -> Vec<String> {
        let mut splitter = EventSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            splitter.push(Bytes::copy_from_slice(c.as_bytes()), &mut out);
        }
        out.extend(splitter.finish());
        out.iter().map(|b| String::from_utf8(b.to_vec()).unwrap()).collect()
    }

    #[test]
    fn an_event_in_many_small_chunks_is_split_in_linear_time() {
        let mut splitter = EventSplitter::default();
        let mut out = Vec::new();
        let event = format!("data: {}\n\n", "x".repeat(4 * 1024 * 1024));
        let started = std::time::Instant::now();
        for piece in event.as_bytes().chunks(1024) {
            splitter.push(Bytes::copy_from_slice(piece), &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), event.len());
        assert!(splitter.finish().is_none());
        // Quadratic rescanning and copying took minutes here.
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn events_survive_any_chunking() {
        let stream = "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        let whole = split(&[stream]);
        assert_eq!(whole, ["data: {\"a\":1}\n\n", "data: {\"b\":2}\n\n", "data: [DONE]\n\n"]);
        for cut in 1..stream.len() {
            assert_eq!(split(&[&stream[..cut], &stream[cut..]]), whole, "cut at {cut}");
        }
        let bytewise: Vec<String> = stream.chars().map(String::from).collect();
        let refs: Vec<&str> = bytewise.iter().map(String::as_str).collect();
        assert_eq!(split(&refs), whole);
    }

    #[test]
    fn crlf_comments_and_tails() {
        assert_eq!(split(&["event: x\r\ndata: 1\r\n\r\n: ping\n\n"]), ["event: x\r\ndata: 1\r\n\r\n", ": ping\n\n"]);
        assert_eq!(split(&["data: partial"]), ["data: partial"]);
        assert_eq!(data_payload(b"event: e\ndata: {\"x\":1}\n\n"), Some(&b"{\"x\":1}"[..]));
        assert_eq!(data_payload(b"data:[DONE]\n\n"), Some(&b"[DONE]"[..]));
        assert_eq!(data_payload(b": comment\n\n"), None);
    }
}
