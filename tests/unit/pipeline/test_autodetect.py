from __future__ import annotations

import json

from crawlfleet.worker.pipeline.autodetect import MIN_TEXT_CHARS, SHELL_TEXT_CHARS, needs_browser
from crawlfleet.worker.pipeline.extract import extract_page

PAGE_URL = "https://example.com/"
ARTICLE_TEXT = " ".join(f"Sentence number {i} of a long and perfectly ordinary article." for i in range(60))


def decide(html: str) -> str | None:
    return needs_browser(html, extract_page(html, PAGE_URL))


def test_empty_react_root_with_a_bundle_escalates() -> None:
    html = (
        "<!doctype html><html><head><title>App</title>"
        '<script defer src="/static/js/main.3f2a.js"></script></head>'
        '<body><div id="root"></div></body></html>'
    )
    reason = decide(html)
    assert reason is not None
    assert "empty app root <div#root>" in reason


def test_empty_angular_root_escalates_even_with_some_static_text() -> None:
    static = "<p>" + "Static marketing text. " * 20 + "</p>"  # between the two thresholds
    html = f'<body>{static}<app-root><!-- rendered by Angular --></app-root><script src="main.js"></script></body>'
    assert MIN_TEXT_CHARS <= extract_page(html, PAGE_URL).text_length < SHELL_TEXT_CHARS
    reason = decide(html)
    assert reason is not None
    assert "<app-root>" in reason


def test_noscript_asking_for_javascript_escalates() -> None:
    html = (
        "<body><noscript>You need to enable JavaScript to run this app.</noscript>"
        '<div id="app"><div class="spinner"></div></div><script src="/app.js"></script></body>'
    )
    reason = decide(html)
    assert reason is not None
    assert "noscript" in reason


def test_next_data_shell_escalates() -> None:
    state = json.dumps({"props": {"pageProps": {"items": ["x" * 50] * 400}}})
    html = (
        '<body><div id="__next"><div class="layout"><span>Loading…</span></div></div>'
        f'<script id="__NEXT_DATA__" type="application/json">{state}</script>'
        '<script src="/_next/static/chunks/main.js" defer></script></body>'
    )
    reason = decide(html)
    assert reason is not None
    assert "__NEXT_DATA__" in reason


def test_little_text_with_scripts_escalates() -> None:
    html = '<body><div class="shell"><p>Welcome</p></div><script src="/bundle.js"></script></body>'
    reason = decide(html)
    assert reason is not None
    assert "only 7 characters of text, with 1 scripts" in reason


def test_plain_article_with_a_few_scripts_does_not_escalate() -> None:
    html = (
        "<html><head><title>News</title><script src='https://analytics.example/a.js'></script>"
        "<script>window.dataLayer = [];</script></head><body>"
        "<noscript>Please enable JavaScript for comments.</noscript>"
        f"<div id='app'></div><article><h1>Headline</h1><p>{ARTICLE_TEXT}</p></article>"
        "<script src='/comments.js'></script></body></html>"
    )
    assert decide(html) is None


def test_server_rendered_next_page_does_not_escalate() -> None:
    html = (
        f'<body><div id="__next"><main><p>{ARTICLE_TEXT}</p></main></div>'
        '<script id="__NEXT_DATA__" type="application/json">{"props":{}}</script></body>'
    )
    assert decide(html) is None


def test_short_page_without_scripts_does_not_escalate() -> None:
    assert decide('<body><div id="root"></div><noscript>Enable JavaScript</noscript><p>Short.</p></body>') is None
    assert decide("") is None


def test_short_page_with_only_data_scripts_does_not_escalate() -> None:
    html = '<body><p>Short.</p><script type="application/ld+json">{"@type": "Thing"}</script></body>'
    assert decide(html) is None


def test_medium_page_without_shell_evidence_does_not_escalate() -> None:
    html = f"<body><p>{ARTICLE_TEXT[:500]}</p><script>window.__INITIAL_STATE__ = {{}};</script></body>"
    assert MIN_TEXT_CHARS <= extract_page(html, PAGE_URL).text_length < SHELL_TEXT_CHARS
    assert decide(html) is None
