"""The API's operations, one module per group, called by the routes in agentkit.http:

* tasks.py: GET /tasks, GET /tasks/{id}, GET /tasks/{id}/events, POST /tasks/{id}/cancel;
  submit.py: POST /tasks (with Idempotency-Key), apart so only the submit function loads
  the idempotency machinery; task_request.py: the checks a task request passes (POST /tasks
  and POST /schedules);
* approvals.py: POST /tasks/{id}/approvals/{aid};
* schedules.py: /schedules, and starting a schedule's task when it fires;
* api_keys.py: API keys and the API-key authorizer's decision (which tenant a request is).

No Lambda event and no os.environ here: the functions pass what each operation needs.
"""
