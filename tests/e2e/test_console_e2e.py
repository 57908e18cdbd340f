"""The web console (GET /console) in a real browser against the offline stack: headless
chromium (Debian's package) driven by Playwright, as a user would use it.

A tenant of its own signs in with its key once; tasks are submitted from the console's form
with the scripted model and watched to the end; a call that needs approval (the e2e policy:
http_fetch to 127.0.0.1, after a human's approval) is approved from the page, another task
waiting for one is cancelled from it; the task list refreshes by itself. Every test checks
that the key never appears in a URL, that nothing is fetched from another origin and that
the page logs no error (a Content-Security-Policy violation is one). Screenshots of each
page are saved under .test-output/console/ and their paths printed at the end.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from opspawn.client import OpspawnClient
from opspawn.offline.stack import StackOutputs
from tests.support.browser import VIEWPORT, launched_chromium, output_dir
from tests.support.loopback import LoopbackServer, Reply

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

TENANT = "console-e2e"
#: how long a task may take to reach a state (the page polls; this bounds a hang)
TASK_MS = 120_000

CALCULATOR_TURNS: list[dict[str, Any]] = [
    {"tool_calls": [
        {"name": "calculator", "arguments": {"expression": "17 * 23"}},
        {"name": "calculator", "arguments": {"expression": "2 ** 10"}},
    ]},
    {"tool_calls": [{"name": "calculator", "arguments": {"expression": "391 + 1024"}}]},
    {"content": "17 * 23 = 391 and 2 ** 10 = 1024; together 1415."},
]


@pytest.fixture(scope="module")
def console_url(offline_stack: StackOutputs) -> str:
    assert offline_stack.api_url
    return f"{offline_stack.api_url}/console"


@pytest.fixture(scope="module")
def key(new_api_key: Callable[[str], str]) -> str:
    return new_api_key(TENANT)


@pytest.fixture(scope="module")
def client(offline_stack: StackOutputs, key: str) -> Iterator[OpspawnClient]:
    """The API as the console's tenant sees it (to check what the page shows)."""
    with OpspawnClient(str(offline_stack.api_url), api_key=key) as api:
        yield api


@pytest.fixture(scope="module")
def screenshots(request: pytest.FixtureRequest) -> Iterator[dict[str, Path]]:
    taken: dict[str, Path] = {}
    yield taken
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\nconsole screenshots:")
        for name, path in taken.items():
            print(f"  {name}: {path}")


@pytest.fixture(scope="module")
def shots_dir() -> Path:
    return output_dir("console")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_chromium() as chromium:
        yield chromium


class Watched:
    """A page with what it did: every request's URL, every error it logged."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.urls: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)


@pytest.fixture
def watched(browser: Browser, console_url: str, key: str) -> Iterator[Watched]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    seen = Watched(page)
    try:
        yield seen
        origin = urlsplit(console_url)
        for url in seen.urls:
            assert key not in url, "the API key reached a URL"
            assert urlsplit(url)[:2] == origin[:2], f"fetched from another origin: {url}"
        assert key not in page.url
        assert page.evaluate("localStorage.length") == 0
        assert page.evaluate("sessionStorage.getItem('opspawn.apiKey')") == key
        assert seen.errors == []
    finally:
        context.close()


@pytest.fixture
def site() -> Iterator[LoopbackServer]:
    """The page http_fetch reaches once a call is approved: it records every request."""
    with LoopbackServer(lambda request: Reply(body=f"content of {request.path}")) as server:
        yield server


def _sign_in(page: Page, console_url: str, key: str, shot: Path | None = None) -> None:
    """Opens the console and gives it the key, from the keyboard (the field has focus)."""
    from playwright.sync_api import expect

    page.goto(console_url)
    field = page.get_by_label("API key")
    expect(field).to_be_focused()
    if shot:
        page.screenshot(path=str(shot), full_page=True)
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name="Tasks")).to_be_visible()
    expect(page.get_by_role("button", name="Forget key")).to_be_visible()


def _submit_from_form(page: Page, goal: str, turns: list[dict[str, Any]], *,
                      tools: str = "", shot: Path | None = None) -> str:
    """Fills the New task form (model `scripted`) and submits it; the task's id."""
    from playwright.sync_api import expect

    page.get_by_role("navigation", name="Main").get_by_role("link", name="New task").click()
    expect(page.get_by_role("heading", level=1, name="New task")).to_be_visible()
    page.get_by_label("Goal").fill(goal)
    page.get_by_label("Model", exact=True).fill("scripted")
    if tools:
        page.get_by_label("Tools", exact=True).fill(tools)
    page.get_by_text("Scripted model turns").click()
    page.get_by_label("Scripted turns (JSON list)").fill(json.dumps(turns))
    if shot:
        page.screenshot(path=str(shot), full_page=True)
    page.get_by_role("button", name="Submit task").click()
    page.wait_for_url(re.compile(r"#/tasks/[^/]+$"))
    task_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Task {task_id}")
    return task_id


