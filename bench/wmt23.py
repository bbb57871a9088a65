"""Score find_untranslated_spans against WMT23 zh->en MQM annotations (shared/eval data)."""

from __future__ import annotations

import csv
from pathlib import Path

from tasks.steps.langtag import _LETTER_RE, find_untranslated_spans

WMT23_TSV = Path("eval") / "wmt23-zhen-mqm" / "zhen_cjk_residue_rows.tsv"
FRAGMENT = "Accuracy/Source language fragment"


def evaluate_on_wmt23(shared_dir: Path) -> dict[str, float | int]:
    """Character-level span quality on the WMT23 CJK-residue rows.

    recall    = annotated fragment CJK letters covered by a span / all annotated fragment
                CJK letters ("Accuracy/Source language fragment" rows, <v>...</v>).
    precision = span chars that lie inside an annotated fragment or are CJK letters (residue
                by definition in an English target) / all span chars, over each distinct
                target (tags removed) once.
    Raises FileNotFoundError when the TSV is missing.
    """
    path = Path(shared_dir) / WMT23_TSV
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    fragments: dict[str, list[tuple[int, int]]] = {}  # clean target -> annotated ranges
    for r in rows:
        t = r["target"]
        clean = t.replace("<v>", "").replace("</v>", "")
        ranges = fragments.setdefault(clean, [])
        if r["category"] == FRAGMENT and "<v>" in t:
            a = t.index("<v>")
            ranges.append((a, t.index("</v>") - len("<v>")))
    hit = total = good = span_chars = n_spans = 0
    for clean, ranges in fragments.items():
        spans = find_untranslated_spans(clean)
        n_spans += len(spans)
        covered = {i for s, e in spans for i in range(s, e)}
        annotated = {i for a, b in ranges for i in range(a, b)}
        cjk = [i for i in annotated if _LETTER_RE.match(clean, i)]
        total += len(cjk)
        hit += sum(i in covered for i in cjk)
        span_chars += len(covered)
        good += sum(i in annotated or bool(_LETTER_RE.match(clean, i)) for i in covered)
    return {
        "rows": len(rows),
        "targets": len(fragments),
        "fragments": sum(len(v) for v in fragments.values()),
        "spans": n_spans,
        "annotated_cjk_chars": total,
        "recall": hit / total if total else 0.0,
        "span_chars": span_chars,
        "precision": good / span_chars if span_chars else 0.0,
    }
