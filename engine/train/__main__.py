"""`python -m engine.train ...`: the detached process (see engine.train.worker)."""

import sys

from engine.train.worker import main

sys.exit(main())
