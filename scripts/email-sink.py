#!/usr/bin/env python3
"""A stand-in email service for the onboarding walkthrough: prints every JSON body
POSTed to it and answers 200. Usage: python3 scripts/email-sink.py [PORT] (default 9000)."""
import http.server
import json
import sys


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        try:
            print("email:", json.dumps(json.loads(body)), flush=True)
        except ValueError:
            print("email (not JSON):", body[:200], flush=True)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"sent": true}')

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"email sink on http://127.0.0.1:{port}/email", flush=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()
