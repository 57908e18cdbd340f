"""A real browser for the tests: Debian's chromium (installed by `make setup`), driven by
Playwright. Playwright's own browser download cannot be reached here, so it is pointed at
the system's executable; a missing chromium fails the run, it never skips it.

Screenshots go to the test run's output directory, .test-output/<suite>/ (git-ignored),
and their paths are printed at the end of the run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from opspawn.offline.paths import REPO_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser

OUTPUT_ROOT = REPO_ROOT / ".test-output"
#: A laptop screen.
VIEWPORT = {"width": 1366, "height": 860}


def chromium_executable() -> str:
    """The system chromium ($OPSPAWN_CHROMIUM, else `chromium` on PATH); fails the test
    when there is none."""
    candidate = os.environ.get("OPSPAWN_CHROMIUM") or shutil.which("chromium")
    if not candidate or not Path(candidate).exists():
        pytest.fail(
            "no chromium to drive: `make setup` installs Debian's chromium "
            "(apt-get install chromium), or set OPSPAWN_CHROMIUM to its path",
            pytrace=False,
        )
    return candidate


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    """Headless chromium under Playwright. It talks to Playwright over a pipe and listens
    on no port; the pages it opens are the tests' own (loopback) URLs."""
    executable = chromium_executable()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `make setup` installs the dev extra",
                    pytrace=False)
    # Chromium's sandbox refuses to run as root (these machines run everything as root).
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=args)
        try:
            yield browser
        finally:
            browser.close()


def output_dir(suite: str) -> Path:
    """This run's output directory for `suite`, emptied first."""
    path = OUTPUT_ROOT / suite
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
