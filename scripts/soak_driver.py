#!/usr/bin/env python3
"""The soak's traffic driver and its checks (scripts/soak.sh runs both). Stdlib only.

`drive`: several client threads per tenant send a mix of plain and streamed chat completions to
the gateway on 127.0.0.1 for --secs seconds, each with its own `x-request-id` (soak-...), some
streams cut by the client mid-stream and some plain requests abandoned before their answer.
Meanwhile it stops the database at --pg-down-at seconds for --pg-down-secs (the commands come
from soak.sh), polls /readyz every second and samples the gateway's RSS every --rss-every seconds.
Everything it saw goes to OUT/requests.jsonl, OUT/rss.jsonl, OUT/ready.jsonl, OUT/events.json.

`check`: after the gateway stopped, reads the request log and the ledger with psql and checks
that every request the driver saw was settled at most once, at the right price, and that what a
client saw matches what the books say; prints the summary and exits 1 on any failed check.
"""

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.parse

PROMPT_TOKENS = 25            # what soak_upstream.py reports
PRICE_IN_NANOS = 2500          # 2.50 per 1M input tokens, per token, in nano-units
PRICE_OUT_NANOS = 10000        # 10.00 per 1M output tokens
REQUEST_DEADLINE = 150.0       # a request that takes longer counts as hung
MODEL = "mock-gpt"


def now():
    return time.time()


# ---------------------------------------------------------------------------------------------
# drive


class Recorder:
    def __init__(self, path):
        self.f = open(path, "w", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, obj):
        line = json.dumps(obj, separators=(",", ":"))
        with self.lock:
            self.f.write(line + "\n")

    def close(self):
        with self.lock:
            self.f.close()


def one_request(host, port, key, rid, kind, n, rng):
    """Sends one request; returns a record of what the client saw. Never raises."""
    stream = kind.startswith("stream")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "soak %s" % rid}], "max_tokens": n}
    if stream:
        body["stream"] = True
        if rng.random() < 0.5:
            body["stream_options"] = {"include_usage": True}
    payload = json.dumps(body).encode()
    rec = {"id": rid, "kind": kind, "n": n, "t0": now(), "status": None, "outcome": None,
           "ttfb": None, "lat": None, "chunks": 0, "done": False, "err": None}
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request("POST", "/v1/chat/completions", body=payload, headers={
            "authorization": "Bearer " + key, "content-type": "application/json", "x-request-id": rid})
        if kind == "plain_abort":
            # Gone before the answer (the upstream takes 50 ms): the gateway must not charge
            # twice, and may or may not charge once.
            time.sleep(rng.uniform(0.005, 0.04))
            rec["outcome"] = "aborted"
            return rec
        resp = conn.getresponse()
        rec["status"] = resp.status
        rec["ttfb"] = round(time.monotonic() - t0, 4)
        if resp.status != 200 or not stream:
            data = resp.read()
            if resp.status != 200:
                try:
                    err = json.loads(data).get("error") or {}
                    rec["err"] = err.get("code") or err.get("type")
                except (ValueError, AttributeError):
                    rec["err"] = "non-json"
                rec["outcome"] = "http_error"
            else:
                obj = json.loads(data)
                rec["usage"] = (obj.get("usage") or {}).get("completion_tokens")
                rec["outcome"] = "ok"
            return rec
        cut_after = rng.randint(1, max(1, n - 1)) if kind == "stream_cut" else None
        while True:
            if time.monotonic() - t0 > REQUEST_DEADLINE:
                rec["outcome"] = "hung"
                return rec
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                rec["done"] = True
                continue
            try:
                obj = json.loads(data)
            except ValueError:
                rec["err"] = "bad-sse"
                continue
            if "error" in obj:
                rec["err"] = (obj["error"] or {}).get("code") or "stream-error"
            for ch in obj.get("choices") or []:
                if (ch.get("delta") or {}).get("content"):
                    rec["chunks"] += 1
            if obj.get("usage"):
                rec["usage"] = obj["usage"].get("completion_tokens")
            if cut_after is not None and rec["chunks"] >= cut_after:
                rec["outcome"] = "cut"
                return rec
        if rec["done"] and not rec["err"]:
            rec["outcome"] = "ok"
        else:
            rec["outcome"] = "stream_error"
        return rec
    except (OSError, http.client.HTTPException, ValueError) as e:
        rec["outcome"] = "conn_error"
        rec["err"] = type(e).__name__ + ": " + str(e)[:120]
        return rec
    finally:
        rec["lat"] = round(time.monotonic() - t0, 4)
        try:
            conn.close()
        except OSError:
            pass


