//! Runs a published client as a child process: a fresh HOME and working directory in a tempdir,
//! no environment inherited but PATH, telemetry and update checks off, the internet behind a
//! proxy that refuses, at most two clients at a time (the machine has two cores), and a
//! deadline after which the client's process group is killed and the test fails with its stderr.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

/// Client processes running at once in this test binary.
static SLOTS: Semaphore = Semaphore::const_new(2);

/// How long a client may run.
const DEADLINE: Duration = Duration::from_secs(120);

/// How a client ended.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// The path of an installed client from `var`; fails (never skips) when it is missing.
pub fn client(var: &str, what: &str) -> PathBuf {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(path) if path.exists() => path,
        found => panic!(
            "{var} is {found:?}: {what} is not installed. Run the suite with scripts/test.sh, which installs the \
             pinned clients (tests/clients/package.json + package-lock.json with `npm ci`, \
             tests/clients/requirements.txt into a venv) under $HOME/.cache/burncloud-clients and sets \
             BURNCLOUD_CLAUDE, BURNCLOUD_CODEX, BURNCLOUD_CLIENTS_PYTHON and BURNCLOUD_LLM."
        ),
    }
}

/// A client's private world: HOME, a working directory and a temp dir, all removed afterwards.
pub struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "work", "tmp", "config"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Sandbox { dir }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// A directory for the client's own configuration (CLAUDE_CONFIG_DIR, CODEX_HOME, LLM_USER_PATH).
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn write(&self, path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    /// Runs `program` in the working directory with `env` on top of the sandbox's environment.
    pub async fn run(&self, program: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
        let _slot = SLOTS.acquire().await.unwrap();
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(self.work())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("TMPDIR", self.dir.path().join("tmp"))
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .env("NO_COLOR", "1")
            // Anything that would leave the machine goes to a proxy that refuses at once.
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let pid = child.id().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf).await;
            buf
        });
        let err = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf).await;
            buf
        });
        let status = tokio::time::timeout(DEADLINE, child.wait()).await;
        // The client's helpers (node wrappers start native binaries) go with it.
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).output();
        let stdout = String::from_utf8_lossy(&out.await.unwrap()).into_owned();
        let stderr = String::from_utf8_lossy(&err.await.unwrap()).into_owned();
        match status {
            Ok(status) => Output { code: status.unwrap().code(), stdout, stderr },
            Err(_) => panic!(
                "{} {args:?} did not finish within {DEADLINE:?} and was killed\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                program.display()
            ),
        }
    }
}
