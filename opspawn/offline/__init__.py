"""The offline AWS stack: LocalStack on this host (no Docker) running the real template.

CLI: ``python -m opspawn.offline {install,up,down,status,deploy,outputs,logs}``.
Python API: :mod:`opspawn.offline.stack`. State lives in ``<repo>/.offline/``.
"""
