"""``crawlfleet``: the command line of producers and operators (entry point: ``crawlfleet.cli.main:main``)."""
