"""The run summary as people read it: one list of sections, rendered for the terminal
(`newsflow run`) and as markdown (the run's `ingest-summary` artifact in the Prefect UI).

Works on the dict the `ingest` flow returns (tasks/pipeline/summary.py::RunSummary.as_dict).
"""

from __future__ import annotations

import itertools

# The UI loads and renders an artifact whole: one row per file of a 79,308-file backfill
# was a 10 MB table artifact. The complete per-file record is the manifest (data/files/).
ARTIFACT_FILE_ROWS = 1_000

Section = tuple[str, list[tuple[str, object]]]


def summary_sections(s: dict) -> list[Section]:
    """What a run did (this run's counts apart from the datasets' totals), then what needs
    a look: quarantined files, recovery at start."""
    this_run: list[tuple[str, object]] = [
        ("files seen", s["files_seen"]),
        ("  processed", s["files_processed"]),
        ("  unchanged (skipped)", s["files_unchanged"]),
        ("  quarantined", s["files_quarantined"]),
        *(
            [("    unchanged since an earlier run", s["files_quarantined_before"])]
            if s["files_quarantined_before"]
            else []
        ),
        ("article occurrences", s["occurrences"]),
        ("unique articles", s["articles_in_run"]),
        ("  new", s["articles_new"]),
        ("  already in the dataset", s["articles_already_seen"]),
        ("new near-duplicate links", s["near_duplicates_new"]),
        ("untranslated spans", s["spans"]),
    ]
    this_run += [(f"  {lang}", n) for lang, n in s["spans_by_lang"].items()]
    sections: list[Section] = [
        ("This run", this_run),
        (
            "Datasets after the run",
            [("articles", s["articles_total"]), ("near-duplicate links", s["near_duplicates_total"])],
        ),
    ]
    if s.get("span_examples"):
        sections.append(
            (
                f"Untranslated spans (the first {len(s['span_examples'])} of this run, with their English gloss)",
                [
                    (f"{x['source_file']}: {_clip(x['text'])}", f"{x['lang']}: {x['gloss'] or '(no gloss)'}")
                    for x in s["span_examples"]
                ],
            )
        )
    if s["quarantined"]:
        shown = list(itertools.islice(s["quarantined"].items(), ARTIFACT_FILE_ROWS))
        more = len(s["quarantined"]) - len(shown)
        if more:
            shown.append((f"… and {more} more", "every file's status and reason is in data/files/"))
        sections.append(("Quarantined files", shown))
    if s["recovered"]:
        sections.append(("Recovered at start", [(line, "") for line in s["recovered"]]))
    return sections


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_text(s: dict) -> str:
    """The summary for a terminal: aligned label / value lines under each section's title."""
    out = [f"newsflow run {s['run_id']}"]
    for title, rows in summary_sections(s):
        out += ["", title]
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            out.append(
                f"  {label:<{width}}  {value:>7}" if isinstance(value, int) else f"  {label}: {value}".rstrip(": ")
            )
    return "\n".join(out)


def render_markdown(s: dict) -> str:
    """The summary for the Prefect UI: a table per section, and the run's timeline."""
    lines = [f"# newsflow ingest — run `{s['run_id']}`"]
    for title, rows in summary_sections(s):
        lines += ["", f"## {title}", "", "| | |", "|---|---|"]
        lines += [f"| {_cell(label)} | {_cell(value)} |" for label, value in rows]
    t = s.get("timeline", {})
    if "worker_busy" in t:
        lines += [
            "",
            "## Where the time went (seconds from the flow's start)",
            "",
            (
                f"Batches handed out at {t['batches_submitted']:.1f}; "
                f"the first began at {t['first_batch_started']:.1f} "
                f"(worker start-up), the last ended at {t['last_batch_ended']:.1f}; "
                f"workers busy {t['worker_busy']:.1f} s, "
                f"idle {t['worker_idle']:.1f} s between; committed at {t['committed']:.1f}."
            ),
        ]
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text.replace(" ", "\u00a0", 2) if text.startswith("  ") else text  # keep the indent of sub-rows
