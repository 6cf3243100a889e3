"""Where code runs from: git answers for a checkout, and this library's own commit.

A leaf (imports nothing of the package): the lineage record and the MLflow run tags both name commits,
and ``tracking.runs`` is imported by ``lineage`` -- so the helper they share lives here, not in either.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_output(cwd: str | Path, *args: str) -> str | None:
    """``git -C cwd args``'s output, or None when git is missing, fails or says nothing."""
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def git_commit() -> str | None:
    """The commit of the checkout this code runs from, when it runs from one (not from an installed wheel)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    return git_output(root, "rev-parse", "HEAD")
