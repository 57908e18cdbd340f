"""Finding the Lambda runtime's Python (3.12) on this machine: `sam build`, the layer
builds and the offline executor share it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

LAMBDA_PYTHON = "3.12"


def _is_312(exe: str, env: dict[str, str] | None = None) -> bool:
    try:
        probe = subprocess.run(
            [exe, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
            env=env,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def find_python312() -> str | None:
    """The path of a real CPython 3.12 interpreter (not a pyenv shim), or None.

    Looks at ``$OPSPAWN_PYTHON312``, then pyenv's installed 3.12.x, then ``python3.12`` on
    PATH (resolved through ``sys._base_executable`` so a venv's link is not returned)."""
    override = os.environ.get("OPSPAWN_PYTHON312", "").strip()
    if override:
        return override if _is_312(override) else None
    if shutil.which("pyenv"):
        root = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        versions = sorted(
            Path(root, "versions").glob(f"{LAMBDA_PYTHON}.*"),
            key=lambda p: [int(x) if x.isdigit() else 0 for x in p.name.split(".")],
        )
        for version in reversed(versions):
            candidate = version / "bin" / f"python{LAMBDA_PYTHON}"
            if candidate.exists() and _is_312(str(candidate)):
                return str(candidate)
    exe = shutil.which(f"python{LAMBDA_PYTHON}")
    if exe and _is_312(exe):
        real = subprocess.run(
            [exe, "-c", "import sys; print(getattr(sys, '_base_executable', sys.executable))"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        return real or exe
    return None


def python312_env(env: dict[str, str]) -> dict[str, str]:
    """`env`, adjusted so `python3.12` answers when pyenv hides it (sam build may want a
    python3.12 for the python3.12 runtime); unchanged when it answers already or cannot."""

    def works(candidate: dict[str, str]) -> bool:
        exe = shutil.which("python3.12", path=candidate.get("PATH"))
        return bool(exe) and _is_312(str(exe), candidate)

    if works(env) or not shutil.which("pyenv"):
        return env
    versions = subprocess.run(
        ["pyenv", "versions", "--bare"], capture_output=True, text=True, timeout=30
    ).stdout.split()
    v312 = [v for v in versions if v.startswith("3.12.")]
    if v312:
        current = ".".join(str(part) for part in sys.version_info[:3])
        candidate = {**env, "PYENV_VERSION": ":".join(dict.fromkeys([current, v312[-1]]))}
        if works(candidate):
            return candidate
    return env
