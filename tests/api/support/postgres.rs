//! A private Postgres cluster (Debian's package) on a free port of 127.0.0.1, for a test that
//! must stop or restart the server itself; the shared test server stays up for everyone else.
//! As root, `initdb` and `pg_ctl` run as the `postgres` user (initdb refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PostgresServer {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

fn bin_dir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|dir| dir.join("initdb").exists());
    from_pg_config
        .or_else(|| {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|dir| dir.join("initdb").exists())
                .collect();
            dirs.sort();
            dirs.pop()
        })
        .expect("the PostgreSQL server (Debian package postgresql) must be installed")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `program args…`, as the `postgres` user when the test runs as root.
fn as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command.args(args).current_dir("/tmp").output().unwrap()
}

impl PostgresServer {
    pub async fn start() -> PostgresServer {
        let dir = tempfile::tempdir().unwrap();
        let bin = bin_dir();
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(status.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data = dir.path().join("data").display().to_string();
        let out = as_postgres(&bin.join("initdb"), &["-D", &data, "--auth=trust", "-U", "postgres", "--no-sync"]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let server = PostgresServer { port, dir, bin };
        server.pg_ctl("start");
        server
    }

    /// The `postgres` database's URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast: open sessions are ended), leaves it down for `down`, and starts it
    /// again on the same port. Blocking: call it from `spawn_blocking`.
    pub fn restart(&self, down: std::time::Duration) {
        self.pg_ctl("stop");
        std::thread::sleep(down);
        self.pg_ctl("start");
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.dir.path().join("data").display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let out = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-l", &log, "-w", "-m", "fast", "-o", &options, action],
        );
        assert!(
            out.status.success(),
            "pg_ctl {action}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let _ = as_postgres(&self.bin.join("pg_ctl"), &["-D", &data, "-m", "immediate", "stop"]);
    }
}
