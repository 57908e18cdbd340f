"""``python -m opspawn``: the CLI (same as the ``opspawn`` command)."""

import sys

from opspawn.cli import main

sys.exit(main())
