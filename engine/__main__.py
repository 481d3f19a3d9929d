"""`python -m engine` runs the vinci command line."""

import sys

from engine.cli import main

sys.exit(main())
