"""Opspawn's LocalStack plugins (installed into LocalStack's own venv, not the project's)."""

EXECUTOR_NAME = "opspawn-subprocess"
