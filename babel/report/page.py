"""The report's HTML: claims table, summary, figure gallery, explorer, notebooks, provenance.

Every link is relative to ``index.html`` and every file it shows is copied inside the report
folder, so the folder can be zipped and opened anywhere. Only the executed notebooks' HTML
(nbconvert's) loads MathJax and require.js from a CDN; the report page itself loads nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from html import unescape as html_unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from babel.core import paths
from babel.core.progress import duration
from babel.data.languages import get_language
from babel.report import claims as cl
from babel.report.executed import Executed
from babel.report.explorer import Explorer
from babel.report.gallery import Figure, for_claim
from babel.results import results_markdown, run_statement

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 1.2em 3em;
color:#222}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:.5em 0}
nav a{margin-right:1em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}
th,td{border:1px solid #ddd;padding:.35em .5em;vertical-align:top;text-align:left}
th{background:#f4f4f4}
.verdict{font-weight:600;white-space:nowrap;padding:.1em .4em;border-radius:3px}
.holds{background:#d9f2d9}.differs{background:#fff0c2}.does-not-hold{background:#f8d4d4}
.not-measured{background:#e6e6e6}
.rule{font-size:.85em;color:#555}
img.thumb{max-width:220px;display:block;margin-bottom:.3em}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:1.2em}
.gallery figure{margin:0;border:1px solid #ddd;padding:.5em}
.gallery img,.explorer img{max-width:100%}
figcaption{font-size:.9em}
code,pre{font-size:.85em}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.5em}
"""

EXPLORER_JS = """
(function () {
  var pick = document.getElementById("explorer-language");
  function show() {
    var o = pick.options[pick.selectedIndex];
    document.getElementById("explorer-frequency").src = o.dataset.frequency;
    document.getElementById("explorer-difference").src = o.dataset.difference;
  }
  pick.addEventListener("change", show);
  show();
})();
"""


def _norm(text: str) -> str:
    """A heading compared by its words (markdown marks and the ¶ anchor left out)."""
    for ch in "*_`¶":
        text = text.replace(ch, "")
    return " ".join(text.split()).casefold()


class _Headings(HTMLParser):
    """The ``id`` and text of every ``h1``-``h6`` of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._open: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6") and dict(attrs).get("id"):
            self._open = (str(dict(attrs)["id"]), [])

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.found.append((self._open[0], _norm("".join(self._open[1]))))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[1].append(data)


def headings(page: str) -> list[tuple[str, str]]:
    """``(id, normalized text)`` of the headings of an HTML page."""
    parser = _Headings()
    parser.feed(page)
    return parser.found


_ENCODED_ID = re.compile(r'(<h[1-6][^>]*\sid=|<a class="anchor-link" href=)"(#?)([^"]*%[0-9A-Fa-f]{2}[^"]*)"')


def decoded_ids(page: str) -> str:
    """Heading ids (and their ¶ links) percent-decoded: nbconvert writes ``×`` as ``%C3%97``
    inside the id itself, which a browser still finds but a link checker that decodes the
    fragment first does not; decoded, every reading of the link finds it."""
    def fix(m: re.Match[str]) -> str:
        return f'{m.group(1)}"{m.group(2)}{escape(unquote(html_unescape(m.group(3))))}"'

    return _ENCODED_ID.sub(fix, page)


def export_notebooks(run: Executed, out: Path) -> dict[str, list[tuple[str, str]]]:
    """Each executed notebook as HTML (nbconvert, lab template) in ``out``; returns each
    page's headings (for links to a section)."""
    import nbformat
    from nbconvert import HTMLExporter

    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    found = {}
    for name, ipynb in run.notebooks.items():
        body, _ = exporter.from_notebook_node(nbformat.read(ipynb, as_version=4))
        body = decoded_ids(body)
        (out / f"{name}.html").write_text(body, encoding="utf-8")
        found[name] = headings(body)
    return found


class Links:
    """Relative links from ``index.html`` to notebook sections and gallery figures."""

    def __init__(self, sections: Mapping[str, list[tuple[str, str]]]) -> None:
        self.sections = sections

    def section(self, notebook: str, heading: str | None) -> str | None:
        """``notebooks/<nb>.html#<id>`` of the first heading starting with ``heading``
        (the page itself when none does; None when the notebook was not run)."""
        if notebook not in self.sections:
            return None
        page = f"notebooks/{notebook}.html"
        want = _norm(heading or "")
        ids = [i for i, text in self.sections[notebook] if want and text.startswith(want)]
        return f"{page}#{ids[0]}" if ids else page


