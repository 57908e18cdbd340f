"""The logic behind each state of the agent loop (the API routes': agentkit.api).

Pure functions over (store, registry, clients, input): no Lambda event in sight,
so they are tested without Lambda and called by thin handlers.
"""
