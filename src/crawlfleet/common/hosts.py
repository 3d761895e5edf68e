"""The politeness key of a URL (its host) and the patterns host policies are written in.

A host is the normalized URL's host name (lower case, IDNA A-labels, IPv4 in dotted form, IPv6
in brackets), with the port when it is not the scheme's default: `shop.example`,
`shop.example:8443`. Two ports of one name are separate servers as far as robots.txt goes
(RFC 9309 scopes it to the authority), and http and https of one name share a host. `www.` is
part of the name: `www.shop.example` and `shop.example` are two hosts, which one
`*.shop.example` policy can govern alike.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# A host name of the normalized form, a dotted quad, or a bracketed IPv6 address; then a port.
_HOST = re.compile(r"(?:[a-z0-9_-]+(?:\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")
_PATTERN = re.compile(r"(?:\*\.)?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*(?::[0-9]{1,5})?|\[[0-9a-f:.]+\](?::[0-9]{1,5})?")
_PORT_SUFFIX = re.compile(r":[0-9]+$")
# The authority of an absolute URL: what follows "scheme://" up to the path, query or fragment.
_AUTHORITY = re.compile(r"[^:/?#]+://([^/?#]*)")
MAX_HOST_LENGTH = 255


def host_of(normalized_url: str) -> str:
    """The host of a URL already in normal form (common.urls.normalize_url)."""
    # One match, not urlsplit: Enqueue takes this per job, and urlsplit costs several times more.
    match = _AUTHORITY.match(normalized_url)
    netloc = match.group(1) if match else urlsplit(normalized_url).netloc
    return netloc.rpartition("@")[2]  # the normal form has dropped default ports already


def is_host(value: str) -> bool:
    """Whether `value` is spelled as host_of spells hosts."""
    return len(value) <= MAX_HOST_LENGTH and _HOST.fullmatch(value) is not None


def is_host_pattern(value: str) -> bool:
    """An exact host, or `*.domain` for the domain and every host under it."""
    return len(value) <= MAX_HOST_LENGTH and _PATTERN.fullmatch(value) is not None


def pattern_matches(pattern: str, host: str) -> bool:
    """Whether a policy pattern covers `host` (as crawlfleet_pattern_matches decides in SQL): a
    pattern without a port covers every port of its name(s), one with a port only that port."""
    name = host if _PORT_SUFFIX.search(pattern) else _PORT_SUFFIX.sub("", host)
    if pattern.startswith("*."):
        domain = pattern[2:]
        return name == domain or name.endswith("." + domain)
    return name == pattern