def _inline(text: str) -> str:
    """Text with markdown `code` spans as HTML."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def _a(href: str | None, text: str) -> str:
    return escape(text) if href is None else f'<a href="{escape(href)}">{escape(text)}</a>'


def _markdown(text: str) -> str:
    from nbconvert.filters import markdown2html

    return markdown2html(text)


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], *, id_: str = "") -> str:
    """An HTML table; cells are HTML already."""
    attr = f' id="{id_}"' if id_ else ""
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    out = [f"<table{attr}><thead><tr>{cells}</tr></thead><tbody>"]
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join(out) + "</tbody></table>"


def _verdict(v: str) -> str:
    return f'<span class="verdict {v.replace(" ", "-")}">{escape(v)}</span>'


def _figure_src(fig: Figure) -> str:
    return f"figures/{fig.path.name}"


def claims_section(run: Executed, gallery: list[Figure], links: Links) -> str:
    """The claims table: the paper's claim, this run's figure, verdict, rule and evidence."""
    rows = []
    for claim, finding in cl.judge_all(run.records, run.parameters):
        model = None
        for nb, _ in claim.sections:
            model = model or (run.parameters.get(nb) or {}).get("model")
        figs = for_claim(gallery, claim.figures, model)
        evidence = []
        if figs:
            evidence.append(f'<a href="#{figs[0].anchor}"><img class="thumb" '
                            f'src="{escape(_figure_src(figs[0]))}" '
                            f'alt="{escape(figs[0].path.name)}"></a>')
        evidence += [f'figure: <a href="#{f.anchor}">{escape(f.path.name)}</a>' for f in figs]
        for nb, heading in claim.sections:
            href = links.section(nb, heading)
            if href is not None:
                evidence.append(f"section: {_a(href, f'{nb[:2]} · {heading}')}")
        rows.append((f'<span id="claim-{claim.key}">{escape(claim.paper)}</span>',
                     escape(finding.figure), _verdict(finding.verdict),
                     f'<span class="rule">{escape(claim.rule)}</span>',
                     "<br>".join(evidence) or "no figure or section in this run"))
    legend = ("<p><b>holds</b>: this run shows what the paper claims, by the stated rule; "
              "<b>differs</b>: the effect is there but not as the paper states it (another "
              "size, or not for every model); <b>does not hold</b>: the run does not show "
              "it; <b>not measured</b>: the notebook that measures it did not run. Every "
              "figure and verdict is computed from the values the notebooks recorded "
              "(<code>babel.report.claims</code>).</p>")
    return ('<section id="claims-section"><h2>The paper\'s claims in this run</h2>' + legend
            + _table(("claim (paper)", "this run", "verdict", "rule", "evidence"), rows,
                     id_="claims") + "</section>")


def summary_section(run: Executed) -> str:
    """The README's results text (:func:`babel.results.results_markdown`) for this run."""
    try:
        text = _markdown(results_markdown(run.folder))
    except (FileNotFoundError, KeyError, TypeError, ValueError, IndexError) as err:
        text = (f"<p>No summary: {escape(type(err).__name__)}: {escape(str(err))} (it needs "
                "the records of notebooks 01–04).</p>")
    return f'<section id="summary"><h2>Summary</h2>{text}</section>'


def gallery_section(gallery: list[Figure], links: Links) -> str:
    """Every figure with its notebook section and the notebook's words as caption."""
    items = []
    for fig in gallery:
        where = "drawn by no notebook of this run"
        if fig.notebook is not None:
            head = fig.section.heading if fig.section else None
            where = _a(links.section(fig.notebook, head),
                       f"{fig.notebook} · {head}" if head else fig.notebook)
        made = fig.made_by or {}
        origin = (f" Written by run <code>{escape(str(made.get('run_id')))}</code>."
                  if made.get("run_id") else "")
        caption = _markdown(fig.section.text) if fig.section and fig.section.text else ""
        items.append(f'<figure id="{escape(fig.anchor)}"><a href="{escape(_figure_src(fig))}">'
                     f'<img src="{escape(_figure_src(fig))}" alt="{escape(fig.path.name)}">'
                     f'</a><figcaption><b>{escape(fig.path.name)}</b> — {where}.{origin}'
                     f"{caption}</figcaption></figure>")
    body = ('<div class="gallery">' + "\n".join(items) + "</div>") if items else \
        "<p>No figures in the run's figures folder.</p>"
    return f'<section id="figures"><h2>Figures</h2>{body}</section>'


