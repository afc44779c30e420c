"""`python -m tui.cli`: the `tunedeck` command without the installed console script."""

import sys

from tui.cli import main

sys.exit(main())
