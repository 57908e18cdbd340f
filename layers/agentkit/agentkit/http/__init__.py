"""The HTTPS API's HTTP side: the Powertools resolver (resolver.py), the one error shape
(errors.py), parameters (params.py), each API function's routes (submit.py, tasks.py,
approvals.py, schedules.py: ``router(deps)``) and the OpenAPI document Powertools generates
from those same routes (openapi.py). The operations themselves live in agentkit.api."""
