from __future__ import annotations

import json

import pytest

from crawlfleet.worker.pipeline.extract import (
    MAX_IMAGE_URLS,
    MAX_LINK_TEXT_CHARS,
    MAX_LINKS,
    MAX_MAIN_TEXT_CHARS,
    NESTING_CHECK_TAGS,
    Link,
    PageData,
    absolute_url,
    extract_page,
    srcset_urls,
)

PAGE_URL = "https://example.com/blog/post.html?id=7"


def page(body: str, head: str = "", page_url: str = PAGE_URL) -> PageData:
    return extract_page(f"<!doctype html><html><head>{head}</head><body>{body}</body></html>", page_url)


def link_urls(data: PageData) -> list[str]:
    return [link.url for link in data.links]


# Links


def test_links_resolve_relative_and_absolute_urls_and_drop_fragments() -> None:
    data = page(
        '<a href="other.html">Relative</a>'
        '<a href="../about?x=1#team">Up</a>'
        '<a href="/root">Root</a>'
        '<a href="//cdn.example.org/x">Scheme-relative</a>'
        '<a href="?page=2">Query</a>'
        '<a href="HTTPS://Example.com:443/caps#frag">Absolute</a>'
        '<a href="  https://other.org/path  ">Spaces</a>'
    )
    assert link_urls(data) == [
        "https://example.com/blog/other.html",
        "https://example.com/about?x=1",
        "https://example.com/root",
        "https://cdn.example.org/x",
        "https://example.com/blog/post.html?page=2",
        "https://Example.com:443/caps",
        "https://other.org/path",
    ]


def test_base_href_overrides_the_page_url_and_is_itself_resolved() -> None:
    data = page('<a href="a">A</a><a href="/b">B</a>', head='<base href="/docs/v2/">')
    assert link_urls(data) == ["https://example.com/docs/v2/a", "https://example.com/b"]

    data = page('<a href="a">A</a>', head='<base href="https://mirror.example.net/m/">')
    assert data.links == (Link(url="https://mirror.example.net/m/a", text="A", same_host=False),)


def test_unusable_base_href_is_ignored() -> None:
    data = page('<a href="a">A</a>', head='<base href="javascript:void(0)">')
    assert link_urls(data) == ["https://example.com/blog/a"]


def test_links_skip_non_web_schemes_fragments_and_unparsable_urls() -> None:
    data = page(
        '<a href="javascript:void(0)">js</a>'
        '<a href=" JavaScript:alert(1)">js</a>'
        '<a href="mailto:a@example.com">mail</a>'
        '<a href="tel:+123">tel</a>'
        '<a href="data:text/html,hi">data</a>'
        '<a href="ftp://example.com/f">ftp</a>'
        '<a href="#top">top</a>'
        '<a href="">empty</a>'
        "<a>no href</a>"
        '<a href="http://[::1">bad ipv6</a>'
        '<a href="http://example.com:99999/">bad port</a>'
        '<a href="http:///nohost">no host</a>'
        '<a href="/kept">kept</a>'
    )
    assert link_urls(data) == ["https://example.com/kept"]


def test_links_are_deduplicated_first_text_wins_in_page_order() -> None:
    data = page(
        '<a href="/a">  First\n   text </a><a href="/b">B</a><a href="/a#x">Second</a><a href="https://example.com/a">Third</a>'
    )
    assert data.links == (
        Link(url="https://example.com/a", text="First text", same_host=True),
        Link(url="https://example.com/b", text="B", same_host=True),
    )


def test_same_host_ignores_case_and_default_ports_but_not_other_ports_or_subdomains() -> None:
    data = page(
        '<a href="http://EXAMPLE.com/1">1</a>'
        '<a href="https://example.com:443/2">2</a>'
        '<a href="http://example.com:80/3">3</a>'
        '<a href="https://example.com:8443/4">4</a>'
        '<a href="https://www.example.com/5">5</a>'
        '<a href="https://other.org/6">6</a>',
        page_url="https://Example.COM/",
    )
    assert [link.same_host for link in data.links] == [True, True, True, False, False, False]


