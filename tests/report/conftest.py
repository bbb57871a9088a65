"""Data folders for the report's tests, made once a session by the pipeline itself (its
Prefect-free functions, in this process) and with run records written as a run writes them:

- `seeds`: the reference seeds in two runs (three files, then all five: two unchanged);
- `corpus`: a 2 MB benchmark corpus (`newsflow bench generate --size 2MB --seed 1`) in two
  runs, the second adding four files that are quarantined (empty, binary, no body, blank).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.corpus import MB, CorpusParams, write_corpus
from tasks.pipeline.batch import Spill, process_files_and_release
from tasks.pipeline.planning import discover_files
from tasks.pipeline.run import finish_run, known_files, known_for
from tasks.pipeline.summary import RunSummary
from tasks.report import history
from tasks.storage.spill import spill_root
from tests.paths import SEEDS

CORPUS_BYTES = 2 * MB
BAD_FILES = {
    "zz_bad/empty.txt": b"",
    "zz_bad/image.txt": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "zz_bad/title-only.txt": b"Only a title line here\n",
    "zz_bad/blank.txt": b"   \n\n  \n",
}


@dataclass(frozen=True)
class DataCase:
    name: str
    seeds: Path
    data: Path
    records: list[history.RunRecord]


def ingest(seeds: Path, data: Path, started_at: datetime, glob: str = "**/*.txt") -> history.RunRecord:
    """One run of the pipeline without Prefect (every file in one batch, in this process),
    then its record written as the flow writes it. Run ids from the start time: the same
    data gives the same pages (and screenshots)."""
    run_id = str(uuid.UUID(int=int(started_at.timestamp()), version=4))
    files = [f.source_file for f in discover_files(seeds, glob)]
    known = known_files(data)
    spill = str(spill_root(data, run_id).absolute())
    result = process_files_and_release(seeds, files, known_for(known, files), Spill(spill, 0))
    summary: RunSummary = finish_run(str(data), [result], run_id, False, 0.8)
    summary.timeline = {"committed": 1.0 + len(files) / 100}  # what the flow measures; any positive time
    record = history.record_for(summary, started_at, flow_run_name=f"ingest-{started_at:%Y-%m-%dT%H:%M}")
    history.write_record(data, record)
    return record


@pytest.fixture(scope="session")
def seeds_case(tmp_path_factory: pytest.TempPathFactory) -> DataCase:
    root = tmp_path_factory.mktemp("report-seeds")
    seeds, data = root / "seeds", root / "data"
    seeds.mkdir()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    pages = sorted(SEEDS.glob("[0-9][0-9][0-9]_*.txt"))
    for page in pages[:3]:
        shutil.copyfile(page, seeds / page.name)
    first = ingest(seeds, data, start)
    for page in pages[3:]:
        shutil.copyfile(page, seeds / page.name)
    second = ingest(seeds, data, start + timedelta(minutes=15))
    return DataCase("seeds", seeds, data, [first, second])


@pytest.fixture(scope="session")
def corpus_case(tmp_path_factory: pytest.TempPathFactory) -> DataCase:
    root = tmp_path_factory.mktemp("report-corpus")
    write_corpus(root / "corpus", CorpusParams(size_bytes=CORPUS_BYTES, seed=1))
    seeds, data = root / "corpus" / "seeds", root / "data"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    first = ingest(seeds, data, start)
    for name, content in BAD_FILES.items():
        (seeds / name).parent.mkdir(exist_ok=True)
        (seeds / name).write_bytes(content)
    second = ingest(seeds, data, start + timedelta(hours=1))
    return DataCase("corpus", seeds, data, [first, second])


@pytest.fixture(scope="module", params=["seeds", "corpus"])
def case(request: pytest.FixtureRequest) -> DataCase:
    return request.getfixturevalue(f"{request.param}_case")
