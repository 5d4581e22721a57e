//! `burncloud` as a real process: the binary the build made, started with a clean environment
//! and its stderr read as it goes (the CLI tests and the multi-replica tests use it).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_burncloud");

pub fn command(env: &BTreeMap<&str, String>, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear().envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

pub fn base_env(data_dir: &Path, database_url: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("BURNCLOUD_LISTEN", "127.0.0.1:0".to_string()),
        ("BURNCLOUD_DATA_DIR", data_dir.display().to_string()),
        ("DATABASE_URL", database_url.to_string()),
        ("BURNCLOUD_LOG_FORMAT", "json".to_string()),
    ])
}

/// A `burncloud serve` child and the log lines it wrote until it was listening.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: Vec<String>,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
}

pub async fn start(env: &BTreeMap<&str, String>) -> Server {
    let mut child = command(env, &["serve"]).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let port = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push(line.clone());
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if let Some(console) = event["fields"]["console"].as_str() {
                return url::Url::parse(console).unwrap().port().unwrap();
            }
        }
        panic!("the server exited before listening:\n{}", log.join("\n"));
    })
    .await
    .expect("the server did not start listening within 60 s");
    Server { child, port, log, lines }
}

impl Server {
    /// SIGTERM, then the rest of the log and the exit code.
    pub async fn stop(mut self) -> (i32, Vec<String>) {
        let pid = self.child.id().unwrap().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
        assert!(status.success());
        let code = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.unwrap().unwrap().code();
        while let Ok(Some(line)) = self.lines.next_line().await {
            self.log.push(line);
        }
        (code.unwrap_or(-1), self.log)
    }
}