def test_link_text_is_collapsed_and_capped() -> None:
    data = page(f'<a href="/x"><span>Read</span>\n\t<b>more</b> {"y" * 1000}</a>')
    (link,) = data.links
    assert link.text.startswith("Read more yyy")
    assert len(link.text) == MAX_LINK_TEXT_CHARS


def test_links_are_capped_keeping_the_first() -> None:
    data = page("".join(f'<a href="/p/{i}">{i}</a>' for i in range(MAX_LINKS + 50)))
    assert len(data.links) == MAX_LINKS
    assert data.links[0].url == "https://example.com/p/0"
    assert data.links[-1].url == f"https://example.com/p/{MAX_LINKS - 1}"


@pytest.mark.parametrize(
    "href",
    [
        "/plain",
        "/with?query=1&b=2",
        "/empty-query?",
        "/double??",
        "/frag#x",
        "/dots/../up",
        "/./here",
        "/tab\tinside",
        "//other.org/x",
        "/\\backslash",
        "https://example.com",
        "https://example.com?q",
        "https://example.com:8080/p?q#f",
        "http://example.com:080/zero-port",
        "http://User@example.com/userinfo",
        "http://ex_ample.com/underscore",
        "https://a.example.com./trailing-dot",
        "http://.",
        "http://example.com:/empty-port",
        "HTTP://EXAMPLE.COM/CAPS",
        "relative/path",
        "../x",
        "?only=query",
    ],
)
def test_link_urls_match_absolute_url(href: str) -> None:
    # Extraction takes shortcuts for common shapes; they must agree with the general path.
    data = page(f'<a href="{href}">x</a>')
    expected = absolute_url(PAGE_URL, href)
    assert link_urls(data) == ([expected] if expected else [])


# Images


def test_srcset_urls_drop_descriptors() -> None:
    assert srcset_urls("a.png 1x, b.png 2x") == ["a.png", "b.png"]
    assert srcset_urls("small.jpg 100w,big.jpg 1000w") == ["small.jpg", "big.jpg"]
    assert srcset_urls("  only.png  ") == ["only.png"]
    assert srcset_urls("a.png, b.png 2x") == ["a.png", "b.png"]
    assert srcset_urls("a.png,b.png 2x") == ["a.png,b.png"]  # a URL ends at whitespace, as browsers read it
    assert srcset_urls("a.png (garbage, here) 2x, b.png") == ["a.png", "b.png"]
    assert srcset_urls("data:image/png;base64,AAAA 1x, real.png 2x") == ["data:image/png;base64,AAAA", "real.png"]
    assert srcset_urls("") == []
    assert srcset_urls(" , ,") == []


def test_image_urls_from_img_srcset_picture_and_meta_deduplicated_in_order() -> None:
    data = page(
        '<img src="/a.png" srcset="/a.png 1x, /a@2x.png 2x">'
        '<picture><source srcset="/p-small.webp 100w, /p-big.webp 1000w" type="image/webp">'
        '<img src="/p.jpg"></picture>'
        '<video><source src="/movie.mp4"></video>'
        '<img src="data:image/gif;base64,R0lGOD">'
        '<img src="">'
        '<img src="https://cdn.example.org/c.png#frag">',
        head='<meta property="og:image" content="/og.png">'
        '<meta property="og:image:url" content="/a.png">'
        '<meta name="twitter:image" content="https://cdn.example.org/tw.png">',
    )
    assert data.image_urls == (
        "https://example.com/a.png",
        "https://example.com/a@2x.png",
        "https://example.com/p-small.webp",
        "https://example.com/p-big.webp",
        "https://example.com/p.jpg",
        "https://cdn.example.org/c.png",
        "https://example.com/og.png",
        "https://cdn.example.org/tw.png",
    )


def test_image_urls_naming_the_same_image_count_once_as_first_written() -> None:
    data = page(
        '<img src="/img/a.jpg"><img src="HTTPS://Example.COM:443/img/a.jpg">'
        '<img src="/x/../img/./a.jpg#zoom"><img src="https://example.com:8443/img/a.jpg">',
        head='<meta property="og:image" content="https://example.com:443/img/a.jpg">',
    )
    assert data.image_urls == ("https://example.com/img/a.jpg", "https://example.com:8443/img/a.jpg")


