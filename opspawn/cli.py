"""`opspawn`: the command line for the Opspawn API (offline stack or a deployed one).

    opspawn submit "What is 2 ** 16?" --model openai:gpt-4o-mini --wait
    opspawn watch tsk_...            opspawn get tsk_...      opspawn events tsk_...
    opspawn list --status RUNNING    opspawn cancel tsk_...   opspawn approve tsk_... apr_...
    opspawn reply tsk_... "And for 2 ** 32?" --wait   (a follow-up: a new run of the task)
    opspawn schedules create nightly "rate(1 day)" "Summarize ..."   opspawn config show

Endpoint and API key, first found wins: --endpoint/--api-key, then OPSPAWN_ENDPOINT/
OPSPAWN_API_KEY, then the config file (~/.config/opspawn/config.toml or $OPSPAWN_CONFIG;
a [default] table, or the one named by --profile/OPSPAWN_PROFILE, with `endpoint` and
`api_key`), then the offline stack's URL from .offline/outputs.json.

Exit codes: 0 ok, 1 API or usage error (the API's message and fields are printed),
2 bad command line, 3 the task ended but did not succeed (--wait, watch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentkit.models.api import SubmitTaskRequest, TaskView
from agentkit.models.domain import TaskStatus
from opspawn.client import ApiError, OpspawnClient
from opspawn.watch import describe, follow, plan_lines, progress_printer, summary_table

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_TASK_NOT_SUCCEEDED = 0, 1, 2, 3
EXIT_INTERRUPTED = 130

ENV_ENDPOINT, ENV_API_KEY = "OPSPAWN_ENDPOINT", "OPSPAWN_API_KEY"
ENV_CONFIG, ENV_PROFILE = "OPSPAWN_CONFIG", "OPSPAWN_PROFILE"
DEFAULT_PROFILE = "default"

#: Seconds between two GET /tasks/{id} while following a task (tests set 0).
POLL_SECONDS = 0.5
#: Seconds per HTTP request.
HTTP_TIMEOUT_SECONDS = 30.0


def transport_factory() -> httpx.BaseTransport | None:
    """The httpx transport every client uses: None = the network. Tests replace this
    module attribute with one returning an ``httpx.MockTransport``."""
    return None


class CliError(Exception):
    """A usage problem explained to the user; exit code 1."""

    def __init__(self, message: str, fields: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.fields = list(fields)


# --- endpoint and key ------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    value: str | None
    source: str  # where the value came from, for `config show` and error messages


@dataclass(frozen=True)
class Settings:
    endpoint: Setting
    api_key: Setting
    config_file: Path
    profile: str
    from_offline_stack: bool


def config_file_path() -> Path:
    if explicit := os.environ.get(ENV_CONFIG):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "opspawn" / "config.toml"


def _load_profile(path: Path, profile: str, explicit_profile: bool) -> dict[str, Any]:
    if not path.exists():
        if os.environ.get(ENV_CONFIG):
            raise CliError(f"{ENV_CONFIG} names {path}, which does not exist")
        if explicit_profile:
            raise CliError(f"profile '{profile}' asked for, but there is no config file {path}")
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise CliError(f"cannot read the config file {path}: {error}") from None
    section = data.get(profile)
    if section is None:
        if explicit_profile:
            known = ", ".join(sorted(k for k, v in data.items() if isinstance(v, dict))) or "none"
            raise CliError(f"no [{profile}] profile in {path} (profiles: {known})")
        return {}
    if not isinstance(section, dict):
        raise CliError(f"[{profile}] in {path} must be a table with endpoint and api_key")
    for key in ("endpoint", "api_key"):
        if key in section and not isinstance(section[key], str):
            raise CliError(f"{key} in [{profile}] of {path} must be a string")
    return section


def offline_api_url() -> str | None:
    """The API URL the last offline deploy saved (.offline/outputs.json), if any."""
    try:
        from opspawn.offline.stack import load_outputs
    except ImportError:  # installed without the offline driver's dependencies
        return None
    outputs = load_outputs()
    return outputs.api_url if outputs else None


def resolve_settings(args: argparse.Namespace) -> Settings:
    """Flags > environment > config file profile > the offline stack (endpoint only)."""
    flag_profile = getattr(args, "profile", None)
    profile = flag_profile or os.environ.get(ENV_PROFILE) or DEFAULT_PROFILE
    path = config_file_path()
    section = _load_profile(path, profile, explicit_profile=profile != DEFAULT_PROFILE)
    in_file = f"config file {path} [{profile}]"

    def pick(flag: str, env: str, key: str) -> Setting:
        if value := getattr(args, flag, None):
            return Setting(value, f"flag --{flag.replace('_', '-')}")
        if value := os.environ.get(env):
            return Setting(value, f"environment {env}")
        if value := section.get(key):
            return Setting(value, in_file)
        return Setting(None, "not set")

    endpoint = pick("endpoint", ENV_ENDPOINT, "endpoint")
    api_key = pick("api_key", ENV_API_KEY, "api_key")
    offline = False
    if endpoint.value is None and (url := offline_api_url()):
        endpoint, offline = Setting(url, "offline stack (.offline/outputs.json)"), True
    return Settings(endpoint, api_key, path, profile, offline)


def _client(settings: Settings) -> OpspawnClient:
    if not settings.endpoint.value:
        raise CliError(
            "no endpoint configured. Set one of:\n"
            "  --endpoint URL                 (flag)\n"
            f"  {ENV_ENDPOINT}=URL         (environment)\n"
            f'  endpoint = "URL" under [{settings.profile}] in {settings.config_file}\n'
            "or start and deploy the offline stack (`make up && make deploy`)."
        )
    endpoint = settings.endpoint.value
    if not endpoint.startswith(("http://", "https://")):
        raise CliError(
            f"endpoint {endpoint!r} ({settings.endpoint.source}) must start with https://"
        )
    return OpspawnClient(
        endpoint,
        api_key=settings.api_key.value,
        timeout_s=HTTP_TIMEOUT_SECONDS,
        transport=transport_factory(),
    )


# --- output ----------------------------------------------------------------------------


@dataclass
class Io:
    out: Console
    err: Console
    settings: Settings | None = None

    def client(self, args: argparse.Namespace) -> OpspawnClient:
        self.settings = self.settings or resolve_settings(args)
        return _client(self.settings)


def _console(stderr: bool = False) -> Console:
    # Errors are soft-wrapped: a long URL or message stays one line.
    console = Console(highlight=False, stderr=stderr, soft_wrap=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 120  # piped or captured: don't squeeze tables into 80 columns
    return console


def _print_json(data: Any) -> None:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _when(timestamp: str | None) -> str:
    return (timestamp or "")[:19].replace("T", " ")


def _duration(ms: int) -> str:
    if not ms:
        return ""
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _short(text: str | None, limit: int = 60) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- the task options shared by submit and schedules create -------------------------------

#: Request field → the flag that sets it, so validation errors name what the user typed.
FIELD_FLAGS = {
    "goal": "GOAL",
    "model": "--model",
    "fallback_models": "--fallback-model",
    "tools": "--tools",
    "max_turns": "--max-turns",
    "max_tokens": "--max-tokens",
    "max_cost_usd": "--max-cost",
    "scripted_turns": "--scripted-turns",
    "memory_scope": "--memory-scope",
    "memory": "--memory",
    "plan": "--plan",
    "output_schema": "--output-schema",
}


def _json_argument(flag: str, raw: str) -> Any:
    """A flag's JSON value, inline or `@file`; a clear error naming the flag."""
    if raw.startswith("@"):
        try:
            raw = Path(raw[1:]).expanduser().read_text()
        except OSError as error:
            raise CliError(f"{flag}: cannot read {raw[1:]}: {error.strerror}") from None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise CliError(f"{flag} is not JSON: {error}") from None


