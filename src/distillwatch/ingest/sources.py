"""Input files: expanding directories, telling formats by suffix, opening compressed streams."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final, Literal

import zstandard

from distillwatch.core.errors import DistillwatchError

Format = Literal["jsonl", "csv", "parquet"]
Compression = Literal["none", "gzip", "zstd"]

_COMPRESSIONS: Final[dict[str, Compression]] = {".gz": "gzip", ".zst": "zstd"}
_FORMATS: Final[dict[str, Format]] = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_BLOCK_BYTES: Final = 32 * 1024 * 1024


def file_format(path: str | Path) -> tuple[Format, Compression]:
    """Format and compression of ``path`` from its suffixes (``calls.jsonl.zst``).

    >>> file_format("calls.jsonl.gz"), file_format("accounts.csv")
    (('jsonl', 'gzip'), ('csv', 'none'))
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    compression: Compression = "none"
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        compression = _COMPRESSIONS[suffixes.pop()]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None or (fmt == "parquet" and compression != "none"):
        known = ".jsonl[.gz|.zst], .csv[.gz|.zst], .parquet"
        raise DistillwatchError(f"{path}: unsupported file type (known: {known})")
    return fmt, compression


def expand_paths(
    paths: str | Path | Iterable[str | Path],
    formats: Iterable[Format] = ("jsonl", "parquet"),
    *,
    skip_tables: Iterable[str] = (),
) -> tuple[Path, ...]:
    """The files to read: files as given, directories as their matching files, sorted by name.

    Directories are not searched recursively, and inside them a file named after another
    table (``accounts.parquet`` when reading calls: its name up to the first dot is in
    ``skip_tables``) is passed over, so a simulator's output folder reads as expected.
    """
    wanted = frozenset(formats)
    others = frozenset(skip_tables)
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    if not items:
        raise DistillwatchError("no input paths given")
    found: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found.extend(
                sorted(
                    p
                    for p in item.iterdir()
                    if p.is_file() and _matches(p, wanted) and p.name.split(".")[0] not in others
                )
            )
        elif item.is_file():
            fmt, _ = file_format(item)
            if fmt not in wanted:
                raise DistillwatchError(f"{item}: {fmt} is not accepted here ({sorted(wanted)})")
            found.append(item)
        else:
            raise DistillwatchError(f"{item}: no such file or directory")
    return tuple(found)


def _matches(path: Path, formats: frozenset[Format]) -> bool:
    try:
        return file_format(path)[0] in formats
    except DistillwatchError:
        return False


def open_binary(path: Path, compression: Compression) -> io.BufferedIOBase:
    """A buffered binary stream of the decompressed bytes of ``path``."""
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "zstd":
        raw = zstandard.ZstdDecompressor().stream_reader(path.open("rb"), read_across_frames=True)
        return io.BufferedReader(raw, buffer_size=1 << 20)
    return path.open("rb")


def line_blocks(stream: io.BufferedIOBase, block_bytes: int | None = None) -> Iterator[bytes]:
    """Blocks of whole lines, about ``block_bytes`` each, so one parse sees complete records."""
    size = block_bytes or _BLOCK_BYTES
    first = True
    while block := stream.read(size):
        if not block.endswith(b"\n"):
            block += stream.readline()
        if first and block.startswith(b"\xef\xbb\xbf"):
            block = block[3:]  # a UTF-8 byte-order mark is not part of the first record
        first = False
        yield block
