"""Caps on one job result, shared by the coordinator (which refuses results past them at Complete)
and the worker (whose result budget stays well inside them).

Without caps a result could be as large as a message (32 MiB), and a coordinator handling a few
such Completes at once grew by gigabytes. The worker's own budget (worker/pipeline/settings.py and
extract.py) keeps each field at half of these or less, so a worker never meets a refusal.
"""

from __future__ import annotations

# UTF-8 bytes of ScrapeResult.main_text (the worker keeps 100,000 characters at most).
MAX_MAIN_TEXT_BYTES = 1024 * 1024
# ScrapeResult.links and .image_urls (the worker extracts 5,000 and 1,000 at most).
MAX_LINKS = 10_000
MAX_IMAGE_URLS = 2_000
# ScrapeResult.images (the worker's --max-images, 20 by default, may not exceed it).
MAX_IMAGES = 100
# Thumbnail bytes of all images of one result (the worker's --max-result-bytes, 8 MiB by default,
# may not exceed it).
MAX_THUMBNAIL_BYTES = 16 * 1024 * 1024
# SitemapResult.entries, and a sitemap job's max_urls: the URLs one sitemap may list (sitemaps.org).
# At long URLs that many would pass the size cap below; the worker's byte budget for the entries
# (worker/pipeline/sitemap_settings.py) keeps a result well inside it.
MAX_SITEMAP_ENTRIES = 50_000
# The whole encoded JobResult, thumbnails included: well under the coordinator's message limit.
MAX_RESULT_BYTES = 24 * 1024 * 1024
# ScrapeResult.fields: one entry per declared field (a job declares at most 50), at most
# MAX_FIELD_VALUES values each of at most MAX_FIELD_VALUE_BYTES (UTF-8), and MAX_FIELDS_BYTES of
# values in all (the worker keeps 500 values, 16 KiB a value and 2 MiB in all).
MAX_FIELDS = 50
MAX_FIELD_VALUES = 1_000
MAX_FIELD_VALUE_BYTES = 32 * 1024
MAX_FIELDS_BYTES = 4 * 1024 * 1024
