"""Helpers for running `sam build` on this machine (tests and benchmarks share them)."""

from __future__ import annotations

import shutil
import subprocess
import sys


def python312_env(env: dict[str, str]) -> dict[str, str]:
    """`env`, adjusted so `python3.12` answers when pyenv hides it (sam build may want a
    python3.12 for the python3.12 runtime); unchanged when it answers already or cannot."""

    def works(candidate: dict[str, str]) -> bool:
        exe = shutil.which("python3.12", path=candidate.get("PATH"))
        if not exe:
            return False
        probe = subprocess.run([exe, "-c", "pass"], env=candidate, capture_output=True, timeout=30)
        return probe.returncode == 0

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
