"""Run folders on any pyarrow filesystem: local paths, file://, s3://, gs://.

Why: run folders must live where every worker of a cluster can reach them, so all artifact
I/O goes through pyarrow.fs. Writes go to a temporary name first and are renamed when
complete, so a crash never leaves a half-written artifact under its final name.
"""

from __future__ import annotations

import json
import os
import pathlib
import uuid

import pyarrow.fs as pafs


def is_uri(location: str) -> bool:
    return "://" in location


def absolute(location: str) -> str:
    """Local paths become absolute (Ray workers run in other directories); URIs stay as they are."""
    return location if is_uri(location) else str(pathlib.Path(location).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *parts])


def _resolve(location: str) -> tuple[pafs.FileSystem, str]:
    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), absolute(location)


def exists(location: str) -> bool:
    fs, path = _resolve(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(location: str) -> bytes:
    fs, path = _resolve(location)
    with fs.open_input_stream(path) as f:
        return f.read()


def read_text(location: str) -> str:
    return read_bytes(location).decode()


def open_input_file(location: str):
    """A seekable file (what Parquet readers need) on any filesystem."""
    fs, path = _resolve(location)
    return fs.open_input_file(path)


def list_names(location: str) -> list[str]:
    """Names of the files directly inside a folder ([] if it does not exist)."""
    fs, path = _resolve(location)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    return sorted(info.base_name for info in fs.get_file_info(pafs.FileSelector(path)))


def delete(location: str) -> None:
    fs, path = _resolve(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type != pafs.FileType.NotFound:
        fs.delete_file(path)


def read_json(location: str) -> dict:
    return json.loads(read_text(location))


def _commit(fs: pafs.FileSystem, tmp: str, path: str) -> None:
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_file(path)
    fs.move(tmp, path)


def write_bytes(location: str, data: bytes) -> None:
    fs, path = _resolve(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    _commit(fs, tmp, path)


def write_json(location: str, value: dict) -> None:
    write_bytes(location, (json.dumps(value, indent=1, default=float) + "\n").encode())


def upload_file(local_file: str | os.PathLike, location: str) -> None:
    """Copy a finished local file to `location` under a temporary name, then rename it."""
    fs, path = _resolve(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    pafs.copy_files(str(local_file), tmp, destination_filesystem=fs)
    _commit(fs, tmp, path)


def download_file(location: str, local_file: str | os.PathLike) -> None:
    fs, path = _resolve(location)
    pafs.copy_files(path, str(local_file), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
