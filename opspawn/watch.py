"""Live progress of a task, one line per step, for the demo and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentkit.models.api import TaskView
from agentkit.models.domain import Message, PlanStep, TaskStatus

_STATUS_STYLE = {
    TaskStatus.SUCCEEDED: "bold green",
    TaskStatus.FAILED: "bold red",
    TaskStatus.CANCELLED: "yellow",
    TaskStatus.BUDGET_EXCEEDED: "yellow",
}


def _short(text: str | None, limit: int = 100) -> str:
    """One line of at most `limit` characters, escaped for rich markup (content is data)."""
    flat = " ".join((text or "").split())
    return escape(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def describe(message: Message, turn_of_assistant: int) -> str:
    if message.role == "system":
        return "[cyan]plan [/]   conversation opened with the agent's instructions"
    if message.role == "user":  # the goal, or later a follow-up (a new run)
        label = "goal " if turn_of_assistant == 0 else "reply"
        return f"[cyan]{label}[/]   {_short(message.content)}"
    if message.role == "assistant" and message.tool_calls:
        calls = ", ".join(
            f"{escape(call.name)}({_short(json.dumps(call.arguments), 60)})"
            for call in message.tool_calls
        )
        return f"[magenta]model[/]   turn {turn_of_assistant} → {calls}"
    if message.role == "assistant":
        return f"[magenta]model[/]   turn {turn_of_assistant} → final answer"
    style = "red" if message.is_error else "green"
    return f"[{style}]tool [/]   {escape(message.name or '')} → {_short(message.content)}"


_STEP_MARK = {"pending": "[dim]\\[ ][/]", "in_progress": "[yellow]\\[~][/]",
              "completed": "[green]\\[x][/]", "skipped": "[dim]\\[-][/]"}


def plan_lines(steps: list[PlanStep], before: list[PlanStep] | None = None) -> list[str]:
    """The plan as a checklist: every step the first time (`before` None), then the steps
    whose status or title changed since `before` (a tick)."""
    lines = []
    for number, step in enumerate(steps, start=1):
        old = before[number - 1] if before is not None and number <= len(before) else None
        if before is not None and old == step:
            continue
        lines.append(f"[cyan]plan [/]   {_STEP_MARK[step.status]} {number}. {_short(step.title)}")
    return lines


def plan_progress(steps: list[PlanStep] | None) -> str:
    """`2/3 steps done` ('' without a plan)."""
    if not steps:
        return ""
    done = sum(1 for step in steps if step.status in ("completed", "skipped"))
    return f"{done}/{len(steps)} steps done"


def progress_printer(console: Console) -> Callable[[TaskView], None]:
    """An on_update callback that prints each new step once, and the plan as a checklist
    that ticks as its steps complete."""
    seen = 0
    shown_plan: list[list[PlanStep] | None] = [None]
    last_status: TaskStatus | None = None
    announced: set[str] = set()
    announced_wait: list[str | None] = [None]

    def on_update(view: TaskView) -> None:
        nonlocal seen, last_status
        status_changed = view.status != last_status
        last_status = view.status
        # A status change comes before the steps it brings, except the end: the last
        # steps (the final answer) come before "SUCCEEDED".
        if status_changed and not view.status.is_terminal:
            print_status(view.status)
        assistant_turns = sum(1 for m in view.messages[:seen] if m.role == "assistant")
        for message in view.messages[seen:]:
            if message.role == "assistant":
                assistant_turns += 1
            console.print(describe(message, assistant_turns))
        seen = len(view.messages)
        steps = getattr(view, "plan_steps", None)
        if steps and steps != shown_plan[0]:
            for line in plan_lines(steps, shown_plan[0]):
                console.print(line)
            shown_plan[0] = list(steps)
        # Tool calls waiting for a human (opspawn.client.TaskDetail carries them).
        for approval in getattr(view, "approvals", None) or []:
            if approval.status.upper() != "PENDING" or approval.approval_id in announced:
                continue
            announced.add(approval.approval_id)
            arguments = _short(json.dumps(approval.arguments), 60)
            command = f"opspawn approve {view.task_id} {approval.approval_id} [--deny]"
            console.print(
                f"[yellow]approve[/] {escape(approval.tool)}({arguments}) waits: {escape(command)}"
            )
        # Waiting for a provider (429, limiter, breaker): once per wait, with its reason.
        waiting = getattr(view, "waiting", None)
        if waiting is not None and waiting.until != announced_wait[0]:
            announced_wait[0] = waiting.until
            console.print(f"[yellow]wait[/]    {describe_wait(view)}")
        if status_changed and view.status.is_terminal:
            print_status(view.status)

    def print_status(status: TaskStatus) -> None:
        style = _STATUS_STYLE.get(status, "bold")
        console.print(f"[bold]status[/]  [{style}]{status.value}[/]")

    return on_update


def describe_wait(view: TaskView) -> str:
    """`openai rate_limited: calling again at 12:00:31 UTC (waited 40 s of 3600 s)`."""
    waiting = view.waiting
    if waiting is None:
        return ""
    until = waiting.until[11:19] if len(waiting.until) >= 19 else waiting.until
    patience = f" of {view.max_wait_seconds} s" if view.max_wait_seconds is not None else ""
    return escape(
        f"{waiting.provider} {waiting.reason}: calling again at {until} UTC "
        f"(waited {view.waited_seconds} s{patience})"
    )


def status_line(view: TaskView, elapsed_s: float) -> str:
    """The spinner text while a task runs: status, turn, elapsed time (and what it waits
    for)."""
    waiting = f"  [yellow]waiting: {describe_wait(view)}[/]" if view.waiting else ""
    progress = plan_progress(view.plan_steps)
    planned = f"  {progress}" if progress else ""
    return (
        f"[bold]{view.status.value}[/]  turn {view.turn}/{view.max_turns}{planned}  "
        f"{elapsed_s:.1f} s{waiting}  [dim]{escape(view.task_id)}[/]"
    )


def follow(
    fetch: Callable[[], TaskView],
    console: Console,
    *,
    timeout_s: float = 120.0,
    poll_s: float = 0.5,
    on_update: Callable[[TaskView], None] | None = None,
) -> TaskView:
    """Poll `fetch` until the task ends, with a live spinner line (status, turn, elapsed)
    on a terminal and `on_update` (default: progress_printer) for every new state.

    Raises TimeoutError when the task is still running after `timeout_s`."""
    on_update = on_update or progress_printer(console)
    began = time.monotonic()
    last: tuple[object, ...] | None = None
    with console.status("waiting for the task…", spinner="dots") as spinner:
        while True:
            view = fetch()
            approvals = tuple(
                (a.approval_id, a.status) for a in getattr(view, "approvals", None) or []
            )
            waiting = view.waiting.until if view.waiting else None
            plan = tuple((step.title, step.status) for step in view.plan_steps or [])
            marker = (view.status, view.turn, len(view.messages), approvals, waiting, plan)
            if marker != last:
                on_update(view)
                last = marker
            elapsed = time.monotonic() - began
            if view.status.is_terminal:
                return view
            spinner.update(status_line(view, elapsed))
            if elapsed > timeout_s:
                raise TimeoutError(
                    f"task {view.task_id} still {view.status.value} after {timeout_s:.0f} s"
                )
            time.sleep(poll_s)


def summary_table(view: TaskView) -> Table:
    table = Table(title=f"task {view.task_id}", show_header=False)
    table.add_row("status", view.status.value)
    table.add_row("model", view.model)
    table.add_row("turns", f"{view.turn} of at most {view.max_turns}")
    usage = view.usage
    table.add_row(
        "tokens in / out / cached",
        f"{usage.input_tokens} / {usage.output_tokens} / {usage.cached_tokens}",
    )
    table.add_row("model calls", str(usage.model_calls))
    if view.plan_steps:
        table.add_row("plan", plan_progress(view.plan_steps))
    table.add_row("cost (USD)", f"{usage.cost_usd:.6f}")
    if view.error:
        table.add_row("reason", view.error)
    return table
