#!/usr/bin/env python3
"""Replica mode of the gateway benchmark: w1 (non-stream chat, mock delay 0, closed loop, 64
connections) through a local nginx in front of 1, 2 and 3 BurnCloud replicas on one Postgres.

It reuses ../shared/bench's mock upstream and load tool (oha), and measures, per row, the RPS and
the CPU each part spent per request: the replicas together (the figure that must stay flat as
replicas are added), nginx, and Postgres. CPU is read from /proc (utime + stime of each process
tree) before and after the measured window, so it counts only that window.

    cargo build --release
    python3 benches/replicas.py                      # 1, 2, 3 replicas, 15 s each, 2 rounds
    python3 benches/replicas.py --replicas 1,3 --duration 10 --rounds 1

Postgres: $BENCH_DATABASE_URL (a server where the user may create databases), else a throwaway
cluster from the local installation (scripts/throwaway-postgres.sh), removed at the end. Every row
gets a fresh database. Results: a markdown table on stdout and in
target/bench-results/replicas-<stamp>.md.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BENCH = (PROJECT / ".." / "shared" / "bench").resolve()
HOME = Path(os.environ.get("BENCH_HOME", Path.home() / ".cache" / "burncloud-bench"))
MOCK_BIN = HOME / "mock-target" / "release" / "mock-upstream"
MOCK_ADDR = "127.0.0.1:18080"
NGINX_PORT = 19099
FIRST_REPLICA_PORT = 19100
SECRET = "bench-replicas-secret-key-0123456789abcdef-0123456789"
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[replicas] {msg}", file=sys.stderr, flush=True)


def http(method: str, url: str, body: bytes | None = None, timeout: float = 2.0) -> int:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def wait_ready(url: str, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if http("GET", url) == 200:
            return True
        time.sleep(0.2)
    return False


def start(cmd: list[str], env: dict, logfile: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=logfile.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def tree_cpu_ms(root: int) -> float:
    """utime + stime of `root` and every descendant, in ms."""
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = int(fields[11]) + int(fields[12])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total * 1000.0 / TICK


class Postgres:
    """$BENCH_DATABASE_URL, or a throwaway cluster."""

    def __init__(self) -> None:
        self.server_url = os.environ.get("BENCH_DATABASE_URL")
        self.pg_dir = self.pg_bin = None
        if not self.server_url:
            script = PROJECT / "scripts" / "throwaway-postgres.sh"
            out = subprocess.run(["bash", "-c", f'source "{script}" && start_throwaway_postgres >&2 && '
                                  'echo "$PG_DIR|$PG_BIN|$BURNCLOUD_TEST_DATABASE_URL"'],
                                 capture_output=True, text=True, check=True)
            self.pg_dir, self.pg_bin, self.server_url = out.stdout.strip().split("|")
        self.psql = shutil.which("psql") or (self.pg_bin and str(Path(self.pg_bin) / "psql"))

    def fresh(self, name: str) -> str:
        subprocess.run([self.psql, self.server_url, "-q", "-c", f"DROP DATABASE IF EXISTS {name}",
                        "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        parts = urllib.parse.urlsplit(self.server_url)
        return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))

    def cpu_ms(self) -> float:
        """The postmaster's tree (the throwaway cluster only)."""
        if not self.pg_dir:
            return float("nan")
        pid = int(Path(self.pg_dir, "data", "postmaster.pid").read_text().split()[0])
        return tree_cpu_ms(pid)

    def close(self) -> None:
        if self.pg_dir:
            as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
            subprocess.run([*as_pg, f"{self.pg_bin}/pg_ctl", "-D", f"{self.pg_dir}/data", "-m", "immediate",
                            "stop"], capture_output=True, cwd="/tmp")
            shutil.rmtree(self.pg_dir, ignore_errors=True)


