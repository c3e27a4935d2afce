"""The results report (``build/report/index.html``, ``make report``) in headless Chromium.

The report's contract: every ``<img>`` loads (``naturalWidth > 0``); every internal link
(a file of the report, or an anchor in one) resolves; the claims table ``<table id="claims">``
has one body row per claim of the paper (``babel.report.CLAIMS`` when that module lists them),
each row linking to its evidence. The report is opened from the file system, as a reader opens
it: no server. A screenshot of the whole page goes to ``build/screenshots/report-index.png``.
Without a report (``make reproduce PARAMS=smoke && make report`` writes one) the test skips.

The checks themselves are tested on a small synthetic report with a broken image and link.
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import pytest

from babel.core import paths

REPORT = paths.BUILD_DIR / "report" / "index.html"


def expected_claims() -> int | None:
    """How many claims the report should list: ``len(babel.report.CLAIMS)`` when known."""
    try:
        from babel import report
    except ImportError:
        return None
    claims = getattr(report, "CLAIMS", None)
    return None if claims is None else len(claims)


def _open(driver, page: Path) -> None:
    driver.get(page.resolve().as_uri())
    deadline = time.time() + 30
    while driver.execute_script("return document.readyState") != "complete":
        if time.time() > deadline:
            raise AssertionError(f"{page} did not finish loading")
        time.sleep(0.2)


def broken_images(driver) -> list[str]:
    """The ``src`` of every image of the open page that did not load."""
    return driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));")


def broken_links(driver, page: Path) -> list[str]:
    """Internal links of ``page`` (open in ``driver``) whose file or anchor does not exist.

    Links to other sites are not followed (the report must work offline); a link to a file
    of the report must name an existing file, and its ``#anchor`` an element of that page.
    """
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('a[href]'))"
        ".map(a => [a.getAttribute('href'), a.href]);")
    anchors: dict[Path, set[str]] = {}
    bad = []
    for raw, absolute in hrefs:
        url = urllib.parse.urlsplit(absolute)
        if url.scheme != "file":
            continue
        target = Path(urllib.parse.unquote(url.path))
        if not target.exists():
            bad.append(f"{raw} (no file {target})")
        elif url.fragment:
            anchors.setdefault(target, set()).add(urllib.parse.unquote(url.fragment))
    for target, names in anchors.items():
        if target.suffix.lower() not in (".html", ".htm"):
            continue
        _open(driver, target)
        for name in sorted(names):
            found = driver.execute_script(
                "return !!document.getElementById(arguments[0])"
                " || document.getElementsByName(arguments[0]).length > 0;", name)
            if not found:
                bad.append(f"{target.name}#{name} (no such anchor)")
    _open(driver, page)
    return bad


def claim_rows(driver) -> list[dict]:
    """The claims table's body rows: their text and how many links each holds."""
    return driver.execute_script(
        "const t = document.getElementById('claims'); if (!t) return null;"
        "const rows = t.tBodies.length ? Array.from(t.tBodies).flatMap(b => Array.from(b.rows))"
        " : Array.from(t.rows).filter(r => !r.querySelector('th'));"
        "return rows.map(r => ({text: r.innerText, links: r.querySelectorAll('a[href]').length}));")


def full_page_screenshot(driver, out: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(800, min(int(height) + 40, 12000)))
    time.sleep(0.3)
    driver.save_screenshot(str(out))


def test_report_images_links_and_claims(browser, screenshots):
    if not REPORT.exists():
        pytest.skip(f"no report at {REPORT.relative_to(paths.PROJ_ROOT)}: "
                    "`make reproduce PARAMS=smoke && make report` writes it")
    _open(browser, REPORT)
    full_page_screenshot(browser, screenshots / "report-index.png")
    n_images = browser.execute_script("return document.images.length")
    assert n_images > 0, "the report shows no figure"
    assert broken_images(browser) == []
    assert broken_links(browser, REPORT) == []
    rows = claim_rows(browser)
    assert rows is not None, 'the report has no claims table (<table id="claims">)'
    want = expected_claims()
    assert rows, "the claims table has no rows"
    if want is not None:
        assert len(rows) == want, f"{len(rows)} claim rows for {want} claims"
    assert all(r["links"] > 0 for r in rows), "a claim without a link to its evidence: " + \
        next(r["text"] for r in rows if not r["links"])


def test_report_checks_find_a_broken_image_and_link(browser, tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 3), "red").save(tmp_path / "ok.png")
    (tmp_path / "nb.html").write_text('<h2 id="section">s</h2>')
    (tmp_path / "index.html").write_text(
        '<img src="ok.png"><img src="missing.png">'
        '<a href="nb.html#section">ok</a><a href="nb.html#nowhere">bad anchor</a>'
        '<a href="gone.html">bad file</a><a href="#claims">self</a>'
        '<a href="https://example.org/">outside</a>'
        '<table id="claims"><thead><tr><th>claim</th></tr></thead>'
        '<tbody><tr><td><a href="ok.png">a</a></td></tr><tr><td>b</td></tr></tbody></table>')
    index = tmp_path / "index.html"
    _open(browser, index)
    assert broken_images(browser) == ["missing.png"]
    bad = broken_links(browser, index)
    assert len(bad) == 2 and bad[0].startswith("gone.html") and bad[1].startswith("nb.html#nowhere")
    assert [r["links"] for r in claim_rows(browser)] == [1, 0]
