"""One HTML page of a release checked: it parses, runs no code and links only inside the release
(the readiness gate's ``html_self_contained``, :func:`excessmort.report.readiness.check_html`).

Kept apart from :mod:`.readiness` so that staging's render workers, forked before the engine is
imported, check pages without importing it (readiness reads the staged figures, and with them the
engine's layout).
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .contents import LINK_ATTRS, SAFE_SCHEMES

__all__ = ["check_page"]


_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)
_LINK_ATTRS = LINK_ATTRS
_SAFE_SCHEMES = SAFE_SCHEMES
_CSS_URL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)|@import\s+(['\"])(.*?)\3", re.I | re.S)


class _PageParser(HTMLParser):
    """Collects structure errors, links and anything executable from one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, tuple[int, int]]] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.executable: list[str] = []
        self.seen_html = False
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)
        if tag == "html":
            self.seen_html = True
        if tag == "style":
            self._in_style = True
        if tag not in _VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        if tag in _VOID:
            return
        if not self.stack:
            self.errors.append(f"line {self.getpos()[0]}: </{tag}> closes nothing")
            return
        open_tag, pos = self.stack.pop()
        if open_tag != tag:
            self.errors.append(
                f"line {self.getpos()[0]}: </{tag}> closes <{open_tag}> opened on line {pos[0]}"
            )

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css(data)

    def _css(self, text: str) -> None:
        for m in _CSS_URL.finditer(text):
            self.links.append(m.group(2) if m.group(2) is not None else m.group(4))

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line = self.getpos()[0]
        if tag in ("script", "iframe", "object", "embed", "applet", "frame"):
            self.executable.append(f"line {line}: <{tag}> element")
        if tag == "meta" and any(
            k == "http-equiv" and (v or "").lower() == "refresh" for k, v in attrs
        ):
            self.executable.append(f"line {line}: <meta http-equiv=refresh>")
        for key, value in attrs:
            if key.startswith("on"):
                self.executable.append(f"line {line}: {key}= handler on <{tag}>")
            if value is None:
                continue
            if key in _LINK_ATTRS:
                if key == "srcset":
                    self.links += [
                        part.strip().split(" ")[0] for part in value.split(",") if part.strip()
                    ]
                else:
                    self.links.append(value)
            elif key == "style":
                self._css(value)


def _link_problem(link: str, page: Path, root: Path) -> str | None:
    text = link.strip()
    if not text or text.startswith("#"):
        return None
    parts = urlsplit(text)
    if parts.scheme:
        if parts.scheme.lower() in _SAFE_SCHEMES:
            return None
        return f"links to {text!r} ({parts.scheme}: is outside the release)"
    if parts.netloc or text.startswith("//"):
        return f"links to {text!r} (another host)"
    target = unquote(parts.path)
    if not target:
        return None
    resolved = (root / target.lstrip("/")) if target.startswith("/") else (page.parent / target)
    resolved = Path(os.path.normpath(resolved))
    root_norm = Path(os.path.normpath(root))
    if target.startswith("/") or (resolved != root_norm and root_norm not in resolved.parents):
        return f"links to {text!r}, outside the release folder"
    if not resolved.exists():
        return f"links to {text!r}, which is not in the release"
    return None


def check_page(path: Path, root: Path) -> list[str]:
    """Problems of one HTML page: structure, executable content, links leaving the release."""
    rel = path.relative_to(root).as_posix()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return [f"{rel}: not UTF-8 ({exc})"]
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    problems = [f"{rel}: {e}" for e in parser.errors[:3]]
    if parser.stack:
        tag, pos = parser.stack[-1]
        problems.append(f"{rel}: <{tag}> opened on line {pos[0]} is never closed")
    if not text.lstrip().lower().startswith("<!doctype html>") or not parser.seen_html:
        problems.append(f"{rel}: not an HTML document (no <!DOCTYPE html> / <html>)")
    problems += [f"{rel}: {e} (reports must not run code)" for e in parser.executable[:3]]
    for link in parser.links:
        why = _link_problem(link, path, root)
        if why:
            problems.append(f"{rel}: {why}")
    return problems
