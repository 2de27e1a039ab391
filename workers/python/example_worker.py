"""An example worker for the task queue ``media`` (or the one given with --queue).

    python3 workers/python/example_worker.py --address http://127.0.0.1:7233

Activities:

- ``text.shout``: input a string, output it in capitals.
- ``media.transcode``: input ``{"chunks": N, "secs_per_chunk": S}``. Works through the
  chunks one by one, heartbeating after each with ``{"next_chunk": i}``; a retried
  attempt resumes from the last heartbeat's details instead of starting over. Output
  ``{"chunks": N, "attempt": A, "resumed_at": first chunk of this attempt}``.
- ``media.reject``: always fails with the non-retryable error type ``unsupported_format``.

Prints one line per event (``took``, ``chunk``, ``done``) so a person or a test can
follow along.
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spool_worker import ActivityError, Worker  # noqa: E402

_PRINT_LOCK = threading.Lock()


def say(line):
    """Prints a whole line at once: activities run on several threads."""
    with _PRINT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=os.environ.get("SPOOL_ADDRESS", "http://127.0.0.1:7233"))
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--queue", default="media")
    parser.add_argument("--concurrency", type=int, default=4)
    # Servers started with `spool server start` need a key of the namespace.
    parser.add_argument("--api-key", default=os.environ.get("SPOOL_API_KEY"))
    args = parser.parse_args()

    worker = Worker(args.address, task_queue=args.queue, namespace=args.namespace,
                    concurrency=args.concurrency, poll_wait_secs=5, api_key=args.api_key)

    @worker.activity("text.shout")
    def shout(ctx, text):
        say("took text.shout attempt %d" % ctx.attempt)
        return str(text).upper()

    @worker.activity("media.transcode")
    def transcode(ctx, job):
        first = (ctx.heartbeat_details or {}).get("next_chunk", 0)
        say("took media.transcode attempt %d at chunk %d" % (ctx.attempt, first))
        for chunk in range(first, job["chunks"]):
            time.sleep(job.get("secs_per_chunk", 0.1))
            # Progress survives this worker: a retry starts at the next chunk.
            ctx.heartbeat({"next_chunk": chunk + 1})
            say("chunk %d done" % chunk)
        say("done media.transcode")
        return {"chunks": job["chunks"], "attempt": ctx.attempt, "resumed_at": first}

    @worker.activity("media.reject")
    def reject(ctx, _job):
        raise ActivityError("unsupported_format", "this worker cannot read the file",
                            non_retryable=True)

    say("serving task queue %r at %s" % (args.queue, args.address))
    worker.run()


if __name__ == "__main__":
    main()
