"""Print a JSON snapshot of a directory tree: run it with and without the shim and
compare. Files by mode, size, content hash and mtime; symlinks by target; directories by
type and mode (directory times and sizes differ between file systems by nature)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys


def snapshot(root: str) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ["link", os.readlink(path)]
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ["dir", oct(stat.S_IMODE(st.st_mode))]
            else:
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                out[rel] = ["file", oct(stat.S_IMODE(st.st_mode)), st.st_size, digest,
                            st.st_mtime_ns]
    return out


if __name__ == "__main__":
    json.dump(snapshot(sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
