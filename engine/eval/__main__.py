"""`python -m engine.eval ...`: the detached process (see engine.eval.launch)."""

import sys

from engine.eval.launch import main

sys.exit(main())
