"""The offline stack's trace header for a next hop (opspawn_localstack/tracing.py): the same
root, a new parent, the sampling decision kept (a new sampled trace when there is none)."""

from __future__ import annotations

import re

from opspawn_localstack.tracing import child_header

ROOT_ID = "1-67891233-abcdef012345678912345678"
HEADER = re.compile(r"Root=(1-[0-9a-f]{8}-[0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=([01])")


def test_the_next_hop_keeps_the_root_and_the_decision_with_a_new_parent() -> None:
    match = HEADER.fullmatch(child_header(f"Root={ROOT_ID};Parent=1234567890abcdef;Sampled=0"))
    assert match and match.group(1) == ROOT_ID and match.group(3) == "0"
    assert match.group(2) != "1234567890abcdef"
    match = HEADER.fullmatch(child_header(f"Root={ROOT_ID}"))
    assert match and match.group(1) == ROOT_ID and match.group(3) == "1"


def test_no_trace_begins_a_sampled_one() -> None:
    first, second = HEADER.fullmatch(child_header(None)), HEADER.fullmatch(child_header(""))
    assert first and second and first.group(1) != second.group(1)
    assert first.group(3) == second.group(3) == "1"
