"""/memories (agentkit.http.memories): a tenant's long-term memories, remembered, searched,
read and forgotten."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.config import load
from agentkit.config.memory import MemoriesSettings
from agentkit.http import memories
from agentkit.http.resolver import create_resolver, resolve
from agentkit.memory.long_term import LongTermMemory, long_term_memory
from agentkit.observability.tracing import traced

logger = Logger()
_config = load(MemoriesSettings)
_memory: list[LongTermMemory] = []


def _long_term() -> LongTermMemory | None:
    """Made at the first request that needs it (the embedding model's key is resolved then,
    not at cold start); None when the deployment has no EmbeddingModel."""
    if _config.embedding_model is None:
        return None
    if not _memory:
        _memory.append(long_term_memory(_config, _config.table_name))
    return _memory[0]


app = create_resolver(memories.router(memories.MemoryRoutes(memory=_long_term)))


@traced
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


startup.ready()
