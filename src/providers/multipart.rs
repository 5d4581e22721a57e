//! `multipart/form-data` bodies (image edits, audio transcriptions and translations): read the
//! few text fields the gateway needs and replace the `model` field for model mapping, leaving
//! every other byte (the uploaded files) untouched. Pure functions over bytes.

use bytes::{Bytes, BytesMut};
use memchr::memmem;

/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
pub const MAX_BOUNDARY_LEN: usize = 70;

/// Why a content type gives no usable boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundaryError {
    /// Not `multipart/form-data`, or no `boundary` parameter.
    Missing,
    /// Longer than [`MAX_BOUNDARY_LEN`].
    TooLong,
    /// A character RFC 2046 does not allow, or a trailing space.
    Invalid,
}

/// The boundary from a `multipart/form-data; boundary=…` content type, checked against RFC 2046:
/// at most 70 characters from `bchars` (letters, digits, `'()+_,-./:=?` and space), not ending
/// in a space. Longer boundaries only serve to make every search over the body slower.
pub fn parse_boundary(content_type: &str) -> Result<&str, BoundaryError> {
    let (mime, params) = content_type.split_once(';').ok_or(BoundaryError::Missing)?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Err(BoundaryError::Missing);
    }
    let boundary = params
        .split(';')
        .find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"')).filter(|b| !b.is_empty())
        })
        .ok_or(BoundaryError::Missing)?;
    if boundary.len() > MAX_BOUNDARY_LEN {
        return Err(BoundaryError::TooLong);
    }
    let bchar = |b: u8| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b);
    if !boundary.bytes().all(bchar) || boundary.ends_with(' ') {
        return Err(BoundaryError::Invalid);
    }
    Ok(boundary)
}

/// The boundary of a valid `multipart/form-data` content type (see [`parse_boundary`]).
pub fn boundary(content_type: &str) -> Option<&str> {
    parse_boundary(content_type).ok()
}

/// One part: the byte range of its value within the body, and its field name.
struct Part<'a> {
    name: &'a str,
    value_start: usize,
    value_end: usize,
}

/// The first `finder` match at or after `from`: linear in the bytes searched (the naive window
/// comparison was quadratic in the worst case).
fn find(haystack: &[u8], finder: &memmem::Finder<'_>, from: usize) -> Option<usize> {
    finder.find(haystack.get(from..)?).map(|p| p + from)
}

/// The body's parts, in one forward pass over it.
fn parts<'a>(body: &'a [u8], boundary: &str) -> Vec<Part<'a>> {
    let delimiter = format!("--{boundary}");
    let first = memmem::Finder::new(delimiter.as_bytes());
    let next_part = format!("\r\n{delimiter}");
    let next_part = memmem::Finder::new(next_part.as_bytes());
    let header_end = memmem::Finder::new(b"\r\n\r\n");
    let mut out = Vec::new();
    let Some(mut at) = find(body, &first, 0) else { return out };
    loop {
        let header_start = at + delimiter.len();
        if body.get(header_start..header_start + 2) == Some(b"--") {
            break;
        }
        let Some(header_end) = find(body, &header_end, header_start) else { break };
        let value_start = header_end + 4;
        let Some(next) = find(body, &next_part, value_start) else { break };
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
        assert_eq!(boundary("multipart/form-data"), None);
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

    #[test]
    fn boundaries_follow_rfc_2046() {
        let ct = |b: &str| format!("multipart/form-data; boundary={b}");
        let longest = "a".repeat(70);
        assert_eq!(parse_boundary(&ct(&longest)), Ok(longest.as_str()));
        assert_eq!(parse_boundary(&ct(&"a".repeat(71))), Err(BoundaryError::TooLong));
        assert_eq!(parse_boundary(&ct("\"x'()+_,-./:=? y\"")), Ok("x'()+_,-./:=? y"));
        assert_eq!(parse_boundary(&ct("\"trailing \"")), Err(BoundaryError::Invalid));
        assert_eq!(parse_boundary(&ct("semi<colon>")), Err(BoundaryError::Invalid));
        assert_eq!(parse_boundary(&ct("名字")), Err(BoundaryError::Invalid));
        assert_eq!(parse_boundary("multipart/form-data; charset=utf-8"), Err(BoundaryError::Missing));
        assert_eq!(parse_boundary("text/plain; boundary=x"), Err(BoundaryError::Missing));
    }

    #[test]
    fn near_matches_are_searched_in_linear_time() {
        // Every position starts a near-match of the delimiter: the naive search compared ~70
        // bytes at each of them, the finder does not.
        let boundary = "b".repeat(70);
        let mut body =
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n").into_bytes();
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n").as_bytes(),
        );
        let near = format!("\r\n--{}", "b".repeat(69));
        while body.len() < 2_000_000 {
            body.extend_from_slice(near.as_bytes());
        }
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        assert_eq!(field(&body, &boundary, "model"), Some("m"));
        let out = replace_field(&body, &boundary, "model", "mapped").unwrap();
        assert_eq!(field(&out, &boundary, "model"), Some("mapped"));
        assert_eq!(out.len(), body.len() + 5);
    }
}
