"""Opspawn: the user-side client, CLI and offline stack."""
