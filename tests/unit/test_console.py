"""The web console's function (functions/console, agentkit.http.console): it serves exactly
the files it ships, public, under a strict Content-Security-Policy; the files load nothing
from elsewhere and never build HTML from text. The page itself is driven in a real browser
by tests/e2e/test_console_e2e.py."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from agentkit.http.console import CONTENT_SECURITY_POLICY, PAGE, ConsoleRoutes
from tests.support.aws import FakeLambdaContext, load_event, load_handler, load_template

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "functions" / "console" / "static"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def _request(path: str, asset: str | None = None) -> dict[str, Any]:
    """A public GET as API Gateway passes it: no authorizer context, no body."""
    event = load_event("tasks_get_task.json")
    event["requestContext"].pop("authorizer", None)
    event["resource"] = "/console/{asset}" if asset is not None else "/console"
    event["requestContext"]["resourcePath"] = event["resource"]
    event["path"] = path
    event["pathParameters"] = {"asset": asset} if asset is not None else None
    return event


@pytest.fixture
def console(aws_env: None) -> Any:
    return load_handler("console")


def _get(console: Any, path: str, asset: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = console.lambda_handler(_request(path, asset), FakeLambdaContext())
    return response


def _headers(response: dict[str, Any]) -> dict[str, str]:
    """The answer's headers, single- and multi-valued ones alike."""
    multi = {name: values[0] for name, values in (response.get("multiValueHeaders") or {}).items()}
    return {**multi, **(response.get("headers") or {})}


def test_get_console_answers_the_page_with_a_strict_policy(console: Any) -> None:
    response = _get(console, "/console")
    assert response["statusCode"] == 200
    headers = _headers(response)
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert response["body"] == (STATIC / PAGE).read_text()
    policy = headers["Content-Security-Policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe" not in policy and "*" not in policy and "http" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_console_with_a_trailing_slash_redirects_to_the_page(console: Any) -> None:
    """The page names its files relative to /console: at /console/ it would load none."""
    response = _get(console, "/console/")
    assert response["statusCode"] == 308
    # relative: /v1/console/ -> /v1/console, whatever the stage or base path
    assert _headers(response)["Location"] == "../console"


@pytest.mark.parametrize(("asset", "content_type"), [
    ("app.js", "text/javascript; charset=utf-8"),
    ("app.css", "text/css; charset=utf-8"),
    ("favicon.svg", "image/svg+xml"),
])
def test_each_file_is_served_with_its_type(console: Any, asset: str, content_type: str) -> None:
    response = _get(console, f"/console/{asset}", asset)
    assert response["statusCode"] == 200
    headers = _headers(response)
    assert headers["Content-Type"] == content_type
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response["body"] == (STATIC / asset).read_text()


@pytest.mark.parametrize("asset", ["nope.js", "app.py", "..%2Fapp.py", PAGE])
def test_anything_else_is_not_found(console: Any, asset: str) -> None:
    response = _get(console, f"/console/{asset}", asset)
    assert response["statusCode"] == 404
    body = json.loads(response["body"])
    assert body["error"] == "not_found" and asset in body["message"]


def test_only_known_file_types_are_shipped_and_the_page_is_required(tmp_path: Path) -> None:
    routes = ConsoleRoutes.from_directory(STATIC)
    assert set(routes.assets) == {"index.html", "app.js", "app.css", "favicon.svg"}
    (tmp_path / "app.js").write_text("")
    with pytest.raises(FileNotFoundError, match=PAGE):
        ConsoleRoutes.from_directory(tmp_path)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data


def test_the_page_has_no_inline_script_or_style_and_loads_only_its_own_files() -> None:
    page = _PageParser()
    page.feed((STATIC / PAGE).read_text())
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts == [{"type": "module", "src": "console/app.js"}]
    assert page.script_text.strip() == ""
    assert not [tag for tag, _ in page.tags if tag == "style"]
    for tag, attrs in page.tags:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], tag
        for name in ("src", "href"):
            value = attrs.get(name)
            # its own files, relative to /console, or an anchor in the page
            if value is not None:
                assert value.startswith(("console/", "#")), (tag, value)


@pytest.mark.parametrize("asset", ["index.html", "app.js", "app.css", "favicon.svg"])
def test_no_file_names_another_origin(asset: str) -> None:
    text = (STATIC / asset).read_text().replace(SVG_NAMESPACE, "")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE)
    assert "@import" not in text and "url(" not in text


def test_the_script_sets_text_never_html() -> None:
    """Goals, answers, tool output are the API's text: the script only ever sets them as
    text, so none of it can become markup or script in the page."""
    script = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "localStorage"):
        assert sink not in script, sink


def test_the_template_serves_the_console_publicly_and_grants_it_nothing() -> None:
    function = load_template()["Resources"]["ConsoleFunction"]["Properties"]
    assert function["CodeUri"] == "functions/console/"
    assert "Policies" not in function  # files only: no table, no bucket, no state machine
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]): e["Properties"]
              for e in function["Events"].values()}
    assert set(routes) == {("get", "/console"), ("get", "/console/{asset}")}
    for props in routes.values():
        assert props["Auth"] == {"Authorizer": "NONE"}
        assert props["RestApiId"] == {"Ref": "AgentApi"}
