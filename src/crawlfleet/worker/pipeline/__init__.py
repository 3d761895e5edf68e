"""The scrape pipeline: guarded fetch (HTTP or browser), extraction, images."""