def _language_label(code: str) -> str:
    try:
        lang = get_language(code)
        return f"{code} — {lang.name} ({lang.family}, {lang.script})"
    except Exception:  # noqa: BLE001 — a language outside the table keeps its code
        return code


def explorer_section(explorer: Explorer | None, note: str, out: Path) -> str:
    """A select box switching between pre-rendered heatmaps (a few lines of inline JS)."""
    if explorer is None:
        return f'<section id="explorer"><h2>Explorer</h2><p>{escape(note)}</p></section>'
    options = []
    for lang, imgs in explorer.images.items():
        freq = imgs["frequency"].relative_to(out).as_posix()
        diff = imgs["difference"].relative_to(out).as_posix()
        options.append(f'<option value="{escape(lang)}" data-frequency="{escape(freq)}" '
                       f'data-difference="{escape(diff)}">{escape(_language_label(lang))}'
                       "</option>")
    first = next(iter(explorer.images.values()))
    src = {m: first[m].relative_to(out).as_posix() for m in ("frequency", "difference")}
    table = explorer.table
    shown = table.relative_to(paths.PROJ_ROOT) if table.is_relative_to(paths.PROJ_ROOT) \
        else table.name
    return (f'<section id="explorer" class="explorer"><h2>Explorer</h2><p>Pick a language: '
            f"its expert activation frequencies ({escape(explorer.model)}, rows: layers, "
            "experts sorted by their mean frequency over languages, one color scale for every "
            "language) and their difference from the mean over languages. Pre-rendered from "
            f"<code>{escape(str(shown))}</code>, the table notebook 02 recorded; in "
            "JupyterLab, notebook 02's explorer also picks layers and the expert order.</p>"
            '<label>language <select id="explorer-language">' + "".join(options)
            + "</select></label>"
            f'<p><img id="explorer-frequency" src="{escape(src["frequency"])}" '
            'alt="activation frequency heatmap"></p>'
            f'<p><img id="explorer-difference" src="{escape(src["difference"])}" '
            'alt="difference from the mean heatmap"></p>'
            f"<script>{EXPLORER_JS}</script></section>")


def _run_time(run: Executed, name: str) -> str:
    entry = ((run.run or {}).get("notebooks") or {}).get(name)
    if entry:
        return f"{entry.get('status')}, {duration(entry.get('wall_s'))}"
    meta = run.metadata(name)
    return f"{duration(meta.get('duration'))} (papermill)" if meta.get("duration") else "?"


def notebooks_section(run: Executed, links: Links) -> str:
    rows = [(_a(links.section(name, None), name), escape(_run_time(run, name)),
             escape(str(len(run.records.get(name) or {}))))
            for name in run.notebooks]
    return ('<section id="notebooks"><h2>Executed notebooks</h2>'
            + _table(("notebook (HTML)", "status, time", "recorded values"), rows)
            + "</section>")


def _json(value: Any) -> str:
    return f"<details><summary>show</summary><pre>{escape(json.dumps(value, indent=1))}" \
           "</pre></details>"


def _short_sha(models: Mapping[str, Any] | None) -> str:
    out = []
    for model, meta in (models or {}).items():
        sha = (meta or {}).get("weights_sha256")
        text = ", ".join(f"{f}: {h[:12]}" for f, h in sha.items()) if isinstance(sha, dict) \
            else (meta or {}).get("note", "not hashed")
        out.append(f"{escape(model)} ({escape(str(text))})")
    return "<br>".join(out) or "-"


