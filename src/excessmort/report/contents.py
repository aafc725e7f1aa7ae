"""Nothing outside the release reaches the live site: what a staged release may hold.

:func:`scan_release` lists every problem that would let a reader of the live site see or run
something that is not the release itself:

- a symlink anywhere in the folder (file or folder), or a listed path that leaves the release
  (absolute, ``..``, a backslash, a control character);
- a file the manifest does not list (beside the metadata files), or of a type a release never holds
  (anything but HTML, SVG, CSV, Parquet, JSON, text, Markdown, PNG, CSS and PDF);
- in HTML and SVG (and CSS): ``<script>`` and other active elements (``<iframe>``, ``<object>``,
  ``<embed>``, ``<applet>``, ``<frame>``, ``<foreignObject>``, ``<base>``, ``<meta refresh>``),
  event handlers (``on*=``), ``javascript:`` / ``vbscript:`` / non-image ``data:`` URLs in any
  attribute, references to other hosts (``http(s)://``, ``//host``) or to absolute paths in links,
  ``xlink:href``, CSS ``url(...)`` and ``@import``, external entities and style-sheet processing
  instructions.

:func:`check_contents` wraps it as a readiness :class:`~excessmort.report.readiness.Check` named
``release_contents``; :func:`full_check` is what ``excessmort check`` and ``excessmort publish`` run:
the readiness checks, this one and, when a public key is configured, the manifest signature.
"""

from __future__ import annotations

import os
import re
import stat
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..exceptions import ReleaseError
from .manifest import METADATA_FILES, is_atomic_temp, read_manifest

if TYPE_CHECKING:
    from .readiness import Check, Readiness

__all__ = ["ALLOWED_SUFFIXES", "check_contents", "full_check", "scan_markup", "scan_release"]

#: File types a release may hold (by suffix, lower case).
ALLOWED_SUFFIXES = frozenset(
    {".html", ".svg", ".csv", ".parquet", ".json", ".txt", ".md", ".png", ".css", ".pdf"}
)
_MARKUP = frozenset({".html", ".svg"})
_ACTIVE_TAGS = frozenset(
    {"script", "iframe", "object", "embed", "applet", "frame", "frameset", "foreignobject", "base"}
)
#: Attributes whose value is a URL: one list for both scanners (readiness.html_self_contained
#: checks these; the release_contents check adds the legacy plugin attributes below).
LINK_ATTRS = frozenset(
    {
        "href",
        "src",
        "xlink:href",
        "action",
        "formaction",
        "data",
        "poster",
        "srcset",
        "background",
        "cite",
        "longdesc",
        "manifest",
        "ping",
    }
)
_LINK_ATTRS = LINK_ATTRS | {"codebase", "archive"}
SAFE_SCHEMES = frozenset({"mailto", "tel"})
_SAFE_SCHEMES = SAFE_SCHEMES
_CSS_URL = re.compile(
    r"url\(\s*(['\"]?)(.*?)\1\s*\)|@import\s+(?:url\()?\s*(['\"])(.*?)\3", re.I | re.S
)
_STRIP = re.compile(r"[\x00-\x20]+")
_SCRIPT_SCHEME = re.compile(r"^(javascript|vbscript|livescript|data):", re.I)
_IMAGE_DATA = re.compile(r"^data:image/(png|jpeg|gif|webp);", re.I)
_ENTITY = re.compile(r"<!ENTITY|SYSTEM\s+['\"]", re.I)  # a PUBLIC DTD identifier is inert