def _scripted_turns(raw: str | None) -> list[Any] | None:
    if raw is None:
        return None
    turns = _json_argument("--scripted-turns", raw)
    if not isinstance(turns, list):
        raise CliError("--scripted-turns must be a JSON list of turns")
    return turns


def _output_schema(raw: str | None) -> dict[str, Any] | None:
    """--output-schema: a JSON Schema object, inline or @file."""
    if raw is None:
        return None
    schema = _json_argument("--output-schema", raw)
    if not isinstance(schema, dict):
        raise CliError("--output-schema must be a JSON object (a JSON Schema)")
    return schema


def _task_request(args: argparse.Namespace) -> SubmitTaskRequest:
    goal = args.goal
    if goal == "-":
        goal = sys.stdin.read()
    tools = [t.strip() for item in args.tools or [] for t in item.split(",") if t.strip()]
    body: dict[str, Any] = {
        "goal": goal,
        "model": args.model,
        "fallback_models": args.fallback_models,
        "tools": tools or None,
        "max_turns": args.max_turns,
        "max_tokens": args.max_tokens,
        "max_cost_usd": args.max_cost,
        "scripted_turns": _scripted_turns(args.scripted_turns),
        "memory_scope": args.memory_scope,
        "memory": args.memory,
        "plan": getattr(args, "plan", None),
        "output_schema": _output_schema(getattr(args, "output_schema", None)),
    }
    try:
        return SubmitTaskRequest.model_validate({k: v for k, v in body.items() if v is not None})
    except ValidationError as error:
        fields = []
        for problem in error.errors():
            loc = [str(part) for part in problem["loc"]]
            name = FIELD_FLAGS.get(loc[0], loc[0]) if loc else "request"
            where = name + "".join(f"[{part}]" for part in loc[1:])
            fields.append((where, problem["msg"]))
        raise CliError("the task request is not valid", fields) from None


