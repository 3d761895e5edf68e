"""The steps of ``crawlfleet demo`` (cli/commands/demo.py runs them): waiting with progress, the
crawl of the demo shop, the run over given URLs, and where to look next."""
