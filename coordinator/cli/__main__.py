"""``python -m coordinator.cli``."""

import sys

from coordinator.cli.main import main

sys.exit(main())
