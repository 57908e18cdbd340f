"""Provider API keys (and MCP servers' auth secrets): from the environment locally, from
Secrets Manager or SSM in AWS.

Lookup order for a key named e.g. OPENAI_API_KEY:
  1. the environment variable itself (local runs, tests);
  2. the JSON secret named by PROVIDER_KEYS_SECRET_ARN (`SecretSources.secret_arn`, read
     with the function's settings), field OPENAI_API_KEY (one secret holds every
     provider's key);
  3. the SSM SecureString parameter named by OPENAI_API_KEY_PARAMETER.
The variables of 1 and 3 are read when the key is asked for (their names depend on the
key), through agentkit.config.environment. Values are cached by Powertools Parameters
(5 minutes), so warm invocations do not call the service again. Key values are never
logged or put into error messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentkit.config.environment import variable

if TYPE_CHECKING:
    from agentkit.config import SecretSources

CACHE_SECONDS = 300


class SecretNotFoundError(LookupError):
    """No source holds the key; the message names where it looked, never a value."""

    def __init__(self, name: str, places: list[str]) -> None:
        super().__init__(f"{name} is not set (looked in: {'; '.join(places)})")
        self.places = places


def provider_key(name: str, sources: SecretSources | None = None) -> str:
    """The secret `name`; `sources`: where else than the environment to look (None: only
    the environment and `<name>_PARAMETER`)."""
    value = variable(name)
    if value:
        return value
    secret_arn = sources.secret_arn if sources is not None else None
    if secret_arn:
        from aws_lambda_powertools.utilities import parameters

        keys: Any = parameters.get_secret(secret_arn, transform="json", max_age=CACHE_SECONDS)
        value = str(keys.get(name, "")).strip() if isinstance(keys, dict) else ""
        if value:
            return value
    parameter_name = variable(f"{name}_PARAMETER")
    if parameter_name:
        from aws_lambda_powertools.utilities import parameters

        value = str(parameters.get_parameter(parameter_name, decrypt=True,
                                             max_age=CACHE_SECONDS)).strip()
        if value:
            return value
    places = [f"environment variable {name}"]
    if secret_arn:
        places.append(f"field {name} of secret PROVIDER_KEYS_SECRET_ARN")
    if parameter_name:
        places.append(f"SSM parameter {parameter_name}")
    raise SecretNotFoundError(name, places)
