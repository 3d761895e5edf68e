"""URL identity: the one spelling that every way of writing a web resource's URL comes down to.

The coordinator keys dedupe and per-URL exclusivity on it, and the worker compares the links and
images of a page with it, so both programs call `normalize_url` and nothing else. It is RFC 3986
syntax-based normalization plus what browsers do to hosts (the WHATWG URL standard): IPv4 hosts
spelled in hex, octal, as one integer or shortened (`0x7f.1`, `0177.0.0.1`, `2130706433`,
`127.1`) are the dotted quad they connect to. Whatever a site cannot tell apart must not count as
two resources, or one site could be fetched many times at once through spellings of one page.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from urllib.parse import unquote

import idna

# Also the limit on the normalized form: it is indexed, and a btree entry must stay well below
# PostgreSQL's limit of about 2,700 bytes.
MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameters that only say where a click came from; dropped with drop_tracking=True.
TRACKING_PARAMETER_PREFIXES = ("utm_",)
TRACKING_PARAMETERS = frozenset(
    {
        "_ga", "_gl", "_hsenc", "_hsmi", "dclid", "fbclid", "gbraid", "gclid", "gclsrc", "igshid", "mc_cid",
        "mc_eid", "mkt_tok", "msclkid", "oly_anon_id", "oly_enc_id", "rb_clickid", "s_cid", "ttclid", "twclid",
        "vero_id", "wbraid", "yclid",
    }
)  # fmt: skip

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# C0 and C1 controls, DEL, whitespace of any script, and the backslash.
_REFUSED = re.compile(r"[\x00-\x20\x7f-\x9f\s\\]")
# A percent-encoded octet, or a character that must be percent-encoded (not unreserved, not a sub-delimiter,
# not one of ":@/" in a path, ":@/?" in a query; a lone "%" too).
_PATH_TOKEN = re.compile(r"%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-._~!$&'()*+,;=:@/]")
_QUERY_TOKEN = re.compile(r"%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-._~!$&'()*+,;=:@/?]")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# What DNS can resolve, after lower-casing and IDNA: letters, digits, "-" and "_", no empty label.
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_IPV4_DIGITS = {16: re.compile(r"[0-9a-f]*"), 8: re.compile(r"[0-7]+"), 10: re.compile(r"[0-9]+")}
_PORT = re.compile(r"[0-9]+")


class InvalidURL(ValueError):
    """The URL cannot name a web resource: refuse it, since asking again with it cannot help.

    `reason` completes a sentence about the URL ("must name a host").
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalize_url(url: str, *, drop_tracking: bool = False, sort_query: bool = False) -> str:
    """The normalized form of an absolute http(s) URL: equal for every spelling of one resource.

    Scheme and host lower-cased, IDNA hosts in ASCII (punycode), IPv4 spellings as a dotted quad,
    IPv6 compressed, a trailing dot of the host dropped, the default port dropped, dot segments
    removed, percent-encoding normalized (unreserved characters decoded, others upper-case hex,
    reserved ones such as ``%2F`` kept encoded, characters that need it encoded as UTF-8), an empty
    path made ``/``, an empty query and the fragment dropped. The query is otherwise kept as it is,
    unless ``drop_tracking`` removes tracking parameters (``utm_*``, ``fbclid``, ...) or
    ``sort_query`` orders parameters by name (parameters of one name keep their order).

    Raises InvalidURL for a URL longer than ``MAX_URL_LENGTH`` (before or after normalizing), with
    control characters, whitespace or a backslash, with credentials (``user:pw@``), without a host,
    with a port outside 1-65535, or whose scheme is not http or https.
    """
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"is longer than {MAX_URL_LENGTH} characters")
    if (refused := _REFUSED.search(url)) is not None:
        raise InvalidURL(_refusal(refused.group()))
    scheme, authority, path, query = _split(url)
    host, port = _split_authority(authority)
    netloc = _normalize_host(host)
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    try:
        path = _remove_dot_segments(_PATH_TOKEN.sub(_normalize_token, path)) or "/"
        query = _QUERY_TOKEN.sub(_normalize_token, query)
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 encoding
        raise InvalidURL("is not valid Unicode") from None
    if drop_tracking or sort_query:
        query = _rewrite_query(query, drop_tracking=drop_tracking, sort_query=sort_query)
    normal = f"{scheme}://{netloc}{path}?{query}" if query else f"{scheme}://{netloc}{path}"
    if len(normal) > MAX_URL_LENGTH:
        raise InvalidURL(f"is longer than {MAX_URL_LENGTH} characters once normalized")
    return normal


def _refusal(char: str) -> str:
    if char == "\\":
        # Browsers read it as "/" in http(s) URLs, other clients as a character of the path.
        return "must not contain a backslash"
    if unicodedata.category(char) == "Cc":
        return f"must not contain control characters (U+{ord(char):04X})"
    return "must not contain whitespace"


