"""The memories function's routes: POST /memories, GET /memories, GET /memories/{memory_id},
DELETE /memories/{memory_id} (logic: agentkit.api.memories)."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from agentkit.api.memories import (
    CreateMemoryRequest,
    MemoryDisabledError,
    MemoryList,
    MemoryNotFoundError,
    MemoryProvider,
    add_memory,
    delete_memory,
    get_memory,
    search_memories,
)
from agentkit.http.errors import AUTH_REFUSALS, BAD_REQUEST, error_doc, error_response
from agentkit.http.resolver import current_tenant
from agentkit.llm.base import ModelError, RetryableModelError
from agentkit.memory.long_term import Remembered
from agentkit.memory.models import MAX_RECALL, Memory
from agentkit.store.vectors import VectorDimensionError

logger = Logger(child=True)

MemoryId = Annotated[str, Path(min_length=1, max_length=64, description="The memory's id.")]
# 500 characters: percent-encoded (up to 12 bytes a character) the request line stays
# under API Gateway's 10 KB for request line and headers.
SearchQuery = Annotated[str | None, Query(
    max_length=500,
    description="Search by meaning: the memories nearest to this text, best first. Without "
    "it: the newest first.",
)]
MemoryLimit = Annotated[int, Query(ge=1, le=MAX_RECALL,
                                   description=f"At most this many (1-{MAX_RECALL}).")]
MemoryScopeQuery = Annotated[str | None, Query(
    max_length=128, description="The scope searched or listed; none: the tenant's own memories."
)]

MEMORY_OFF = ("`memory_disabled`: long-term memory is off in this deployment (no "
              "EmbeddingModel).")
NOT_FOUND = {404: error_doc("`not_found`: no such memory for this tenant (another tenant's: "
                            f"the same); {MEMORY_OFF}")}
EMBEDDING_FAULTS = {
    404: error_doc(MEMORY_OFF),
    502: error_doc("The embedding model refused the request or answered something unusable."),
    503: error_doc("The embedding model cannot be reached now; try again later."),
}


@dataclass(frozen=True)
class MemoryRoutes:
    """What the routes need: the long-term memory, made when first used (None: off)."""

    memory: MemoryProvider


def router(deps: MemoryRoutes) -> Router:
    routes = Router()

    @routes.exception_handler(MemoryNotFoundError)
    def _not_found(error: MemoryNotFoundError) -> Response[dict[str, Any]]:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", str(error))

    @routes.exception_handler(MemoryDisabledError)
    def _disabled(error: MemoryDisabledError) -> Response[dict[str, Any]]:
        # A 404, as for a route this deployment does not have (not a server fault).
        return error_response(HTTPStatus.NOT_FOUND, "memory_disabled", str(error))

    @routes.exception_handler(ModelError)
    def _embedding_failed(error: ModelError) -> Response[dict[str, Any]]:
        logger.warning("embedding failed", extra={"reason": str(error)})
        if isinstance(error, RetryableModelError):
            return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "embeddings_unavailable",
                                  str(error))
        return error_response(HTTPStatus.BAD_GATEWAY, "embedding_failed", str(error))

    @routes.exception_handler(VectorDimensionError)
    def _dimensions(error: VectorDimensionError) -> Response[dict[str, Any]]:
        logger.error("embedding dimensions do not match the index", extra={"reason": str(error)})
        return error_response(HTTPStatus.BAD_GATEWAY, "embedding_failed", str(error))

    @routes.post(
        "/memories",
        operation_id="createMemory",
        summary="Remember a fact",
        description="Embeds and stores the text; the very next request finds it. A memory "
        "that already says the same (near-identical meaning, same scope) is answered instead, "
        "with `created: false` and 200.",
        tags=["memories"],
        responses={
            201: {"description": "Stored.",
                  "content": {"application/json": {"model": Remembered}}},
            200: {"description": "Already known: the existing memory.",
                  "content": {"application/json": {"model": Remembered}}},
            **BAD_REQUEST,
            **AUTH_REFUSALS,
            **EMBEDDING_FAULTS,
        },
    )
    def post_memory(request: CreateMemoryRequest) -> Response[dict[str, Any]]:
        remembered = add_memory(request, tenant_id=current_tenant(routes), memory=deps.memory)
        logger.info("memory stored" if remembered.created else "memory already known",
                    extra={"memory_id": remembered.memory.memory_id})
        status = HTTPStatus.CREATED if remembered.created else HTTPStatus.OK
        return Response(status_code=status.value, content_type=content_types.APPLICATION_JSON,
                        body=remembered.model_dump(mode="json"))

    @routes.get(
        "/memories",
        operation_id="listMemories",
        summary="Search or list memories",
        tags=["memories"],
        responses={200: {"description": "Best matches first (with `query`), else newest first."},
                   **BAD_REQUEST, **AUTH_REFUSALS, **EMBEDDING_FAULTS},
    )
    def get_memories(query: SearchQuery = None, limit: MemoryLimit = 10,
                     scope: MemoryScopeQuery = None) -> MemoryList:
        return search_memories(tenant_id=current_tenant(routes), memory=deps.memory,
                               query=query, limit=limit, scope=scope)

    @routes.get(
        "/memories/<memory_id>",
        operation_id="getMemory",
        summary="One memory",
        tags=["memories"],
        responses={200: {"description": "The memory."}, **NOT_FOUND, **AUTH_REFUSALS},
    )
    def get_one(memory_id: MemoryId) -> Memory:
        return get_memory(memory_id, tenant_id=current_tenant(routes), memory=deps.memory)

    @routes.delete(
        "/memories/<memory_id>",
        operation_id="deleteMemory",
        summary="Forget a memory",
        description="Removes the memory and its vector: no later search returns it.",
        tags=["memories"],
        responses={204: {"description": "Deleted.", "content": {}}, **NOT_FOUND,
                   **AUTH_REFUSALS},
    )
    def remove(memory_id: MemoryId) -> Response[str]:
        delete_memory(memory_id, tenant_id=current_tenant(routes), memory=deps.memory)
        return Response(status_code=HTTPStatus.NO_CONTENT.value, body="")

    return routes
