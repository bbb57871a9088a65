"""The report's charts as SVG: matplotlib's SVG backend, deterministic bytes.

Every chart is drawn from `Figures` alone (the plotting library never sees a row). The
object API (`matplotlib.figure.Figure`, no pyplot) keeps no global state, so drawing from
a flow's thread is safe. Same figures, same bytes: a fixed `svg.hashsalt` for the ids
matplotlib generates, no date or creator in the metadata. Text stays text
(`svg.fonttype=none`): smaller files, and characters DejaVu lacks fall back to the
viewer's fonts. `text.parse_math` is off, so a `$` in a file name is just a `$`.

Importing this module imports matplotlib (~1.5 s the first time in a process): callers
that may not draw import it only when they do.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib as mpl
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tasks.report.figures import (
    CLUSTER_CAP,
    ENTITY_COLUMNS,
    PARAGRAPHS_CAP,
    SPAN_LENGTH_BINS,
    Figures,
    Rows,
)

PALETTE = ["#3b6ea5", "#e0893a", "#5a9e5a", "#c4504f", "#8a6bb8", "#8c6d5c", "#d27cb4", "#7f7f7f", "#b5b84a", "#3fb3c4"]
BLUE, ORANGE, GREEN, RED, PURPLE, _, _, GREY, _, _ = PALETTE
STYLE = {
    "svg.hashsalt": "newsflow-report",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "Liberation Sans"],
    "font.size": 8.5,
    "text.parse_math": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.prop_cycle": cycler(color=PALETTE),
    "figure.dpi": 100,
    "savefig.facecolor": "white",
}
WIDE, NARROW = 8.6, 4.2  # inches: a chart across the page, and one of two side by side


# ---------------------------------------------------------------------------- helpers


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1, **kw: Any) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, [ax for row in axes for ax in row]


def _svg(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return buffer.getvalue()


def _empty(ax: Axes, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_xticks([])
    ax.set_yticks([])


def _short(value: Any, n: int = 38) -> str:
    """A label that fits: long file names keep their end (the distinctive part)."""
    s = str(value)
    return s if len(s) <= n else "…" + s[-(n - 1) :]


def _si(v: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def _is_decade(v: float) -> bool:
    return v >= 1 and float(f"{v:.0e}") == v and f"{v:.0e}".startswith("1")


def _barh(ax: Axes, labels: Sequence[Any], values: Sequence[float], color: str, fmt: str = "{:,}") -> None:
    """Horizontal bars, first label on top, each bar with its value."""
    if not labels:
        _empty(ax)
        return
    y = list(range(len(labels)))[::-1]
    ax.barh(y, values, color=color)
    ax.set_yticks(y, [_short(s) for s in labels])
    top = max(values) or 1
    for yi, v in zip(y, values, strict=True):
        ax.text(v + top * 0.01, yi, fmt.format(v), va="center", fontsize=7)
    ax.set_xlim(0, top * 1.18)


def _has_counts(rows: Rows) -> bool:
    return bool(rows) and sum(r["n"] for r in rows) > 0


def _bins(ax: Axes, rows: Rows, xlabel: str, color: str) -> None:
    """A histogram of fixed bins, leading empty bins left out (a threshold of 0.8 leaves
    the first 40 similarity bins empty)."""
    if not _has_counts(rows):
        _empty(ax)
        return
    first = next(i for i, r in enumerate(rows) if r["n"])
    shown = rows[first:] if first < len(rows) - 1 else rows
    ax.bar(
        [r["lo"] for r in shown],
        [r["n"] for r in shown],
        width=[r["hi"] - r["lo"] for r in shown],
        align="edge",
        color=color,
        edgecolor="white",
        linewidth=0.4,
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")


def _edge_bars(ax: Axes, rows: Rows, xlabel: str, color: str, label: Callable[[float], str]) -> None:
    """Bins of unequal width as equal bars, labelled by their lower edge (`label` may
    leave some out: "")."""
    if not _has_counts(rows):
        _empty(ax)
        return
    ax.bar(range(len(rows)), [r["n"] for r in rows], color=color, width=0.9)
    ax.set_xticks(range(len(rows)), [label(r["lo"]) for r in rows], rotation=45, ha="right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("articles")


def _month_ticks(ax: Axes, months: list[str]) -> None:
    step = max(1, len(months) // 12)
    ax.set_xticks(range(0, len(months), step), months[::step], rotation=45, ha="right")


def _joint_legend(*axes: Axes) -> None:
    handles, labels = [], []
    for ax in axes:
        h, label = ax.get_legend_handles_labels()
        handles += h
        labels += label
    axes[0].legend(handles, labels, loc="upper left", fontsize=7, frameon=False)


# ---------------------------------------------------------------------------- the charts


def funnel(f: Figures) -> Figure:
    fig, (run_ax, total_ax) = _figure(WIDE, 2.9, ncols=2)
    r = f.run
    if r is not None:
        labels = [
            "files seen",
            "processed",
            "unchanged",
            "quarantined",
            "article occurrences",
            "unique articles",
            "new articles",
            "new near-dup links",
        ]
        values = [
            r.files_seen,
            r.files_processed,
            r.files_unchanged,
            r.files_quarantined,
            r.occurrences,
            r.articles_in_run,
            r.articles_new,
            r.near_duplicates_new,
        ]
        _barh(run_ax, labels, values, ORANGE)
    else:
        _empty(run_ax, "no run recorded")
    run_ax.set_title("this run")
    t = f.totals
    labels = ["files", "processed", "quarantined", "article occurrences", "unique articles", "near-dup links"]
    values = [
        t["files"],
        t["files_processed"],
        t["files_quarantined"],
        t["occurrences"],
        t["articles"],
        t["near_duplicate_links"],
    ]
    _barh(total_ax, labels, values, BLUE)
    total_ax.set_title("in total")
    return fig


def quarantine(f: Figures) -> Figure:
    fig, axes = _figure(WIDE, 2.3, ncols=2)
    for ax, rows, title in ((axes[0], f.quarantine_run, "this run"), (axes[1], f.quarantine_total, "in total")):
        if rows:
            _barh(ax, [r["reason"] for r in rows[:8]], [r["files"] for r in rows[:8]], RED)
        else:
            _empty(ax, "no quarantined files")
        ax.set_title(title)
    return fig


def articles_per_month(f: Figures) -> Figure:
    # the undated ones on an axis of their own: related-article snippets have no date and
    # outnumber any month
    fig, (ax, unknown_ax) = _figure(WIDE, 2.6, ncols=2, width_ratios=[12, 1])
    months = [f"{r['year']}-{r['month']}" for r in f.per_month]
    if months:
        ax.bar(range(len(months)), [r["articles"] for r in f.per_month], color=BLUE, width=0.85)
        _month_ticks(ax, months)
    else:
        _empty(ax)
    ax.set_ylabel("articles")
    undated = f.unknown_month.get("articles", 0)
    unknown_ax.bar([0], [undated], color=GREY, width=0.6)
    unknown_ax.set_xticks([0], ["unknown"])
    unknown_ax.text(0, undated, f"{undated:,}", ha="center", va="bottom", fontsize=7)
    return fig


def untranslated_over_time(f: Figures) -> Figure:
    fig, (ax,) = _figure(WIDE, 2.5)
    months = [f"{r['year']}-{r['month']}" for r in f.per_month]
    if not months:
        _empty(ax)
        return fig
    share = [100 * r["untranslated_chars"] / r["chars"] if r["chars"] else 0 for r in f.per_month]
    with_any = [100 * r["with_untranslated"] / r["articles"] if r["articles"] else 0 for r in f.per_month]
    x = range(len(months))
    ax.plot(x, share, marker=".", color=RED, label="untranslated share of the text (%)")
    ax.set_ylabel("share of text (%)")
    ax.set_ylim(0, max(share + [0.01]) * 1.3)
    twin = ax.twinx()
    twin.spines["right"].set_visible(True)
    twin.plot(x, with_any, linestyle="--", color=BLUE, label="articles with any (%)")
    twin.set_ylabel("articles with any (%)")
    twin.set_ylim(0, max(with_any + [0.01]) * 1.3)
    _month_ticks(ax, months)
    _joint_legend(ax, twin)
    return fig


def untranslated_ratio(f: Figures) -> Figure:
    fig, (ax,) = _figure(NARROW, 2.5)
    _edge_bars(ax, f.ratio_hist, "untranslated_ratio (bins from)", RED, lambda lo: f"{100 * lo:g}%")
    ax.set_title(f"articles with any; {f.ratio_zero:,} without", fontsize=8, fontweight="normal")
    return fig


def spans_by_lang(f: Figures) -> Figure:
    fig, (ax,) = _figure(NARROW, 2.5)
    _barh(ax, [r["lang"] for r in f.spans_by_lang], [r["spans"] for r in f.spans_by_lang], GREEN)
    ax.set_xlabel("spans")
    return fig


def span_length(f: Figures) -> Figure:
    fig, (ax,) = _figure(NARROW, 2.5)
    lo, hi, n = SPAN_LENGTH_BINS
    _bins(ax, f.span_length_hist, f"characters (last bin: ≥ {hi - (hi - lo) // n})", GREEN)
    return fig


def span_confidence(f: Figures) -> Figure:
    fig, (ax,) = _figure(NARROW, 2.5)
    _bins(ax, f.confidence_hist, "confidence", GREEN)
    return fig


def top_untranslated_files(f: Figures) -> Figure:
    fig, (ax,) = _figure(WIDE, 2.7)
    _barh(ax, [r["source_file"] for r in f.top_files], [r["untranslated_chars"] for r in f.top_files], RED)
    ax.set_xlabel("untranslated characters")
    return fig


def cluster_sizes(f: Figures) -> Figure:
    fig, (ax,) = _figure(NARROW, 2.5)
    if not _has_counts(f.cluster_sizes):
        _empty(ax, "no near-duplicates")
        return fig
    sizes = [r["size"] for r in f.cluster_sizes]
    ax.bar(sizes, [r["n"] for r in f.cluster_sizes], color=PURPLE)
    ax.set_xticks(sizes[::2], [f"{s}+" if s == CLUSTER_CAP else str(s) for s in sizes[::2]])
    ax.set_xlabel("articles in the cluster")
    ax.set_ylabel("clusters")
    return fig


def similarity(f: Figures) -> Figure:
    fig, (ax,) = _figure(NARROW, 2.5)
    _bins(ax, f.similarity_hist, "Jaccard similarity to the canonical article", PURPLE)
    return fig


def entities(f: Figures) -> Figure:
    fig, axes = _figure(WIDE, 6.6, ncols=2, nrows=2)
    for ax, column, color in zip(axes, ENTITY_COLUMNS, PALETTE, strict=False):
        rows = f.entities.get(column, [])
        _barh(ax, [r["value"] for r in rows], [r["articles"] for r in rows], color)
        ax.set_title(column)
    return fig


def article_length(f: Figures) -> Figure:
    fig, (ax,) = _figure(NARROW, 2.5)
    # 4 bins a decade: only the decades are labelled
    _edge_bars(ax, f.length_hist, "characters of body (log scale)", BLUE, lambda lo: _si(lo) if _is_decade(lo) else "")
    return fig


def paragraphs(f: Figures) -> Figure:
    fig, (ax,) = _figure(NARROW, 2.5)
    if not _has_counts(f.paragraphs):
        _empty(ax)
        return fig
    ax.bar([r["paragraphs"] for r in f.paragraphs], [r["n"] for r in f.paragraphs], color=BLUE)
    ax.set_xlabel(f"paragraphs (last: {PARAGRAPHS_CAP}+)")
    ax.set_ylabel("articles")
    return fig


def run_steps(f: Figures) -> Figure:
    fig, (ax,) = _figure(NARROW, 2.7)
    r = f.run
    if r is None or not r.step_seconds:
        _empty(ax, "no run recorded")
        return fig
    _barh(ax, list(r.step_seconds), [round(v, 2) for v in r.step_seconds.values()], ORANGE, fmt="{:.2f} s")
    ax.set_xlabel("seconds (batch steps summed over batches)")
    ax.set_title(
        f"{r.seconds_to_commit:.1f} s to commit · {r.mb_per_s:.2f} MB/s · {r.files_per_s:.0f} files/s",
        fontsize=8,
        fontweight="normal",
    )
    return fig


def runs_history(f: Figures) -> Figure:
    fig, (ax,) = _figure(WIDE, 3.0)
    runs = f.history
    if not runs:
        _empty(ax, "no run recorded yet")
        return fig
    x = list(range(len(runs)))
    steps = list(dict.fromkeys(s for r in runs for s in r.step_seconds))  # in the pipeline's order
    bottom = [0.0] * len(x)
    for i, step in enumerate(steps):
        values = [r.step_seconds.get(step, 0.0) for r in runs]
        ax.bar(x, values, bottom=bottom, width=0.7, color=PALETTE[i % len(PALETTE)], label=step)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    walls = [r.seconds_to_commit for r in runs]
    ax.plot(x, walls, color="black", marker="_", markersize=14, linestyle="none", label="to commit")
    ax.set_ylabel("seconds")
    ax.set_ylim(0, max(bottom + walls + [0.1]) * 1.45)
    twin = ax.twinx()
    twin.spines["right"].set_visible(True)
    rates = [r.mb_per_s for r in runs]
    twin.plot(x, rates, color=RED, marker="o", label="MB/s")
    twin.set_ylabel("MB/s (input seen / seconds to commit)")
    twin.set_ylim(0, max(rates + [0.01]) * 1.3)
    labels = [r.started_at[5:16].replace("T", " ") for r in runs]
    step = max(1, len(x) // 10)
    ax.set_xticks(x[::step], labels[::step], rotation=30, ha="right")
    handles, names = [], []
    for a in (ax, twin):
        h, n = a.get_legend_handles_labels()
        handles, names = handles + h, names + n
    ax.legend(handles, names, fontsize=6.5, ncol=6, loc="upper left", frameon=False)
    return fig


Chart = Callable[[Figures], Figure]
# Every chart of the page, by id, in its order (tasks/report/page.py::TITLES names them).
CHARTS: dict[str, Chart] = {
    "funnel": funnel,
    "quarantine": quarantine,
    "articles-per-month": articles_per_month,
    "untranslated-over-time": untranslated_over_time,
    "untranslated-ratio": untranslated_ratio,
    "spans-by-lang": spans_by_lang,
    "span-length": span_length,
    "span-confidence": span_confidence,
    "top-untranslated-files": top_untranslated_files,
    "cluster-sizes": cluster_sizes,
    "similarity": similarity,
    "entities": entities,
    "article-length": article_length,
    "paragraphs": paragraphs,
    "run-steps": run_steps,
    "runs-history": runs_history,
}


def render(figures: Figures, only: Sequence[str] | None = None) -> dict[str, bytes]:
    """The charts (all of CHARTS, or `only` these) as SVG bytes, in CHARTS' order."""
    wanted = [c for c in CHARTS if only is None or c in only]
    with mpl.rc_context(STYLE):
        return {chart_id: _svg(CHARTS[chart_id](figures)) for chart_id in wanted}
