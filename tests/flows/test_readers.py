"""The datasets as their readers see them: a real Spark (pyspark on Java 17) reads every
dataset of a seeds run, the empty ones included, with the contract's columns and the
partition columns as strings. (polars, DuckDB and pyarrow: tests/flows/test_ingest.py.)"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.schema import PUBLIC_DATASETS
from tasks.storage.location import cache_dir

pytestmark = pytest.mark.slow

PYSPARK = "pyspark>=4.0,<5"
SPARK_READ = r"""
import json, sys
from pyspark.sql import SparkSession

spark = (SparkSession.builder.master("local[1]").appName("newsflow-readers")
         .config("spark.ui.enabled", "false").config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
out = {}
for name in sys.argv[2:]:
    frame = spark.read.parquet(f"{sys.argv[1]}/{name}")
    out[name] = {"rows": frame.count(), "columns": {f.name: f.dataType.simpleString() for f in frame.schema.fields}}
spark.stop()
print(json.dumps(out))
"""


def spark_python() -> Path:
    """An interpreter with pyspark: a venv of its own in this host's cache, made once (pyspark
    is ~480 MB: not a dependency of newsflow itself)."""
    venv = cache_dir() / "pyspark"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "pyspark.lock", "w") as lock:  # .ci/run may be installing it already
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".installed").exists():
            uv = shutil.which("uv") or str(Path(sys.executable).parents[2] / ".tools" / "bin" / "uv")
            subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
            subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), PYSPARK], check=True, timeout=900)
            (venv / ".installed").write_text(PYSPARK)
    return python


@pytest.mark.timeout(1200)
def test_spark_reads_every_dataset_with_string_partitions(seeded_data: Path) -> None:
    assert shutil.which("java"), "Spark needs Java (17) on the PATH"
    names = [spec.name for spec in PUBLIC_DATASETS]
    done = subprocess.run(
        [str(spark_python()), "-c", SPARK_READ, str(seeded_data), *names], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    read = json.loads(done.stdout.strip().splitlines()[-1])
    for spec in PUBLIC_DATASETS:
        columns = read[spec.name]["columns"]
        assert set(columns) == set(spec.full_schema.names), spec.name
        assert all(columns[p] == "string" for p in spec.partition_by), (spec.name, columns)
    assert read["articles"]["rows"] == 20 and read["spans"]["rows"] == 9
    assert read["duplicates"]["rows"] == 0  # the empty dataset is read, not an error