def client_loop(idx, tenant, key, host, port, deadline, rec_out, stop, seed):
    rng = random.Random(seed)
    seq = 0
    while not stop.is_set() and now() < deadline:
        seq += 1
        r = rng.random()
        if r < 0.40:
            kind = "plain"
        elif r < 0.45:
            kind = "plain_abort"
        elif r < 0.85:
            kind = "stream"
        else:
            kind = "stream_cut"
        n = rng.randint(8, 32)
        rid = "soak-t%d-c%d-%d" % (tenant, idx, seq)
        rec = one_request(host, port, key, rid, kind, n, rng)
        rec["tenant"] = tenant
        rec_out.write(rec)
        # Think time; longer after an error so a refused tenant does not spin.
        pause = rng.uniform(0.0, 0.05) if rec["status"] == 200 else rng.uniform(0.2, 0.5)
        stop.wait(pause)


def read_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid, encoding="ascii") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])  # kB
                elif k == "Threads":
                    out[k] = int(v)
        out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None
    return out


def rss_loop(pid, every, out, stop):
    while not stop.is_set():
        s = read_status(pid)
        if s is not None:
            s["t"] = now()
            out.write(s)
        stop.wait(every)


def ready_loop(host, port, out, stop):
    while not stop.is_set():
        t0 = time.monotonic()
        rec = {"t": now()}
        try:
            conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            rec["status"] = resp.status
            resp.read()
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            rec["status"] = None
            rec["err"] = type(e).__name__
        rec["lat"] = round(time.monotonic() - t0, 3)
        out.write(rec)
        stop.wait(1.0)


def run_cmd(cmd, events, name):
    t0 = now()
    try:
        p = subprocess.run(cmd, shell=True, timeout=90, capture_output=True, text=True)
        events[name] = {"t_start": t0, "t_end": now(), "rc": p.returncode, "stderr": p.stderr[-500:]}
    except subprocess.TimeoutExpired:
        events[name] = {"t_start": t0, "t_end": now(), "rc": None, "stderr": "timed out"}


def pg_loop(at, secs, stop_cmd, start_cmd, events, stop):
    if stop.wait(at):
        return
    run_cmd(stop_cmd, events, "pg_stop")
    stop.wait(secs)  # even when traffic ends early, the database comes back
    run_cmd(start_cmd, events, "pg_start")


def drive(a):
    u = urllib.parse.urlparse(a.base)
    host, port = u.hostname, u.port
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("soak_driver: refusing a non-loopback target %r" % host)
    os.makedirs(a.out, exist_ok=True)
    keys = a.keys.split(",")
    reqs = Recorder(os.path.join(a.out, "requests.jsonl"))
    rss = Recorder(os.path.join(a.out, "rss.jsonl"))
    ready = Recorder(os.path.join(a.out, "ready.jsonl"))
    stop = threading.Event()
    events = {"t_begin": now(), "secs": a.secs, "clients": len(keys) * a.clients_per_tenant}
    deadline = events["t_begin"] + a.secs
    bg = [threading.Thread(target=rss_loop, args=(a.pid, a.rss_every, rss, stop), daemon=True),
          threading.Thread(target=ready_loop, args=(host, port, ready, stop), daemon=True)]
    pg = None
    if a.pg_down_secs > 0:
        pg = threading.Thread(target=pg_loop, args=(a.pg_down_at, a.pg_down_secs, a.pg_stop_cmd,
                                                    a.pg_start_cmd, events, threading.Event()), daemon=True)
        bg.append(pg)
    for t in bg:
        t.start()
    workers = []
    for ti, key in enumerate(keys, start=1):
        for c in range(a.clients_per_tenant):
            t = threading.Thread(target=client_loop, daemon=True,
                                 args=(c, ti, key, host, port, deadline, reqs, stop, a.seed * 1000 + ti * 100 + c))
            workers.append(t)
            t.start()
    last = 0.0
    while now() < deadline:
        time.sleep(1.0)
        el = now() - events["t_begin"]
        if el - last >= 60:
            last = el
            print("soak: %4.0f s of %d" % (el, a.secs), flush=True)
    stop.set()
    join_deadline = time.monotonic() + REQUEST_DEADLINE + 10
    for t in workers:
        t.join(max(0.0, join_deadline - time.monotonic()))
    events["hung_clients"] = sum(1 for t in workers if t.is_alive())
    if pg is not None:
        pg.join(a.pg_down_secs + 200)  # the database must be back before the checks
    events["t_end"] = now()
    reqs.close()
    rss.close()
    ready.close()
    with open(os.path.join(a.out, "events.json"), "w", encoding="utf-8") as f:
        json.dump(events, f, indent=1)
    print("soak: traffic stopped; %d clients still hung" % events["hung_clients"], flush=True)


