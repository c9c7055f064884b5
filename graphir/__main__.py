"""``python -m graphir``: the command line (see :mod:`graphir.cli`)."""
import sys

from .cli import main

sys.exit(main())
