//! Server-sent events over `Bytes`: splits an upstream byte stream into whole events without
//! copying them when a chunk already holds whole events (the usual case), so each event can be
//! inspected (usage) and forwarded or dropped as a unit. At most one partial event is buffered.

use bytes::{Bytes, BytesMut};

#[derive(Default)]
pub struct EventSplitter {
    partial: BytesMut,
}

impl EventSplitter {
    /// Feeds one chunk; pushes every event it completes (each with its blank-line terminator).
    pub fn push(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) {
        let data = if self.partial.is_empty() {
            chunk
        } else {
            self.partial.extend_from_slice(&chunk);
            self.partial.split().freeze()
        };
        let mut start = 0;
        while let Some(len) = event_len(&data[start..]) {
            out.push(data.slice(start..start + len));
            start += len;
        }
        if start < data.len() {
            self.partial.extend_from_slice(&data[start..]);
        }
    }

    /// What is left when the upstream ends: an unterminated last event, if any.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.partial.is_empty()).then(|| self.partial.split().freeze())
    }
}

/// Length of the first complete event (through its `\n\n` or `\r\n\r\n`).
fn event_len(data: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < data.len() {
        if data[i] == b'\n' {
            if data[i + 1] == b'\n' {
                return Some(i + 2);
            }
            if data[i + 1] == b'\r' && data.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
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