def _add_task_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("task options")
    group.add_argument(
        "--tools", action="append", metavar="A,B", help="tools the task may use (default: all)"
    )
    group.add_argument("--model", metavar="PROVIDER:MODEL", help="e.g. openai:gpt-4o-mini")
    group.add_argument(
        "--fallback-model",
        dest="fallback_models",
        action="append",
        metavar="PROVIDER:MODEL",
        help="tried in order when the model keeps failing (repeatable)",
    )
    group.add_argument("--max-turns", type=int, metavar="N", help="model calls at most (1-50)")
    group.add_argument("--max-tokens", type=int, metavar="N", help="input + output tokens at most")
    group.add_argument("--max-cost", type=float, metavar="USD", help="USD on model calls at most")
    group.add_argument(
        "--memory-scope",
        metavar="SCOPE",
        help="the scope of the tenant's long-term memories the task recalls and writes "
        "(e.g. an end user's id; default: the tenant's unscoped memories)",
    )
    group.add_argument(
        "--memory",
        choices=["off", "recall", "auto"],
        help="long-term memory: recall (default) the memories nearest the goal; auto also "
        "save the durable facts the task learnt at its end; off neither",
    )
    group.add_argument(
        "--plan", choices=["auto", "always", "never"],
        help="plan before the first turn (default: the deployment's); `auto`: when the goal "
        "needs more than one step",
    )
    group.add_argument(
        "--output-schema",
        metavar="JSON|@FILE",
        help="a JSON Schema the final answer must match (shown as answer_json)",
    )
    group.add_argument(
        "--scripted-turns",
        metavar="JSON|@FILE",
        help="for tests and demos on the offline stack: the replies model 'scripted' plays "
        "(a JSON list of turns, inline or @file)",
    )


# --- following a task ----------------------------------------------------------------------