def _link_problem(value: str, rel: str) -> str | None:
    """Why a link value leaves the release (``None`` when it stays inside)."""
    text = value.strip()
    squeezed = _STRIP.sub("", text)
    if not squeezed or squeezed.startswith("#"):
        return None
    if _SCRIPT_SCHEME.match(squeezed) and not _IMAGE_DATA.match(squeezed):
        return f"{squeezed.split(':', 1)[0].lower()}: URL {text[:60]!r}"
    if _IMAGE_DATA.match(squeezed):
        return None
    parts = urlsplit(squeezed)
    if parts.scheme:
        if parts.scheme.lower() in _SAFE_SCHEMES:
            return None
        return f"reference to another site {text[:60]!r}"
    if parts.netloc or squeezed.startswith("//") or squeezed.startswith("\\\\"):
        return f"reference to another host {text[:60]!r}"
    target = unquote(parts.path)
    if target.startswith("/") or target.startswith("\\"):
        return f"absolute path {text[:60]!r} (outside the release folder)"
    depth = len(rel.split("/")) - 1
    level = depth
    for part in target.replace("\\", "/").split("/"):
        if part == "..":
            level -= 1
            if level < 0:
                return f"link {text[:60]!r} leaves the release folder"
        elif part not in ("", "."):
            level += 1
    return None


