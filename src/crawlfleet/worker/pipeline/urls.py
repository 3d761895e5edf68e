"""One spelling for URLs that name the same resource (RFC 3986, section 6.2.2 and 6.2.3), so that a
page's images are deduplicated by what they point at, not by how they are written.

``http://Shop.example:80/img/../img/a.jpg#zoom`` and ``/img/a.jpg`` on ``http://shop.example/`` are
one image: scheme and host are lower-cased, the scheme's default port and the fragment dropped, dot
segments removed, percent-escapes upper-cased (and decoded where they stand for an unreserved
character), and an empty http(s) path becomes ``/``. Userinfo, path case and the query otherwise stay
as written: servers may tell those apart.
"""

from __future__ import annotations

import re
import string
from urllib.parse import SplitResult, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PERCENT_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def normalize_url(url: str) -> str:
    """The normalized form of an absolute URL; a URL that does not parse is returned as it is."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # an unclosed IPv6 bracket, a port out of range
        return url
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        return url
    path = _remove_dot_segments(_normalize_escapes(parts.path))
    if not path and scheme in DEFAULT_PORTS:
        path = "/"
    netloc = _netloc(parts, None if port == DEFAULT_PORTS.get(scheme) else port)
    return urlunsplit((scheme, netloc, path, _normalize_escapes(parts.query), ""))


def _netloc(parts: SplitResult, port: int | None) -> str:
    userinfo, at, _ = parts.netloc.rpartition("@")
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    return f"{userinfo}{at}{host}" + (f":{port}" if port is not None else "")


def _normalize_escapes(text: str) -> str:
    """Upper-case hex in percent-escapes; decode the escapes of unreserved characters (``%7E`` is ``~``)."""

    def one(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _PERCENT_ESCAPE.sub(one, text)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986, section 5.2.4: ``/a/./b/../c`` is ``/a/c``; a path never climbs above its root."""
    if "." not in path:
        return path
    absolute = path.startswith("/")
    segments = path.split("/")[1:] if absolute else path.split("/")
    kept: list[str] = []
    for index, segment in enumerate(segments):
        if segment in (".", ".."):
            if segment == ".." and kept:
                kept.pop()
            if index == len(segments) - 1:
                kept.append("")  # "/a/b/.." is the directory "/a/", not "/a"
            continue
        kept.append(segment)
    return ("/" if absolute else "") + "/".join(kept)
