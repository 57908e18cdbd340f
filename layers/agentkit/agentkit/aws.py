"""AWS clients for the functions: one botocore session per process, shared by every client.

botocore directly, not boto3: `import boto3` adds s3transfer (thread pools,
multiprocessing) and a session of its own to every cold start, and nothing here uses
more of boto3 than its `client()`. One session means the service models and endpoint
data are read once however many clients a function builds. Region, credentials and
endpoint come from the environment as boto3's would (AWS_REGION, AWS_ENDPOINT_URL...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from botocore.session import Session
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3vectors import S3VectorsClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_stepfunctions import SFNClient

_session: Session | None = None


@overload
def client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def client(service: Literal["s3"]) -> S3Client: ...
@overload
def client(service: Literal["s3vectors"]) -> S3VectorsClient: ...
@overload
def client(service: Literal["stepfunctions"]) -> SFNClient: ...
@overload
def client(service: Literal["scheduler"]) -> EventBridgeSchedulerClient: ...
def client(service: str) -> Any:
    """A new client for `service` from the process's botocore session."""
    global _session
    if _session is None:
        from botocore.session import get_session

        _session = get_session()
    return _session.create_client(service)


class _DeferredClient:
    """Stands in for a client until the first attribute is read, then builds it: a function
    whose routes need a service only sometimes (a cancel, a schedule write) does not load
    that service's model at cold start, and a GET never pays for it."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = client(self._service)  # type: ignore[call-overload]
        return getattr(self._client, name)


@overload
def deferred_client(service: Literal["stepfunctions"]) -> SFNClient: ...
@overload
def deferred_client(service: Literal["scheduler"]) -> EventBridgeSchedulerClient: ...
def deferred_client(service: str) -> Any:
    """A client for `service` built on its first use (see `_DeferredClient`)."""
    return _DeferredClient(service)