def provenance_section(run: Executed) -> str:
    """``run.json`` as tables (or papermill's metadata when there is none)."""
    if run.run is None:
        rows = []
        for name in run.notebooks:
            meta = run.metadata(name)
            rows.append((escape(name), escape(str(meta.get("start_time"))),
                         escape(str(meta.get("end_time"))), escape(duration(meta.get("duration"))),
                         _json(meta.get("parameters") or {})))
        return ('<section id="provenance"><h2>Provenance</h2><p>No <code>run.json</code> '
                "beside these notebooks: they were executed before runs were recorded. "
                "papermill's metadata:</p>"
                + _table(("notebook", "started", "ended", "time", "injected parameters"),
                         rows) + "</section>")
    record = run.run
    runs = []
    for run_id, r in (record.get("runs") or {}).items():
        git = r.get("git") or {}
        commit = (git.get("commit") or "no git")[:12] + (" (uncommitted changes)"
                                                          if git.get("dirty") else "")
        versions = ", ".join(f"{k} {v}" for k, v in (r.get("versions") or {}).items())
        runs.append((f"<code>{escape(run_id)}</code>", escape(str(r.get("status"))),
                     escape(str(r.get("started"))), escape(str(r.get("finished"))),
                     escape(commit), f"<code>{escape(' '.join(r.get('command') or []))}</code>",
                     escape(versions), _json(r.get("overrides") or {})))
    nbs = []
    for name, e in (record.get("notebooks") or {}).items():
        corpus = e.get("corpus") or {}
        files = corpus.get("files")
        cache = e.get("cache") or {}
        nbs.append((escape(name), escape(str(e.get("status"))) + (
            f"<br>{escape(str(e['error']))}" if e.get("error") else ""),
            f"<code>{escape(str(e.get('run_id')))}</code>", escape(str(e.get("started"))),
            escape(duration(e.get("wall_s"))), _short_sha(e.get("models")),
            escape(f"{corpus.get('source', '-')}: {len(files)} files" if files else
                   str(corpus.get("source", "-"))) + (_json(files) if files else ""),
            escape(f"{len(cache.get('written') or [])} written, "
                   f"{len(cache.get('unchanged') or [])} unchanged"),
            "<br>".join(escape(o) for o in e.get("outputs") or []) or "-",
            _json(e.get("parameters") or {})))
    return ('<section id="provenance"><h2>Provenance</h2>'
            f"<p>From <code>run.json</code> (parameter set {escape(str(record.get('params')))}, "
            f"latest run <code>{escape(str(record.get('latest_run')))}</code>).</p>"
            "<h3>Runs</h3>" + _table(("run", "status", "started", "finished", "commit",
                                      "command", "versions", "overrides"), runs)
            + "<h3>Notebooks</h3>" + _table(
                ("notebook", "status", "run", "started", "time", "model weights (sha256)",
                 "corpus (sha256)", "cache files", "outputs", "parameters"), nbs)
            + f'<p class="rule">{escape(str(record.get("cache_rule", "")))}</p></section>')


def copy_figures(gallery: list[Figure], out: Path) -> None:
    """Copy the gallery's files into ``out`` (the report's ``figures/``)."""
    out.mkdir(parents=True, exist_ok=True)
    for fig in gallery:
        shutil.copy2(fig.path, out / fig.path.name)


def page(run: Executed, *, gallery: list[Figure], links: Links, explorer: Explorer | None,
         explorer_note: str, out: Path) -> str:
    """The whole ``index.html``."""
    where = run.folder.relative_to(paths.PROJ_ROOT) if run.folder.is_relative_to(
        paths.PROJ_ROOT) else run.folder.name
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = " ".join(f'<a href="#{i}">{t}</a>' for i, t in (
        ("claims-section", "Claims"), ("summary", "Summary"), ("figures", "Figures"),
        ("explorer", "Explorer"), ("notebooks", "Notebooks"), ("provenance", "Provenance")))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>babel report — {escape(run.params)}</title><style>{STYLE}</style>"
            "</head><body>"
            f"<h1>Unraveling Babel, reproduced: results of the <code>{escape(run.params)}</code>"
            " parameter set</h1>"
            f"<p>From the executed notebooks in <code>{escape(str(where))}</code> "
            f"({_inline(run_statement(run.folder))}); generated {now} by "
            "<code>make report</code>.</p>"
            f"<nav>{nav}</nav>"
            + claims_section(run, gallery, links) + summary_section(run)
            + gallery_section(gallery, links) + explorer_section(explorer, explorer_note, out)
            + notebooks_section(run, links) + provenance_section(run)
            + "</body></html>\n")
