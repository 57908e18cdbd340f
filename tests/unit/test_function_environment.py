"""Each function's environment in template.yaml matches what its settings model reads.

For every function (Globals' variables plus its own), its `<Name>Settings` (agentkit.config,
the model its app.py loads) is read from exactly that environment, with a mapping that
records every variable asked for: the model must load (a required variable missing fails
it, naming the variable), and every variable the template sets must be read by the model
or by Powertools (its Logger and Metrics read the POWERTOOLS_* ones). Variables a model
reads that the template leaves unset keep their defaults.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import agentkit.config
import agentkit.config.memory
import agentkit.config.model_calls
import agentkit.config.tools
from agentkit.config import SettingsPart
from tests.support.aws import ROOT, load_template

#: Read by Powertools, not by a settings model: the variable → what in app.py reads it.
POWERTOOLS_VARIABLES = {
    "POWERTOOLS_SERVICE_NAME": ("Logger(",),
    "POWERTOOLS_LOG_LEVEL": ("Logger(",),
    # Powertools Metrics, or agentkit.observability.metrics (EMF lines of their own)
    "POWERTOOLS_METRICS_NAMESPACE": ("Metrics(", "task_end("),
    # agentkit.observability.tracing: the handler's decorator decides whether to trace
    "POWERTOOLS_TRACE_DISABLED": ("@traced",),
}

#: Read by a library every function imports, not by anything in app.py.
LIBRARY_VARIABLES = {
    # pydantic: no plugins, so the first model built scans no package's entry points
    "PYDANTIC_DISABLE_PLUGINS",
}


class RecordingEnviron(Mapping[str, str]):
    """An environment that remembers which variables were asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        # A model that lists the environment could read anything: this check needs names.
        raise AssertionError("a settings model iterated the environment")

    def __len__(self) -> int:
        return len(self._values)


def _resolve(value: Any, template: dict[str, Any]) -> str:
    """A variable's value as a deployment would see it: a parameter's default, a
    placeholder for a resource's name or attribute."""
    if isinstance(value, str | int | float | bool):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if "Ref" in value:
        parameter = template.get("Parameters", {}).get(value["Ref"])
        if parameter is not None:
            return str(parameter.get("Default", ""))
        return f"arn:aws:states:us-east-1:123456789012:stateMachine:{value['Ref']}"
    if "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        holds = _condition(template["Conditions"][condition], template)
        return _resolve(when_true if holds else when_false, template)
    if "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        return f"arn:aws:lambda:us-east-1:123456789012:function:{resource}-{attribute}"
    raise AssertionError(f"cannot resolve {value!r}")


def _condition(value: Any, template: dict[str, Any]) -> bool:
    """A condition as the parameters' defaults decide it (Fn::Equals, Fn::Not)."""
    if "Fn::Not" in value:
        return not _condition(value["Fn::Not"][0], template)
    if "Fn::Equals" in value:
        left, right = (_resolve(side, template) for side in value["Fn::Equals"])
        return left == right
    raise AssertionError(f"cannot decide {value!r}")


def _functions() -> dict[str, tuple[str, dict[str, str]]]:
    """Logical id → (its folder under functions/, its environment as deployed)."""
    template = load_template()
    globals_ = template["Globals"]["Function"].get("Environment", {}).get("Variables", {})
    found = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        own = properties.get("Environment", {}).get("Variables", {})
        environment = {name: _resolve(value, template) for name, value in
                       {**globals_, **own}.items()}
        found[logical_id] = (Path(properties["CodeUri"]).name, environment)
    return found


FUNCTIONS = _functions()


def _settings_model(folder: str) -> type[SettingsPart]:
    """`<Name>Settings` for functions/<name>, checked to be what its app.py loads."""
    name = "".join(part.title() for part in folder.split("_")) + "Settings"
    model = next((getattr(module, name) for module in
                  (agentkit.config, agentkit.config.tools, agentkit.config.memory,
                   agentkit.config.model_calls)
                  if hasattr(module, name)), None)
    assert model is not None, f"functions/{folder}: no agentkit.config model named {name}"
    app = (ROOT / "functions" / folder / "app.py").read_text()
    assert re.search(rf"\bload\({name}\)", app), f"functions/{folder}/app.py does not load {name}"
    return model


def _mismatches(folder: str, environment: Mapping[str, str]) -> tuple[set[str], str | None]:
    """(variables the template sets that nothing reads, the model's error loading)."""
    model = _settings_model(folder)
    recorded = RecordingEnviron(environment)
    try:
        model.from_env(recorded)
        error = None
    except agentkit.config.ConfigError as failure:
        error = str(failure)
    app = (ROOT / "functions" / folder / "app.py").read_text()
    powertools = {name for name, readers in POWERTOOLS_VARIABLES.items()
                  if any(reader in app for reader in readers)}
    return set(environment) - recorded.read - powertools - LIBRARY_VARIABLES, error


def test_every_function_of_the_template_is_checked() -> None:
    folders = {folder for folder, _ in FUNCTIONS.values()}
    assert folders == {path.parent.name for path in (ROOT / "functions").glob("*/app.py")}


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_the_template_sets_what_the_settings_read(logical_id: str) -> None:
    folder, environment = FUNCTIONS[logical_id]
    unread, error = _mismatches(folder, environment)
    assert error is None, f"{logical_id}: its settings do not load from the template: {error}"
    assert not unread, f"{logical_id} sets variables nothing reads: {sorted(unread)}"
    # Powertools' readers need theirs (Metrics without a namespace fails when it flushes)
    app = (ROOT / "functions" / folder / "app.py").read_text()
    needed = {name for name, readers in POWERTOOLS_VARIABLES.items()
              if any(reader in app for reader in readers)}
    assert needed <= set(environment), f"{logical_id} lacks {sorted(needed - set(environment))}"
    assert set(environment) >= LIBRARY_VARIABLES, f"{logical_id} lacks a library's variable"


def test_a_mismatch_is_found() -> None:
    folder, environment = FUNCTIONS["TasksFunction"]
    # a required variable the template forgot
    missing = {k: v for k, v in environment.items() if k != "TABLE_NAME"}
    assert "TABLE_NAME is not set" in (_mismatches(folder, missing)[1] or "")
    # a variable no one reads (a typo, or one left behind by a move)
    assert _mismatches(folder, {**environment, "TENANT_LIMIT": "{}"})[0] == {"TENANT_LIMIT"}
