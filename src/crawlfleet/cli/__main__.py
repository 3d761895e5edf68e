"""``python -m crawlfleet.cli``."""

import sys

from crawlfleet.cli.main import main

sys.exit(main())
