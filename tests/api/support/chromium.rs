//! A headless Chromium for tests that assert on what a user sees (`browser.rs`).
//!
//! Each [`Chromium`] starts its own `chromedriver --port=0` (it prints the port it bound, so there
//! is no race for a free port) in a new process group, and opens one WebDriver session with a
//! fresh profile directory through `fantoccini` over plain HTTP on 127.0.0.1. Tests running in
//! parallel therefore share nothing. A chromedriver starts in about 0.1 s and Chromium (0.7 s) is
//! per session anyway, so one driver per test costs little — and, unlike a driver shared through
//! a static (statics are never dropped, so it would outlive the test binary), it has an owner
//! whose guard kills the whole process group, driver and every Chromium process, however the
//! test ends.
//!
//! Dropping a [`Chromium`] (also while a test panics) saves a screenshot of the page when
//! panicking, ends the session and kills the process group. Waits poll the page (every 50 ms, at
//! most [`WAIT`]); nothing sleeps for a fixed time.
//!
//! Missing programs fail the test with what to install: the browser tests never skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::helpers::{Backend, TestApp};

/// How long a wait for an element, a text or a page load may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);
/// Screenshot widths: a desktop and a phone (iPhone 12–15 CSS width).
pub const WIDTHS: [u32; 2] = [1280, 390];
const HEIGHT: u32 = 900;
const POLL: Duration = Duration::from_millis(50);

/// Where screenshots go: `$BURNCLOUD_BROWSER_ARTIFACTS`, or `browser-artifacts/` in the cargo
/// target directory (`$CARGO_TARGET_DIR`, `target/` by default).
pub fn artifacts_dir() -> PathBuf {
    match std::env::var_os("BURNCLOUD_BROWSER_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR lies inside the target directory")
            .join("browser-artifacts"),
    }
}

/// The backend as artifact names spell it.
pub fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// A program from `$var`, else the first of `names` on PATH; a clear failure when there is none.
fn find_program(var: &str, names: &[&str]) -> PathBuf {
    const INSTALL: &str = "The browser tests need Chromium and chromedriver. Install Debian's packages: \
                           apt-get install chromium chromium-driver (CI's .ci/run does). The browser tests never skip.";
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{var}={} is not a file. {INSTALL}", path.display());
        return path;
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&search)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("none of {names:?} is on PATH (or set {var}). {INSTALL}"))
}

