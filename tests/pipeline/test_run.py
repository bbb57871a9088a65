"""Tests (and examples of use) for tasks/pipeline/run.py: the run's global steps without
Prefect, on the seeds' batch results: exact dedup, the near-duplicate search beside the
staging of the other datasets, the commit, and what each failure leaves behind."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest

import tasks.pipeline.run as run_module
from flows.defaults import NEAR_DUPLICATE_THRESHOLD
from flows.runners import run_batches
from tasks.pipeline.batch import Spill, process_files
from tasks.pipeline.run import RunRows, finish_run
from tasks.pipeline.summary import RunSummary
from tasks.schema import ARTICLES, DUPLICATES, FILES, MINHASH_INDEX, OCCURRENCES, SEGMENTS, SPANS, C
from tasks.storage.commit import recover
from tasks.storage.spill import spill_root
from tests.conftest import tree_digest, without_manifest
from tests.paths import SEEDS


def run_once(seeds: Path, data: Path) -> RunSummary:
    """What the ingest flow does, without Prefect: recover, every file in one batch, finish."""
    recover(data)
    run_id = str(uuid.uuid4())
    files = sorted(p.name for p in seeds.glob("*.txt"))
    results = run_batches(str(seeds), [files], [0], {}, str(spill_root(data, run_id).absolute()), 1)
    return finish_run(str(data), results, run_id, False, NEAR_DUPLICATE_THRESHOLD)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the seeds, the data dir of a clean run over them)."""
    root = tmp_path_factory.mktemp("clean")
    shutil.copytree(SEEDS, root / "seeds")
    run_once(root / "seeds", root / "data")
    return root / "seeds", root / "data"


