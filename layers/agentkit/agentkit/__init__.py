"""agentkit: the shared Lambda layer for Opspawn (models, store, LLM clients, tools, steps)."""
