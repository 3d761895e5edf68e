"""Crawls: which discovered links a crawl follows (scope.py) and the pages they become (pages.py)."""
