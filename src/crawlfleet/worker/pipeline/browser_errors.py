"""What rendering in the browser raises on purpose, typed by what the caller should do."""

from __future__ import annotations


class BrowserError(Exception):
    """Base of the errors rendering raises on purpose."""


class BrowserUnavailable(BrowserError):
    """No Chromium was found or it could not be launched; the message says how to install one."""


class BrowserCrashed(BrowserError):
    """The browser or the page crashed or closed mid-render: a retryable failure."""


class RenderTimeout(BrowserError):
    """The navigation did not finish within the timeout."""


class NavigationFailed(BrowserError):
    """The browser could not complete the navigation, for a reason none of the other errors names."""


class TooManyRedirects(BrowserError):
    """The document (or a request of the page) redirected more often than the limit allows."""


class RequestBlocked(BrowserError):
    """Raised by a ``BrowserFetch`` for a destination the egress guard refuses, and by ``render`` when
    the document itself is refused."""

    def __init__(self, url: str, reason: str = "refused by the egress guard") -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
