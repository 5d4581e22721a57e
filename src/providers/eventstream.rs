//! AWS event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock's ConverseStream
//! sends it: binary messages of a prelude (total length, headers length, CRC32), headers, a
//! payload and a CRC32 of the whole. Decoded incrementally: a message is yielded as soon as its
//! last byte arrives; at most one partial message is buffered.
//!
//! Format reference: <https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html>
//! ("Event stream encoding").

use bytes::{Buf, Bytes, BytesMut};

/// The most one message may be (Bedrock's are a few KiB); larger means a broken stream.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// One decoded message: its `:message-type`, `:event-type` / `:exception-type` and payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub message_type: String,
    pub event_type: String,
    pub payload: Bytes,
}

#[derive(Default)]
pub struct Decoder {
    buffer: BytesMut,
}

impl Decoder {
    /// Feeds bytes; pushes every complete message. `Err` when the stream is corrupt.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Message>) -> Result<(), String> {
        self.buffer.extend_from_slice(chunk);
        while self.buffer.len() >= 12 {
            let total = u32::from_be_bytes([self.buffer[0], self.buffer[1], self.buffer[2], self.buffer[3]]) as usize;
            if !(16..=MAX_MESSAGE).contains(&total) {
                return Err(format!("event-stream message of {total} bytes"));
            }
            if self.buffer.len() < total {
                return Ok(());
            }
            let frame = self.buffer.split_to(total).freeze();
            out.push(decode(&frame)?);
        }
        Ok(())
    }
}

fn decode(frame: &Bytes) -> Result<Message, String> {
    let total = frame.len();
    let headers_len = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
    let prelude_crc = u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
    if crc32(&frame[..8]) != prelude_crc {
        return Err("event-stream prelude checksum mismatch".into());
    }
    let message_crc = u32::from_be_bytes([frame[total - 4], frame[total - 3], frame[total - 2], frame[total - 1]]);
    if crc32(&frame[..total - 4]) != message_crc {
        return Err("event-stream message checksum mismatch".into());
    }
    if 12 + headers_len > total - 4 {
        return Err("event-stream headers overrun the message".into());
    }
    let mut headers = &frame[12..12 + headers_len];
    let mut message = Message { message_type: String::new(), event_type: String::new(), payload: Bytes::new() };
    while headers.has_remaining() {
        let name_len = usize::from(headers.get_u8());
        let name = take(&mut headers, name_len)?;
        let kind = take(&mut headers, 1)?[0];
        let value: &[u8] = match kind {
            0 | 1 => &[],
            2 => take(&mut headers, 1)?,
            3 => take(&mut headers, 2)?,
            4 => take(&mut headers, 4)?,
            5 | 8 => take(&mut headers, 8)?,
            9 => take(&mut headers, 16)?,
            6 | 7 => {
                let len = usize::from(u16::from_be_bytes(take(&mut headers, 2)?.try_into().map_err(|_| "header")?));
                take(&mut headers, len)?
            }
            other => return Err(format!("event-stream header type {other}")),
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match name {
            b":message-type" => message.message_type = value,
            b":event-type" | b":exception-type" => message.event_type = value,
            _ => {}
        }
    }
    message.payload = frame.slice(12 + headers_len..total - 4);
    Ok(message)
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err("event-stream header cut short".into());
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// Encodes a message with string headers (the fakes in the tests speak it).
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut header_bytes = Vec::new();
    for (name, value) in headers {
        header_bytes.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        header_bytes.extend_from_slice(name.as_bytes());
        header_bytes.push(7);
        header_bytes.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        header_bytes.extend_from_slice(value.as_bytes());
    }
    let total = 12 + header_bytes.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&u32::try_from(header_bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&crc32(&out[..8]).to_be_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    Bytes::from(out)
}

/// CRC-32 (IEEE 802.3, the zlib one), bitwise: messages are small and few.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn messages_decode_across_any_chunking_and_corruption_is_refused() {
        let a = encode(&[(":message-type", "event"), (":event-type", "messageStart")], br#"{"role":"assistant"}"#);
        let b = encode(&[(":message-type", "event"), (":event-type", "messageStop")], br#"{"stopReason":"end_turn"}"#);
        let stream: Vec<u8> = [a.as_ref(), b.as_ref()].concat();
        for split in 1..stream.len() {
            let mut decoder = Decoder::default();
            let mut out = Vec::new();
            decoder.push(&stream[..split], &mut out).unwrap();
            decoder.push(&stream[split..], &mut out).unwrap();
            let types: Vec<&str> = out.iter().map(|m| m.event_type.as_str()).collect();
            assert_eq!(types, ["messageStart", "messageStop"], "split at {split}");
        }
        let mut corrupt = stream.clone();
        corrupt[20] ^= 1;
        assert!(Decoder::default().push(&corrupt, &mut Vec::new()).is_err());
        assert!(Decoder::default().push(&[0xff; 12], &mut Vec::new()).is_err());
    }
}
