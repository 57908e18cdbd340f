"""Capture the tool input schemas the test servers publish into published_schemas.json.

    .venv/bin/python -m tests.mcp.capture_schemas

The unit tests (tests/unit/llm/test_tool_schemas.py and the provider client tests) shape
these schemas without starting a server; tests/integration/tools/test_mcp_tools.py checks the
live listings against the same rules. Re-run after bumping a server in package.json.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from agentkit.tools.mcp import McpClient, McpServerConfig
from tests.mcp import servers

OUTPUT = servers.HERE / "published_schemas.json"


def live_configs(workdir: Path) -> list[McpServerConfig]:
    """Every server the tests run, over stdio (server name = the key in the JSON file)."""
    return [
        servers.everything_stdio(),
        servers.filesystem_stdio(workdir),
        servers.memory_stdio(workdir / "memory.json"),
        servers.time_stdio(),
        servers.schema_stdio(),
    ]


def published_schemas(configs: list[McpServerConfig]) -> dict[str, dict[str, Any]]:
    """{server: {tool: input schema as listed}} (listed through agentkit's own client)."""
    return {
        config.name: {tool.name: tool.input_schema for tool in McpClient(config).list_tools()}
        for config in configs
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        captured = published_schemas(live_configs(Path(workdir)))
    OUTPUT.write_text(json.dumps(captured, indent=1, sort_keys=True) + "\n")
    print(f"{sum(len(tools) for tools in captured.values())} schemas -> {OUTPUT}")


if __name__ == "__main__":
    main()