def _split(url: str) -> tuple[str, str, str, str]:
    """(scheme, authority, path, query) as RFC 3986 appendix B splits them, fragment dropped.

    Only absolute http(s) URLs with an authority name a resource; the rest is refused here.
    """
    scheme, colon, rest = url.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        raise InvalidURL("must be an absolute http or https URL")
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidURL(f"must be an absolute http or https URL, not {scheme}:")
    rest = rest.partition("#")[0]
    rest, _, query = rest.partition("?")
    if not rest.startswith("//"):
        raise InvalidURL(f"must name a host ({scheme}://host/...)")
    authority, slash, path = rest[2:].partition("/")
    return scheme, authority, slash + path, query


def _split_authority(authority: str) -> tuple[str, int | None]:
    """(host, port or None) of an authority; credentials are refused (stored and shown, they would leak)."""
    if "@" in authority:
        raise InvalidURL("must not carry credentials (user:password@)")
    if authority.startswith("["):
        end = authority.find("]") + 1
        if end == 0:
            raise InvalidURL("has an unclosed IPv6 bracket")
        host, rest = authority[:end], authority[end:]
        if rest and not rest.startswith(":"):
            raise InvalidURL(f"has an invalid authority {authority!r}")
        port = rest[1:]
    else:
        host, _, port = authority.partition(":")
    if not port:  # no port, or "host:", which means the default port (RFC 3986 6.2.3)
        return host, None
    if not _PORT.fullmatch(port):
        raise InvalidURL(f"has an invalid port {port!r}")
    number = int(port)
    if not 1 <= number <= 65535:
        raise InvalidURL(f"has a port outside 1-65535: {port}")
    return host, number


@functools.lru_cache(maxsize=4096)  # a page names a few hosts thousands of times
def _normalize_host(host: str) -> str:
    """The normalized form of a URL's host (``[...]`` for IPv6); raises InvalidURL."""
    if host.startswith("["):
        return _ipv6(host)
    if "%" in host:  # browsers decode it before anything else
        try:
            host = unquote(host, errors="strict")
        except UnicodeDecodeError:
            raise InvalidURL("has a host that is not UTF-8 once percent-decoded") from None
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except UnicodeError as exc:  # idna.IDNAError among them
            raise InvalidURL(f"has an invalid international host name ({exc})") from None
    host = host.lower()
    if host.endswith("."):  # the fully qualified spelling of the same name
        host = host[:-1]
    if not host:
        raise InvalidURL("must name a host")
    if not _HOST_NAME.fullmatch(host):
        raise InvalidURL(f"has an invalid host name {host!r}")
    labels = host.split(".")
    # As browsers do: a host whose last label is a number is an IPv4 address, or nothing.
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        return _ipv4(labels)
    return host


def _ipv4(labels: list[str]) -> str:
    """Dotted quad of an IPv4 host in any spelling browsers accept (WHATWG URL's IPv4 parser)."""
    numbers = [_ipv4_number(label) for label in labels]
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise InvalidURL(f"has a host that ends in a number but is not an IPv4 address: {'.'.join(labels)}")
    value = numbers[-1]
    for position, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - position))
    return str(ipaddress.IPv4Address(value))


def _ipv4_number(label: str) -> int:
    """One label of an IPv4 host: "0x" hex (possibly empty: 0), "0"-led octal, or decimal."""
    if label.startswith("0x"):
        digits, base = label[2:], 16
    elif len(label) > 1 and label.startswith("0"):
        digits, base = label[1:], 8
    else:
        digits, base = label, 10
    if not _IPV4_DIGITS[base].fullmatch(digits):
        raise InvalidURL(f"has a host that ends in a number but is not an IPv4 address: {label!r} is not a number")
    return int(digits, base) if digits else 0


def _ipv6(host: str) -> str:
    address = host[1:-1]
    if "%" in address:  # a zone only means something on the host that wrote it
        raise InvalidURL("must not name an IPv6 zone")
    try:
        return f"[{ipaddress.IPv6Address(address).compressed}]"
    except ValueError:
        raise InvalidURL(f"has an invalid IPv6 address {address!r}") from None


def _normalize_token(match: re.Match[str]) -> str:
    token = match.group()
    if len(token) == 3:  # a percent-encoded octet
        char = chr(int(token[1:], 16))
        return char if char in _UNRESERVED else token.upper()
    return "".join(f"%{octet:02X}" for octet in token.encode("utf-8"))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 on an absolute path: "." and ".." segments resolved, never above the root."""
    if "." not in path:
        return path
    segments = path.split("/")[1:]
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):  # "/a/." names the directory "/a/"
        kept.append("")
    return "/" + "/".join(kept)


def _rewrite_query(query: str, *, drop_tracking: bool, sort_query: bool) -> str:
    parameters = query.split("&")
    if drop_tracking:
        parameters = [p for p in parameters if not _is_tracking(_parameter_name(p))]
    if sort_query:
        parameters.sort(key=_parameter_name)  # stable: repeated names keep their order
    return "&".join(parameters)


def _parameter_name(parameter: str) -> str:
    return parameter.partition("=")[0]


def _is_tracking(name: str) -> bool:
    name = name.lower()
    return name in TRACKING_PARAMETERS or name.startswith(TRACKING_PARAMETER_PREFIXES)
