"""GET /console and GET /console/{asset} (agentkit.http.console): the web console's files,
shipped in this function's package (static/), public; the page calls the API with the key
the user gives it."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.config import ConsoleSettings, load
from agentkit.http import console
from agentkit.http.resolver import create_resolver, resolve
from agentkit.observability.tracing import traced

logger = Logger()
# The console reads no data itself (no grant on the table): its settings are the ones
# every function has.
_config = load(ConsoleSettings)
app = create_resolver(
    console.router(console.ConsoleRoutes.from_directory(Path(__file__).parent / "static"))
)


@traced
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


startup.ready()
