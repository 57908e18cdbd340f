"""Built-in `http_fetch`: GET a URL, bounded in bytes and time, only from allow-listed hosts.

The security manager checks the host against the calling tenant's policy before the call
is ever queued. The tool checks again, itself, against every host the deployment's policy
allow-lists for it (base and tenants; given when the tool is made, `http_fetch_tool`) —
defense in depth: with no allow-list it refuses every URL, and every redirect hop is
checked the same way before it is followed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from pydantic import BaseModel, ConfigDict, Field

from agentkit.security.policy import SecurityConfig, url_problem
from agentkit.tools.registry import Tool

TOOL_NAME = "http_fetch"
TIMEOUT_S = 10.0
MAX_REDIRECTS = 3
DEFAULT_MAX_BYTES = 100_000
USER_AGENT = "opspawn-http-fetch/1"


class HttpFetchArgs(BaseModel):
    # defer_build: built when the tool is first run or shown (not at cold start).
    model_config = ConfigDict(defer_build=True)

    url: str = Field(min_length=1, max_length=2048, description="The http(s) URL to GET.")
    max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=1,
        le=1_000_000,
        description="Read at most this many bytes of the body (the rest is cut off).",
    )


class FetchRefused(PermissionError):
    """The URL's host is not allow-listed: nothing was contacted."""


def http_fetch(args: HttpFetchArgs, hosts: list[str]) -> dict[str, Any]:
    """GET `args.url`, following redirects only to `hosts` (`*.` wildcards)."""
    url = args.url.strip()
    import httpx  # only this tool needs it

    # trust_env=False: no proxy from the environment can reroute an allow-listed request.
    with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            problem = url_problem(url, hosts)
            if problem:
                raise FetchRefused(f"refusing to fetch {url[:200]!r}: {problem}")
            with client.stream("GET", url, headers={"User-Agent": USER_AGENT}) as response:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    url = urljoin(url, location)
                    continue
                body = bytearray()
                truncated = False
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > args.max_bytes:
                        truncated = True
                        del body[args.max_bytes :]
                        break
                return {
                    "url": url,
                    "status": response.status_code,
                    "content_type": response.headers.get("content-type", ""),
                    "truncated": truncated,
                    "text": bytes(body).decode(response.encoding or "utf-8", errors="replace"),
                }
    raise ValueError(f"more than {MAX_REDIRECTS} redirects")


def http_fetch_tool(policy: SecurityConfig | None = None) -> Tool:
    """The tool, fetching only from the hosts `policy` allow-lists for it (None: none)."""
    hosts = (policy or SecurityConfig()).hosts_for(TOOL_NAME)
    return Tool(
        name=TOOL_NAME,
        description="GET an http(s) URL and return its status, content type and text "
        "(at most max_bytes). Only hosts allowed by the deployment's policy can be fetched.",
        args_model=HttpFetchArgs,
        func=lambda args: http_fetch(args, hosts),
        timeout_s=TIMEOUT_S + 5,
    )