def test_an_image_written_with_its_default_port_first_keeps_that_spelling() -> None:
    data = page('<img src="https://example.com:443/b.png"><img src="/b.png"><img src="http://example.com/b.png">')
    assert data.image_urls == ("https://example.com:443/b.png", "http://example.com/b.png")  # http is not https


def test_image_urls_are_capped_keeping_the_first() -> None:
    data = page("".join(f'<img src="/i/{i}.png">' for i in range(MAX_IMAGE_URLS + 10)))
    assert len(data.image_urls) == MAX_IMAGE_URLS
    assert data.image_urls[-1] == f"https://example.com/i/{MAX_IMAGE_URLS - 1}.png"


# Metadata


def test_json_ld_keeps_valid_blocks_compactly_and_skips_invalid_ones() -> None:
    head = (
        '<script type="application/ld+json">\n{ "@type": "Article",\n "name": "Café" }\n</script>'
        '<script type="application/ld+json">{ not json </script>'
        '<script type="APPLICATION/LD+JSON ">[{"@type": "Person"}, {"@type": "Thing"}]</script>'
        '<script type="application/ld+json">{"n": NaN}</script>'
        '<script type="application/ld+json">"\\ud800"</script>'
        '<script type="application/json">{"other": 1}</script>'
        "<script>var x = 1;</script>"
    )
    data = page("", head=head)
    assert data.json_ld == ('{"@type":"Article","name":"Café"}', '[{"@type":"Person"},{"@type":"Thing"}]')
    assert json.loads(data.json_ld[1])[1] == {"@type": "Thing"}
    assert data.script_count == 7


def test_open_graph_first_value_per_property_wins() -> None:
    head = (
        '<meta property="og:title" content=" OG title ">'
        '<meta property="og:title" content="Second">'
        '<meta name="og:site_name" content="Site">'
        '<meta property="OG:Type" content="article">'
        '<meta property="og:empty">'
        '<meta property="twitter:card" content="summary">'
    )
    assert page("", head=head).open_graph == {"og:title": "OG title", "og:site_name": "Site", "og:type": "article"}


def test_title_description_canonical_and_language() -> None:
    data = extract_page(
        '<html lang=" de-CH "><head><title>\n  The   <Title> \n</title>'
        '<meta name="Description" content="  About\n this page ">'
        '<meta name="description" content="second">'
        '<link rel="alternate" href="/alt"><link rel="Canonical" href="/canonical#x">'
        "</head><body><p>x</p></body></html>",
        PAGE_URL,
    )
    assert data.title == "The <Title>"
    assert data.meta_description == "About this page"
    assert data.canonical_url == "https://example.com/canonical"
    assert data.language == "de-CH"


def test_title_falls_back_to_og_title_and_ignores_svg_titles() -> None:
    data = page("<svg><title>icon</title></svg>", head='<meta property="og:title" content="From OG">')
    assert data.title == "From OG"
    assert page("<p>x</p>").title == ""


def test_missing_metadata_is_empty() -> None:
    data = page("<p>x</p>")
    assert (data.meta_description, data.canonical_url, data.language, data.open_graph) == ("", "", "", {})


# Main text


def test_main_text_keeps_blocks_on_lines_and_drops_chrome_and_code() -> None:
    data = page(
        "<header><h1>Site name</h1></header>"
        "<nav><a href='/'>Home</a></nav>"
        "<div><h1>Heading</h1><p>First   paragraph\n with <b>bold</b> and <a href='/x'>a link</a>.</p>"
        "Loose text<br>after break<ul><li>one</li><li>two</li></ul>"
        "<script>var hidden = 1;</script><style>p { color: red }</style><noscript>Enable JS</noscript>"
        "<template><p>template</p></template><svg><text>svg text</text></svg>"
        "<form><label>Search</label></form><iframe>frame</iframe><aside>Related</aside></div>"
        "<footer>Copyright</footer>"
    )
    assert data.main_text == "Heading\nFirst paragraph with bold and a link.\nLoose text\nafter break\none\ntwo"
    assert data.text_length == len(data.main_text)
    assert [link.text for link in data.links] == ["Home", "a link"]  # links still come from the whole page


