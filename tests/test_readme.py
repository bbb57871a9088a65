"""The README's promises: its query examples run, and its data contract names every column."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tasks.schema import PUBLIC_DATASETS
from tests.paths import REPO

README = REPO / "README.md"


def _examples() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## Querying the data", 1)[1]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_polars_duckdb_and_pyarrow_examples() -> None:
    sources = _examples()
    assert len(sources) == 3
    assert [s for s in sources if "import polars" in s]
    assert [s for s in sources if "import duckdb" in s]
    assert [s for s in sources if "import pyarrow" in s]


def test_data_contract_documents_every_column_of_every_dataset() -> None:
    text = README.read_text(encoding="utf-8")
    for spec in PUBLIC_DATASETS:
        section = text.split(f"### `data/{spec.name}/`", 1)
        assert len(section) == 2, f"README has no section for data/{spec.name}/"
        body = section[1].split("\n### ", 1)[0]
        for field in spec.full_schema:
            if field.name in spec.partition_by and spec.name != "files":
                assert field.name in body, f"{spec.name}: partition {field.name} undocumented"
            else:
                assert f"| `{field.name}` |" in body, f"{spec.name}.{field.name} missing from the README"


@pytest.mark.parametrize("index", [0, 1, 2])
def test_readme_query_examples_run_on_the_seeds(index: int, seeded_data: Path, capsys) -> None:
    cwd = os.getcwd()
    os.chdir(seeded_data.parent)  # the examples read data/
    try:
        exec(compile(_examples()[index], f"README example {index}", "exec"), {})
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    assert printed.strip()
    if index == 0:
        assert "2024" in printed and "unknown" in printed
    if index == 1:
        assert printed.count("', 2)") == 5  # the five related articles shared by 001 and 002
    if index == 2:
        assert "zh-cn" in printed
        assert "'gloss': 'Chen Jining " in printed  # the first span of 003: 陈吉宁在调研中表示,要