def _status(page: Page) -> Any:
    return page.locator("#task-status")


def test_a_task_submitted_from_the_console_runs_to_its_answer(
    watched: Watched, console_url: str, key: str, client: OpspawnClient,
    shots_dir: Path, screenshots: dict[str, Path],
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    screenshots["sign-in"] = shots_dir / "sign-in.png"
    _sign_in(page, console_url, key, shot=screenshots["sign-in"])
    screenshots["new-task"] = shots_dir / "new-task.png"
    task_id = _submit_from_form(page, "What is 17 * 23 plus 2 ** 10?", CALCULATOR_TURNS,
                                tools="calculator", shot=screenshots["new-task"])

    expect(_status(page)).to_have_attribute("data-status", "SUCCEEDED", timeout=TASK_MS)
    view = client.get(task_id)
    assert view.status == "SUCCEEDED" and view.tools == ["calculator"]
    expect(page.locator("#summary .answer")).to_have_text(
        "17 * 23 = 391 and 2 ** 10 = 1024; together 1415.")
    # the conversation: three tool calls and their three results, folded
    calls = page.locator("#conversation details.call")
    expect(calls).to_have_count(6)
    expect(calls.first).not_to_have_attribute("open", "")
    calls.first.locator("summary").click()
    expect(calls.first.locator("pre")).to_have_text(
        json.dumps({"expression": "17 * 23"}, indent=2))
    # the waterfall: a bar per model call and per tool call, from the task's events
    waterfall = page.locator("#timeline svg.waterfall")
    expect(waterfall.locator('rect.bar[data-kind="model_call"]')).to_have_count(3)
    expect(waterfall.locator('rect.bar[data-kind="tool_call"]')).to_have_count(3)
    events = client.events(task_id)
    assert sum(e.kind == "model_call" for e in events) == 3
    expect(page.locator('#usage [data-usage="model calls"] .value')).to_have_text("3")
    # a finished task offers no cancel
    expect(page.get_by_role("button", name="Cancel task…")).to_have_count(0)
    screenshots["task"] = shots_dir / "task.png"
    page.screenshot(path=str(screenshots["task"]), full_page=True)


def test_a_failed_tool_call_is_drawn_as_an_error(
    watched: Watched, console_url: str, key: str,
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    _sign_in(page, console_url, key)
    _submit_from_form(page, "Divide by zero.", [
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1 / 0"}}]},
        {"content": "It cannot be done."},
    ])
    expect(_status(page)).to_have_attribute("data-status", "SUCCEEDED", timeout=TASK_MS)
    waterfall = page.locator("#timeline svg.waterfall")
    expect(waterfall.locator('rect.bar.error[data-kind="tool_call"]')).to_have_count(1)
    expect(waterfall.locator('rect.bar.error[data-kind="model_call"]')).to_have_count(0)
    expect(page.locator("#conversation .msg.role-tool.error summary")).to_contain_text(
        "Error from calculator")


def test_a_refused_key_is_said_so_and_not_kept(
    watched: Watched, console_url: str, key: str,
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    page.goto(console_url)
    page.get_by_label("API key").fill("ops_not_a_key_of_anyone")
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("alert")).to_have_text("This key was refused.")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("sessionStorage.length") == 0
    # the browser logs the refused request itself; it is the only error
    assert [e for e in watched.errors if "403" not in e] == []
    watched.errors.clear()
    _sign_in(page, console_url, key)  # the right one still works


def test_bad_input_is_shown_at_its_field(
    watched: Watched, console_url: str, key: str, client: OpspawnClient,
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    _sign_in(page, console_url, key)
    before = {t.task_id for t in client.list_tasks().items}
    page.get_by_role("navigation", name="Main").get_by_role("link", name="New task").click()
    page.get_by_role("button", name="Submit task").click()  # no goal: refused at once
    expect(page.get_by_label("Goal")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Goal")).to_be_focused()
    page.get_by_label("Goal").fill("Too many turns.")
    page.get_by_label("Max turns").fill("99")
    page.get_by_role("button", name="Submit task").click()  # the API's 400 names the field
    max_turns = page.get_by_label("Max turns")
    expect(max_turns).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-max_turns-problem")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Error 400")
    assert {t.task_id for t in client.list_tasks().items} == before
    assert [e for e in watched.errors if "400" not in e] == []
    watched.errors.clear()


def test_the_task_list_refreshes_by_itself_and_filters_by_status(
    watched: Watched, console_url: str, key: str, client: OpspawnClient,
    shots_dir: Path, screenshots: dict[str, Path],
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    _sign_in(page, console_url, key)
    # submitted elsewhere (the API) while the list is on screen: it appears, then finishes
    task_id = client.submit({"goal": "Say hello.", "model": "scripted",
                             "scripted_turns": [{"content": "Hello."}]}).task_id
    row = page.locator(f'tr[data-task-id="{task_id}"]')
    expect(row).to_be_visible(timeout=TASK_MS)
    expect(row.locator(".badge")).to_have_attribute("data-status", "SUCCEEDED", timeout=TASK_MS)
    # a refresh that changes the list keeps the keyboard's place
    link = page.get_by_role("link", name=task_id)
    link.focus()
    other = client.submit({"goal": "Say bye.", "model": "scripted",
                           "scripted_turns": [{"content": "Bye."}]}).task_id
    expect(page.locator(f'tr[data-task-id="{other}"]')).to_be_visible(timeout=TASK_MS)
    expect(link).to_be_focused()

    status = page.get_by_label("Status")
    status.select_option("SUCCEEDED")
    expect(row).to_be_visible()
    expect(page.locator("tbody .badge:not([data-status='SUCCEEDED'])")).to_have_count(0)
    assert page.url.endswith("#/tasks?status=SUCCEEDED")
    screenshots["task-list"] = shots_dir / "task-list.png"
    page.screenshot(path=str(screenshots["task-list"]), full_page=True)
    status.select_option("FAILED")
    expect(row).to_have_count(0)

    status.select_option("")
    link.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Task {task_id}")
    expect(page.get_by_role("heading", level=1)).to_be_focused()


def _fetch_turns(url: str) -> list[dict[str, Any]]:
    return [{"tool_calls": [{"name": "http_fetch", "arguments": {"url": url}}]},
            {"content": "Fetched."}]


def test_a_waiting_call_is_approved_from_the_console(
    watched: Watched, console_url: str, key: str, client: OpspawnClient,
    site: LoopbackServer, shots_dir: Path, screenshots: dict[str, Path],
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    url = f"http://127.0.0.1:{site.port}/approved-in-the-console"
    _sign_in(page, console_url, key)
    task_id = _submit_from_form(page, "Fetch the page.", _fetch_turns(url))

    card = page.locator("article.approval-card")
    expect(card).to_be_visible(timeout=TASK_MS)
    expect(_status(page)).to_have_attribute("data-status", "WAITING_APPROVAL")
    [approval] = client.get(task_id).approvals
    # exactly what will run: the tool, its arguments, their hash
    expect(card.locator(".approval-tool")).to_have_text("http_fetch")
    expect(card.locator(".approval-arguments")).to_have_text(json.dumps({"url": url}, indent=2))
    expect(card.locator(".approval-hash")).to_have_text(approval.model_dump()["args_hash"])
    screenshots["approval"] = shots_dir / "approval.png"
    page.screenshot(path=str(screenshots["approval"]), full_page=True)
    assert site.paths == []  # nothing runs before the decision

    card.get_by_label(re.compile("^Reason")).fill("checked the URL")
    card.get_by_role("button", name="Approve http_fetch").click()
    expect(_status(page)).to_have_attribute("data-status", "SUCCEEDED", timeout=TASK_MS)
    assert site.paths == ["/approved-in-the-console"]
    [decided] = client.get(task_id).approvals
    assert decided.model_dump()["reason"] == "checked the URL" and decided.status == "APPROVED"
    history = page.locator("#approval-history")
    expect(history.locator(".badge")).to_have_attribute("data-status", "APPROVED")
    # the wait for the decision is a step of the waterfall
    expect(page.locator('#timeline rect.bar[data-kind="approval"]')).to_have_count(1)


def test_a_waiting_task_is_cancelled_from_the_console(
    watched: Watched, console_url: str, key: str, client: OpspawnClient,
    site: LoopbackServer, shots_dir: Path, screenshots: dict[str, Path],
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    _sign_in(page, console_url, key)
    task_id = _submit_from_form(
        page, "Fetch a page nobody approves.",
        _fetch_turns(f"http://127.0.0.1:{site.port}/never"))
    expect(_status(page)).to_have_attribute("data-status", "WAITING_APPROVAL", timeout=TASK_MS)

    confirm = page.get_by_role("button", name="Yes, cancel it")
    expect(confirm).to_be_hidden()  # one click never cancels
    page.get_by_role("button", name="Cancel task…").click()
    keep = page.get_by_role("button", name="Keep it running")
    expect(keep).to_be_focused()  # the safe choice has focus
    confirm.click()
    expect(_status(page)).to_have_attribute("data-status", "CANCELLED", timeout=TASK_MS)
    assert client.get(task_id).status == "CANCELLED"
    expect(page.locator("article.approval-card")).to_be_hidden()
    screenshots["cancelled"] = shots_dir / "cancelled.png"
    page.screenshot(path=str(screenshots["cancelled"]), full_page=True)
    assert site.paths == []  # the call never ran


def test_a_follow_up_is_sent_from_the_console_and_runs(
    watched: Watched, console_url: str, key: str, client: OpspawnClient,
    shots_dir: Path, screenshots: dict[str, Path],
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    _sign_in(page, console_url, key)
    task_id = _submit_from_form(page, "Say hello.", [
        {"content": "Hello."}, {"content": "Hello again, as you asked."}])
    expect(_status(page)).to_have_attribute("data-status", "SUCCEEDED", timeout=TASK_MS)

    page.get_by_label("Message", exact=True).fill("Once more, please.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#follow-up-h ~ form [aria-live]")).to_contain_text("Follow-up 1 sent")
    runs = page.locator("#runs tbody tr")
    expect(runs).to_have_count(2, timeout=TASK_MS)
    expect(runs.nth(1).locator(".badge")).to_have_attribute("data-status", "SUCCEEDED",
                                                             timeout=TASK_MS)
    expect(page.locator("#conversation")).to_contain_text("Once more, please.")
    expect(page.locator("#conversation")).to_contain_text("Hello again, as you asked.")
    view = client.get(task_id)
    assert [r.status for r in view.runs] == ["SUCCEEDED", "SUCCEEDED"]
    assert view.answer == "Hello again, as you asked."
    screenshots["follow-up"] = shots_dir / "follow-up.png"
    page.screenshot(path=str(screenshots["follow-up"]), full_page=True)
def test_a_planned_task_shows_its_plan_and_its_json_answer(
    watched: Watched, console_url: str, key: str, client: OpspawnClient,
) -> None:
    from playwright.sync_api import expect

    steps = [{"title": "Add", "status": "completed"}, {"title": "Answer", "status": "completed"}]
    task = client.submit({
        "goal": "What is 2 + 2, as JSON?", "model": "scripted", "plan": "always",
        "output_schema": {"type": "object", "properties": {"sum": {"type": "integer"}},
                          "required": ["sum"]},
        "scripted_turns": [
            {"plan": ["Add", "Answer"]},
            {"tool_calls": [{"name": "update_plan", "arguments": {"steps": steps}}]},
            {"content": '{"sum": 4}'},
        ],
    })
    client.wait(task.task_id, timeout_s=TASK_MS / 1000, poll_s=0.3)
    page = watched.page
    _sign_in(page, console_url, key)
    page.goto(f"{console_url}#/tasks/{task.task_id}")
    expect(_status(page)).to_have_attribute("data-status", "SUCCEEDED", timeout=TASK_MS)
    items = page.locator("#plan li")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("Add")
    expect(items.first).to_contain_text("completed")
    expect(page.locator("#answer-json")).to_have_text(json.dumps({"sum": 4}, indent=2))


def test_a_task_shows_its_sub_tasks_and_a_sub_task_its_parent(
    watched: Watched, console_url: str, key: str, client: OpspawnClient,
    shots_dir: Path, screenshots: dict[str, Path],
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    _sign_in(page, console_url, key)
    turns = [
        {"tool_calls": [{"name": "delegate",
                         "arguments": {"tasks": [{"goal": "What is 2 + 2?"},
                                                 {"goal": "What is 3 + 3?"}]},
                         "child_scripts": [[{"content": "4"}], [{"content": "6"}]]}]},
        {"content": "4 and 6."},
    ]
    task_id = _submit_from_form(page, "Add twice, by sub-agents.", turns,
                                tools="delegate, calculator")
    expect(_status(page)).to_have_attribute("data-status", "SUCCEEDED", timeout=TASK_MS)
    children = [child.task_id for child in client.get(task_id).children]
    assert len(children) == 2
    rows = page.locator("#children li")
    expect(rows).to_have_count(2)
    for row, child_id in zip(rows.all(), children, strict=True):
        expect(row).to_have_attribute("data-child", child_id)
        expect(row.locator(".badge")).to_have_attribute("data-status", "SUCCEEDED")
    screenshots["children"] = shots_dir / "children.png"
    page.screenshot(path=str(screenshots["children"]), full_page=True)
    rows.first.get_by_role("link", name=children[0]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Task {children[0]}")
    expect(page.locator("#summary .answer")).to_have_text("4")
    page.locator("#summary").get_by_role("link", name=task_id).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Task {task_id}")
