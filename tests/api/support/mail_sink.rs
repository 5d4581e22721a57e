//! The SMTP server the tests send mail to: Python's aiosmtpd (`tests/sdk/smtp_sink.py`, in the
//! SDK venv that scripts/test.sh prepares), one per test binary, shared by every test. Tests
//! tell their messages apart by recipient, so each uses addresses of its own ([`address`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub header_from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The first link in the text part starting with `prefix` (e.g. `https://site/verify-email`).
    pub fn link(&self, prefix: &str) -> String {
        let start = self.text.find(prefix).unwrap_or_else(|| panic!("no {prefix} link in {:?}", self.text));
        self.text[start..].split_whitespace().next().unwrap().to_string()
    }
}

pub struct MailSink {
    pub port: u16,
    received: Mutex<Vec<Mail>>,
    arrived: Condvar,
    // Kept so the server lives as long as the test binary (it exits when stdin closes).
    _server: Mutex<(Child, ChildStdin)>,
}

static SINK: OnceLock<&'static MailSink> = OnceLock::new();

/// The shared sink, started on first use.
pub fn sink() -> &'static MailSink {
    SINK.get_or_init(start)
}

fn start() -> &'static MailSink {
    let python = std::env::var("BURNCLOUD_SDK_PYTHON").expect(
        "BURNCLOUD_SDK_PYTHON is not set: run the suite through scripts/test.sh, which prepares the venv with aiosmtpd",
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/smtp_sink.py");
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the SMTP sink with {python}: {e}"));
    let stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("the SMTP sink said nothing").expect("reading the SMTP sink");
    let port = serde_json::from_str::<BTreeMap<String, u16>>(&first).expect("the sink's port line")["port"];
    let sink: &'static MailSink = Box::leak(Box::new(MailSink {
        port,
        received: Mutex::new(Vec::new()),
        arrived: Condvar::new(),
        _server: Mutex::new((child, stdin)),
    }));
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mail: Mail = serde_json::from_str(&line).expect("a message line from the sink");
            sink.received.lock().unwrap().push(mail);
            sink.arrived.notify_all();
        }
    });
    sink
}

impl MailSink {
    /// Every message received so far for `to`.
    pub fn messages_to(&self, to: &str) -> Vec<Mail> {
        self.received.lock().unwrap().iter().filter(|m| m.to.iter().any(|r| r == to)).cloned().collect()
    }

    /// Waits (up to 10 s) until `count` messages for `to` have arrived, and returns them.
    pub fn wait_for(&self, to: &str, count: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut received = self.received.lock().unwrap();
        loop {
            let mine: Vec<Mail> = received.iter().filter(|m| m.to.iter().any(|r| r == to)).cloned().collect();
            if mine.len() >= count {
                return mine;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{count} message(s) to {to} did not arrive; got {}", mine.len());
            received = self.arrived.wait_timeout(received, left).unwrap().0;
        }
    }
}

/// An address no other test uses.
pub fn address(name: &str) -> String {
    format!("{name}.{}@example.com", burncloud::domain::token::random_alphanumeric(10).to_lowercase())
}

/// The settings that point an app at the sink.
pub fn smtp_env(env: &mut BTreeMap<String, String>) {
    env.insert("BURNCLOUD_SMTP_HOST".into(), "127.0.0.1".into());
    env.insert("BURNCLOUD_SMTP_PORT".into(), sink().port.to_string());
    env.insert("BURNCLOUD_SMTP_SECURITY".into(), "none".into());
    env.insert("BURNCLOUD_SMTP_FROM".into(), "Acme AI <noreply@acme.example>".into());
}
