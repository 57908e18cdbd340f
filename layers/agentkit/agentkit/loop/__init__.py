"""The agent loop: one module per state of statemachines/agent.asl.json.

* `plan` (state Plan), `call_model` (CallModel; ends with `gate_tools`, the one place a
  turn's tool calls are decided), `run_tools` (RunTools: every call of a turn in one
  tool-function invocation), `wait_for_approval` (WaitForApproval, ApprovalNotGranted),
  `finalize` (Finalize, MarkFailed, ReleaseSlot); `task_tokens` answers callback waits.

Pure functions over (store, registry, clients, input): no Lambda event, no environment;
the handlers in functions/<state>/app.py validate events and pass what these need.
"""
