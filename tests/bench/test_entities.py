"""bench/entities.py: the labelled entity sample, the scorer, and the CI floor on the
holdout split (read with the WMT23 evaluation data from ../shared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.entities import FLOOR, SAMPLE, TYPES, below_floor, compare, evaluate, lenient_match, load_sample
from tests.paths import EVAL, REPO

ROWS = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def test_entity_extraction_meets_the_floor_on_the_holdout() -> None:
    if not EVAL.is_dir():
        pytest.fail(f"evaluation data missing: expected {EVAL} (shared/ beside the repo)")
    rep = evaluate(eval_dir=EVAL)
    assert rep.missing == [] and rep.articles == len(ROWS)
    assert below_floor(rep) == [], rep.scores(FLOOR["split"])


def test_the_floor_can_fail() -> None:
    # An extractor that finds nothing, and one that calls every label's first word a
    # person, both fall below it: the floor is not vacuous.
    rep = evaluate("tests.bench.test_entities:_nothing", eval_dir=EVAL)
    assert rep.scores("holdout")["R"] == 0.0 and below_floor(rep)
    rep = evaluate("tests.bench.test_entities:_sloppy", eval_dir=EVAL)
    assert rep.scores("holdout")["P"] < FLOOR["precision"] and below_floor(rep)


def _nothing(text: str) -> dict[str, list[str]]:
    return {t: [] for t in TYPES}


def _sloppy(text: str) -> dict[str, list[str]]:
    words = [w for w in text.split() if w[:1].isupper()]
    return {"people": words[:20], "places": [], "organizations": []}


def test_sample_is_well_formed() -> None:
    assert len({r["id"] for r in ROWS}) == len(ROWS)
    assert sum(r["source"].startswith("seed") for r in ROWS) == 20  # every seed article
    holdout = [r for r in ROWS if r["split"] == "holdout"]
    assert len(holdout) * 3 >= len(ROWS)  # at least a third held out
    assert {r["source"].split()[0] for r in holdout} == {"seed", "eval", "written"}
    for r in ROWS:
        assert r["split"] in ("tune", "holdout")
        # The evaluation data stays out of the repository: eval rows hold a reference only.
        assert (r["text"] is None) == (r["source"] == "eval") == ("text_ref" in r)
    for r in load_sample(eval_dir=EVAL).rows:
        for t in TYPES:
            assert len(r[t]) == len(set(r[t])), (r["id"], t)
            for label in r[t]:
                assert label in r["text"], (r["id"], t, label)  # as written in the text


def test_seed_rows_are_the_seed_articles() -> None:
    # title + "\n\n" + body, as the enrich step searches them: every line is in the seed file.
    seeds = {
        p.name: p.read_text(encoding="utf-8").replace("\u00a0", " ").replace("\u3000", " ")
        for p in (REPO / "seeds").glob("*.txt")
    }
    for r in ROWS:
        if r["source"].startswith("seed"):
            name = r["source"].split()[1]
            for line in r["text"].split("\n"):
                assert line.strip() in seeds[name], (r["id"], line)


def test_exact_and_lenient_matching() -> None:
    c, false_pos, false_neg = compare(["Wenzhou", "Chen Jining", "Foo", "Chen Jining"], ["Wenzhou City", "Chen Jining"])
    assert (c.pred, c.gold, c.tp, c.lenient_p, c.lenient_r) == (3, 2, 1, 2, 2)
    assert false_pos == ["Wenzhou", "Foo"] and false_neg == ["Wenzhou City"]
    assert compare(["Shanghai’s"], ["Shanghai's"])[0].tp == 1  # apostrophes normalised
    assert compare(["shanghai"], ["Shanghai"])[0].tp == 0  # exact is case-sensitive
    assert lenient_match("70th Division", "70th Division of the 24th Army")
    assert not lenient_match("Division", "Divisions of the Army")  # whole words only
    s = c.scores()
    assert s["P"] == pytest.approx(1 / 3) and s["R"] == pytest.approx(1 / 2) and s["F1"] == pytest.approx(0.4)


def test_missing_evaluation_data_is_reported(tmp_path: Path) -> None:
    rep = evaluate(eval_dir=tmp_path)
    assert len(rep.missing) == sum(r["source"] == "eval" for r in ROWS)
    assert any("evaluation data missing" in line for line in below_floor(rep))


def test_command_prints_per_type_figures_and_checks_the_floor() -> None:
    command = [sys.executable, "-m", "flows.cli", "bench", "entities", "--eval-dir", str(EVAL), "--check"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for split in ("tune", "holdout", "all"):
        for t in (*TYPES, "all"):
            assert any(line.split()[:2] == [split, t] for line in proc.stdout.splitlines()), (split, t)
    failing = [*command, "--extractor", "tests.bench.test_entities:_nothing"]
    proc = subprocess.run(failing, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1 and "below the floor" in proc.stderr