def nginx_conf(run_dir: Path, ports: list[int]) -> Path:
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in ports)
    text = f"""worker_processes 1;
daemon off;
pid {run_dir}/nginx.pid;
error_log {run_dir}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {run_dir}/nginx-body;
  proxy_temp_path {run_dir}/nginx-proxy;
  fastcgi_temp_path {run_dir}/nginx-fastcgi;
  uwsgi_temp_path {run_dir}/nginx-uwsgi;
  scgi_temp_path {run_dir}/nginx-scgi;
  upstream burncloud {{
{servers}    keepalive 64;
    keepalive_timeout 20s;
  }}
  server {{
    listen 127.0.0.1:{NGINX_PORT};
    location / {{
      proxy_pass http://burncloud;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"""
    path = run_dir / "nginx.conf"
    path.write_text(text)
    return path


def oha(url: str, body: Path, concurrency: int, seconds: float) -> dict:
    cmd = ["timeout", str(int(seconds + 60)), shutil.which("oha") or str(Path.home() / ".cargo/bin/oha"),
           "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-H", "content-type: application/json",
           "-H", "Authorization: Bearer sk-bench-tenant", "-D", str(body), "--no-tui", "--output-format", "json", url]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"oha failed: {out.stderr[-300:]}")
    j = json.loads(out.stdout)
    codes = {str(k): v for k, v in (j.get("statusCodeDistribution") or {}).items()}
    errors = dict(j.get("errorDistribution") or {})
    errors.pop("aborted due to deadline", None)
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    failed = sum(v for k, v in codes.items() if not k.startswith("2")) + sum(errors.values())
    total = j["summary"].get("total") or seconds
    p = j.get("latencyPercentiles") or {}
    return {"ok": ok, "errors": failed, "rps": ok / total, "p50": p.get("p50", 0) * 1000,
            "p99": p.get("p99", 0) * 1000}


def count_instructions(replicas: list, run_dir: Path, target: str, body: Path, requests: int) -> dict:
    """Instructions the replicas executed per request (callgrind, from the warm-up's end to the
    last request): the cost of a request without the noise of sharing two cores."""
    oha_bin = shutil.which("oha") or str(Path.home() / ".cargo/bin/oha")
    load = [oha_bin, "-c", "8", "--no-tui", "-m", "POST", "-H", "content-type: application/json",
            "-H", "Authorization: Bearer sk-bench-tenant", "-D", str(body), target]
    subprocess.run(load[:1] + ["-n", "300"] + load[1:], capture_output=True, check=True)
    for proc in replicas:
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True, check=True)
    out = subprocess.run(load[:1] + ["-n", str(requests), "--output-format", "json"] + load[1:],
                         capture_output=True, text=True, check=True)
    for proc in replicas:
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True, check=True)
    for proc in replicas:
        stop(proc)
    totals = []
    for i in range(len(replicas)):
        text = (run_dir / f"callgrind-{i}.out").read_text(errors="replace")
        totals.append(sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("totals:")))
    codes = json.loads(out.stdout).get("statusCodeDistribution") or {}
    ok = sum(v for k, v in codes.items() if str(k).startswith("2"))
    return {"ok": ok, "errors": requests - ok, "instructions_per_req": sum(totals) / max(ok, 1),
            "instruction_share": [round(t / sum(totals), 3) for t in totals]}


