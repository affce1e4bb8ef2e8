"""Builds the C shim (an LD_PRELOAD library, not a Python extension) with the package.

It is compiled with the project's own flags, warnings as errors, into
``objmount/libobjmount.so``; ``pip install .`` and editable installs both run this.
Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
SHIM = "objmount.libobjmount"
SOURCES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "shim").glob("*.c"))
CFLAGS = ["-std=gnu11", "-O2", "-g", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra",
          "-Werror", "-D_GNU_SOURCE"]


def package_version() -> str:
    text = (ROOT / "src" / "objmount" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    assert match, "objmount/__init__.py defines __version__"
    return match.group(1)


class BuildShim(build_ext):
    def get_ext_filename(self, fullname: str) -> str:
        # Called with the dotted name and with its last part: a plain library name in
        # both cases (it is loaded with LD_PRELOAD, never imported).
        *package, name = fullname.split(".")
        if name == SHIM.rsplit(".", 1)[1]:
            return os.path.join(*package, "libobjmount.so")
        return str(super().get_ext_filename(fullname))

    def build_extension(self, ext: Extension) -> None:
        if ext.name != SHIM:
            super().build_extension(ext)
            return
        out = Path(self.get_ext_fullpath(ext.name))
        out.parent.mkdir(parents=True, exist_ok=True)
        cc = shlex.split(os.environ.get("CC", "cc"))
        cmd = [*cc, "-shared", *CFLAGS, f'-DOBJMOUNT_VERSION="{package_version()}"',
               "-o", str(out), *(str(ROOT / s) for s in ext.sources), "-ldl", "-pthread"]
        print(" ".join(cmd))
        subprocess.run(cmd, check=True)


setup(
    ext_modules=[Extension(SHIM, sources=SOURCES, depends=["shim/objmount.h"])],
    cmdclass={"build_ext": BuildShim},
)