class _Scanner(HTMLParser):
    def __init__(self, rel: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rel = rel
        self.problems: list[str] = []
        self._style = False

    def _add(self, what: str) -> None:
        self.problems.append(f"line {self.getpos()[0]}: {what}")

    def _css(self, text: str, where: str) -> None:
        for m in _CSS_URL.finditer(text):
            link = m.group(2) if m.group(2) is not None else m.group(4)
            why = _link_problem(link or "", self.rel)
            if why:
                self._add(f"{why} in {where}")
        if re.search(r"expression\s*\(|behavior\s*:|-moz-binding", text, re.I):
            self._add(f"scripted CSS in {where}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if tag in _ACTIVE_TAGS:
            self._add(f"<{tag}> element")
        if tag == "style":
            self._style = True
        if tag == "meta" and any(
            k.lower() == "http-equiv" and (v or "").strip().lower() == "refresh" for k, v in attrs
        ):
            self._add("<meta http-equiv=refresh>")
        for key, value in attrs:
            name = key.lower()
            if name.startswith("on"):
                self._add(f"event handler {name}= on <{tag}>")
            if value is None:
                continue
            if name in _LINK_ATTRS or name.endswith(":href"):
                links = (
                    [p.strip().split(" ")[0] for p in value.split(",") if p.strip()]
                    if name == "srcset"
                    else [value]
                )
                for link in links:
                    why = _link_problem(link, self.rel)
                    if why:
                        self._add(f"{why} in {name}= on <{tag}>")
            else:
                squeezed = _STRIP.sub("", value)
                if _SCRIPT_SCHEME.match(squeezed) and not _IMAGE_DATA.match(squeezed):
                    self._add(f"{squeezed.split(':', 1)[0].lower()}: value in {name}= on <{tag}>")
                self._css(value, f"{name}= on <{tag}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag.lower() == "style":
            self._style = False

    def handle_endtag(self, tag: str) -> None:
        if tag.lower() == "style":
            self._style = False

    def handle_data(self, data: str) -> None:
        if self._style:
            self._css(data, "<style>")

    def unknown_decl(self, data: str) -> None:  # <![CDATA[ ... ]]> in SVG
        if data.upper().startswith("CDATA["):
            body = data[6:]
            if self._style:
                self._css(body, "<style>")
            if re.search(r"<\s*script", body, re.I):
                self._add("<script> inside CDATA")

    def handle_decl(self, decl: str) -> None:
        if _ENTITY.search(decl):
            self._add("DOCTYPE with an entity or external reference")

    def handle_pi(self, data: str) -> None:
        if data.lower().startswith("xml-stylesheet"):
            self._add("<?xml-stylesheet?> processing instruction")


def scan_markup(text: str, rel: str) -> list[str]:
    """Active content and external references in one HTML, SVG or CSS text (``rel`` names it)."""
    scanner = _Scanner(rel)
    if rel.lower().endswith(".css"):
        scanner._css(text, "the style sheet")
        return [f"{rel}: {p}" for p in scanner.problems]
    if _ENTITY.search(text[:4096]) and "<!DOCTYPE" in text[:4096].upper():
        scanner.problems.append("line 1: DOCTYPE with an entity or external reference")
    scanner.feed(text)
    scanner.close()
    seen: list[str] = []
    for p in scanner.problems:
        if p not in seen:
            seen.append(p)
    return [f"{rel}: {p}" for p in seen]


def scan_release(root: str | os.PathLike[str], manifest: dict[str, Any] | None = None) -> list[str]:
    """Every problem that would let something outside the release reach the live site."""
    base = Path(root)
    problems: list[str] = []
    if manifest is None:
        try:
            manifest = read_manifest(base)
        except ReleaseError as exc:
            return [str(exc)]
    listed = {str(e["path"]) for e in manifest["files"]}
    for folder, dirs, files in os.walk(base):
        rel_folder = Path(folder).relative_to(base)
        top = rel_folder == Path(".")
        for name in sorted([*dirs, *files]):
            full = os.path.join(folder, name)
            rel = (rel_folder / name).as_posix()
            if os.path.islink(full):
                problems.append(
                    f"{rel}: is a symlink (to {os.readlink(full)!r}); "
                    "a release holds regular files only"
                )
                continue
            if name in dirs:
                continue
            if not stat.S_ISREG(os.lstat(full).st_mode):
                problems.append(f"{rel}: is not a regular file (a FIFO, socket or device)")
                continue
            if top and (name in METADATA_FILES or is_atomic_temp(name)):
                continue
            if rel not in listed:
                problems.append(f"{rel}: not in the manifest")
    for rel in sorted(listed):
        suffix = Path(rel).suffix.lower()
        if suffix not in ALLOWED_SUFFIXES:
            problems.append(f"{rel}: a release holds no {suffix or 'suffix-less'} files")
            continue
        if suffix not in _MARKUP and suffix != ".css":
            continue
        path = base / rel
        if path.is_symlink() or not path.is_file():
            continue  # reported above or by the manifest check
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{rel}: not UTF-8 (cannot be checked for script)")
            continue
        problems += scan_markup(text, rel)
    return problems


def check_contents(root: str | os.PathLike[str]) -> Check:
    """The ``release_contents`` readiness check (see :func:`scan_release`)."""
    from .readiness import Check

    name = "release_contents"
    problems = scan_release(root)
    if problems:
        head = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        return Check(
            name,
            "fail",
            f"{len(problems)} things would reach the live site from outside the release: {head}. "
            "Re-stage the release; never add files, links or script to it by hand.",
        )
    return Check(
        name, "pass", "regular files only, all in the manifest, no script or external reference"
    )


def full_check(
    root: str | os.PathLike[str],
    *,
    live_root: str | os.PathLike[str] | None = None,
    now: datetime | None = None,
    public_key: str | os.PathLike[str] | None = None,
    plausibility: Any = None,
) -> Readiness:
    """The readiness checks, :func:`check_contents` and (with a public key) the signature.

    ``plausibility`` (a :class:`~.settings.Plausibility`): thresholds of the plausibility checks,
    default those recorded in ``model.json`` at staging."""
    from .readiness import Check, Readiness, check_release
    from .signing import check_signature

    verdict = check_release(root, live_root=live_root, now=now, plausibility=plausibility)
    checks = list(verdict.checks)
    try:
        contents = check_contents(root)
    except (OSError, ReleaseError) as exc:
        contents = Check("release_contents", "fail", f"could not run: {exc}")
    # beside the manifest check, before the embargo (which stays last)
    at = next((i for i, c in enumerate(checks) if c.name == "embargo"), len(checks))
    checks.insert(at, contents)
    if public_key is not None:
        at = next((i for i, c in enumerate(checks) if c.name == "embargo"), len(checks))
        checks.insert(at, check_signature(root, public_key))
    return Readiness(checks)
