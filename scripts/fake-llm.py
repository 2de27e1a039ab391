#!/usr/bin/env python3
"""A stand-in for an OpenAI-compatible LLM and a knowledge base, for trying the
research-agent example without either. Standard library only.

    python3 scripts/fake-llm.py 9300

- POST /v1/chat/completions: answers by the system message. A planning prompt gets a
  JSON array of three questions about the topic; an answering prompt gets an answer
  quoting the first passage; anything else (the report) gets a report repeating the
  notes it was given.
- POST /search {"query": q}: {"passages": ["<q> is covered in passage 1.", ...]}

Prints one line per request.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


PRINT_LOCK = threading.Lock()


def chat(request):
    messages = request.get("messages", [])
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    user = next((m["content"] for m in messages if m.get("role") == "user"), "")
    if "plan" in system.lower():
        topic = user.split(":", 1)[-1].strip()
        content = json.dumps([
            "What is %s?" % topic,
            "Why does %s matter?" % topic,
            "What are the open problems in %s?" % topic,
        ])
    elif "answer" in system.lower():
        question = user.splitlines()[0].split(":", 1)[-1].strip()
        passages = user.split("Passages:", 1)[-1].strip()
        try:
            first = json.loads(passages)[0]
        except (ValueError, IndexError, TypeError):
            first = passages
        content = "On %r: %s" % (question, first)
    else:
        content = "REPORT\n" + user
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": request.get("model", "fake"),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
    }


def search(request):
    query = request.get("query", "")
    return {"passages": ["%s is covered in passage 1." % query,
                         "%s is also discussed in passage 2." % query]}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            request = {}
        if self.path.startswith("/v1/chat/completions"):
            answer = chat(request)
        elif self.path.startswith("/search"):
            answer = search(request)
        else:
            self.send_error(404)
            return
        # One write per line, under a lock: requests are served on several threads.
        with PRINT_LOCK:
            sys.stdout.write("%s %s\n" % (self.path, json.dumps(request)[:160]))
            sys.stdout.flush()
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9300
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)  # port 0: any free port
    print("fake LLM on http://127.0.0.1:%d/v1/chat/completions, knowledge base on /search"
          % server.server_address[1], flush=True)
    server.serve_forever()
