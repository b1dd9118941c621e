#!/usr/bin/env python3
"""One entry point that works on a fresh machine with only Python 3.11+.

    python3 dev.py run     # the service on the embedded default (SQLite in ./data, worker in-process)
    python3 dev.py test    # the whole test suite, one process per core (extra arguments go to pytest)
    python3 dev.py lint    # ruff (lint + format check) and mypy (app, tests, bench)

Each command first makes ./.venv and installs the project into it when pyproject.toml changed.
Standard library only: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed-hash"


def _say(message: str) -> None:
    print(f"[dev] {message}", file=sys.stderr, flush=True)


def ensure_env() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before the venv exists
        sys.exit(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        _say(f"creating virtualenv in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    _say("installing the project and its dev dependencies (first run takes a minute)")
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
    STAMP.write_text(wanted)


def run_in_env(args: list[str]) -> int:
    return subprocess.call([str(PYTHON), *args], cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "lint", "setup"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_env()
    if command == "setup":
        return 0
    if command == "run":
        return run_in_env(["-m", "app.cli", "serve", *rest])
    if command == "test":
        # Tests spend most of their time waiting (subprocesses, sandboxes, databases, retry delays):
        # two processes per core keep the cores busy (on 2 cores: 7.7 min instead of 13 with one per
        # core). `-n 0` (or any -n) given by the caller wins.
        workers = str(2 * (os.cpu_count() or 1))
        # worksteal: a process that runs out of tests takes queued ones from a busy process, so the
        # long tests (started first, see tests/conftest.py) do not leave a queue behind one process.
        parallel = (
            []
            if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in rest)
            else ["-n", workers, "--dist", "worksteal"]
        )
        return run_in_env(["-m", "pytest", *parallel, *rest])
    checks = [
        ["-m", "ruff", "check", "app", "tests", "bench", "alembic", "dev.py"],
        ["-m", "ruff", "format", "--check", "app", "tests", "bench", "dev.py"],
        ["-m", "mypy", "app", "tests", "bench"],
    ]
    return max(run_in_env(c) for c in checks)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