/// One chromedriver, leader of its own process group; dropping it kills the group.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    /// Starts chromedriver, again if it quits before reporting its port: on a busy machine its
    /// `--port=0` bind can collide with another driver starting at the same moment.
    async fn start(log: &Path) -> Chromedriver {
        for _ in 0..2 {
            if let Some(driver) = Self::try_start(log).await {
                return driver;
            }
        }
        match Self::try_start(log).await {
            Some(driver) => driver,
            None => panic!("chromedriver did not report its port within {WAIT:?} (3 tries)\n{}", log_tail(log)),
        }
    }

    async fn try_start(log: &Path) -> Option<Chromedriver> {
        let program = find_program("BURNCLOUD_CHROMEDRIVER", &["chromedriver"]);
        let child = Command::new(&program)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut driver = Chromedriver { child, port: 0 };
        let stdout = driver.child.stdout.take().expect("chromedriver's stdout is piped");
        // chromedriver prints "… started successfully on port N." on stdout; the thread then keeps
        // draining stdout until the driver exits.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let port = line.split("started successfully on port ").nth(1);
                if let Some(port) = port.and_then(|p| p.trim().trim_end_matches('.').parse::<u16>().ok())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        match tokio::time::timeout(WAIT, rx).await {
            Ok(Ok(port)) => {
                driver.port = port;
                Some(driver)
            }
            // Dropping the driver kills what it started.
            _ => None,
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // Chromium runs in chromedriver's process group (its id is chromedriver's pid, which
        // cannot be reused before the wait below). The shell's `kill` takes a negative id.
        let group = self.child.id();
        let _ = Command::new("/bin/sh").arg("-c").arg(format!("kill -9 -{group}")).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of chromedriver's log, for failure messages.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<String> = text.lines().rev().take(15).map(|l| l.chars().take(300).collect()).collect();
    let lines: Vec<String> = lines.into_iter().rev().collect();
    format!("last lines of chromedriver's log:\n{}", lines.join("\n"))
}

/// A page's layout problem found while taking a screenshot.
#[derive(Debug)]
pub struct LayoutNote {
    pub file: String,
    pub note: String,
}

/// A browser session on one test app. Create with [`Chromium::start`], end with
/// [`Chromium::quit`] (dropping it also ends it, e.g. when the test panics).
pub struct Chromium {
    // Field order is drop order: the session, then the driver (killed), then its directory.
    client: Option<Client>,
    session: String,
    base: String,
    label: String,
    driver: Chromedriver,
    _dir: TempDir,
    /// Set when [`Chromium::fail`] saved a screenshot, so that `Drop` does not take another.
    failed: AtomicBool,
}

impl Chromium {
    /// Starts Chromium on a fresh profile for `app`; `test` names its artifacts
    /// (`<test>-<backend>-<name>-<width>.png`).
    pub async fn start(app: &TestApp, test: &str, backend: Backend) -> Chromium {
        let chromium = find_program("BURNCLOUD_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"]);
        let dir = tempfile::tempdir().expect("a temporary directory for the browser profile");
        let log = dir.path().join("chromedriver.log");
        let driver = Chromedriver::start(&log).await;
        let profile = dir.path().join("profile");
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    // Phones draw scrollbars over the page: without this the 390px viewport
                    // would lose ~15px to a classic scrollbar.
                    "--hide-scrollbars",
                    "--disable-dev-shm-usage", "--force-device-scale-factor=1", "--lang=en-US",
                    format!("--window-size={},{HEIGHT}", WIDTHS[0]),
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start {}: {e}\n{}", chromium.display(), log_tail(&log)));
        let session = client.session_id().await.ok().flatten().unwrap_or_default();
        Chromium {
            client: Some(client),
            session,
            base: app.address.clone(),
            label: format!("{test}-{}", backend_name(backend)),
            driver,
            _dir: dir,
            failed: AtomicBool::new(false),
        }
    }

    /// Ends the session and stops Chromium and chromedriver.
    pub async fn quit(mut self) {
        if let Some(client) = self.client.take()
            && let Err(e) = client.close().await
        {
            eprintln!("closing the browser session: {e}");
        }
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser session is open until quit")
    }

    /// Opens `path` on the app and waits for the page to load.
    pub async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        if let Err(e) = self.client().goto(&url).await {
            self.fail(&format!("opening {url}: {e}")).await;
        }
    }

    /// The current path and query, e.g. `/console/logs?model=x`.
    pub async fn path(&self) -> String {
        let url = match self.client().current_url().await {
            Ok(url) => url,
            Err(e) => self.fail(&format!("reading the current URL: {e}")).await,
        };
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits for an element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        match self.client().wait().at_most(WAIT).every(POLL).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => self.fail(&format!("no element matches `{css}` after {WAIT:?}: {e}")).await,
        }
    }

    /// Types `value` into the form field named `name` (cleared first).
    pub async fn fill(&self, name: &str, value: &str) {
        let field = self.find(&format!("[name=\"{name}\"]")).await;
        if let Err(e) = field.clear().await {
            self.fail(&format!("clearing the field `{name}`: {e}")).await;
        }
        if let Err(e) = field.send_keys(value).await {
            self.fail(&format!("typing into the field `{name}`: {e}")).await;
        }
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        if let Err(e) = element.click().await {
            self.fail(&format!("clicking `{css}`: {e}")).await;
        }
    }

    /// Clicks something that loads another page (a submit button, a link) and waits until the
    /// new page has loaded — also when it has the same URL as the old one.
    pub async fn click_and_wait(&self, css: &str) {
        self.script("window.__burncloudOldPage = true; return true;").await;
        self.click(css).await;
        self.wait_until(
            &format!("a new page to load after clicking `{css}`"),
            "return window.__burncloudOldPage === undefined && document.readyState === 'complete';",
        )
        .await;
    }

    /// The page's visible text (what a user can read; hidden elements excluded).
    pub async fn visible_text(&self) -> String {
        let text = self.script("return document.body ? document.body.innerText : '';").await;
        text.as_str().unwrap_or_default().to_string()
    }

    /// Waits until the page shows `text`.
    pub async fn wait_for_text(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.visible_text().await.contains(text) {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        self.fail(&format!("the page did not show {text:?} within {WAIT:?}")).await;
    }

    /// Waits until the browser is at `path` (path and query).
    pub async fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.path().await == path {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        self.fail(&format!("the browser did not reach {path} within {WAIT:?}")).await;
    }

    /// The visible text of the element matching `css`, trimmed.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        match element.text().await {
            Ok(text) => text.trim().to_string(),
            Err(e) => self.fail(&format!("reading the text of `{css}`: {e}")).await,
        }
    }

    /// Runs JavaScript in the page and returns its result.
    pub async fn script(&self, js: &str) -> Value {
        match self.client().execute(js, vec![]).await {
            Ok(value) => value,
            Err(e) => self.fail(&format!("running script {js:?}: {e}")).await,
        }
    }

    /// Polls `js` until it returns `true`.
    async fn wait_until(&self, what: &str, js: &str) {
        let deadline = Instant::now() + WAIT;
        let mut last_error = None;
        while Instant::now() < deadline {
            // While a page is being replaced, scripts may fail: that is "not yet".
            match self.client().execute(js, vec![]).await {
                Ok(Value::Bool(true)) => return,
                Ok(_) => {}
                Err(e) => last_error = Some(e.to_string()),
            }
            tokio::time::sleep(POLL).await;
        }
        self.fail(&format!("waited {WAIT:?} for {what} (last script error: {last_error:?})")).await;
    }

    /// Sizes the window so that the page's viewport is `width` × `height` CSS pixels.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let (mut outer_w, mut outer_h) = (width, height);
        let mut width_matched = false;
        for _ in 0..4 {
            if let Err(e) = self.client().set_window_size(outer_w, outer_h).await {
                self.fail(&format!("resizing the window to {outer_w}×{outer_h}: {e}")).await;
            }
            let inner = self.script("return [window.innerWidth, window.innerHeight];").await;
            let inner_w = inner[0].as_u64().unwrap_or(0) as u32;
            let inner_h = inner[1].as_u64().unwrap_or(0) as u32;
            if (inner_w, inner_h) == (width, height) {
                return;
            }
            width_matched = inner_w == width;
            outer_w = (outer_w + width).saturating_sub(inner_w);
            outer_h = (outer_h + height).saturating_sub(inner_h);
        }
        // The width is what layouts depend on; a window manager (or a busy machine) may refuse a
        // very tall window, which only makes a full-page screenshot shorter.
        if !width_matched {
            self.fail(&format!("the viewport cannot be made {width}px wide")).await;
        }
    }

    /// Saves full-page PNGs of the current page at each of [`WIDTHS`] as
    /// `<artifacts>/<test>-<backend>-<name>-<width>.png`, and returns layout problems seen on the
    /// way (the page scrolling sideways, naming the elements that stick out). Leaves the
    /// viewport at the desktop size.
    pub async fn screenshot(&self, name: &str) -> Vec<LayoutNote> {
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let mut notes = Vec::new();
        for width in WIDTHS {
            self.set_viewport(width, HEIGHT).await;
            let full = self.script("return Math.ceil(document.documentElement.scrollHeight);").await;
            let full = full.as_u64().unwrap_or(u64::from(HEIGHT)).clamp(u64::from(HEIGHT), 8000) as u32;
            self.set_viewport(width, full).await;
            let file = format!("{}-{name}-{width}.png", self.label);
            let png = match self.client().screenshot().await {
                Ok(png) => png,
                Err(e) => self.fail(&format!("taking the screenshot {file}: {e}")).await,
            };
            let path = dir.join(&file);
            std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            let overflow = self.script(OVERFLOW_JS).await;
            if let Some(scroll_width) = overflow["scrollWidth"].as_u64() {
                let culprits: Vec<&str> = overflow["culprits"]
                    .as_array()
                    .map(|list| list.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let note = format!(
                    "the page is {scroll_width}px wide in a {width}px viewport (scrolls sideways); sticking out: {}",
                    culprits.join(", ")
                );
                notes.push(LayoutNote { file, note });
            }
        }
        self.set_viewport(WIDTHS[0], HEIGHT).await;
        notes
    }

    /// Fails the test: saves a screenshot and says where the browser was and what it showed.
    async fn fail(&self, what: &str) -> ! {
        let client = self.client();
        let url = client.current_url().await.map(|u| u.to_string()).unwrap_or_else(|e| format!("(unknown: {e})"));
        let text = client
            .execute("return document.body ? document.body.innerText : '';", vec![])
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.failed.store(true, Ordering::Relaxed);
        let shot = artifacts_dir().join(format!("{}-failure.png", self.label));
        let saved = match client.screenshot().await {
            Ok(png) if std::fs::create_dir_all(artifacts_dir()).is_ok() && std::fs::write(&shot, &png).is_ok() => {
                format!("screenshot: {}", shot.display())
            }
            _ => "no screenshot".to_string(),
        };
        panic!("browser: {what}\nat {url} ({saved})\nvisible text:\n{text}");
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if self.client.is_none() || self.session.is_empty() {
            return;
        }
        // The test did not quit (it panicked): keep a picture of the page, end the session with
        // blocking calls (the async runtime may be going away); the driver's guard kills the rest.
        let port = self.driver.port;
        if std::thread::panicking() && !self.failed.load(Ordering::Relaxed) {
            let path = artifacts_dir().join(format!("{}-panic.png", self.label));
            if let Some(png) = blocking_screenshot(port, &self.session)
                && std::fs::create_dir_all(artifacts_dir()).is_ok()
                && std::fs::write(&path, png).is_ok()
            {
                eprintln!("browser: the page when the test panicked: {}", path.display());
            }
        }
        blocking_request(port, "DELETE", &format!("/session/{}", self.session));
    }
}

