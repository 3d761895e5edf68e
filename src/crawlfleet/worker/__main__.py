"""``python -m worker``."""

from crawlfleet.worker.main import main

main()
