#!/usr/bin/env python3
"""Stand-in inventory, payments and shipping services for the order-saga example, in
one process on one port. Prints every call it receives and answers with JSON:

  POST /inventory/reserve  {"order_id", "items"}                  -> {"reservation_id"}
  POST /inventory/release  {"order_id", "reservation"}            -> {"released"}
  POST /payments/charge    {"order_id", "amount_cents"}           -> {"charge_id", "amount_cents"}
  POST /payments/refund    {"order_id", "amount_cents", "charge"} -> {"refund_id"}
  POST /shipping/ship      {"order_id", "items"}                  -> {"shipment_id"}

A call that repeats an idempotency-key header gets the first answer again (and is
printed as a repeat): activities run at least once, so a call whose answer was lost in
a crash arrives twice.

Usage: python3 scripts/saga-services.py [PORT] [--fail STEP]... [--delay SECS]
  PORT          default 9100
  --fail STEP   answer HTTP 422 to STEP (reserve, release, charge, refund or ship);
                repeatable. SAGA_FAIL=ship,refund does the same.
  --delay SECS  hold every answer this long (time to cancel or kill the server)
"""
import argparse
import http.server
import json
import os
import threading
import time

ROUTES = {
    "/inventory/reserve": "reserve",
    "/inventory/release": "release",
    "/payments/charge": "charge",
    "/payments/refund": "refund",
    "/shipping/ship": "ship",
}


def answer(step, body):
    order = body.get("order_id", "?")
    if step == "reserve":
        return {"reservation_id": f"res-{order}"}
    if step == "release":
        return {"released": body.get("reservation")}
    if step == "charge":
        return {"charge_id": f"ch-{order}", "amount_cents": body.get("amount_cents")}
    if step == "refund":
        return {"refund_id": f"re-{order}"}
    return {"shipment_id": f"shp-{order}"}


class Services(http.server.BaseHTTPRequestHandler):
    fail = set()
    delay = 0.0
    answered = {}  # idempotency key -> (status, answer)
    lock = threading.Lock()

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        step = ROUTES.get(self.path)
        key = self.headers.get("idempotency-key")
        with self.lock:
            repeat = key is not None and key in self.answered
            if repeat:
                status, reply = self.answered[key]
            elif step is None:
                status, reply = 404, {"error": f"no such service: {self.path}"}
            elif step in self.fail:
                status, reply = 422, {"error": f"{step} refused (--fail {step})"}
            else:
                status, reply = 200, answer(step, body)
            if key is not None and not repeat:
                self.answered[key] = (status, reply)
        note = " (repeat)" if repeat else ""
        print(f"{self.path} {json.dumps(body)} -> {status} {json.dumps(reply)}{note}", flush=True)
        if self.delay:
            time.sleep(self.delay)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Stand-in services for the order-saga example.")
    parser.add_argument("port", nargs="?", type=int, default=9100)
    parser.add_argument("--fail", action="append", default=[], choices=sorted(ROUTES.values()))
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    env = [s.strip() for s in os.environ.get("SAGA_FAIL", "").split(",") if s.strip()]
    Services.fail = set(args.fail) | set(env)
    Services.delay = args.delay
    base = f"http://127.0.0.1:{args.port}"
    print(f"saga services on {base}/inventory, {base}/payments, {base}/shipping", flush=True)
    if Services.fail:
        print(f"failing: {', '.join(sorted(Services.fail))}", flush=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Services).serve_forever()
