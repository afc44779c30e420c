"""`python -m engine.playground ...`: the detached process (see engine.playground.server)."""

import sys

from engine.playground.server import main

sys.exit(main())
