"""Memory: the conversation fitted to the model's window (short-term, `context`) and
long-term memories per tenant and scope, embedded and searched (`long_term`)."""
