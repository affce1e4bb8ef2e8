"""Child process that times one workload: ``python -m objbench.job JOB_JSON``.

Each repetition runs in its own process so that a hung mount costs a timeout, not the
run. Prints the timings and the server's counts as JSON on stdout; on failure, one line
on stderr and exit status 1.
"""

from __future__ import annotations

import json
import sys

from objbench.config import Job
from objbench.workloads import run_job


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"[:300]


def main(argv: list[str]) -> int:
    job = Job.from_json(json.loads(argv[1]))
    try:
        timings, counted = run_job(job)
    except Exception as exc:
        message = one_line(exc)
        if job.root is not None:
            message = message.replace(job.root, "MNT")
        print(message, file=sys.stderr)
        return 1
    counts = None if counted is None else {"requests": dict(counted.requests),
                                           "traffic": dict(counted.traffic)}
    print(json.dumps({"timings": timings, "counts": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
