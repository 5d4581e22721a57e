//! Fetching images named by URL, for providers that only take images inline (Gemini, Bedrock).
//!
//! The URL comes from the client, so the fetch must not become a way into the gateway's network
//! (SSRF): only http(s); every address the host resolves to must be public — loopback (unless
//! allowed for local development), private, link-local (cloud metadata at 169.254.169.254
//! included), shared, documentation, multicast and unspecified ranges are refused; the connection
//! is pinned to the checked address (no second DNS answer); redirects are followed by hand, at
//! most three, each target checked the same way; the body is capped in size and the whole fetch in
//! time, and must be an image. Per request, the number of image URLs and the bytes fetched in all
//! are capped too, and all of its fetches share one deadline, so one request cannot make the
//! gateway download without bound.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use crate::config::GatewayConfig;

const MAX_REDIRECTS: usize = 3;

/// Why an image could not be fetched; the message is safe to show the client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(String);

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest image.
    pub max_bytes: usize,
    /// The time allowed for one image.
    pub timeout: Duration,
    pub allow_loopback: bool,
    /// Image URLs one request may name.
    pub max_images: usize,
    /// Bytes fetched for one request in all.
    pub max_total_bytes: usize,
    /// The time allowed for all the fetches of one request.
    pub deadline: Duration,
}

impl Limits {
    pub fn from_config(config: &GatewayConfig) -> Self {
        Self {
            max_bytes: config.image_fetch_max_bytes,
            timeout: config.image_fetch_timeout,
            allow_loopback: config.image_fetch_allow_loopback,
            max_images: config.image_fetch_max_images,
            max_total_bytes: config.image_fetch_max_total_bytes,
            deadline: config.image_fetch_deadline,
        }
    }
}

/// True for addresses an image URL may reach.
pub fn is_public(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_v4(v4, allow_loopback);
            }
            if v6.is_loopback() {
                return allow_loopback;
            }
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || first == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64 (could reach IPv4 inside)
        }
    }
}

fn public_v4(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..=127).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0) // IETF protocol assignments
        || (a == 198 && (18..=19).contains(&b)) // benchmarking
        || a >= 240)
}

/// Fetches an image: `(media type, bytes)`.
pub async fn fetch_image(url: &str, limits: Limits) -> Result<(String, Bytes), FetchError> {
    let cap = Cap { bytes: limits.max_bytes, too_large: || too_large(limits) };
    fetch_capped(url, limits, cap).await
}

/// At most `bytes`, or the error `too_large` makes.
#[derive(Clone, Copy)]
struct Cap<F> {
    bytes: usize,
    too_large: F,
}

async fn fetch_capped(
    url: &str,
    limits: Limits,
    cap: Cap<impl Fn() -> FetchError + Copy>,
) -> Result<(String, Bytes), FetchError> {
    tokio::time::timeout(limits.timeout, fetch_following(url, limits, cap))
        .await
        .unwrap_or_else(|_| Err(FetchError(format!("Fetching the image {url} took too long."))))
}

async fn fetch_following(
    url: &str,
    limits: Limits,
    cap: Cap<impl Fn() -> FetchError>,
) -> Result<(String, Bytes), FetchError> {
    let mut url = url::Url::parse(url).map_err(|_| FetchError("An image URL is not a valid URL.".into()))?;
    for _ in 0..=MAX_REDIRECTS {
        let response = get_checked(&url, limits).await?;
        if response.status().is_redirection() {
            let location = response.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok());
            let location = location.ok_or_else(|| FetchError("An image URL redirects nowhere.".into()))?;
            url = url.join(location).map_err(|_| FetchError("An image URL redirects to an invalid URL.".into()))?;
            continue;
        }
        if !response.status().is_success() {
            return Err(FetchError(format!("Fetching an image failed with HTTP {}.", response.status().as_u16())));
        }
        let media_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| v.starts_with("image/"))
            .ok_or_else(|| FetchError("An image URL does not point at an image.".into()))?;
        if response.content_length().is_some_and(|n| n > cap.bytes as u64) {
            return Err((cap.too_large)());
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| FetchError("Fetching an image failed.".into()))?;
            if body.len() + chunk.len() > cap.bytes {
                return Err((cap.too_large)());
            }
            body.extend_from_slice(&chunk);
        }
        return Ok((media_type, Bytes::from(body)));
    }
    Err(FetchError("An image URL redirects too many times.".into()))
}

