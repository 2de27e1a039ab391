"""A Spool activity worker in one module, standard library only.

A worker serves one task queue: it long-polls the Spool server for activity attempts,
runs the function registered for each attempt's activity name, and reports the
outcome. Workflows send work to it with an activity whose options name the queue (in
the Rust SDK: ``ctx.activity("images.resize").task_queue("media")``).

    from spool_worker import ActivityError, Worker

    worker = Worker("http://127.0.0.1:7233", task_queue="media")

    @worker.activity("images.resize")
    def resize(ctx, request):
        for i, size in enumerate(request["sizes"]):
            ctx.heartbeat({"done": i})   # raises Cancelled if the workflow cancelled
            ...
        return {"resized": len(request["sizes"])}

    worker.run()

An activity returns any JSON-serialisable value, or raises ``ActivityError`` (with an
error type the workflow can match on, and ``non_retryable=True`` when retrying cannot
help); any other exception fails the attempt with its class name as error type, and the
host retries it per the activity's retry policy. See ``workers/README.md`` for the
HTTP protocol, to write a worker in another language.
"""

import json
import sys
import threading
import traceback
import urllib.error
import urllib.request

__all__ = ["ActivityError", "Cancelled", "Context", "TaskLost", "Worker"]

_PRINT_LOCK = threading.Lock()


def _say(line):
    """Prints a whole line at once: attempts run on several threads."""
    with _PRINT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class ActivityError(Exception):
    """A failure the activity reports on purpose."""

    def __init__(self, error_type, message, non_retryable=False, details=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.non_retryable = non_retryable
        self.details = details


class Cancelled(Exception):
    """Raised by ``Context.heartbeat`` when the workflow cancelled the activity."""


class TaskLost(Exception):
    """Raised by ``Context.heartbeat`` when the server no longer knows the attempt: it
    timed out (and is being retried elsewhere), or the server restarted. Stop working:
    nothing this attempt reports will be recorded."""


class Context:
    """What an activity function knows about its attempt."""

    def __init__(self, worker, task):
        self._worker = worker
        self.task_token = task["task_token"]
        self.activity = task["activity"]
        self.attempt = task["attempt"]
        # The details of the previous attempt's last heartbeat, to resume from.
        self.heartbeat_details = task.get("heartbeat_details")
        self.workflow_id = task["workflow_id"]
        self.run_id = task["run_id"]
        self.activity_handle = task["activity_handle"]
        self.heartbeat_timeout_ms = task.get("heartbeat_timeout_ms")
        self.start_to_close_timeout_ms = task["start_to_close_timeout_ms"]

    def heartbeat(self, details=None):
        """Tells the server this attempt is alive, with optional progress details
        (handed to the next attempt if this one fails). Raises ``Cancelled`` if the
        workflow cancelled the activity, ``TaskLost`` if the attempt is gone."""
        body = {} if details is None else {"details": details}
        status, answer = self._worker._call(
            "POST", "/tasks/%s/heartbeat" % self.task_token, body
        )
        if status == 404:
            raise TaskLost(answer.get("error", {}).get("message", "task not found"))
        if answer.get("cancel_requested"):
            raise Cancelled("the workflow cancelled the activity")


class Worker:
    """Serves one task queue with the activities registered on it."""

    def __init__(self, address, task_queue, namespace="default", concurrency=4,
                 poll_wait_secs=30, api_key=None):
        self.address = address.rstrip("/")
        self.task_queue = task_queue
        self.namespace = namespace
        self.concurrency = concurrency
        self.poll_wait_secs = poll_wait_secs
        self.api_key = api_key
        self._activities = {}
        self._stopping = threading.Event()

    def activity(self, name):
        """Decorator: registers ``function(ctx, input)`` for activity ``name``."""

        def register(function):
            self._activities[name] = function
            return function

        return register

    def run(self):
        """Polls and runs attempts on ``concurrency`` threads until ``stop``."""
        threads = [
            threading.Thread(target=self._serve, name="spool-worker-%d" % i, daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        try:
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(timeout=0.5)
        except KeyboardInterrupt:
            self.stop()

    def stop(self):
        """Asks the polling threads to finish after their current poll or attempt."""
        self._stopping.set()

    def run_one(self, wait_secs=None):
        """Takes and runs at most one attempt; returns whether there was one."""
        body = {"wait_secs": self.poll_wait_secs if wait_secs is None else wait_secs}
        status, task = self._call(
            "POST", "/task-queues/%s/poll" % self.task_queue, body
        )
        if status == 204:
            return False
        if status != 200:
            raise RuntimeError("poll failed with HTTP %d: %s" % (status, task))
        self._execute(task)
        return True

    def _serve(self):
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                self.run_one()
                backoff = 0.2
            except (OSError, RuntimeError) as e:
                # The server is down or restarting: try again, not too eagerly.
                _say("spool worker: %s; retrying in %.1f s" % (e, backoff))
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _execute(self, task):
        token = task["task_token"]
        function = self._activities.get(task["activity"])
        if function is None:
            known = ", ".join(sorted(self._activities)) or "none"
            self._fail(token, "unknown_activity",
                       "this worker has no activity %r (it serves: %s)" % (task["activity"], known),
                       non_retryable=True)
            return
        ctx = Context(self, task)
        try:
            output = function(ctx, task.get("input"))
        except Cancelled as e:
            _say("spool worker: %s attempt %d stopped: %s" % (ctx.activity, ctx.attempt, e))
            self._fail(token, "cancelled", str(e), cancelled=True)
        except TaskLost:
            pass
        except ActivityError as e:
            self._fail(token, e.error_type, e.message, e.non_retryable, e.details)
        except Exception as e:  # noqa: BLE001 - any failure of user code fails the attempt
            self._fail(token, type(e).__name__, str(e),
                       details={"traceback": traceback.format_exc(limit=20)})
        else:
            self._call("POST", "/tasks/%s/complete" % token, {"output": output})

    def _fail(self, token, error_type, message, non_retryable=False, details=None,
              cancelled=False):
        body = {"error_type": error_type, "message": message,
                "non_retryable": non_retryable, "cancelled": cancelled}
        if details is not None:
            body["details"] = details
        self._call("POST", "/tasks/%s/fail" % token, body)

    def _call(self, method, path, body):
        """One API call; returns (HTTP status, decoded JSON body or {})."""
        url = "%s/api/v1/namespaces/%s%s" % (self.address, self.namespace, path)
        data = json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("content-type", "application/json")
        if self.api_key:
            request.add_header("authorization", "Bearer %s" % self.api_key)
        timeout = self.poll_wait_secs + 15
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, (json.loads(raw) if raw else {})
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                answer = json.loads(raw) if raw else {}
            except ValueError:
                answer = {"error": {"message": raw.decode(errors="replace")}}
            if e.code == 404:
                return 404, answer
            raise RuntimeError("%s %s: HTTP %d %s" % (method, path, e.code, answer)) from None

