"""``python -m vsr`` runs the ``vsr`` command."""

import sys

from vsr.cli import main

sys.exit(main())