fn too_large(limits: Limits) -> FetchError {
    FetchError(format!("An image is larger than {} bytes.", limits.max_bytes))
}

/// One GET to a checked, pinned address, without following redirects.
async fn get_checked(url: &url::Url, limits: Limits) -> Result<reqwest::Response, FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError("Image URLs must be http or https.".into()));
    }
    let host = url.host_str().ok_or_else(|| FetchError("An image URL has no host.".into()))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| FetchError(format!("The image host {host} could not be resolved.")))?
            .collect(),
    };
    if addresses.is_empty() || addresses.iter().any(|a| !is_public(a.ip(), limits.allow_loopback)) {
        return Err(FetchError(format!("The image host {host} is not a public address.")));
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(bare, addresses[0])
        .connect_timeout(limits.timeout)
        .build()
        .map_err(|_| FetchError("Fetching an image failed.".into()))?;
    client.get(url.clone()).send().await.map_err(|_| FetchError(format!("The image at {url} could not be fetched.")))
}

/// Replaces the `http(s)` image URLs of a chat request's messages by `data:` URLs, fetched with
/// [`fetch_image`]'s checks; the body unchanged (and not parsed) when it names no such image.
/// Refused before any fetch when it names more than `max_images`; the images share the
/// `max_total_bytes` budget and the `deadline`.
pub async fn inline_image_urls(body: &Bytes, limits: Limits) -> Result<Bytes, FetchError> {
    let text = String::from_utf8_lossy(body);
    if !text.contains("image_url") || !text.contains("http") {
        return Ok(body.clone());
    }
    let mut request: Value =
        serde_json::from_slice(body).map_err(|_| FetchError("The request body is not valid JSON.".into()))?;
    let urls: Vec<String> = image_parts(&mut request).filter_map(|part| remote_url(part).map(str::to_string)).collect();
    if urls.is_empty() {
        return Ok(body.clone());
    }
    if urls.len() > limits.max_images {
        return Err(FetchError(format!(
            "This request names {} image URLs; at most {} are fetched per request.",
            urls.len(),
            limits.max_images
        )));
    }
    let fetch_all = async {
        let mut inline = Vec::with_capacity(urls.len());
        let mut left = limits.max_total_bytes;
        for url in &urls {
            // Whichever cap is tighter is the one the error names.
            let budget = left < limits.max_bytes;
            let cap = Cap {
                bytes: left.min(limits.max_bytes),
                too_large: move || {
                    if budget {
                        FetchError(format!(
                            "The images of this request are larger than {} bytes in all.",
                            limits.max_total_bytes
                        ))
                    } else {
                        too_large(limits)
                    }
                },
            };
            let (media_type, bytes) = fetch_capped(url, limits, cap).await?;
            left -= bytes.len();
            let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
            inline.push(format!("data:{media_type};base64,{data}"));
        }
        Ok::<_, FetchError>(inline)
    };
    let inline = tokio::time::timeout(limits.deadline, fetch_all).await.unwrap_or_else(|_| {
        Err(FetchError(format!(
            "Fetching the images of this request took longer than {} s.",
            limits.deadline.as_secs_f64()
        )))
    })?;
    let mut inline = inline.into_iter();
    for part in image_parts(&mut request) {
        if remote_url(part).is_some()
            && let Some(data_url) = inline.next()
        {
            part["image_url"]["url"] = Value::String(data_url);
        }
    }
    serde_json::to_vec(&request).map(Bytes::from).map_err(|_| FetchError("The request could not be prepared.".into()))
}

/// The content parts of every message.
fn image_parts(request: &mut Value) -> impl Iterator<Item = &mut Value> {
    request["messages"].as_array_mut().into_iter().flatten().filter_map(|m| m["content"].as_array_mut()).flatten()
}

fn remote_url(part: &Value) -> Option<&str> {
    part["image_url"]["url"].as_str().filter(|u| u.starts_with("http://") || u.starts_with("https://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for blocked in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public(blocked.parse().unwrap(), false), "{blocked}");
        }
        for open in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(open.parse().unwrap(), false), "{open}");
        }
        assert!(is_public("127.0.0.1".parse().unwrap(), true), "loopback only when allowed");
        assert!(!is_public("10.0.0.1".parse().unwrap(), true), "private never");
    }
}
