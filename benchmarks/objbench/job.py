"""Child process that times one workload: ``python -m objbench.job JOB_JSON``.

Each workload runs in its own process so that a hung mount costs a timeout, not the run.
Prints the timings as JSON on stdout; on failure, one line on stderr and exit status 1.
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
        timings, requests = run_job(job)
    except Exception as exc:
        message = one_line(exc)
        if job.root is not None:
            message = message.replace(job.root, "MNT")
        print(message, file=sys.stderr)
        return 1
    print(json.dumps({"timings": timings, "requests": requests}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
