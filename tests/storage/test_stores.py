"""tasks/storage/stores.py: data dirs as local folders or filesystem URIs, with the operations of
the commit protocol. The in-memory fsspec filesystem stands in for an object store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.storage.stores import ArrowDir, LocalDir, open_data_dir


def _write_bytes(data: bytes):
    def write(where) -> None:
        if isinstance(where, str):
            Path(where).write_bytes(data)
        else:
            where.write(data)

    return write


def test_plain_paths_and_file_uris_open_the_same_local_folder(tmp_path: Path) -> None:
    by_uri = open_data_dir(f"file://{tmp_path}/data")
    by_path = open_data_dir(str(tmp_path / "data"))
    assert isinstance(by_uri, LocalDir) and isinstance(by_path, LocalDir)
    assert by_uri.root == by_path.root == tmp_path / "data"
    assert open_data_dir("data").root == Path("data")  # relative paths stay relative
    assert open_data_dir(tmp_path).root == tmp_path


def test_a_memory_uri_opens_a_non_local_store(memory_uri: str) -> None:
    store = open_data_dir(memory_uri)
    assert isinstance(store, ArrowDir) and not store.is_local
    assert store.uri == memory_uri
    assert open_data_dir(memory_uri + "/") is store  # one filesystem per URI


def test_a_local_write_goes_through_a_temp_name_and_leaves_no_temp_file(tmp_path: Path) -> None:
    store = open_data_dir(tmp_path)
    seen: list[str] = []

    def write(where: str) -> None:
        seen.append(Path(where).name)
        Path(where).write_bytes(b"x")

    store.write_atomic("a/b/f.bin", write, "test")
    assert seen == [".f.bin.tmp"]
    assert (tmp_path / "a/b/f.bin").read_bytes() == b"x"
    assert store.remove_temp_files() == []


def test_an_object_store_write_is_one_upload_and_a_move_is_copy_then_delete(memory_uri: str) -> None:
    store = open_data_dir(memory_uri)
    seen: list[object] = []

    def write(where) -> None:
        seen.append(where)
        where.write(b"whole")

    store.write_atomic("_staging/r/ds/k=1/part-0.parquet", write, "test")
    assert not isinstance(seen[0], str)  # a memory stream, never a temp file to rename
    assert store.exists("_staging/r/ds/k=1/part-0.parquet")
    store.move("_staging/r/ds/k=1/part-0.parquet", "ds/k=1/part-0.parquet")
    assert not store.exists("_staging/r/ds/k=1/part-0.parquet")
    assert store.read_text("ds/k=1/part-0.parquet") == "whole"
    assert store.remove_temp_files() == []


def test_a_failed_write_leaves_no_object_on_an_object_store(memory_uri: str) -> None:
    store = open_data_dir(memory_uri)

    def half_then_fail(where) -> None:
        where.write(b"half a file")
        raise RuntimeError("serialisation failed")

    with pytest.raises(RuntimeError):
        store.write_atomic("ds/part-0.parquet", half_then_fail, "test")
    assert not store.exists("ds/part-0.parquet")


def test_files_are_listed_in_the_order_local_disk_gives(tmp_path: Path, memory_uri: str) -> None:
    names = ["ds/k=b/part-0.parquet", "ds/k=b-1/part-0.parquet", "ds/k=a/x/part-0.parquet", "ds/other.txt"]
    local, remote = open_data_dir(tmp_path), open_data_dir(memory_uri)
    for store in (local, remote):
        for name in names:
            store.write_atomic(name, _write_bytes(b"1"), "test")
    expected = ["ds/k=a/x/part-0.parquet", "ds/k=b/part-0.parquet", "ds/k=b-1/part-0.parquet"]
    assert local.list_files("ds", "part-0.parquet") == remote.list_files("ds", "part-0.parquet") == expected
    assert local.list_dirs("ds") == remote.list_dirs("ds") == ["k=a", "k=b", "k=b-1"]
    assert local.list_files("missing", "part-0.parquet") == remote.list_files("missing", "part-0.parquet") == []


def test_deleting_a_tree_or_a_missing_file_is_harmless_on_an_object_store(memory_uri: str) -> None:
    store = open_data_dir(memory_uri)
    store.write_atomic("_staging/r/a/part-0.parquet", _write_bytes(b"1"), "test")
    store.rmtree("_staging/r")
    assert store.list_files("_staging", "part-0.parquet") == []
    store.rmtree("_staging/never")
    store.delete_file("a/missing.parquet")


def test_a_remote_data_dir_spills_to_local_scratch(memory_uri: str, tmp_path: Path) -> None:
    store = open_data_dir(memory_uri)
    spill = store.spill_dir("run1")
    assert spill.is_relative_to(tmp_path / "cache")  # NEWSFLOW_CACHE_DIR, set by the fixture
    spill.mkdir(parents=True)
    store.clear_spill("run1")
    assert not spill.exists()
