"""The report as one self-contained HTML page, and as the Prefect artifacts show it.

The page needs nothing but itself: inline CSS, every chart an `<img>` of a
`data:image/svg+xml;base64` URI (each chart its own SVG document, so the ids matplotlib
writes never clash), no script but the figures as JSON (`type="application/json"`, never
executed; for tools and tests). A Content-Security-Policy forbids every load that is not a
`data:` image or the inline style, so a page that tried to reach the network would fail
in the browser rather than leak.

Data-URI SVG images are also what the Prefect UI renders in a markdown artifact (both of
Prefect 3.8's UIs; an inline `<svg>` is stripped or drawn black there), so the markdown
artifact reuses the same bytes.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from tasks.report.figures import ENTITY_COLUMNS, SAMPLE_SPANS, Figures

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
TITLE = "newsflow data-quality report"
CSS = """
:root{--fg:#1d2330;--mut:#5d6677;--bd:#d9dde5;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:var(--bg);
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:20px}
header p{margin:0;color:#c7ccd6;font-size:13px}
nav{margin:10px 0 0;font-size:13px}
nav a{color:#9fc1ea;margin-right:14px;text-decoration:none}
main{max-width:1180px;margin:0 auto;padding:18px 28px 60px}
section{background:#fff;border:1px solid var(--bd);border-radius:8px;padding:16px 20px;margin:18px 0}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:10px 0 4px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:14px}
figure{margin:0 0 10px}
figure img{max-width:100%;height:auto;display:block}
figcaption{color:var(--mut);font-size:12px;margin-top:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid var(--bd);padding:4px 10px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:10px}
.kpi{border:1px solid var(--bd);border-radius:6px;padding:8px 12px;min-width:150px}
.kpi b{display:block;font-size:20px}
.kpi span{color:var(--mut);font-size:12px}
.cjk{font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei","WenQuanYi Micro Hei",
 sans-serif}
.muted{color:var(--mut)}
code{font-size:12px}
"""
# Every chart (tasks/report/charts.py draws them) and its title.
TITLES = {
    "funnel": "Funnel: this run and in total",
    "quarantine": "Quarantined files by reason",
    "articles-per-month": "Articles per month (undated apart)",
    "untranslated-over-time": "Untranslated text over time",
    "untranslated-ratio": "Distribution of untranslated_ratio",
    "spans-by-lang": "Untranslated spans by language",
    "span-length": "Span length",
    "span-confidence": "Span confidence",
    "top-untranslated-files": "Files with the most untranslated text",
    "cluster-sizes": "Near-duplicate cluster sizes",
    "similarity": "Near-duplicate similarity",
    "entities": "Top people, places, organisations and keywords",
    "article-length": "Article length",
    "paragraphs": "Paragraphs per article",
    "run-steps": "This run: time per step and throughput",
    "runs-history": "The last runs: time per step and throughput",
}
# The charts of the Prefect markdown artifact: what the run did, the data over time, and
# whether runs are slowing down. Two are in the artifact's description: Prefect's v2 UI
# renders it as markdown on the artifact's card in the run's Artifacts tab (v1 shows its
# first line), and both UIs show it above the content on the artifact's page, so the
# content holds the other two.
CARD_CHARTS = ("funnel", "runs-history")
BODY_CHARTS = ("articles-per-month", "untranslated-over-time")
KEY_CHARTS = CARD_CHARTS + BODY_CHARTS
SECTIONS = [
    ("headline", "Headline"),
    ("funnel", "Funnel"),
    ("time", "Over time"),
    ("untranslated", "Untranslated text"),
    ("duplicates", "Near duplicates"),
    ("entities", "Entities"),
    ("shape", "Article shape"),
    ("performance", "Time and throughput"),
]


class Markup(str):
    """HTML already escaped (a table cell taken as is)."""


def data_uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def fmt(value: Any) -> str:
    """A number as people read it (thousands separated), escaped; None as a dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def headline_rows(f: Figures) -> list[dict[str, Any]]:
    """The report's headline numbers: this run and the datasets in total (10 rows: the
    Prefect UI shows a table artifact 10 rows a page)."""
    t, r = f.totals, f.run
    rows: list[tuple[str, Any, Any]] = [
        ("files seen", r and r.files_seen, t["files"]),
        ("processed", r and r.files_processed, t["files_processed"]),
        ("unchanged (skipped)", r and r.files_unchanged, None),
        ("quarantined", r and r.files_quarantined, t["files_quarantined"]),
        ("article occurrences", r and r.occurrences, t["occurrences"]),
        ("unique articles", r and r.articles_in_run, t["articles"]),
        ("new articles", r and r.articles_new, None),
        ("near-duplicate links (this run: new)", r and r.near_duplicates_new, t["near_duplicate_links"]),
        ("untranslated spans", r and r.spans, t["spans"]),
        ("MB/s (input seen / seconds to commit)", r and round(r.mb_per_s, 3), None),
    ]
    return [{"measure": m, "this run": "" if a is None else a, "in total": "" if b is None else b} for m, a, b in rows]


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()

    def cell(tag: str, i: int, value: Any) -> str:
        css = ' class="n"' if i in numeric else ""
        return f"<{tag}{css}>{value if isinstance(value, Markup) else fmt(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(chart_id: str, charts: dict[str, bytes], caption: str = "") -> str:
    title = html.escape(TITLES[chart_id])
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure data-chart="{chart_id}"><h3>{title}</h3>'
        f'<img alt="{title}" src="{data_uri(charts[chart_id])}">{cap}</figure>'
    )


def _section(section_id: str, body: str) -> str:
    title = dict(SECTIONS)[section_id]
    return f'<section id="{section_id}"><h2>{html.escape(title)}</h2>{body}</section>'


def _kpis(f: Figures) -> str:
    t = f.totals
    kpis = [
        ("files", t["files"], "files in the manifest"),
        ("articles", t["articles"], "unique articles"),
        ("occurrences", t["occurrences"], "article occurrences"),
        ("files_quarantined", t["files_quarantined"], "quarantined files"),
        ("near_duplicate_links", t["near_duplicate_links"], "near-duplicate links"),
        ("spans", t["spans"], "untranslated spans"),
        ("untranslated_share", f"{100 * t['untranslated_share']:.3f} %", "untranslated share of the text"),
    ]
    return (
        '<div class="kpis">'
        + "".join(
            f'<div class="kpi" data-metric="{key}"><b>{fmt(value)}</b><span>{html.escape(label)}</span></div>'
            for key, value, label in kpis
        )
        + "</div>"
    )


def _headline(f: Figures) -> str:
    def shown(value: Any) -> Any:
        return None if value == "" else value

    rows = [[h["measure"], shown(h["this run"]), shown(h["in total"])] for h in headline_rows(f)]
    return _kpis(f) + _table(["measure", "this run", "in total"], rows, {1, 2})


def _funnel(f: Figures, c: dict[str, bytes]) -> str:
    reasons = {r["reason"]: [r["reason"], None, r["files"]] for r in f.quarantine_total}
    for r in f.quarantine_run:
        reasons.setdefault(r["reason"], [r["reason"], None, None])[1] = r["files"]
    table = (
        _table(["reason", "this run", "in total"], list(reasons.values()), {1, 2})
        if reasons
        else '<p class="muted">No quarantined files.</p>'
    )
    caption = (
        "Files seen → processed / unchanged / quarantined → article occurrences → unique articles → "
        "near-duplicate links. This run from its own record; in total from the datasets."
    )
    return _figure("funnel", c, caption) + _figure("quarantine", c) + table


def _over_time(f: Figures, c: dict[str, bytes]) -> str:
    undated = f.unknown_month.get("articles", 0)
    return _figure(
        "articles-per-month", c, f"{undated:,} undated articles (partition year=unknown) on the right, apart."
    ) + _figure(
        "untranslated-over-time",
        c,
        "Share of the body text inside untranslated spans (Σ untranslated_ratio × n_chars / Σ n_chars), "
        "and the share of articles with any, per month of publication.",
    )


def _untranslated(f: Figures, c: dict[str, bytes]) -> str:
    grid = "".join(_figure(i, c) for i in ("untranslated-ratio", "spans-by-lang", "span-length", "span-confidence"))
    rows = []
    for top in f.top_files:
        samples = "<br>".join(_sample(s, f.has_gloss) for s in top["samples"])
        name = Markup(f"<code>{html.escape(top['source_file'])}</code>")
        rows.append([name, top["untranslated_chars"], top["spans"], top["langs"], top["n_bytes"], Markup(samples)])
    note = f"The first {SAMPLE_SPANS} spans of each file, with their pinyin" + (
        " and English gloss." if f.has_gloss else "; these spans have no gloss (a --full-refresh run adds it)."
    )
    headers = ["file", "untranslated chars", "spans", "languages", "bytes", "first spans"]
    return (
        f'<div class="grid">{grid}</div>'
        + _figure("top-untranslated-files", c)
        + f'<p class="muted">{html.escape(note)}</p>'
        + _table(headers, rows, {1, 2, 4})
    )


def _sample(span: dict[str, Any], has_gloss: bool) -> str:
    text = f'<span class="cjk">{html.escape(str(span.get("text", ""))[:60])}</span>'
    pinyin = f' <span class="muted">{html.escape(str(span.get("pinyin", ""))[:80])}</span>'
    gloss = span.get("gloss")
    shown_gloss = f" — <i>{html.escape(str(gloss))}</i>" if has_gloss and gloss else ""
    return text + pinyin + shown_gloss


def _entities(f: Figures, c: dict[str, bytes]) -> str:
    tables = "".join(
        f"<div><h3>{col}</h3>"
        + _table(["value", "articles"], [[e["value"], e["articles"]] for e in f.entities.get(col, [])], {1})
        + "</div>"
        for col in ENTITY_COLUMNS
    )
    return (
        _figure("entities", c, "Articles naming each value.")
        + f'<details><summary>as tables</summary><div class="grid">{tables}</div></details>'
    )


def _performance(f: Figures, c: dict[str, bytes]) -> str:
    rows = [
        [
            r.started_at[:19].replace("T", " "),
            Markup(f"<code>{html.escape(r.run_id[:8])}</code> {html.escape(r.flow_run_name)}"),
            r.files_seen,
            r.files_processed,
            r.files_quarantined,
            r.articles_new,
            round(r.seconds_to_commit, 2),
            round(r.mb_per_s, 3),
        ]
        for r in reversed(f.history)
    ]
    headers = ["started (UTC)", "run", "files seen", "processed", "quarantined", "new articles", "s to commit", "MB/s"]
    return (
        _figure("run-steps", c, "Batch steps are summed over batches (they run in parallel); dedup and write overlap.")
        + _figure(
            "runs-history",
            c,
            f"The last {len(f.history)} runs that changed the datasets, from their records: "
            "seconds per step stacked, seconds to commit as a tick, MB/s of input seen.",
        )
        + _table(headers, rows, {2, 3, 4, 5, 6, 7})
    )


def render_html(f: Figures, charts: dict[str, bytes]) -> str:
    """The whole page."""
    c = charts
    sub = f"data <code>{html.escape(f.data_dir)}</code> · generated {html.escape(f.generated_at)}"
    if f.run is not None:
        name = f" ({html.escape(f.run.flow_run_name)})" if f.run.flow_run_name else ""
        sub += f" · run <code>{html.escape(f.run.run_id)}</code>{name} started {html.escape(f.run.started_at)}"
    body = "".join(
        [
            _section("headline", _headline(f)),
            _section("funnel", _funnel(f, c)),
            _section("time", _over_time(f, c)),
            _section("untranslated", _untranslated(f, c)),
            _section(
                "duplicates", '<div class="grid">' + _figure("cluster-sizes", c) + _figure("similarity", c) + "</div>"
            ),
            _section("entities", _entities(f, c)),
            _section(
                "shape", '<div class="grid">' + _figure("article-length", c) + _figure("paragraphs", c) + "</div>"
            ),
            _section("performance", _performance(f, c)),
        ]
    )
    nav = "".join(f'<a href="#{i}">{html.escape(n)}</a>' for i, n in SECTIONS)
    # as JSON escapes: no markup inside the script element (it cannot end it early)
    data = f.to_json().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{TITLE}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{TITLE}</h1><p>{sub}</p><nav>{nav}</nav></header><main>{body}</main>"
        f'<script type="application/json" id="report-data">{data}</script></body></html>\n'
    )


def render_markdown(f: Figures, charts: dict[str, bytes], page_url: str | None, page_location: str | None) -> str:
    """The Prefect markdown artifact: where the full page is, the headline table, and the
    key charts not on its card (`render_card`) as data-URI images."""
    lines = [f"# {TITLE}", ""]
    if page_url:
        lines += [f"**[Open the full report]({page_url})** (every chart and table).", ""]
    if page_location:
        lines += [f"The page: `{page_location}`", ""]
    lines += ["| measure | this run | in total |", "|---|---:|---:|"]
    for h in headline_rows(f):
        lines.append(f"| {h['measure']} | {_md(h['this run'])} | {_md(h['in total'])} |")
    for chart_id in BODY_CHARTS:
        if chart_id in charts:
            title = TITLES[chart_id]
            lines += ["", f"## {title}", "", f"![{title}]({data_uri(charts[chart_id])})"]
    return "\n".join(lines) + "\n"


def render_card(charts: dict[str, bytes], changed: bool) -> str:
    """The markdown artifact's description: a first line that says what it is (all the v1
    UI shows of it on the card), then the card's charts."""
    line = "Data-quality report: this run and the last runs" + ("" if changed else " (this run changed nothing)")
    images = [f"![{TITLES[c]}]({data_uri(charts[c])})" for c in CARD_CHARTS if c in charts]
    return "\n\n".join([line, *images])


def _md(value: Any) -> str:
    return "" if value == "" else html.unescape(fmt(value)).replace("|", "\\|")
