"""`python -m engine` runs the vinci command line, as the `vinci` command does."""

import sys

from engine.main import main

sys.exit(main())
