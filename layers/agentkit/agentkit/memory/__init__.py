"""Memory: the context that fits the model's window (`context`)."""