def _follow(io: Io, client: OpspawnClient, task_id: str, timeout_s: float, as_json: bool) -> int:
    # With --json, stdout carries only the JSON: progress goes to stderr.
    progress = io.err if as_json else io.out
    try:
        view = follow(
            lambda: client.get(task_id),
            progress,
            timeout_s=timeout_s,
            poll_s=POLL_SECONDS,
            on_update=progress_printer(progress),
        )
    except TimeoutError as error:
        io.err.print(
            f"[yellow]{escape(str(error))}[/]; keep following with `opspawn watch {task_id}` "
            f"or stop it with `opspawn cancel {task_id}`"
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        io.err.print(f"stopped watching; the task goes on: `opspawn watch {task_id}`")
        return EXIT_INTERRUPTED
    return _finished(io, view, as_json)


def _finished(io: Io, view: TaskView, as_json: bool) -> int:
    if as_json:
        _print_json(view)
    else:
        if view.answer_json is not None:
            io.out.rule("[bold green]answer_json")
            io.out.print(json.dumps(view.answer_json, indent=2, ensure_ascii=False),
                         markup=False, soft_wrap=True)
            io.out.rule()
        elif view.answer:
            io.out.rule("[bold green]answer")
            io.out.print(view.answer, markup=False, soft_wrap=True)
            io.out.rule()
        io.out.print(summary_table(view))
    if view.status is TaskStatus.SUCCEEDED:
        return EXIT_OK
    reason = f": {view.error}" if view.error else ""
    io.err.print(f"task {view.task_id} ended {view.status.value}{escape(reason)}")
    return EXIT_TASK_NOT_SUCCEEDED


# --- commands ------------------------------------------------------------------------------


def cmd_submit(args: argparse.Namespace, io: Io) -> int:
    request = _task_request(args)
    with io.client(args) as client:
        task = client.submit(request, idempotency_key=args.idempotency_key)
        if not args.wait:
            if args.json:
                _print_json(task)
            else:
                io.out.print(f"task [bold]{task.task_id}[/] {task.status.value} ({task.model})")
                io.out.print(f"follow it with `opspawn watch {task.task_id}`")
            return EXIT_OK
        (io.err if args.json else io.out).print(
            f"task [bold]{task.task_id}[/] accepted ({task.model}); following it"
        )
        return _follow(io, client, task.task_id, args.timeout, args.json)


def cmd_reply(args: argparse.Namespace, io: Io) -> int:
    content = sys.stdin.read() if args.text == "-" else args.text
    with io.client(args) as client:
        try:
            accepted = client.reply(args.task_id, content,
                                    on_busy="enqueue" if args.enqueue else "reject",
                                    idempotency_key=args.idempotency_key)
        except ApiError as error:
            if error.status_code != 409:
                raise
            message = error.body.get("message") if isinstance(error.body, dict) else None
            io.err.print(f"[red]cannot reply to {args.task_id}:[/] {escape(message or '')}")
            return EXIT_ERROR
        where = (f"run {accepted.run}" if accepted.state == "started"
                 else "queued behind the active run")
        if not args.wait:
            if args.json:
                _print_json(accepted)
            else:
                io.out.print(f"follow-up {accepted.follow_up} of task [bold]{args.task_id}[/]: "
                             f"{where}")
                io.out.print(f"follow it with `opspawn watch {args.task_id}`")
            return EXIT_OK
        (io.err if args.json else io.out).print(
            f"follow-up {accepted.follow_up} of task [bold]{args.task_id}[/]: {where}; "
            "following it"
        )
        return _follow_reply(io, client, args.task_id, accepted.follow_up, args.timeout,
                             args.json)


def _follow_reply(io: Io, client: OpspawnClient, task_id: str, follow_up: int,
                  timeout_s: float, as_json: bool) -> int:
    """Follow the run answering `follow_up`: until it begins, the message is QUEUED."""

    def fetch() -> TaskView:
        view = client.get(task_id)
        answered = any(run.follow_up == follow_up for run in view.runs)
        if not answered and (not view.status.is_terminal or view.queued_follow_ups):
            return view.model_copy(update={"status": TaskStatus.QUEUED})
        return view

    progress = io.err if as_json else io.out
    try:
        view = follow(fetch, progress, timeout_s=timeout_s, poll_s=POLL_SECONDS,
                      on_update=progress_printer(progress))
    except TimeoutError as error:
        io.err.print(f"[yellow]{escape(str(error))}[/]; keep following with "
                     f"`opspawn watch {task_id}`")
        return EXIT_ERROR
    except KeyboardInterrupt:
        io.err.print(f"stopped watching; the task goes on: `opspawn watch {task_id}`")
        return EXIT_INTERRUPTED
    return _finished(io, view, as_json)


def cmd_watch(args: argparse.Namespace, io: Io) -> int:
    with io.client(args) as client:
        return _follow(io, client, args.task_id, args.timeout, args.json)


def cmd_get(args: argparse.Namespace, io: Io) -> int:
    with io.client(args) as client:
        view = client.get(args.task_id)
    if args.json:
        _print_json(view)
        return EXIT_OK
    io.out.print(f"[bold]{view.task_id}[/]  {view.status.value}  created {_when(view.created_at)}")
    io.out.print(f"goal    {escape(_short(view.goal, 200))}")
    turns = 0
    for message in view.messages:
        turns += message.role == "assistant"
        io.out.print(describe(message, turns))
    if len(view.runs) > 1 or view.queued_follow_ups:
        for run in view.runs:
            what = f"follow-up {run.follow_up}" if run.follow_up else "the goal"
            io.out.print(f"run {run.run}   {what}: {run.status.value}, turns "
                         f"{run.first_turn + 1}-{run.last_turn}, "
                         f"${run.usage.cost_usd:.6f}")
        if view.queued_follow_ups:
            io.out.print(f"queued  {view.queued_follow_ups} follow-up(s)")
    for line in plan_lines(view.plan_steps or []):
        io.out.print(line)
    for approval in view.approvals:
        arguments = escape(_short(json.dumps(approval.arguments), 80))
        line = f"approval {approval.approval_id}  {escape(approval.tool)}({arguments})"
        io.out.print(f"{line}  {escape(approval.status)}")
    if view.answer:
        io.out.rule("[bold green]answer")
        io.out.print(view.answer, markup=False, soft_wrap=True)
        io.out.rule()
    io.out.print(summary_table(view))
    return EXIT_OK


def cmd_list(args: argparse.Namespace, io: Io) -> int:
    with io.client(args) as client:
        if args.all:
            items = list(client.iter_tasks(status=args.status, limit=args.limit))
            next_cursor = None
        else:
            page = client.list_tasks(status=args.status, limit=args.limit, cursor=args.cursor)
            items, next_cursor = page.items, page.next_cursor
    if args.json:
        _print_json(
            {"items": [t.model_dump(mode="json") for t in items], "next_cursor": next_cursor}
        )
        return EXIT_OK
    table = Table(title=f"tasks ({len(items)})", title_justify="left")
    for column in ("task", "status", "model", "turn", "cost (USD)", "created"):
        table.add_column(column, no_wrap=True)
    table.add_column("goal", overflow="ellipsis", no_wrap=True, max_width=50)
    for task in items:
        table.add_row(
            task.task_id,
            task.status.value,
            task.model,
            str(task.turn),
            f"{task.usage.cost_usd:.6f}",
            _when(task.created_at),
            _short(task.goal),
        )
    io.out.print(table)
    if next_cursor:
        io.out.print(f"more: --all, or --cursor {next_cursor}", markup=False)
    return EXIT_OK


def cmd_events(args: argparse.Namespace, io: Io) -> int:
    with io.client(args) as client:
        events = client.events(args.task_id)
    if args.json:
        _print_json({"items": [e.model_dump(mode="json") for e in events]})
        return EXIT_OK
    table = Table(title=f"task {args.task_id}: {len(events)} events", title_justify="left")
    table.add_column("kind", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("turn", justify="right")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("tokens in/out", justify="right", no_wrap=True)
    table.add_column("cost (USD)", justify="right", no_wrap=True)
    table.add_column("error", overflow="fold")
    for event in events:
        usage = event.usage
        table.add_row(
            event.kind,
            escape(event.name),
            str(event.turn),
            _duration(event.duration_ms),
            f"{usage.input_tokens}/{usage.output_tokens}" if usage else "",
            f"{usage.cost_usd:.6f}" if usage else "",
            escape(event.error or ""),
        )
    io.out.print(table)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, io: Io) -> int:
    with io.client(args) as client:
        try:
            task = client.cancel(args.task_id)
        except ApiError as error:
            if error.status_code != 409:
                raise
            message = error.body.get("message") if isinstance(error.body, dict) else None
            io.err.print(
                f"[red]cannot cancel {args.task_id}:[/] "
                f"{escape(message or 'the task has already finished')}"
            )
            return EXIT_ERROR
    if args.json:
        _print_json(task)
    else:
        io.out.print(f"task {task.task_id} {task.status.value}")
    return EXIT_OK


def cmd_approve(args: argparse.Namespace, io: Io) -> int:
    with io.client(args) as client:
        answer = client.approve(
            args.task_id, args.approval_id, approve=not args.deny, reason=args.reason
        )
    if args.json:
        _print_json(answer)
    else:
        verb = "denied" if args.deny else "approved"
        io.out.print(f"{verb} {args.approval_id} of task {args.task_id}")
    return EXIT_OK


def cmd_schedules_create(args: argparse.Namespace, io: Io) -> int:
    request = _task_request(args)
    with io.client(args) as client:
        schedule = client.create_schedule(args.name, args.expression, request)
    if args.json:
        _print_json(schedule)
    else:
        io.out.print(
            f"schedule [bold]{schedule.schedule_id}[/] created: {escape(schedule.name)} "
            f"{escape(schedule.schedule_expression)}"
        )
    return EXIT_OK


def cmd_schedules_list(args: argparse.Namespace, io: Io) -> int:
    with io.client(args) as client:
        schedules = client.list_schedules()
    if args.json:
        _print_json({"items": [s.model_dump(mode="json") for s in schedules]})
        return EXIT_OK
    table = Table(title=f"schedules ({len(schedules)})", title_justify="left")
    for column in ("schedule", "name", "expression", "model", "created"):
        table.add_column(column, no_wrap=True)
    table.add_column("goal", overflow="ellipsis", no_wrap=True, max_width=50)
    for schedule in schedules:
        table.add_row(
            schedule.schedule_id,
            escape(schedule.name),
            escape(schedule.schedule_expression),
            escape(str(schedule.task.get("model") or "")),
            _when(schedule.created_at),
            escape(_short(str(schedule.task.get("goal") or ""))),
        )
    io.out.print(table)
    return EXIT_OK


def cmd_schedules_delete(args: argparse.Namespace, io: Io) -> int:
    with io.client(args) as client:
        client.delete_schedule(args.schedule_id)
    io.out.print(f"schedule {args.schedule_id} deleted")
    return EXIT_OK


def cmd_memory_add(args: argparse.Namespace, io: Io) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    with io.client(args) as client:
        remembered = client.remember(text, tags=args.tag or [], scope=args.scope)
    if args.json:
        _print_json(remembered)
    elif remembered.created:
        io.out.print(f"memory [bold]{remembered.memory.memory_id}[/] saved")
    else:
        io.out.print(f"already known as [bold]{remembered.memory.memory_id}[/]: "
                     f"{escape(_short(remembered.memory.text))}")
    return EXIT_OK


def _memory_table(io: Io, title: str, memories: Sequence[Any], scored: bool) -> None:
    table = Table(title=title, title_justify="left")
    columns = ["memory", *(["score"] if scored else []), "created", "tags"]
    for column in columns:
        table.add_column(column, no_wrap=True)
    table.add_column("text", overflow="ellipsis", no_wrap=True, max_width=60)
    for memory in memories:
        score = [f"{memory.score:.3f}"] if scored else []
        table.add_row(memory.memory_id, *score, _when(memory.created_at),
                      escape(",".join(memory.tags)), escape(_short(memory.text)))
    io.out.print(table)


def cmd_memory_search(args: argparse.Namespace, io: Io) -> int:
    with io.client(args) as client:
        found = client.search_memories(args.query, limit=args.limit, scope=args.scope)
    if args.json:
        _print_json({"items": [m.model_dump(mode="json") for m in found]})
    else:
        _memory_table(io, f"memories nearest to {args.query!r} ({len(found)})", found, True)
    return EXIT_OK


def cmd_memory_list(args: argparse.Namespace, io: Io) -> int:
    with io.client(args) as client:
        found = client.search_memories(limit=args.limit, scope=args.scope)
    if args.json:
        _print_json({"items": [m.model_dump(mode="json", exclude={"score"}) for m in found]})
    else:
        _memory_table(io, f"memories, newest first ({len(found)})", found, False)
    return EXIT_OK


def cmd_memory_rm(args: argparse.Namespace, io: Io) -> int:
    with io.client(args) as client:
        client.delete_memory(args.memory_id)
    io.out.print(f"memory {args.memory_id} deleted")
    return EXIT_OK


def cmd_config_show(args: argparse.Namespace, io: Io) -> int:
    settings = io.settings = resolve_settings(args)
    key = settings.api_key
    data = {
        "endpoint": settings.endpoint.value,
        "endpoint_source": settings.endpoint.source,
        "api_key": "set" if key.value else "not set",  # never the key itself
        "api_key_source": key.source,
        "profile": settings.profile,
        "config_file": str(settings.config_file),
        "config_file_exists": settings.config_file.exists(),
    }
    if args.json:
        _print_json(data)
        return EXIT_OK
    table = Table(show_header=False, title="opspawn configuration", title_justify="left")
    table.add_row("endpoint", settings.endpoint.value or "[red]not set[/]")
    table.add_row("  from", settings.endpoint.source)
    table.add_row("api key", "set (hidden)" if key.value else "not set")
    table.add_row("  from", key.source)
    table.add_row("profile", settings.profile)
    exists = "" if data["config_file_exists"] else "  (does not exist)"
    table.add_row("config file", f"{settings.config_file}{exists}")
    io.out.print(table)
    return EXIT_OK


# --- parser ----------------------------------------------------------------------------------


def _connection_options() -> argparse.ArgumentParser:
    """Accepted before or after the command (SUPPRESS: an absent flag never overwrites)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument("--endpoint", default=argparse.SUPPRESS, metavar="URL", help="API base URL")
    group.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        metavar="KEY",
        help=f"API key (prefer {ENV_API_KEY} or the config file: flags show in `ps`)",
    )
    group.add_argument(
        "--profile", default=argparse.SUPPRESS, help="config file profile (default: default)"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _connection_options()
    parser = argparse.ArgumentParser(
        prog="opspawn",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        sub: Any, name: str, handler: Callable[[argparse.Namespace, Io], int], help_: str
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, help=help_, description=help_, parents=[common]
        )
        p.set_defaults(handler=handler)
        return p

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = command(commands, "submit", cmd_submit, "submit a goal (POST /tasks)")
    p.add_argument("goal", metavar="GOAL", help="what the agent should do ('-' reads stdin)")
    _add_task_options(p)
    p.add_argument("--idempotency-key", metavar="K", help="a retried submit with K runs once")
    p.add_argument("--wait", action="store_true", help="follow the task until it ends")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="with --wait")
    json_flag(p)

    p = command(commands, "reply", cmd_reply,
                "continue an ended task with a follow-up message, as a new run "
                "(POST /tasks/{id}/messages)")
    p.add_argument("task_id", metavar="ID")
    p.add_argument("text", metavar="TEXT", help="the message ('-' reads stdin)")
    p.add_argument("--enqueue", action="store_true",
                   help="while a run is active, queue the message (default: refused)")
    p.add_argument("--idempotency-key", metavar="K", help="a retried reply with K runs once")
    p.add_argument("--wait", action="store_true", help="follow the new run until it ends")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="with --wait")
    json_flag(p)

    p = command(commands, "watch", cmd_watch, "follow a task step by step until it ends")
    p.add_argument("task_id", metavar="ID")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S")
    json_flag(p)

    p = command(commands, "get", cmd_get, "a task: status, steps, answer, usage")
    p.add_argument("task_id", metavar="ID")
    json_flag(p)

    p = command(commands, "list", cmd_list, "your tasks, newest first")
    p.add_argument("--status", choices=[s.value for s in TaskStatus], type=str.upper)
    p.add_argument("--limit", type=int, default=20, metavar="N", help="tasks per page")
    p.add_argument("--all", action="store_true", help="follow the pages to the end")
    p.add_argument("--cursor", help="start at this page (from a previous list)")
    json_flag(p)

    p = command(commands, "events", cmd_events, "a task's timeline: model and tool calls")
    p.add_argument("task_id", metavar="ID")
    json_flag(p)

    p = command(commands, "cancel", cmd_cancel, "stop a task")
    p.add_argument("task_id", metavar="ID")
    json_flag(p)

    p = command(commands, "approve", cmd_approve, "approve (or --deny) a tool call that waits")
    p.add_argument("task_id", metavar="ID")
    p.add_argument("approval_id", metavar="APPROVAL_ID")
    p.add_argument("--deny", action="store_true", help="deny instead of approve")
    p.add_argument("--reason", metavar="R", help="why (shown to the agent)")
    json_flag(p)

    schedules = commands.add_parser(
        "schedules", help="recurring tasks", description="recurring tasks", parents=[common]
    )
    schedule_commands = schedules.add_subparsers(dest="schedules_command", required=True)
    p = command(schedule_commands, "create", cmd_schedules_create, "submit GOAL on a schedule")
    p.add_argument("name", metavar="NAME")
    p.add_argument("expression", metavar="EXPRESSION", help="'rate(1 hour)' or 'cron(0 8 * * ? *)'")
    p.add_argument("goal", metavar="GOAL", help="what the agent should do ('-' reads stdin)")
    _add_task_options(p)
    json_flag(p)
    p = command(schedule_commands, "list", cmd_schedules_list, "your schedules")
    json_flag(p)
    p = command(schedule_commands, "delete", cmd_schedules_delete, "delete a schedule")
    p.add_argument("schedule_id", metavar="ID")

    memory = commands.add_parser(
        "memory", help="long-term memories", description="long-term memories", parents=[common]
    )
    memory_commands = memory.add_subparsers(dest="memory_command", required=True)
    p = command(memory_commands, "add", cmd_memory_add, "remember TEXT")
    p.add_argument("text", metavar="TEXT", help="the fact to remember ('-' reads stdin)")
    p.add_argument("--tag", action="append", metavar="TAG", help="a tag (repeatable)")
    p.add_argument("--scope", metavar="SCOPE", help="the memory's scope (e.g. an end user)")
    json_flag(p)
    p = command(memory_commands, "search", cmd_memory_search, "memories nearest to QUERY")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--limit", type=int, default=5, metavar="N", help="at most N (1-50)")
    p.add_argument("--scope", metavar="SCOPE")
    json_flag(p)
    p = command(memory_commands, "list", cmd_memory_list, "memories, newest first")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (1-50)")
    p.add_argument("--scope", metavar="SCOPE")
    json_flag(p)
    p = command(memory_commands, "rm", cmd_memory_rm, "forget a memory")
    p.add_argument("memory_id", metavar="ID")

    config = commands.add_parser(
        "config", help="where the endpoint and key come from", parents=[common]
    )
    config_commands = config.add_subparsers(dest="config_command", required=True)
    p = command(config_commands, "show", cmd_config_show, "endpoint, key (hidden) and sources")
    json_flag(p)
    return parser


# --- errors and main -------------------------------------------------------------------------


def _redact(text: str, settings: Settings | None) -> str:
    key = settings.api_key.value if settings else None
    return text.replace(key, "****") if key and len(key) >= 4 else text


def _print_error(io: Io, message: str, fields: Sequence[tuple[str, str]] = ()) -> None:
    io.err.print(f"[bold red]error:[/] {escape(_redact(message, io.settings))}")
    for field, problem in fields:
        io.err.print(
            f"  {escape(_redact(field, io.settings))}: {escape(_redact(problem, io.settings))}"
        )


def _api_error(io: Io, error: ApiError) -> None:
    body = error.body
    if isinstance(body, dict):
        code = body.get("error") or "error"
        message = str(body.get("message") or body.get("Message") or code)
        fields = [
            (str(f.get("field", "?")), str(f.get("problem", "")))
            for f in body.get("fields") or []
            if isinstance(f, dict)
        ]
        _print_error(io, f"{message} ({code}, HTTP {error.status_code})", fields)
    else:
        _print_error(io, f"HTTP {error.status_code}: {_short(str(body), 300)}")
        message = str(body)
    if error.status_code in (401, 403):
        hint = (
            f"check the API key (--api-key, {ENV_API_KEY}, or api_key in the config file)"
            if "Missing Authentication Token" not in message
            else "no such route here: is the endpoint the API's base URL (ending in the stage)?"
        )
        io.err.print(hint)


def _connection_error(io: Io, error: httpx.HTTPError) -> None:
    settings = io.settings
    url = settings.endpoint.value if settings else "?"
    source = settings.endpoint.source if settings else "?"
    if isinstance(error, httpx.TimeoutException):
        _print_error(io, f"no answer from {url} within {HTTP_TIMEOUT_SECONDS:.0f} s ({source})")
        return
    _print_error(io, f"cannot reach {url} ({source}): {error}")
    parsed = urlparse(url or "")
    host = parsed.hostname or ""
    local = (settings and settings.from_offline_stack) or host in {"127.0.0.1", "localhost"}
    if not local and not host.endswith("localhost.localstack.cloud"):
        io.err.print("check the endpoint and your network")
        return
    try:
        from opspawn.offline import server

        up: bool | None = server.is_running(port=parsed.port)
    except Exception:  # the offline driver is missing or broken: say nothing about it
        up = None
    if up is False:
        io.err.print("the offline stack is not running: start it with `make up && make deploy`")
    elif up:
        io.err.print(
            "the offline stack is up but the API did not answer: redeploy with `make deploy` "
            "(logs: .offline/localstack.log)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    io = Io(out=_console(), err=_console(stderr=True))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 for bad usage, 0 for --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return int(args.handler(args, io))
    except CliError as error:
        _print_error(io, error.message, error.fields)
    except ApiError as error:
        _api_error(io, error)
    except httpx.HTTPError as error:
        _connection_error(io, error)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
