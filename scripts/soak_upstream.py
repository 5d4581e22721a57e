#!/usr/bin/env python3
"""A fake OpenAI upstream for scripts/soak.sh: POST /v1/chat/completions, plain and streamed.

Stdlib only. Listens on 127.0.0.1 only. Usage is deterministic so the soak can check every
charge exactly: prompt_tokens = SOAK_PROMPT_TOKENS (25), completion_tokens = the number of content
chunks (one token each). The number of chunks comes from the request's `max_tokens` (capped at
64), so the driver knows what each request must cost.

Streams: one chunk every --chunk-ms milliseconds, then (with stream_options.include_usage, which
the gateway always asks for) a usage chunk, then `data: [DONE]`. The stream is close-delimited
(`Connection: close`), as plenty of real upstreams behind proxies are. A client that goes away
mid-stream is noticed at the next write and the handler ends.

Prints `listening PORT` on stdout once bound (port 0 = any free port).
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROMPT_TOKENS = 25
MAX_CHUNKS = 64


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "soak-upstream/1"
    chunk_s = 0.02
    plain_s = 0.05
    counts = {"plain": 0, "stream": 0, "stream_cut": 0, "bad": 0}
    lock = threading.Lock()

    def log_message(self, fmt, *args):  # quiet: thousands of requests
        pass

    def _count(self, what):
        with self.lock:
            self.counts[what] += 1

    def _json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "mock-gpt", "object": "model"}]})
        elif self.path == "/stats":
            with self.lock:
                self._json(200, dict(self.counts))
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        if length > 1 << 20:
            self._count("bad")
            self._json(413, {"error": {"message": "too large", "type": "invalid_request_error"}})
            return
        raw = self.rfile.read(length)
        if not self.path.startswith("/v1/chat/completions"):
            self._count("bad")
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        try:
            req = json.loads(raw)
        except ValueError:
            self._count("bad")
            self._json(400, {"error": {"message": "bad json", "type": "invalid_request_error"}})
            return
        n = req.get("max_tokens") or req.get("max_completion_tokens") or 16
        n = max(1, min(int(n), MAX_CHUNKS))
        model = req.get("model", "mock-gpt")
        created = int(time.time())
        cid = "chatcmpl-soak-%d" % time.monotonic_ns()
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": n, "total_tokens": PROMPT_TOKENS + n}
        if not req.get("stream"):
            time.sleep(self.plain_s)
            self._count("plain")
            self._json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": " tok" * n},
                             "finish_reason": "length"}],
                "usage": usage,
            })
            return
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

        def chunk(delta, finish=None, usage_obj=None, choices=True):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
            if usage_obj is not None:
                obj["usage"] = usage_obj
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        try:
            self.wfile.write(chunk({"role": "assistant", "content": ""}))
            self.wfile.flush()
            for i in range(n):
                time.sleep(self.chunk_s)
                self.wfile.write(chunk({"content": " tok"}, "length" if i == n - 1 else None))
                self.wfile.flush()
            if include_usage:
                self.wfile.write(chunk({}, usage_obj=usage, choices=False))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self._count("stream")
        except (BrokenPipeError, ConnectionResetError):
            self._count("stream_cut")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--chunk-ms", type=float, default=20.0)
    ap.add_argument("--plain-ms", type=float, default=50.0)
    a = ap.parse_args()
    Handler.chunk_s = a.chunk_ms / 1000.0
    Handler.plain_s = a.plain_ms / 1000.0
    srv = Server(("127.0.0.1", a.port), Handler)
    print("listening %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
