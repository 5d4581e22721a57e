//! A real nginx (Debian's package) in front of replicas on 127.0.0.1, for as long as the handle
//! lives. Its upstream set is rewritten and reloaded (SIGHUP) the way an ingress controller
//! follows readiness: `set_upstreams` names the replicas that may get new requests.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

pub struct Nginx {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// Where Debian puts the binary (not on a non-root `PATH`).
fn binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

impl Nginx {
    /// nginx on a free port, passing every request to one of `upstreams`. No retries on the next
    /// upstream: a request that fails at a replica fails at the client, so a test sees it.
    pub async fn start(upstreams: &[u16]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let path = dir.path().display().to_string();
        let config = format!(
            "worker_processes 1;\n\
             daemon off;\n\
             user root;\n\
             pid {path}/nginx.pid;\n\
             error_log {path}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {path}/body;\n\
               proxy_temp_path {path}/proxy;\n\
               fastcgi_temp_path {path}/fastcgi;\n\
               uwsgi_temp_path {path}/uwsgi;\n\
               scgi_temp_path {path}/scgi;\n\
               include {path}/upstreams.conf;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{\n\
                   proxy_pass http://burncloud;\n\
                   proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n\
                   proxy_buffering off;\n\
                   proxy_next_upstream off;\n\
                 }}\n\
               }}\n\
             }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        write_upstreams(&dir, upstreams);
        let child = Command::new(binary())
            .args(["-p", &path, "-e", &format!("{path}/error.log"), "-c", &format!("{path}/nginx.conf")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx (Debian package nginx) must be installed: .ci/run installs it");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "nginx did not start on port {port}: {}", Self::log_of(&dir));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Nginx { port, dir, child }
    }

    /// New requests go to `upstreams` only; requests in flight on the old set finish there.
    pub fn set_upstreams(&self, upstreams: &[u16]) {
        write_upstreams(&self.dir, upstreams);
        let pid = self.child.id().expect("nginx is running").to_string();
        let status = std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(status.success(), "could not signal nginx to reload");
    }

    /// What nginx logged (warnings and errors).
    pub fn log(&self) -> String {
        Self::log_of(&self.dir)
    }

    fn log_of(dir: &tempfile::TempDir) -> String {
        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
    }
}

fn write_upstreams(dir: &tempfile::TempDir, upstreams: &[u16]) {
    assert!(!upstreams.is_empty(), "nginx needs at least one upstream");
    let servers: String = upstreams.iter().map(|port| format!("  server 127.0.0.1:{port};\n")).collect();
    let text = format!("upstream burncloud {{\n{servers}  keepalive 32;\n}}\n");
    std::fs::write(dir.path().join("upstreams.conf"), text).unwrap();
}
