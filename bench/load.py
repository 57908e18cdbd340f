"""Load under provider pressure: N tasks at concurrency C on the offline stack, against a
loopback fake provider that enforces a request limit (and optionally an outage).

    .venv/bin/python bench/load.py [-n 100] [-c 16] [--rpm 30 --window 10]
        [--outage-s 0] [--provider-limits JSON] [--template PATH] [--json PATH]

It runs its own offline instance (`bench`, port 4578: a stack you keep up is untouched),
deploys the template (default: this checkout's; `--template` another checkout's, to run
the same load before a change), points OpenRouter's base URL at the fake, submits N
one-turn tasks with C submitters and waits for each. Prints throughput, p50/p95
submit→end latency, the time tasks spent waiting for the provider, the 429s the fake
answered (and how many requests came above its limit after the first 429), and the
tasks that did not succeed, which must be 0. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "agentkit")]
os.environ["OPSPAWN_OFFLINE_INSTANCE"] = "bench"
os.environ["OPSPAWN_OFFLINE_PORT"] = os.environ.get("OPSPAWN_BENCH_PORT") or "4578"

from opspawn.client import OpspawnClient  # noqa: E402
from opspawn.offline import stack  # noqa: E402
from tests.support.fake_providers import FakeProviders, Reply  # noqa: E402

PROVIDER = "openrouter"
MODEL = "openrouter:openai/gpt-4o-mini"
KEYS_SECRET = "opspawn/bench-provider-keys"


def _deploy(fake: FakeProviders, template: Path, provider_limits: str) -> stack.StackOutputs:
    secrets: Any = stack.boto3_client("secretsmanager")
    value = json.dumps({"OPENROUTER_API_KEY": "sk-or-v1-benchFAKE000000000000000000000000"})
    try:
        arn = secrets.create_secret(Name=KEYS_SECRET, SecretString=value)["ARN"]
    except secrets.exceptions.ResourceExistsException:
        arn = secrets.put_secret_value(SecretId=KEYS_SECRET, SecretString=value)["ARN"]
    parameters = {
        "ScriptedModelEnabled": "true",
        "ProviderKeysSecretArn": arn,
        "OpenRouterBaseUrl": fake.base_urls[PROVIDER],
        "AuthorizerCacheTtlSeconds": "300",
        "ProviderLimits": provider_limits,
    }
    return stack.deploy(template, parameters)


def _api_key(outputs: stack.StackOutputs) -> str:
    from opspawn.admin import key_store

    store = key_store(endpoint=outputs.endpoint_url, table=outputs.outputs["TableName"])
    return store.create("bench", description="bench/load.py").key


def run(args: argparse.Namespace) -> dict[str, Any]:
    stack.ensure_installed(quiet=True)
    started_here = stack.start()
    fake = FakeProviders().start()
    try:
        outputs = _deploy(fake, Path(args.template).resolve(), args.provider_limits)
        assert outputs.api_url
        fake.script(PROVIDER, *[Reply(text="done") for _ in range(args.n)])
        if args.rpm:
            fake.limit(PROVIDER, rpm=args.rpm, window_s=args.window)
        if args.outage_s:
            fake.outage(PROVIDER, seconds=args.outage_s, status=503)
        key = _api_key(outputs)
        with OpspawnClient(outputs.api_url, api_key=key, timeout_s=60) as api:

            def one(index: int) -> dict[str, Any]:
                began = time.monotonic()
                body: dict[str, Any] = {"goal": f"bench task {index}", "model": MODEL,
                                        "tools": []}
                if args.patience is not None:  # (an API from before patience refuses it)
                    body["max_wait_seconds"] = args.patience
                task = api.submit(body)
                view = api.wait(task.task_id, timeout_s=args.timeout, poll_s=1.0)
                return {"status": view.status.value, "seconds": time.monotonic() - began,
                        "waited": getattr(view, "waited_seconds", 0) or 0,
                        "error": view.error}

            began = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.c) as pool:
                results = list(pool.map(one, range(args.n)))
            wall = time.monotonic() - began
        received = fake.requests_for(PROVIDER)
        first_429 = next((r.at for r in received if r.status == 429), None)
        latencies = sorted(r["seconds"] for r in results)
        failed = [r for r in results if r["status"] != "SUCCEEDED"]
        return {
            "tasks": args.n,
            "concurrency": args.c,
            "fake_limit": f"{args.rpm} requests / {args.window:g} s" if args.rpm else "none",
            "provider_limits": args.provider_limits,
            "wall_s": round(wall, 1),
            "throughput_per_min": round(args.n / wall * 60, 1),
            "p50_s": round(statistics.median(latencies), 1),
            "p95_s": round(latencies[max(0, int(len(latencies) * 0.95) - 1)], 1),
            "waited_s_total": sum(r["waited"] for r in results),
            "requests_seen_by_fake": len(received),
            "answered_429": sum(r.status == 429 for r in received),
            "above_limit_after_first_429": (
                sum(r.above_limit for r in received if r.at > first_429) if first_429 else 0
            ),
            # Less those on their way when the first 429 was answered (sent before the
            # hold was written): what the platform could have held back.
            "above_limit_1s_after_first_429": (
                sum(r.above_limit for r in received if r.at > first_429 + 1.0)
                if first_429 else 0
            ),
            "failed": len(failed),
            "failure_reasons": sorted({(r["error"] or r["status"])[:120] for r in failed}),
        }
    finally:
        fake.stop()
        if started_here and not args.keep:
            stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="tasks (default 100)")
    parser.add_argument("-c", type=int, default=16, help="concurrent submitters (default 16)")
    parser.add_argument("--rpm", type=int, default=30, help="fake's request limit (0: none)")
    parser.add_argument("--window", type=float, default=10.0, help="its window, seconds")
    parser.add_argument("--outage-s", type=float, default=0.0, help="an outage first (s)")
    parser.add_argument("--provider-limits", default="{}", help="the ProviderLimits parameter")
    parser.add_argument("--patience", type=int, default=None,
                        help="max_wait_seconds per task (default: the deployment's)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per task, seconds")
    parser.add_argument("--template", default=str(ROOT / "template.yaml"))
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = run(args)
    width = max(len(k) for k in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
