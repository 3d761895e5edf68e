"""``crawlfleet``: the command line of producers and operators (entry point: ``coordinator.cli.main:main``)."""
