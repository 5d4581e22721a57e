//! `multipart/form-data` bodies (image edits, audio transcriptions and translations): read the
//! few text fields the gateway needs and replace the `model` field for model mapping, leaving
//! every other byte (the uploaded files) untouched. Pure functions over bytes.

use bytes::{Bytes, BytesMut};

/// The boundary from a `multipart/form-data; boundary=…` content type.
pub fn boundary(content_type: &str) -> Option<&str> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"')).filter(|b| !b.is_empty())
    })
}

/// One part: the byte range of its value within the body, and its field name.
struct Part<'a> {
    name: &'a str,
    value_start: usize,
    value_end: usize,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

fn parts<'a>(body: &'a [u8], boundary: &str) -> Vec<Part<'a>> {
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    let Some(mut at) = find(body, delimiter.as_bytes(), 0) else { return out };
    loop {
        let header_start = at + delimiter.len();
        if body.get(header_start..header_start + 2) == Some(b"--") {
            break;
        }
        let Some(header_end) = find(body, b"\r\n\r\n", header_start) else { break };
        let value_start = header_end + 4;
        let Some(next) = find(body, format!("\r\n{delimiter}").as_bytes(), value_start) else { break };
        let headers = std::str::from_utf8(&body[header_start..header_end]).unwrap_or_default();
        if let Some(name) = field_name(headers) {
            out.push(Part { name, value_start, value_end: next });
        }
        at = next + 2;
    }
    out
}

fn field_name(headers: &str) -> Option<&str> {
    let disposition = headers.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
    let at = disposition.find("name=\"")? + 6;
    let rest = &disposition[at..];
    Some(&rest[..rest.find('"')?])
}

/// The text value of a field, if present and UTF-8.
pub fn field<'a>(body: &'a [u8], boundary: &str, name: &str) -> Option<&'a str> {
    parts(body, boundary)
        .into_iter()
        .find(|p| p.name == name)
        .and_then(|p| std::str::from_utf8(&body[p.value_start..p.value_end]).ok())
}

/// The body with one field's value replaced (the first occurrence); `None` if absent.
pub fn replace_field(body: &[u8], boundary: &str, name: &str, value: &str) -> Option<Bytes> {
    let part = parts(body, boundary).into_iter().find(|p| p.name == name)?;
    let mut out = BytesMut::with_capacity(body.len() + value.len());
    out.extend_from_slice(&body[..part.value_start]);
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(&body[part.value_end..]);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n");
        body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n");
        body.extend_from_slice(&[0, 159, 146, 150, b'\r', b'\n', b'-', b'-', b'X']);
        body.extend_from_slice(
            b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n--XyZ--\r\n",
        );
        body
    }

    #[test]
    fn reads_fields_around_binary_parts() {
        let body = form();
        assert_eq!(boundary("multipart/form-data; boundary=XyZ"), Some("XyZ"));
        assert_eq!(boundary("multipart/form-data; charset=utf-8; boundary=\"XyZ\""), Some("XyZ"));
        assert_eq!(boundary("application/json"), None);
        assert_eq!(field(&body, "XyZ", "model"), Some("whisper-1"));
        assert_eq!(field(&body, "XyZ", "language"), Some("en"));
        assert_eq!(field(&body, "XyZ", "missing"), None);
        assert_eq!(field(b"garbage", "XyZ", "model"), None);
    }

    #[test]
    fn replaces_only_the_field() {
        let body = form();
        let out = replace_field(&body, "XyZ", "model", "real-whisper").unwrap();
        assert_eq!(field(&out, "XyZ", "model"), Some("real-whisper"));
        assert_eq!(field(&out, "XyZ", "language"), Some("en"));
        let original = String::from_utf8_lossy(&body).replace("whisper-1", "real-whisper");
        assert_eq!(String::from_utf8_lossy(&out), original);
    }
}
