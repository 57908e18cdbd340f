"""Build a template's layers as ``sam build`` does, cached by content hash.

A layer with ``Metadata: BuildMethod: makefile`` is built by its own Makefile
(``make build-<LogicalId> ARTIFACTS_DIR=...``), exactly the recipe ``sam build`` runs for AWS:
its requirements are fetched for the Lambda target (python3.12, manylinux x86_64) and shipped
in the layer, so a function offline finds only what its layers really ship. The result is
zipped once and kept under ``.offline/build/`` keyed by a hash of everything the build reads
(the layer's files and the shared build recipe), so an unchanged tree costs nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from opspawn.build import LAMBDA_PYTHON
from opspawn.offline.console import say
from opspawn.offline.paths import Layout

#: never part of a build's inputs or of a zipped source tree
SKIP_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".DS_Store"}
#: how many builds of one layer stay on disk
KEEP_BUILDS = 2


class LayerBuildError(RuntimeError):
    """A layer's Makefile failed; the message holds the tail of its output."""


def source_files(src: Path) -> Iterator[Path]:
    """The files of a source tree, sorted, without caches and bytecode."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in SKIP_NAMES for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_file():
            yield path


def build_inputs(content_dir: Path) -> list[Path]:
    """Every file the layer's build reads: the layer's own files, and the shared recipe next
    to it (``layers/*.mk``, ``layers/*.sh``) with the other layers' requirements, which
    the SDK layers resolve against."""
    shared = content_dir.parent
    inputs = list(source_files(content_dir))
    inputs += sorted(p for p in shared.iterdir() if p.is_file() and p.suffix in (".mk", ".sh"))
    inputs += sorted(shared.glob("*/requirements.txt"))
    return list(dict.fromkeys(inputs))


def content_hash(logical_id: str, content_dir: Path) -> str:
    digest = hashlib.sha256(f"{logical_id}\0python{LAMBDA_PYTHON}\0".encode())
    for path in build_inputs(content_dir):
        digest.update(str(path.relative_to(content_dir.parent)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def zip_tree(src: Path, dest: Path) -> None:
    """Zip ``src`` (bytecode included: the build compiled it for the runtime) into ``dest``,
    deterministically (sorted entries, fixed timestamps)."""
    tmp = dest.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(src.rglob("*")):
            if not path.is_file():
                continue
            info = zipfile.ZipInfo(path.relative_to(src).as_posix(), (1980, 1, 1, 0, 0, 0))
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as source, zf.open(info, "w") as target:
                shutil.copyfileobj(source, target, 1 << 20)
    tmp.replace(dest)


def build_layer(logical_id: str, content_dir: Path, layout: Layout | None = None) -> Path:
    """The zip of ``logical_id`` built by its Makefile from ``content_dir`` (cached)."""
    layout = layout or Layout.current()
    layout.build_dir.mkdir(parents=True, exist_ok=True)
    key = content_hash(logical_id, content_dir)
    zip_path = layout.build_dir / f"{logical_id}-{key}.zip"
    with open(layout.build_dir / f"{logical_id}.lock", "w") as lock:
        # two deploys at once (a demo and the tests) build a layer once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if zip_path.exists():
            return zip_path
        artifacts = layout.build_dir / f"{logical_id}-{key}"
        shutil.rmtree(artifacts, ignore_errors=True)
        artifacts.mkdir(parents=True)
        started = time.monotonic()
        say(f"building {logical_id} with {content_dir.relative_to(content_dir.parent.parent)}"
            "/Makefile (as `sam build` does; cached until its files change)")
        log_path = layout.build_dir / f"{logical_id}.log"
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.run(
                [
                    "make", "--no-print-directory", "-f", str(content_dir / "Makefile"),
                    f"build-{logical_id}", f"ARTIFACTS_DIR={artifacts}",
                    f"PIP={sys.executable} -m pip",
                ],
                cwd=content_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
                check=False,
            )
        if proc.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
            raise LayerBuildError(
                f"building {logical_id} failed (make exit {proc.returncode}); "
                f"last lines of {log_path}:\n{tail}"
            )
        zip_tree(artifacts, zip_path)
        shutil.rmtree(artifacts, ignore_errors=True)
        _prune(layout.build_dir, logical_id, keep=zip_path)
        size_mb = zip_path.stat().st_size / 1e6
        say(f"built {logical_id} in {time.monotonic() - started:.0f} s ({size_mb:.0f} MB zipped)")
    return zip_path


def _prune(build_dir: Path, logical_id: str, keep: Path) -> None:
    builds = sorted(
        build_dir.glob(f"{logical_id}-*.zip"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for old in [b for b in builds if b != keep][KEEP_BUILDS - 1 :]:
        old.unlink(missing_ok=True)
