"""What a file really is, before it is parsed: compression, encoding, separator, truncation.

:func:`excessmort.read` takes a path's suffix as a hint, not as the truth. A file is sniffed from its
first bytes (64 KiB) and its last line, never read twice in full:

- magic bytes: gzip, bz2, xz, zstd and zip are decompressed (a CSV inside); a Parquet file or an
  Excel workbook is read as what it is, whatever its name; a file named ``.parquet`` or ``.xlsx``
  that is not one is refused, saying what it looks like;
- encoding: UTF-8 (with or without a byte-order mark), UTF-16/32 with a byte-order mark, UTF-16
  without one (every other byte NUL); text that is not UTF-8 is read as Windows-1252 (Latin-1) and
  a line is logged; bytes that are not text at all are refused;
- separator: comma, or the one of ``;``, tab and ``|`` that splits the header into the most fields
  (logged, e.g. "looks like a semicolon-separated file");
- a last line without a line end and with fewer fields than the header: a truncated copy, refused;
- parse errors (a row with more fields than the header, an unclosed quote) name the line.

Every refusal is an :class:`~excessmort.exceptions.InputError` naming the file and what it looks
like.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import logging
import lzma
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .exceptions import InputError

logger = logging.getLogger("excessmort.io")

HEAD_BYTES = 1 << 16
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
    (b"PAR1", "parquet"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),  # .xls (and other old Office files)
)
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def _refuse(path: Path, what: str, value: Any = None) -> InputError:
    return InputError(f"cannot read {path.name!r}: {what}", column=None, value=value, row=None)


def magic_kind(head: bytes) -> str | None:
    """The container a file's first bytes announce (``gzip``, ``zip``, ``parquet``...), if any."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def _open_decompressed(path: Path, kind: str) -> io.BufferedIOBase | Any:
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    if kind == "zstd":
        try:
            import zstandard
        except ImportError:
            raise _refuse(
                path,
                "it is a Zstandard-compressed file and the 'zstandard' package is not installed: "
                "decompress it (zstd -d) or pip install zstandard",
                "zstd",
            ) from None
        return zstandard.open(path, "rb")
    raise AssertionError(kind)  # pragma: no cover


def _looks_like(text: str) -> str:
    """A few words on what a text starts with, for messages."""
    first = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    shown = first[:60] + ("..." if len(first) > 60 else "")
    if not first:
        return "it holds only blank lines"
    counts = {sep: first.count(sep) for sep in _SEPARATORS}
    sep = max(counts, key=lambda s: counts[s])
    if counts[sep]:
        return f"it looks like a {_SEPARATORS[sep]}-separated text table starting {shown!r}"
    return f"it looks like text starting {shown!r}"


def _decode_head(path: Path, head: bytes) -> tuple[str, str]:
    """(encoding for pandas, decoded head) of a text file; refuses binary content by name."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding, head.decode(encoding, errors="replace")
    if b"\x00" in head:
        even, odd = head[0::2], head[1::2]
        n = max(len(head) // 2, 1)
        if odd.count(0) > 0.4 * n and even.count(0) < 0.05 * n:
            encoding = "utf-16-le"
        elif even.count(0) > 0.4 * n and odd.count(0) < 0.05 * n:
            encoding = "utf-16-be"
        else:
            raise _refuse(
                path,
                f"it is not a text table: {head.count(0):,} of its first {len(head):,} bytes are "
                "NUL (binary data; a spreadsheet or a database file?). Save it as CSV (UTF-8)",
                "binary",
            )
        logger.info("%s: UTF-16 without a byte-order mark (%s)", path.name, encoding)
        return encoding, head.decode(encoding, errors="replace")
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(head, final=False)  # a character cut at the 64 KiB mark is fine
        encoding = "utf-8"
    except UnicodeDecodeError:
        text = head.decode("cp1252", errors="replace")
        encoding = "cp1252"
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\r\n\f\v")
    replaced = text.count("\ufffd")
    if controls > 0.01 * max(len(text), 1) or replaced > 0.01 * max(len(text), 1):
        raise _refuse(
            path,
            f"it is not a text table: {controls + replaced:,} of its first {len(text):,} "
            "characters are control or undecodable bytes (random or binary data?). Give a CSV "
            "file (UTF-8)",
            "binary",
        )
    if encoding == "cp1252":
        logger.warning(
            "%s is not UTF-8; read it as Windows-1252 (Latin-1). Save it as UTF-8 to be sure of "
            "accented names",
            path.name,
        )
    return encoding, text


def _separator(path: Path, header: str, default: str) -> str:
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    if counts[default]:
        best = max(counts, key=lambda s: counts[s])
        if counts[best] > counts[default] and default == ",":
            # e.g. 'week_ending;region;deaths' with a comma inside a quoted name
            logger.info(
                "%s looks like a %s-separated file (%d %r in its header against %d %r): read with "
                "%r",
                path.name,
                _SEPARATORS[best],
                counts[best],
                best,
                counts[default],
                default,
                best,
            )
            return best
        return default
    others = [s for s in _SEPARATORS if s != default and counts[s]]
    if not others:
        return default
    best = max(others, key=lambda s: counts[s])
    logger.info(
        "%s looks like a %s-separated file: read it with %r", path.name, _SEPARATORS[best], best
    )
    return best


def _check_truncated(path: Path, sep: str, header: str, encoding: str) -> None:
    """Refuse a plain text file whose last line has no line end and fewer fields than the header."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - 4096))
        tail = fh.read()
    if tail.endswith((b"\n", b"\r")):
        return
    text = tail.decode("cp1252" if encoding == "cp1252" else "utf-8", "replace")
    last = text.splitlines()[-1] if text.splitlines() else ""
    want, got = header.count(sep) + 1, last.count(sep) + 1
    if '"' in last or got >= want:
        return
    raise InputError(
        f"cannot read {path.name!r}: its last line {last[:60]!r} has {got} of the header's {want} "
        "fields and no line end: the file looks truncated (a copy or download cut short?). Copy "
        "it again",
        column=None,
        value=last[:60],
        row=None,
    )


