"""Score the entity extractor against the labelled sample, per type and split.

    newsflow bench entities                 # the table: tune / holdout / all x type
    newsflow bench entities --errors        # every false positive and negative, per article
    newsflow bench entities --check         # exit 1 below the floor (FLOOR) on the holdout

The sample (bench/data/entities_sample.jsonl, rules in docs/ENTITIES.md) is one article a
line: `id`, `source` (seed / eval / written), `split` (tune / holdout), `text`, `people`,
`places`, `organizations`. Rows from the WMT23 evaluation data hold no text, only a
`text_ref` (file, doc, system): the text is read from the evaluation folder when scoring,
so that data never enters the repository.

Metrics, micro-averaged over articles (an entity counts once per article):
- exact: a prediction is correct when it equals a label of the same type and article after
  normalising whitespace and apostrophes (’ -> '); case-sensitive. P = correct predictions /
  predictions, R = matched labels / labels, F1 = 2PR / (P + R).
- lenient: a prediction and a label match when one contains the other as whole words,
  case-insensitively ("70th Division" ~ "70th Division of the 24th Army"). P = predictions
  matching some label / predictions, R = labels matched by some prediction / labels.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import REPO

SAMPLE = Path(__file__).parent / "data" / "entities_sample.jsonl"
TYPES = ("people", "places", "organizations")
SPLITS = ("tune", "holdout", "all")
# The CI floor (tests/bench/test_entities.py): exact match, all types, on the holdout split.
FLOOR = {"split": "holdout", "f1": 0.92, "precision": 0.95}

Extractor = Callable[[str], dict[str, list[str]]]


def default_eval_dir() -> Path:
    """NEWSFLOW_EVAL_DIR, else ../shared/eval beside the repository."""
    return Path(os.environ.get("NEWSFLOW_EVAL_DIR") or REPO.parent / "shared" / "eval")


def norm(s: str) -> str:
    return " ".join(s.replace("’", "'").replace("‘", "'").split())


def _contains(a: str, b: str) -> bool:
    """b occurs in a as whole words, case-insensitively."""
    a, b = norm(a).lower(), norm(b).lower()
    return re.search(rf"(?<!\w){re.escape(b)}(?!\w)", a) is not None


def lenient_match(pred: str, gold: str) -> bool:
    return _contains(pred, gold) or _contains(gold, pred)


@dataclass(frozen=True)
class Sample:
    rows: list[dict]  # every row with its text
    missing: list[str]  # ids of eval rows whose text could not be read


def eval_text(ref: dict, eval_dir: Path, cache: dict[str, list[dict]] | None = None) -> str:
    """The text of an eval row: the segments of (doc, system) in ref["file"], joined."""
    cache = {} if cache is None else cache
    if ref["file"] not in cache:
        lines = (eval_dir / ref["file"]).read_text(encoding="utf-8").splitlines()
        cache[ref["file"]] = [json.loads(x) for x in lines if x.strip()]
    for doc in cache[ref["file"]]:
        if doc.get("doc") == ref["doc"] and doc.get("system") == ref["system"]:
            return ref.get("join", "\n\n").join(doc["segments"])
    raise KeyError(f"{ref['doc']} / {ref['system']} not in {ref['file']}")


def load_sample(path: Path = SAMPLE, eval_dir: Path | None = None) -> Sample:
    eval_dir = default_eval_dir() if eval_dir is None else eval_dir
    rows, missing = [], []
    cache: dict[str, list[dict]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("text") is None:
            try:
                row = {**row, "text": eval_text(row["text_ref"], eval_dir, cache)}
            except (OSError, KeyError, ValueError):
                missing.append(row["id"])
                continue
        rows.append(row)
    return Sample(rows, missing)


class ExtractorNotFound(ValueError):
    """The --extractor given cannot be imported."""


def load_extractor(spec: str) -> Extractor:
    """ "module:function" (text -> {"people": [...], "places": [...], "organizations": [...]})
    or "module" with find_people / find_places / find_organizations."""
    module_name, _, function = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        if function:
            return getattr(module, function)
        finders = {t: getattr(module, f"find_{t}") for t in TYPES}
    except (ImportError, AttributeError) as exc:
        raise ExtractorNotFound(
            f"--extractor {spec}: {exc}; give module:function, or a module with find_people, find_places and "
            "find_organizations, importable from this folder or PYTHONPATH"
        ) from exc
    return lambda text: {t: f(text) for t, f in finders.items()}


@dataclass
class Counts:
    pred: int = 0
    gold: int = 0
    tp: int = 0  # exact: correct predictions (= matched labels)
    lenient_p: int = 0  # predictions matching some label
    lenient_r: int = 0  # labels matched by some prediction

    def add(self, other: Counts) -> None:
        self.pred += other.pred
        self.gold += other.gold
        self.tp += other.tp
        self.lenient_p += other.lenient_p
        self.lenient_r += other.lenient_r

    def scores(self) -> dict[str, float]:
        def f1(p: float, r: float) -> float:
            return 2 * p * r / (p + r) if p + r else 0.0

        p = self.tp / self.pred if self.pred else 1.0
        r = self.tp / self.gold if self.gold else 1.0
        lp = self.lenient_p / self.pred if self.pred else 1.0
        lr = self.lenient_r / self.gold if self.gold else 1.0
        return {"P": p, "R": r, "F1": f1(p, r), "lenient_P": lp, "lenient_R": lr, "lenient_F1": f1(lp, lr)}


def compare(pred: list[str], gold: list[str]) -> tuple[Counts, list[str], list[str]]:
    """Counts of one article and type, its false positives and false negatives."""
    p = list(dict.fromkeys(norm(x) for x in pred if x and x.strip()))
    g = list(dict.fromkeys(norm(x) for x in gold))
    c = Counts(pred=len(p), gold=len(g), tp=len(set(p) & set(g)))
    c.lenient_p = sum(any(lenient_match(x, y) for y in g) for x in p)
    c.lenient_r = sum(any(lenient_match(x, y) for x in p) for y in g)
    return c, [x for x in p if x not in set(g)], [y for y in g if y not in set(p)]


@dataclass
class Report:
    counts: dict[tuple[str, str], Counts] = field(default_factory=dict)  # (split, type or "all") -> counts
    errors: list[dict] = field(default_factory=list)
    articles: int = 0
    missing: list[str] = field(default_factory=list)

    def scores(self, split: str, type_: str = "all") -> dict[str, float]:
        return self.counts.get((split, type_), Counts()).scores()


def score(rows: list[dict], extract: Extractor) -> Report:
    rep = Report(articles=len(rows))
    for row in rows:
        got = extract(row["text"])
        for t in TYPES:
            c, fp, fn = compare(got.get(t, []), row[t])
            for key in ((row["split"], t), ("all", t), (row["split"], "all"), ("all", "all")):
                rep.counts.setdefault(key, Counts()).add(c)
            if fp or fn:
                rep.errors.append({"id": row["id"], "split": row["split"], "type": t, "false_pos": fp, "false_neg": fn})
    return rep


def evaluate(
    extractor: str = "tasks.steps.entities:find_entities",
    *,
    sample: Path = SAMPLE,
    eval_dir: Path | None = None,
    source: str | None = None,
) -> Report:
    """Score an extractor on the sample (only rows of `source`, if given)."""
    loaded = load_sample(sample, eval_dir)
    rows = [r for r in loaded.rows if source is None or r["source"].split()[0] == source]
    rep = score(rows, load_extractor(extractor))
    rep.missing = loaded.missing
    return rep


def table(rep: Report) -> str:
    exact = f"{'P':>6} {'R':>6} {'F1':>6}"
    lenient = f"{'len P':>6} {'len R':>6} {'len F1':>6}"
    head = f"{'split':8} {'type':14} {'gold':>5} {'pred':>5} {exact} | {lenient}"
    lines = [head, "-" * len(head)]
    for split in SPLITS:
        for t in (*TYPES, "all"):
            c = rep.counts.get((split, t))
            if c is None:
                continue
            s = c.scores()
            lines.append(
                f"{split:8} {t:14} {c.gold:5d} {c.pred:5d} {s['P']:6.3f} {s['R']:6.3f} {s['F1']:6.3f} | "
                f"{s['lenient_P']:6.3f} {s['lenient_R']:6.3f} {s['lenient_F1']:6.3f}"
            )
    return "\n".join(lines)


def below_floor(rep: Report, floor: dict = FLOOR) -> list[str]:
    """What falls short of the floor (empty when met); missing eval text falls short too."""
    s = rep.scores(floor["split"])
    out = []
    if rep.missing:
        out.append(f"{len(rep.missing)} sample rows have no text (evaluation data missing): {', '.join(rep.missing)}")
    if s["F1"] < floor["f1"]:
        out.append(f"exact F1 {s['F1']:.3f} < {floor['f1']} on {floor['split']}")
    if s["P"] < floor["precision"]:
        out.append(f"exact precision {s['P']:.3f} < {floor['precision']} on {floor['split']}")
    return out
