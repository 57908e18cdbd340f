"""Live progress of a task, one line per step, for the demo and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from agentkit.models import Message, TaskStatus, TaskView

_STATUS_STYLE = {
    TaskStatus.SUCCEEDED: "bold green",
    TaskStatus.FAILED: "bold red",
    TaskStatus.CANCELLED: "yellow",
    TaskStatus.BUDGET_EXCEEDED: "yellow",
}


def _short(text: str | None, limit: int = 100) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe(message: Message, turn_of_assistant: int) -> str:
    if message.role == "system":
        return "[cyan]plan [/]   conversation opened with the agent's instructions"
    if message.role == "user":
        return f"[cyan]goal [/]   {_short(message.content)}"
    if message.role == "assistant" and message.tool_calls:
        calls = ", ".join(
            f"{call.name}({_short(json.dumps(call.arguments), 60)})" for call in message.tool_calls
        )
        return f"[magenta]model[/]   turn {turn_of_assistant} → {calls}"
    if message.role == "assistant":
        return f"[magenta]model[/]   turn {turn_of_assistant} → final answer"
    style = "red" if message.is_error else "green"
    return f"[{style}]tool [/]   {message.name} → {_short(message.content)}"


def progress_printer(console: Console) -> Callable[[TaskView], None]:
    """An on_update callback that prints each new step once."""
    seen = 0
    last_status: TaskStatus | None = None

    def on_update(view: TaskView) -> None:
        nonlocal seen, last_status
        if view.status != last_status:
            style = _STATUS_STYLE.get(view.status, "bold")
            console.print(f"[bold]status[/]  [{style}]{view.status.value}[/]")
            last_status = view.status
        assistant_turns = sum(1 for m in view.messages[:seen] if m.role == "assistant")
        for message in view.messages[seen:]:
            if message.role == "assistant":
                assistant_turns += 1
            console.print(describe(message, assistant_turns))
        seen = len(view.messages)

    return on_update


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
    table.add_row("cost (USD)", f"{usage.cost_usd:.6f}")
    if view.error:
        table.add_row("reason", view.error)
    return table