# ---------------------------------------------------------------------------------------------
# check


def psql_rows(dsn, sql):
    p = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", dsn, "-c", sql],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("psql failed: " + p.stderr.strip()[:400])
    return [line.split("\t") for line in p.stdout.splitlines() if line]


def load_jsonl(path):
    out = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    return out


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def check(a):
    reqs = load_jsonl(os.path.join(a.out, "requests.jsonl"))
    rss = load_jsonl(os.path.join(a.out, "rss.jsonl"))
    ready = load_jsonl(os.path.join(a.out, "ready.jsonl"))
    with open(os.path.join(a.out, "events.json"), encoding="utf-8") as f:
        ev = json.load(f)
    failures = []
    notes = []
    t_begin = ev["t_begin"]

    def rel(t):
        return None if t is None else round(t - t_begin, 1)

    # --- what the clients saw
    by_status = {}
    for r in reqs:
        k = str(r["status"]) if r["status"] is not None else r["outcome"]
        if r["status"] not in (None, 200) and r.get("err"):
            k += " " + str(r["err"])
        by_status[k] = by_status.get(k, 0) + 1
    by_kind = {}
    for r in reqs:
        k = "%s/%s" % (r["kind"], r["outcome"])
        by_kind[k] = by_kind.get(k, 0) + 1
    lat_plain = [r["lat"] for r in reqs if r["kind"] == "plain" and r["outcome"] == "ok"]
    lat_stream = [r["lat"] for r in reqs if r["kind"] == "stream" and r["outcome"] == "ok"]
    ttfb_stream = [r["ttfb"] for r in reqs if r["kind"] == "stream" and r["outcome"] == "ok"]
    all_lat = [r["lat"] for r in reqs if r["lat"] is not None]

    # --- the outage window and recovery
    down = ev.get("pg_stop", {})
    up = ev.get("pg_start", {})
    t_down = down.get("t_start")
    t_up = up.get("t_end")
    outage = None
    if t_down and t_up:
        if down.get("rc") != 0 or up.get("rc") != 0:
            failures.append("stopping/starting Postgres failed: %s / %s" % (down, up))
        # Settlements retry for a while after the database comes back; give them 60 s.
        outage = (t_down, t_up + 60)
        during = [r for r in reqs if t_down <= r["t0"] < t_up]
        st = {}
        for r in during:
            k = str(r["status"]) if r["status"] is not None else r["outcome"]
            if r.get("err") and r["status"] != 200:
                k += " " + str(r["err"])
            st[k] = st.get(k, 0) + 1
        first_ok_after = min((r["t0"] + r["lat"] for r in reqs
                              if r["t0"] >= t_up and r["status"] == 200 and r["outcome"] == "ok"), default=None)
        first_err = min((r["t0"] for r in reqs if r["t0"] >= t_down and r["status"] not in (200,)
                         and r["outcome"] != "aborted" and r.get("err") != "insufficient_quota"), default=None)
        last_err = max((r["t0"] for r in reqs if r["t0"] >= t_down and r["status"] not in (200,)
                        and r["outcome"] != "aborted" and r.get("err") != "insufficient_quota"), default=None)
        ready_down = [x for x in ready if x["t"] >= t_down and x.get("status") != 200]
        ready_back = min((x["t"] for x in ready if x["t"] >= t_up and x.get("status") == 200), default=None)
        max_lat_during = max((r["lat"] for r in during if r["lat"] is not None), default=None)
        outage_info = {
            "db_stopped_at_s": rel(t_down), "db_started_at_s": rel(t_up),
            "requests_started_while_down": len(during), "statuses_while_down": st,
            "first_error_at_s": rel(first_err), "last_error_at_s": rel(last_err),
            "readyz_not_200_samples": len(ready_down),
            "readyz_200_again_after_start_s": None if ready_back is None else round(ready_back - t_up, 1),
            "first_ok_completion_after_start_s": None if first_ok_after is None else round(first_ok_after - t_up, 1),
            "max_latency_of_requests_started_while_down_s": max_lat_during,
        }
        if first_ok_after is None or first_ok_after - t_up > 60:
            failures.append("no successful request within 60 s of the database's restart")
    else:
        outage_info = None
        if a.expect_outage:
            failures.append("the database outage did not happen: %s" % ev)

    def in_outage(r):
        # Overlapping the outage (or the minute after it) at all: a request answered just before
        # the stop settles while the database is down.
        end = r["t0"] + (r["lat"] or 0)
        return outage is not None and r["t0"] < outage[1] and end >= outage[0]

    if ev.get("hung_clients"):
        failures.append("%d client threads still waiting at the end (a hang)" % ev["hung_clients"])
    hung = [r for r in reqs if r["outcome"] == "hung" or (r["lat"] or 0) > REQUEST_DEADLINE]
    if hung:
        failures.append("%d requests took longer than %d s" % (len(hung), REQUEST_DEADLINE))
    conn_err = [r for r in reqs if r["outcome"] == "conn_error"]
    conn_err_outside = [r for r in conn_err if not in_outage(r)]
    if conn_err_outside:
        failures.append("%d connection errors outside the outage, e.g. %s" % (len(conn_err_outside), conn_err_outside[0]))
    # Errors outside the outage (a refused poor tenant is not an error).
    bad_outside = [r for r in reqs if not in_outage(r) and r["status"] not in (None, 200)
                   and r.get("err") != "insufficient_quota"]
    if bad_outside:
        failures.append("%d error answers outside the outage, e.g. %s" % (len(bad_outside), bad_outside[0]))
    stream_err_outside = [r for r in reqs if r["outcome"] == "stream_error" and not in_outage(r)]
    if stream_err_outside:
        failures.append("%d broken streams outside the outage, e.g. %s" % (len(stream_err_outside), stream_err_outside[0]))

    # --- the books
    dsn = a.dsn
    logs = {}
    dup_logs = []
    for rid, status, cost, is_stream, err_class, settle_key, comp in psql_rows(
            dsn, "SELECT request_id, status_code, cost, is_stream, coalesce(error_class,''), "
                 "coalesce(settle_key,''), completion_tokens FROM request_logs WHERE request_id LIKE 'soak-%'"):
        row = {"status": int(status), "cost": int(cost), "stream": is_stream == "1", "err": err_class,
               "key": settle_key, "completion": int(comp)}
        if rid in logs:
            dup_logs.append(rid)
        logs[rid] = row
    if dup_logs:
        failures.append("%d requests have more than one request_logs row, e.g. %s" % (len(dup_logs), dup_logs[:3]))
    settles = {}
    bad_keys = []
    for ref, ikey, amount in psql_rows(
            dsn, "SELECT coalesce(reference,''), coalesce(idempotency_key,''), amount FROM ledger WHERE kind = 'settle'"):
        settles.setdefault(ref, []).append((ikey, int(amount)))
        if not ikey:
            bad_keys.append(ref)
    if bad_keys:
        failures.append("%d settle rows without an idempotency key" % len(bad_keys))
    # Every settle row belongs to a logged request, and the log's cost is what the ledger took.
    mismatched = []
    orphans = []
    for ref, rows in settles.items():
        log = logs.get(ref)
        if log is None:
            orphans.append(ref)
            continue
        taken = -sum(x for _, x in rows)
        keys_ok = all(k == log["key"] or k == log["key"] + ":beyond" for k, _ in rows) and len(rows) == len(set(k for k, _ in rows))
        if taken != log["cost"] or not keys_ok:
            mismatched.append((ref, rows, log))
    if orphans:
        failures.append("%d settle rows whose request has no log row, e.g. %s" % (len(orphans), orphans[:3]))
    if mismatched:
        failures.append("%d requests whose ledger rows disagree with their log row, e.g. %s" % (len(mismatched), mismatched[:2]))
    charged_without_ledger = [rid for rid, log in logs.items() if log["cost"] > 0 and rid not in settles]
    if charged_without_ledger:
        failures.append("%d log rows with a cost but no ledger row, e.g. %s" % (len(charged_without_ledger), charged_without_ledger[:3]))

    # Each request the driver saw against its log row.
    seen = {r["id"]: r for r in reqs}
    wrong_price = []
    unsettled = {"outside_outage": [], "in_outage": []}
    charged_failures = []
    cut_uncharged = []
    for r in reqs:
        log = logs.get(r["id"])
        if r["status"] == 200 and r["outcome"] == "ok":
            if log is None:
                unsettled["in_outage" if in_outage(r) else "outside_outage"].append(r["id"])
                continue
            want = PROMPT_TOKENS * PRICE_IN_NANOS + r["n"] * PRICE_OUT_NANOS
            if log["status"] != 200 or log["cost"] != want:
                wrong_price.append((r["id"], want, log))
        elif r["status"] == 200 and r["outcome"] == "cut":
            if log is None:
                unsettled["in_outage" if in_outage(r) else "outside_outage"].append(r["id"])
            elif log["cost"] <= 0:
                cut_uncharged.append((r["id"], log))
        elif r["status"] is not None and r["status"] != 200:
            if log is not None and log["cost"] != 0:
                charged_failures.append((r["id"], r["status"], log))
    if wrong_price:
        failures.append("%d completed requests charged a wrong amount, e.g. %s" % (len(wrong_price), wrong_price[:2]))
    if unsettled["outside_outage"]:
        failures.append("%d answered requests never settled (outside the outage), e.g. %s"
                        % (len(unsettled["outside_outage"]), unsettled["outside_outage"][:3]))
    if unsettled["in_outage"]:
        msg = ("%d requests answered during the outage (or within 60 s after) were never settled: "
               "no request_logs row, no ledger row (served free), e.g. %s"
               % (len(unsettled["in_outage"]), unsettled["in_outage"][:3]))
        (failures if a.strict_outage else notes).append(msg)
    if charged_failures:
        failures.append("%d refused requests were charged, e.g. %s" % (len(charged_failures), charged_failures[:2]))
    if cut_uncharged:
        notes.append("%d streams cut by the client were logged with cost 0, e.g. %s" % (len(cut_uncharged), cut_uncharged[:2]))
    unknown = [rid for rid in logs if rid not in seen]
    if unknown:
        failures.append("%d request_logs rows for ids the driver never sent, e.g. %s" % (len(unknown), unknown[:3]))
    log_status = {}
    for rid, log in logs.items():
        k = "%d %s" % (log["status"], log["err"]) if log["err"] else str(log["status"])
        log_status[k] = log_status.get(k, 0) + 1
    cut_logged_complete = sum(1 for r in reqs if r["outcome"] == "cut" and logs.get(r["id"], {}).get("status") == 200)
    aborted = [r for r in reqs if r["outcome"] == "aborted"]
    aborted_logged = sum(1 for r in aborted if r["id"] in logs)
    aborted_charged = sum(1 for r in aborted if r["id"] in logs and logs[r["id"]]["cost"] > 0)

    # Balances: the ledger sums to them, leases all went back at shutdown.
    books = psql_rows(dsn, "SELECT u.email, u.balance, u.leased, coalesce((SELECT sum(amount) FROM ledger l "
                           "WHERE l.user_id = u.id), 0) FROM users u WHERE u.email LIKE 'soak-%' ORDER BY u.email")
    tenants = []
    for email, bal, leased, lsum in books:
        tenants.append({"email": email, "balance": int(bal), "leased": int(leased), "ledger_sum": int(lsum)})
        if int(bal) != int(lsum):
            failures.append("%s: balance %s but the ledger sums to %s" % (email, bal, lsum))
        if int(bal) < 0:
            failures.append("%s: negative balance %s" % (email, bal))
        if int(leased) != 0:
            failures.append("%s: %s still leased after a graceful shutdown" % (email, leased))
    lease_rows = psql_rows(dsn, "SELECT count(*) FROM balance_leases")[0][0]
    if int(lease_rows) != 0:
        failures.append("%s balance_leases rows left after a graceful shutdown" % lease_rows)

    # --- memory
    rss_info = None
    if rss:
        kb = [s["VmRSS"] for s in rss if "VmRSS" in s]
        span = a.secs
        early = [s["VmRSS"] for s in rss if 0.10 * span <= s["t"] - t_begin < (a.pg_down_at or span / 3)]
        late = [s["VmRSS"] for s in rss if s["t"] - t_begin >= 0.80 * span]
        rss_info = {"min_mb": round(min(kb) / 1024, 1), "max_mb": round(max(kb) / 1024, 1),
                    "peak_hwm_mb": round(max(s.get("VmHWM", 0) for s in rss) / 1024, 1),
                    "early_max_mb": round(max(early) / 1024, 1) if early else None,
                    "late_max_mb": round(max(late) / 1024, 1) if late else None,
                    "last_mb": round(kb[-1] / 1024, 1),
                    "threads_max": max(s.get("Threads", 0) for s in rss),
                    "fds_min": min(s.get("fds", 0) for s in rss), "fds_max": max(s.get("fds", 0) for s in rss),
                    "fds_last": rss[-1].get("fds"),
                    "samples": len(rss)}
        if early and late and max(late) > 1.5 * max(early) + 32 * 1024:
            failures.append("RSS grew: late max %s MB vs early max %s MB" % (rss_info["late_max_mb"], rss_info["early_max_mb"]))
    else:
        failures.append("no RSS samples")

    # --- the shell's checks
    if a.audit_rc != 0:
        failures.append("burncloud audit exited %d" % a.audit_rc)
    if a.panics != 0:
        failures.append("%d lines mention a panic in the gateway's log" % a.panics)
    if a.exit_rc != 0:
        failures.append("burncloud exited %d after SIGTERM" % a.exit_rc)

    duration = (ev.get("t_end") or t_begin) - t_begin
    summary = {
        "duration_s": round(duration, 1),
        "clients": ev.get("clients"),
        "requests": len(reqs),
        "throughput_rps": round(len(reqs) / max(1.0, a.secs), 1),
        "client_saw_by_status": dict(sorted(by_status.items(), key=lambda kv: -kv[1])),
        "client_saw_by_kind_outcome": dict(sorted(by_kind.items())),
        "latency_s": {
            "plain_ok_p50": pct(lat_plain, 50), "plain_ok_p99": pct(lat_plain, 99),
            "stream_ok_ttfb_p50": pct(ttfb_stream, 50), "stream_ok_ttfb_p99": pct(ttfb_stream, 99),
            "stream_ok_total_p50": pct(lat_stream, 50), "stream_ok_total_p99": pct(lat_stream, 99),
            "all_max": max(all_lat) if all_lat else None,
        },
        "request_logs_rows": len(logs),
        "request_logs_by_status": dict(sorted(log_status.items(), key=lambda kv: -kv[1])),
        "settled_requests_with_ledger_rows": len(settles),
        # A stream the client cut after the gateway had relayed all of it is logged 200, not 499.
        "cut_streams_logged_200": cut_logged_complete,
        "aborted_before_answer": {"sent": len(aborted), "logged": aborted_logged, "charged": aborted_charged},
        "unsettled_answered_in_outage": len(unsettled["in_outage"]),
        "unsettled_answered_outside_outage": len(unsettled["outside_outage"]),
        "outage": outage_info,
        "rss": rss_info,
        "tenants": tenants,
        "audit_rc": a.audit_rc,
        "panic_lines": a.panics,
        "shutdown_rc": a.exit_rc,
        "notes": notes,
        "failures": failures,
        "result": "PASS" if not failures else "FAIL",
    }
    with open(os.path.join(a.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
    return 0 if not failures else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drive")
    d.add_argument("--base", required=True)
    d.add_argument("--keys", required=True)
    d.add_argument("--clients-per-tenant", type=int, default=4)
    d.add_argument("--secs", type=int, default=600)
    d.add_argument("--pid", type=int, required=True)
    d.add_argument("--rss-every", type=float, default=3.0)
    d.add_argument("--pg-down-at", type=float, default=200)
    d.add_argument("--pg-down-secs", type=float, default=60)
    d.add_argument("--pg-stop-cmd", default="true")
    d.add_argument("--pg-start-cmd", default="true")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("--out", required=True)
    c.add_argument("--dsn", required=True)
    c.add_argument("--secs", type=int, default=600)
    c.add_argument("--pg-down-at", type=float, default=200)
    c.add_argument("--expect-outage", type=int, default=1)
    c.add_argument("--strict-outage", type=int, default=0)
    c.add_argument("--audit-rc", type=int, required=True)
    c.add_argument("--panics", type=int, required=True)
    c.add_argument("--exit-rc", type=int, required=True)
    a = ap.parse_args()
    if a.cmd == "drive":
        drive(a)
        return 0
    return check(a)


if __name__ == "__main__":
    sys.exit(main())
