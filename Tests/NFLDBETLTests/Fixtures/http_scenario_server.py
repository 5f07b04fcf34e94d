#!/usr/bin/env python3
"""Scripted HTTP server for the ETL source tests (127.0.0.1 only).

usage: http_scenario_server.py SCENARIO_JSON LOG_FILE
SCENARIO_JSON: {"responses": [{"status": 503}, {"status": 429, "headers": {"Retry-After": "1"}},
                {"status": 200, "file": "/path.csv", "headers": {"ETag": "\"v1\""}}],
                "etag": "\"v1\""}
Responses are served in order; the last one repeats. When "etag" is set and the request's
If-None-Match equals it, the answer is 304. Each request is appended to LOG_FILE as one JSON line
(time, path, headers). The chosen port is printed on stdout.
Hostile bodies: "truncate": N drops the body's last N bytes; "length": N declares N as the
Content-Length (the body is cut to N bytes on the wire, as a client reading N bytes would see it),
"length": "none" sends no Content-Length and closes the connection after the body; "endless": "A"
sends that text forever without a length, and appends {"t", "sent"} to LOG_FILE.closed when the client
closes the connection. "stall_after": N sends the first N bytes of the body, then nothing.
"hang": true sends no answer at all (the connection stays open).
POST (and PUT) requests are answered the same way; their log line also has "method" and "body"
(the request body as Latin-1 text).
"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

scenario = json.load(open(sys.argv[1]))
log_path = sys.argv[2]
state = {"n": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        self.answer({"method": self.command, "body": body.decode("latin-1")})

    do_PUT = do_POST

    def do_GET(self):
        self.answer({})

    def answer(self, extra):
        with open(log_path, "a") as log:
            log.write(json.dumps(dict({"t": time.time(), "path": self.path, "headers": dict(self.headers)}, **extra)) + "\n")
        etag = scenario.get("etag")
        if etag and self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        responses = scenario["responses"]
        spec = responses[min(state["n"], len(responses) - 1)]
        state["n"] += 1
        if spec.get("hang"):
            time.sleep(3600)
            return
        body = open(spec["file"], "rb").read() if "file" in spec else b"unavailable\n"
        if "truncate" in spec:
            body = body[:len(body) - spec["truncate"]]
        self.send_response(spec["status"])
        for k, v in spec.get("headers", {}).items():
            self.send_header(k, v)
        length = spec.get("length", len(body))
        if "endless" in spec:
            length = "none"
        if length == "none":
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(length))
            body = body[:length]
        self.send_header("Content-Type", "text/csv")
        self.end_headers()
        if "endless" in spec:
            piece = spec["endless"].encode() * 65536
            sent = 0
            try:
                while True:
                    self.wfile.write(piece)
                    sent += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                # The client let go: LOG_FILE.closed gets how much it was sent first, and when.
                with open(log_path + ".closed", "a") as closed:
                    closed.write(json.dumps({"t": time.time(), "sent": sent}) + "\n")
                return
        if "stall_after" in spec:
            # Sends that many bytes of the declared body, then nothing (the connection stays open).
            self.wfile.write(body[:spec["stall_after"]])
            self.wfile.flush()
            time.sleep(3600)
            return
        # Send the body in pieces so the client parses it as it arrives.
        for i in range(0, len(body), 65536):
            self.wfile.write(body[i:i + 65536])
            self.wfile.flush()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