def measure(n: int, behind_nginx: bool, pg: Postgres, binary: Path, args, scratch: Path, rnd: int,
            seconds: float) -> dict:
    run_dir = scratch / f"r{n}{'' if behind_nginx else '-direct'}-{rnd}"
    run_dir.mkdir()
    url = pg.fresh(f"bench_replicas_{n}_{int(behind_nginx)}_{rnd}")
    bootstrap = run_dir / "bootstrap.toml"
    bootstrap.write_text((PROJECT / "benches" / "bootstrap.toml").read_text()
                         .replace("{mock_base}", f"http://{MOCK_ADDR}/v1"))
    replicas = []
    nginx = None
    try:
        for i in range(n):
            port = FIRST_REPLICA_PORT + i
            data = run_dir / f"data-{i}"
            data.mkdir()
            env = {"PATH": os.environ["PATH"], "DATABASE_URL": url, "BURNCLOUD_LISTEN": f"127.0.0.1:{port}",
                   "BURNCLOUD_DATA_DIR": str(data), "BURNCLOUD_LOG": "warn", "BURNCLOUD_SECRET_KEY": SECRET,
                   "BURNCLOUD_INSTANCE_ID": f"bench-{i}"}
            if args.worker_threads:
                # tokio's runtime reads it: replicas sharing one box need not each run one worker
                # thread per core.
                env["TOKIO_WORKER_THREADS"] = str(args.worker_threads)
            # The first replica applies the bootstrap (it upserts); the others find it done.
            cmd = [str(binary), "serve"] + (["--bootstrap", str(bootstrap)] if i == 0 else [])
            if args.instructions:
                cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                       f"--callgrind-out-file={run_dir}/callgrind-{i}.out"] + cmd
            proc = start(cmd, env, run_dir / f"replica-{i}.log", run_dir)
            replicas.append(proc)
            if not wait_ready(f"http://127.0.0.1:{port}/readyz", 180 if args.instructions else 60, proc):
                raise SystemExit(f"replica {i} did not start:\n{(run_dir / f'replica-{i}.log').read_text()[-2000:]}")
        if behind_nginx:
            nginx = start(["/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "nginx", "-p", str(run_dir),
                           "-e", str(run_dir / "nginx-error.log"), "-c", str(nginx_conf(run_dir, [FIRST_REPLICA_PORT + i for i in range(n)]))],
                          dict(os.environ), run_dir / "nginx.log", run_dir)
            if not wait_ready(f"http://127.0.0.1:{NGINX_PORT}/readyz", 10, nginx):
                raise SystemExit(f"nginx did not start: {(run_dir / 'nginx-error.log').read_text()[-1000:]}")
        port = NGINX_PORT if behind_nginx else FIRST_REPLICA_PORT
        target = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = run_dir / "body.json"
        body.write_text((BENCH / "bodies" / "chat.json").read_text().strip().replace("{model}", "mock-gpt"))
        if args.instructions:
            return count_instructions(replicas, run_dir, target, body, args.instructions) | {
                "replicas": n, "nginx": behind_nginx}
        oha(target, body, args.concurrency, args.warmup)
        before = ([tree_cpu_ms(p.pid) for p in replicas], tree_cpu_ms(nginx.pid) if nginx else 0.0, pg.cpu_ms())
        result = oha(target, body, args.concurrency, seconds)
        after = ([tree_cpu_ms(p.pid) for p in replicas], tree_cpu_ms(nginx.pid) if nginx else 0.0, pg.cpu_ms())
        requests = max(result["ok"], 1)
        per_replica = [(a - b) / requests for a, b in zip(after[0], before[0])]
        result.update({
            "replicas": n, "nginx": behind_nginx,
            "replica_cpu_ms_per_req": sum(per_replica),
            "replica_cpu_share": [round(x / sum(per_replica), 3) if sum(per_replica) else 0 for x in per_replica],
            "nginx_cpu_ms_per_req": (after[1] - before[1]) / requests,
            "postgres_cpu_ms_per_req": (after[2] - before[2]) / requests,
        })
        return result
    finally:
        if nginx:
            stop(nginx)
        for proc in replicas:
            stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", default="1,2,3", help="replica counts to measure behind nginx")
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--binary", default=str(PROJECT / "target" / "release" / "burncloud"))
    parser.add_argument("--no-direct", action="store_true", help="skip the 1-replica row without nginx")
    parser.add_argument("--instructions", type=int, default=0, metavar="N",
                        help="instead of timing: run the replicas under callgrind and count the "
                             "instructions they execute for N requests")
    parser.add_argument("--worker-threads", type=int, default=0,
                        help="TOKIO_WORKER_THREADS for each replica (default: one per core)")
    args = parser.parse_args()
    binary = Path(args.binary)
    if not binary.exists():
        raise SystemExit(f"{binary} missing: cargo build --release first")
    if not MOCK_BIN.exists():
        raise SystemExit(f"{MOCK_BIN} missing: run ../shared/bench/setup.sh (or run.py once) first")
    counts = [int(x) for x in args.replicas.split(",")]
    rows = ([(1, False)] if not args.no_direct else []) + [(n, True) for n in counts]
    scratch = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    pg = Postgres()
    mock = start([str(MOCK_BIN)], {"MOCK_ADDR": MOCK_ADDR, "MOCK_THREADS": "2", "PATH": os.environ["PATH"]},
                 scratch / "mock.log", scratch)
    results: list[dict] = []
    try:
        if not wait_ready(f"http://{MOCK_ADDR}/health", 20, mock):
            raise SystemExit("the mock upstream did not start")
        http("POST", f"http://{MOCK_ADDR}/_mock/config?delay_ms=0")
        # Not recorded: a fresh Postgres cluster is slow at first (its caches, the first
        # checkpoint), which would count against whichever row came first.
        if not args.instructions:
            log("warming up Postgres (not recorded)")
            measure(1, True, pg, binary, args, scratch, 0, args.duration)
        for rnd in range(1, args.rounds + 1):
            for n, behind in rows:
                log(f"round {rnd}: {n} replica(s){' behind nginx' if behind else ', direct'}")
                results.append(measure(n, behind, pg, binary, args, scratch, rnd, args.duration))
    finally:
        stop(mock)
        pg.close()
        shutil.rmtree(scratch, ignore_errors=True)

    if args.instructions:
        lines = [f"w1, {args.instructions} requests (8 connections) through nginx; instructions the replicas "
                 f"executed (callgrind), medians over {args.rounds} round(s)", "",
                 "| setup | instructions/request | errors | split over replicas |", "|---|---|---|---|"]
        for n, behind in rows:
            mine = [r for r in results if r["replicas"] == n and r["nginx"] == behind]
            lines.append(f"| {n} replica{'s' if n > 1 else ''}{' + nginx' if behind else ', direct'} "
                         f"| {statistics.median(r['instructions_per_req'] for r in mine):,.0f} "
                         f"| {sum(r['errors'] for r in mine)} | {' / '.join(f'{x:.2f}' for x in mine[-1]['instruction_share'])} |")
        print("\n".join(lines))
        return

    def median(n, behind, key):
        return statistics.median(r[key] for r in results if r["replicas"] == n and r["nginx"] == behind)

    lines = [f"w1 through nginx in front of N replicas on Postgres; {args.duration:g} s per run, "
             f"{args.rounds} round(s), medians; {os.cpu_count()} cores; "
             f"{'worker threads per replica: ' + str(args.worker_threads) + '; ' if args.worker_threads else ''}"
             f"{subprocess.run(['git', '-C', str(PROJECT), 'describe', '--always', '--dirty'], capture_output=True, text=True).stdout.strip()}",
             "",
             "| setup | RPS | p50 ms | p99 ms | errors | replicas' CPU ms/req | nginx CPU ms/req | Postgres CPU ms/req | CPU split over replicas |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n, behind in rows:
        last = [r for r in results if r["replicas"] == n and r["nginx"] == behind][-1]
        lines.append(
            f"| {n} replica{'s' if n > 1 else ''}{' + nginx' if behind else ', direct'} "
            f"| {median(n, behind, 'rps'):,.0f} | {median(n, behind, 'p50'):.2f} | {median(n, behind, 'p99'):.2f} "
            f"| {sum(r['errors'] for r in results if r['replicas'] == n and r['nginx'] == behind)} "
            f"| {median(n, behind, 'replica_cpu_ms_per_req'):.3f} | {median(n, behind, 'nginx_cpu_ms_per_req'):.3f} "
            f"| {median(n, behind, 'postgres_cpu_ms_per_req'):.3f} | {' / '.join(f'{x:.2f}' for x in last['replica_cpu_share'])} |")
    table = "\n".join(lines)
    print(table)
    out = PROJECT / "target" / "bench-results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"replicas-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(table + "\n\n```json\n" + json.dumps(results, indent=1) + "\n```\n")
    log(f"written to {path}")


if __name__ == "__main__":
    main()
