//! The `burncloud` binary as an operator runs it: start, restart, migrate, admin create,
//! healthcheck, and one clear line (never a panic) for a bad setting.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::support::helpers::{Backend, fresh_database_url};
use crate::support::process::{base_env, command, start};

/// Runs to completion; returns (exit code, stdout, stderr).
async fn run(env: &BTreeMap<&str, String>, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = command(env, args);
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mentions_admin_creation(log: &[String]) -> Option<&String> {
    log.iter().find(|l| l.contains("created the first root admin"))
}

db_tests!(serve_creates_then_reuses_the_database, migrate_then_admin_create);

async fn serve_creates_then_reuses_the_database(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        // The zero-setup default: no DATABASE_URL at all.
        Backend::Sqlite => None,
        Backend::Postgres => Some(fresh_database_url(backend, dir.path()).await),
    };
    let mut env = base_env(dir.path(), url.as_deref().unwrap_or_default());
    if url.is_none() {
        env.remove("DATABASE_URL");
    }

    let server = start(&env).await;
    // reqwest is built without a default crypto provider (see app.rs); this test may run alone.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let res = client.get(format!("http://127.0.0.1:{}{path}", server.port)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let (healthy, _, stderr) =
        run(&BTreeMap::from([("BURNCLOUD_LISTEN", format!("127.0.0.1:{}", server.port))]), &["healthcheck"], None)
            .await;
    assert_eq!(healthy, 0, "{stderr}");

    let (code, log) = server.stop().await;
    assert_eq!(code, 0, "graceful SIGTERM exits 0:\n{}", log.join("\n"));
    let created = mentions_admin_creation(&log).unwrap_or_else(|| panic!("no admin line:\n{}", log.join("\n")));
    assert!(created.contains("admin@localhost") && created.contains("password"), "{created}");
    assert!(log.iter().any(|l| l.contains("shutdown complete")));
    if backend == Backend::Sqlite {
        assert!(dir.path().join("burncloud.db").exists());
    }
    assert!(dir.path().join("secret.key").exists());

    // Second start: same database, no new password.
    let server = start(&env).await;
    let (code, log) = server.stop().await;
    assert_eq!(code, 0);
    assert_eq!(mentions_admin_creation(&log), None, "{}", log.join("\n"));
}

async fn migrate_then_admin_create(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(backend, dir.path()).await;
    let env = base_env(dir.path(), &url);

    let (code, _, stderr) = run(&env, &["migrate"], None).await;
    assert_eq!(code, 0, "{stderr}");

    let (code, stdout, stderr) =
        run(&env, &["admin", "create", "--email", "Ops@Example.com", "--password-stdin"], Some("s3cret-password\n"))
            .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "root admin ops@example.com is ready");

    let (code, _, stderr) =
        run(&env, &["admin", "create", "--email", "ops@example.com", "--password-stdin"], Some("short\n")).await;
    assert_eq!(code, 1);
    assert_eq!(last_line(&stderr), "burncloud: admin create: the password must be at least 8 characters");

    let (code, _, stderr) = run(&env, &["admin", "create", "--email", "ops@example.com"], None).await;
    assert_eq!(code, 1);
    assert!(last_line(&stderr).contains("--password-stdin"), "{stderr}");

    // The account works at the next start: it is the root admin, so none is generated.
    let server = start(&env).await;
    let (_, log) = server.stop().await;
    assert_eq!(mentions_admin_creation(&log), None);
}

fn last_line(s: &str) -> &str {
    s.trim_end().lines().last().unwrap_or_default()
}

/// Asserts a one-line failure naming `setting`, with no panic or backtrace.
async fn assert_fails_clearly(env: &BTreeMap<&str, String>, expected_code: i32, starts_with: &str) {
    let (code, _, stderr) = run(env, &["serve"], None).await;
    assert_eq!(code, expected_code, "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
    let line = last_line(&stderr);
    assert!(line.starts_with(&format!("burncloud: {starts_with}")), "{stderr}");
}

#[tokio::test]
async fn bad_settings_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/x.db", dir.path().display());

    let mut env = base_env(dir.path(), "mysql://localhost/db");
    assert_fails_clearly(&env, 2, "DATABASE_URL: unsupported database URL scheme").await;
    let (_, _, stderr) = run(&env, &["serve"], None).await;
    assert_eq!(stderr.trim().lines().count(), 1, "exactly one line: {stderr}");

    env.insert("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none".into());
    assert_fails_clearly(&env, 1, "DATABASE_URL: cannot connect to the postgres database").await;

    env.insert("DATABASE_URL", sqlite.clone());
    env.insert("BURNCLOUD_LISTEN", "not-an-address".into());
    assert_fails_clearly(&env, 2, "BURNCLOUD_LISTEN: \"not-an-address\" is not a socket address").await;

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    env.insert("BURNCLOUD_LISTEN", taken.local_addr().unwrap().to_string());
    assert_fails_clearly(&env, 1, "BURNCLOUD_LISTEN: cannot listen on").await;

    env.insert("BURNCLOUD_LISTEN", "127.0.0.1:0".into());
    let config = dir.path().join("burncloud.toml");
    std::fs::write(&config, "colour = \"blue\"\n").unwrap();
    let (code, _, stderr) = run(&env, &["--config", config.to_str().unwrap(), "serve"], None).await;
    assert_eq!(code, 2);
    assert!(last_line(&stderr).contains("unknown setting \"colour\""), "{stderr}");
}

#[tokio::test]
async fn healthcheck_fails_when_nothing_listens() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (code, _, stderr) =
        run(&BTreeMap::from([("BURNCLOUD_LISTEN", free.to_string())]), &["healthcheck"], None).await;
    assert_eq!(code, 1);
    assert!(last_line(&stderr).starts_with("burncloud: healthcheck:"), "{stderr}");
}