@pytest.fixture
def fresh_data(clean_run, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(the seeds, the data dir of a clean run over them, an empty data dir for this test)."""
    seeds, clean = clean_run
    return seeds, clean, tmp_path / "data"


def _staged_parquet(data: Path) -> list[Path]:
    return sorted((data / "_staging").rglob("*.parquet"))


def _wait_until(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _assert_nothing_committed_and_a_rerun_is_clean(
    seeds: Path, data: Path, clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run waited for its staging thread: none is left writing into data/ after the failure.
    assert not [t for t in threading.enumerate() if t.name.startswith("newsflow-stage")]
    assert not (data / ARTICLES.name).exists()  # nothing committed
    assert not list((data / "_staging").rglob(".*.tmp"))  # whole files only: no write was cut off
    monkeypatch.undo()
    again = run_once(seeds, data)
    assert again.files_processed == 5 and not _staged_parquet(data)  # recovery discarded the failed run's files
    assert without_manifest(tree_digest(data)) == without_manifest(tree_digest(clean))


def test_datasets_are_staged_while_the_near_duplicate_search_runs(fresh_data, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each side waits for the other: the search until staging has written a file, staging's
    # last dataset (the manifest) until the search has begun. Run one after the other, in
    # either order, one of the waits would time out.
    seeds, clean, data = fresh_data
    search, stage = run_module.find_near_duplicates, run_module.stage_update
    search_began = threading.Event()

    def search_once_staging_has_begun(index, texts, threshold):
        search_began.set()
        _wait_until(lambda: _staged_parquet(data), "staging did not start while the search ran")
        return search(index, texts, threshold=threshold)

    def stage_the_manifest_once_the_search_has_begun(data_dir, run_id, spec, *args, **kwargs):
        if spec is FILES:
            assert search_began.wait(120), "the search had not begun when staging reached its last dataset"
        return stage(data_dir, run_id, spec, *args, **kwargs)

    monkeypatch.setattr(run_module, "find_near_duplicates", search_once_staging_has_begun)
    monkeypatch.setattr(run_module, "stage_update", stage_the_manifest_once_the_search_has_begun)
    summary = run_once(seeds, data)
    assert summary.articles_new == 20 and summary.global_steps_seconds > 0
    assert without_manifest(tree_digest(data)) == without_manifest(tree_digest(clean))


def test_a_run_whose_spill_is_over_the_overlap_budget_stages_after_the_search(
    fresh_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Above the budget the two steps hold too much memory side by side: one after the other.
    seeds, clean, data = fresh_data
    search, stage = run_module.find_near_duplicates, run_module.stage_update
    order = []

    def recording_search(index, texts, threshold):
        # no staging thread exists yet: the executor starts it at the first submit
        order.append(
            (
                "search",
                len(_staged_parquet(data)),
                [t.name for t in threading.enumerate() if t.name.startswith("newsflow-stage")],
            )
        )
        return search(index, texts, threshold=threshold)

    def recording_stage(data_dir, run_id, spec, *args, **kwargs):
        order.append((spec.name,))
        return stage(data_dir, run_id, spec, *args, **kwargs)

    monkeypatch.setattr(run_module, "OVERLAP_MAX_SPILL_BYTES", 0)
    monkeypatch.setattr(run_module, "find_near_duplicates", recording_search)
    monkeypatch.setattr(run_module, "stage_update", recording_stage)
    run_once(seeds, data)
    assert order[0] == ("search", 0, [])  # before any dataset was staged, with no staging thread
    assert [step[0] for step in order[1:]] == [
        MINHASH_INDEX.name,
        ARTICLES.name,
        OCCURRENCES.name,
        SEGMENTS.name,
        SPANS.name,
        FILES.name,
        DUPLICATES.name,
    ]
    assert without_manifest(tree_digest(data)) == without_manifest(tree_digest(clean))


def test_a_failed_search_stops_staging_waits_for_it_and_commits_nothing(
    fresh_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds, clean, data = fresh_data
    stage, stage_rows = run_module.stage_update, run_module.stage_run_rows
    staging_articles = threading.Event()
    stops: list[threading.Event] = []  # the staging thread's stop signal
    staged_specs = []

    def failing_search(index, texts, threshold):
        _wait_until(staging_articles.is_set, "staging did not reach the articles")
        raise RuntimeError("near-duplicate search failed")

    def stage_rows_keeping_the_stop_signal(*args):
        stops.append(args[-1])
        return stage_rows(*args)

    def recording_stage(data_dir, run_id, spec, *args, **kwargs):
        staged_specs.append(spec.name)
        if spec is ARTICLES:  # the search fails while this dataset is being staged
            staging_articles.set()
            assert stops[0].wait(120), "the failed search did not signal staging to stop"
        return stage(data_dir, run_id, spec, *args, **kwargs)

    monkeypatch.setattr(run_module, "find_near_duplicates", failing_search)
    monkeypatch.setattr(run_module, "stage_run_rows", stage_rows_keeping_the_stop_signal)
    monkeypatch.setattr(run_module, "stage_update", recording_stage)
    with pytest.raises(RuntimeError, match="near-duplicate search failed"):
        run_once(seeds, data)
    assert staged_specs == [MINHASH_INDEX.name, ARTICLES.name]  # the dataset under way finished; no further one began
    _assert_nothing_committed_and_a_rerun_is_clean(seeds, data, clean, monkeypatch)


def test_a_failed_stage_fails_the_run_after_the_search_and_commits_nothing(
    fresh_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds, clean, data = fresh_data
    search, stage = run_module.find_near_duplicates, run_module.stage_update
    staging_failed, searched = threading.Event(), []

    def search_after_staging_failed(index, texts, threshold):
        _wait_until(staging_failed.is_set, "staging did not fail")
        searched.append(search(index, texts, threshold=threshold))
        return searched[-1]

    def stage_failing_on_segments(data_dir, run_id, spec, *args, **kwargs):
        if spec is SEGMENTS:
            staging_failed.set()
            raise OSError("No space left on device (staging segments)")
        return stage(data_dir, run_id, spec, *args, **kwargs)

    monkeypatch.setattr(run_module, "find_near_duplicates", search_after_staging_failed)
    monkeypatch.setattr(run_module, "stage_update", stage_failing_on_segments)
    with pytest.raises(OSError, match="staging segments"):
        run_once(seeds, data)
    assert len(searched) == 1  # the search ran to its end before the staging error went up
    assert _staged_parquet(data)  # the datasets before segments were staged, then left for recovery
    _assert_nothing_committed_and_a_rerun_is_clean(seeds, data, clean, monkeypatch)


def test_when_search_and_staging_both_fail_the_error_names_both(fresh_data, monkeypatch: pytest.MonkeyPatch) -> None:
    seeds, clean, data = fresh_data
    staging_failed = threading.Event()

    def failing_search(index, texts, threshold):
        _wait_until(staging_failed.is_set, "staging did not fail")
        raise RuntimeError("near-duplicate search failed")

    def failing_stage(data_dir, run_id, spec, *args, **kwargs):
        staging_failed.set()
        raise OSError("No space left on device (staging)")

    monkeypatch.setattr(run_module, "find_near_duplicates", failing_search)
    monkeypatch.setattr(run_module, "stage_update", failing_stage)
    with pytest.raises(RuntimeError, match="near-duplicate search failed") as failed:
        run_once(seeds, data)
    assert any("No space left on device (staging)" in note for note in getattr(failed.value, "__notes__", []))
    _assert_nothing_committed_and_a_rerun_is_clean(seeds, data, clean, monkeypatch)


def test_article_texts_are_read_from_a_spill_whose_path_looks_like_a_glob_pattern(
    seeds_dir: Path, tmp_path: Path
) -> None:
    # Near-duplicate verification reads candidate texts back from the spill: a data dir
    # named like `data[1]` is a path, not a pattern (polars would expand it to no files).
    root = tmp_path / "data[1]" / "spill"
    files = sorted(p.name for p in seeds_dir.glob("*.txt"))
    result = process_files(seeds_dir, files, {}, Spill(str(root), 0))
    rows = RunRows.gather(root, [result])
    ids = rows.winners.get_column(C.article_id).to_list()[:3]
    texts = rows.article_texts(ids)
    assert sorted(texts.get_column(C.article_id).to_list()) == sorted(ids)
    assert all(len(t) > 0 for t in texts.get_column(texts.columns[1]).to_list())