def test_main_text_prefers_main_then_article() -> None:
    body = "<p>Outside</p><article><p>Teaser</p></article><main><p>Main content</p></main>"
    assert page(body).main_text == "Main content"
    assert page("<p>Outside</p><article><p>Story</p></article><article><p>Two</p></article>").main_text == "Story"


def test_main_text_keeps_line_breaks_of_preformatted_text() -> None:
    data = page("<p>Code:</p><pre>def f():\n    return  1\n\n</pre><p>end\nof line</p>")
    assert data.main_text == "Code:\ndef f():\nreturn 1\nend of line"


def test_main_text_is_capped() -> None:
    data = page("".join(f"<p>{'word ' * 20}{i}</p>" for i in range(MAX_MAIN_TEXT_CHARS // 50)))
    assert len(data.main_text) == MAX_MAIN_TEXT_CHARS == data.text_length


def test_deeply_nested_markup_does_not_recurse() -> None:
    data = page("<div>" * 5_000 + "deep" + "</div>" * 5_000)
    assert data.main_text == "deep"


def test_nesting_too_deep_to_parse_quickly_is_flattened_keeping_content() -> None:
    depth = NESTING_CHECK_TAGS + 10_000
    deep = "<p>deep <a href='/in'>in</a></p>"
    data = page("<div>" * depth + deep + "</div>" * depth + "<p><a href='/after'>after</a></p>")
    assert data.main_text == "deep in\nafter"
    assert link_urls(data) == ["https://example.com/in", "https://example.com/after"]


def test_nesting_estimate_ignores_self_closing_tags_comments_and_raw_text() -> None:
    # Were these counted as open elements, <main> would be flattened away and the text taken from <body>.
    filler = '<svg><path d="M0"/></svg><!-- <div> --><script>s = "<div>";</script><style>a{}</style>'
    data = page(filler * (NESTING_CHECK_TAGS // 4) + "<p>outside</p><main><p>inside</p></main>")
    assert data.main_text == "inside"


# Robustness


@pytest.mark.parametrize(
    "html",
    [
        "",
        "   ",
        "<",
        "</html>",
        "<html><body><p>unclosed <b>bold <i>italic<div>block</p></b>",
        "<a href='/x'>no html or body",
        "\x00\x01\x02\xff\ufffd<<<>>>\x1b[0m" * 100,
        "\ud800 lone surrogate <p>text</p>",
        "<script>never closed " + "x" * 1000,
        "<!-- unterminated comment",
        '<img srcset=",,, ,">',
        '<meta property="og:image" content="http://[bad">',
        "<html lang><title></title><base href>",
    ],
)
def test_malformed_input_never_raises(html: str) -> None:
    data = extract_page(html, PAGE_URL)
    assert data.text_length == len(data.main_text)


def test_malformed_markup_is_recovered_like_a_browser() -> None:
    data = extract_page("<title>T<p>para <a href=x>link<p>next", PAGE_URL)
    assert data.title == "T<p>para <a href=x>link<p>next"  # title is raw text up to </title>, as in browsers
    data = extract_page("<p>para <a href=x>link<p>next", PAGE_URL)
    assert data.main_text == "para link\nnext"
    assert link_urls(data) == ["https://example.com/blog/x"]


def test_empty_document_gives_empty_fields() -> None:
    assert extract_page("", "") == PageData(
        title="",
        meta_description="",
        canonical_url="",
        language="",
        main_text="",
        links=(),
        image_urls=(),
        json_ld=(),
        open_graph={},
        text_length=0,
        script_count=0,
    )


def test_unparsable_page_url_still_extracts_absolute_links() -> None:
    data = page('<a href="https://example.com/a">a</a><a href="rel">rel</a>', page_url="http://[broken")
    assert data.links == (Link(url="https://example.com/a", text="a", same_host=False),)