/// A WebDriver call with std's blocking TCP, for `Drop` (no async runtime to rely on there).
fn blocking_request(port: u16, method: &str, path: &str) -> Option<Vec<u8>> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    // chromedriver keeps the connection open: the answer ends by its length, not by EOF.
    let mut answer = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buffer).ok()?;
        answer.extend_from_slice(&buffer[..n]);
        let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
            if n == 0 {
                return None;
            }
            continue;
        };
        let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
        let body = &answer[end + 4..];
        let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|l| l.trim().parse().ok());
        if let Some(length) = length
            && body.len() >= length
        {
            return Some(body[..length].to_vec());
        }
        if head.contains("transfer-encoding: chunked")
            && let Some(body) = dechunk(body)
        {
            return Some(body);
        }
        if n == 0 {
            return (length.is_none() && !head.contains("chunked")).then(|| body.to_vec());
        }
    }
}

/// A complete chunked body, or None while it is incomplete.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&body[..line_end]).ok()?.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(line_end + 2..line_end + 2 + size)?);
        body = body.get(line_end + 2 + size + 2..)?;
    }
}

fn blocking_screenshot(port: u16, session: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body = blocking_request(port, "GET", &format!("/session/{session}/screenshot"))?;
    let json: Value = serde_json::from_slice(&body).ok()?;
    base64::engine::general_purpose::STANDARD.decode(json["value"].as_str()?).ok()
}

/// When the page scrolls sideways: its width and the innermost elements that stick out.
const OVERFLOW_JS: &str = r#"
const width = document.documentElement.clientWidth;
const scrollWidth = document.documentElement.scrollWidth;
if (scrollWidth <= width) return {};
const out = (el) => el.getBoundingClientRect().right > width + 0.5;
const selector = (el) => {
  let name = el.tagName.toLowerCase();
  if (el.id) name += '#' + el.id;
  if (el.classList.length) name += '.' + [...el.classList].join('.');
  return name;
};
const describe = (el) => {
  const parent = el.parentElement && el.parentElement !== document.body ? selector(el.parentElement) + ' > ' : '';
  const text = (el.innerText || '').trim().replace(/\s+/g, ' ').slice(0, 40);
  const right = Math.round(el.getBoundingClientRect().right);
  return parent + selector(el) + ' (right edge ' + right + 'px' + (text ? ', "' + text + '"' : '') + ')';
};
const culprits = [...document.body.querySelectorAll('*')]
  .filter((el) => out(el) && ![...el.children].some(out))
  .slice(0, 6)
  .map(describe);
return { scrollWidth, culprits };
"#;