def read_text_table(
    path: Path,
    *,
    sep: str,
    dtype_for: Callable[[pd.Index], dict[Any, Any]],
) -> pd.DataFrame:
    """Read a CSV-like file whatever its compression, encoding and separator (see module doc)."""
    size = path.stat().st_size
    if size == 0:
        raise _refuse(path, "the file is empty (0 bytes); give a table with a header row", 0)
    with path.open("rb") as fh:
        raw_head = fh.read(HEAD_BYTES)
    kind = magic_kind(raw_head)
    compression: str | dict[str, Any] | None = None
    if kind in ("gzip", "bz2", "xz", "zstd"):
        try:
            with _open_decompressed(path, kind) as fh:
                head = fh.read(HEAD_BYTES)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise _refuse(
                path, f"it is a {kind} file that cannot be decompressed ({exc})", kind
            ) from None
        compression = {"gzip": "gzip", "bz2": "bz2", "xz": "xz", "zstd": "zstd"}[kind]
        logger.info("%s is %s-compressed: decompressed while reading", path.name, kind)
        if not head:
            raise _refuse(path, f"it is an empty {kind} file", kind)
    elif kind == "zip":
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            if any(n.startswith("xl/") for n in names):
                raise _refuse(
                    path,
                    "it is an Excel workbook (.xlsx) under another name: rename it .xlsx",
                    "xlsx",
                )
            if len(names) != 1:
                raise _refuse(
                    path,
                    f"it is a zip archive of {len(names)} files ({', '.join(names[:5])}); give "
                    "one table: extract it",
                    "zip",
                )
            with zf.open(names[0]) as fh:
                head = fh.read(HEAD_BYTES)
        compression = "zip"
        logger.info("%s is a zip archive of %s: read it", path.name, names[0])
    else:
        head = raw_head
    encoding, text = _decode_head(path, head)
    lines = text.lstrip("\ufeff").splitlines()
    header = next((line for line in lines if line.strip()), "")
    if not header:
        raise _refuse(path, "it holds only blank lines; give a table with a header row", "")
    sep = _separator(path, header, sep)
    if compression is None and encoding in ("utf-8", "utf-8-sig", "cp1252"):
        _check_truncated(path, sep, header, encoding)

    def parse(enc: str) -> pd.DataFrame:
        columns = pd.read_csv(
            path,
            sep=sep,
            nrows=0,
            encoding=enc,
            compression=compression,  # type: ignore[arg-type]
        ).columns
        return pd.read_csv(  # type: ignore[call-overload, no-any-return]
            path,
            sep=sep,
            encoding=enc,
            compression=compression,
            dtype=dtype_for(columns),
        )

    try:
        try:
            return _check_header(path, parse(encoding))
        except UnicodeDecodeError:
            if encoding != "utf-8":
                raise
            logger.warning(
                "%s is not UTF-8 after its first 64 KiB; read it as Windows-1252 (Latin-1)",
                path.name,
            )
            return _check_header(path, parse("cp1252"))
    except pd.errors.EmptyDataError:
        raise _refuse(path, "it has no header row (no columns to read)", "") from None
    except pd.errors.ParserError as exc:
        sep_name = _SEPARATORS.get(sep, repr(sep))
        raise InputError(
            f"cannot read {path.name!r} as a {sep_name}-separated table: {exc}. Every row must have "
            "the header's fields; quote values that hold the separator",
            column=None,
            value=str(exc),
            row=None,
        ) from None
    except UnicodeDecodeError as exc:
        raise _refuse(path, f"its text is not {encoding} ({exc})", encoding) from None
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise _refuse(path, f"it is corrupt or truncated ({type(exc).__name__}: {exc})") from None


def _check_header(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Refuse a header naming a column twice (pandas renames the second 'deaths' to 'deaths.1',
    which would become a stratum)."""
    names = [str(c) for c in frame.columns]
    present = set(names)
    for name in names:
        match = re.fullmatch(r"(.*)\.(\d+)", name)
        if match and match.group(1) in present:
            raise InputError(
                f"cannot read {path.name!r}: its header names the column {match.group(1)!r} more "
                "than once; give each column once",
                column=match.group(1),
                value=name,
                row=None,
            )
    return frame


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file or dataset folder; anything else refused saying what it looks like."""
    if path.is_file():
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
        if not head:
            raise _refuse(path, "the file is empty (0 bytes)", 0)
        if not head.startswith(b"PAR1"):
            kind = magic_kind(head)
            if kind is None:
                try:
                    _, text = _decode_head(path, head)
                    looks = _looks_like(text)
                    hint = "; rename it .csv" if "separated" in looks else ""
                except InputError:
                    looks, hint = "it looks like binary data", ""
            else:
                looks, hint = f"it looks like a {kind} file", ""
            raise _refuse(path, f"it is not a Parquet file (no 'PAR1' magic bytes): {looks}{hint}")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, TypeError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        what = "folder" if path.is_dir() else "file"
        raise _refuse(
            path, f"the Parquet {what} cannot be read ({type(exc).__name__}: {exc})"
        ) from None
