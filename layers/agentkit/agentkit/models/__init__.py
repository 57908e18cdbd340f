"""The shapes data takes, apart by who uses them. Nothing is re-exported here: import from
the module, so a function builds only the models it uses (a state-machine Lambda never
builds the API's bodies).

  domain.py    the task, its conversation, usage and budgets, approvals and timeline
               events, as the loop and the store know them (the task is stored as it is)
  api.py       bodies of the HTTP API: the requests it accepts and the views it answers
  payloads.py  what the state machine passes between states: ids and small values
  scripted.py  the replies model `scripted` plays (tests and the demo): kept out of the
               task, stored beside it, read only by the scripted client

Shapes only the store sees stay with their repository (store/approvals.ApprovalRecord
carries the task token, which must never leave the store; store/schedules.Schedule;
tenancy.ApiKeyRecord).
"""
