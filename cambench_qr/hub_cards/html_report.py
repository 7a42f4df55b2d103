"""The run report as one self-contained HTML file, rendered from the report's markdown.

The renderer covers exactly the markdown the report is written in: `#` headings, pipe tables (a header
row, a `|---|` separator, body rows), a paragraph that is one image `![alt](file)`, `- ` bullet lists and
paragraphs, with inline `code`, **bold** and [links](url). Images are embedded as base64 data URIs, so the
HTML file can be moved or mailed alone.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

from ._io import write_text_atomic

_HEADING = re.compile(r"(#{1,6}) (.*)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; white-space: nowrap; }
th { background: #f2f2f2; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f2f2f2; padding: 0 0.2em; border-radius: 3px; }
figure { margin: 1em 0; }
img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _inline(text: str) -> str:
    """HTML of one line of markdown text: escaped, with `code`, **bold** and [links](url)."""
    out, last = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        code, bold, label, url = match.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{_inline(bold)}</strong>")
        else:
            out.append(f'<a href="{html.escape(url)}">{html.escape(label)}</a>')
        last = match.end()
    return "".join(out) + html.escape(text[last:])


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    """A pipe table: the first line is the header, the second the separator."""
    if len(lines) < 2 or not set(lines[1].replace("|", "").strip()) <= set("-: "):
        raise ValueError(f"a markdown table needs a header and a |---| separator line: {lines[0]!r}")
    head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(lines[0]))
    body = "".join(
        "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(line)) + "</tr>" for line in lines[2:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _embedded(src: str, folder: Path) -> str:
    """`src` (a file relative to `folder`) as a data URI; URLs are kept."""
    if re.match(r"[a-z]+:", src):
        return src
    path = folder / src
    if not path.is_file():
        raise FileNotFoundError(f"the report refers to {src}, which is not in {folder}")
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _starts_block(line: str) -> bool:
    """Whether `line` starts a heading, table, image or list instead of continuing a paragraph."""
    line = line.rstrip()
    return bool(_HEADING.fullmatch(line) or _IMAGE.fullmatch(line.strip())) or line.startswith(("|", "- "))


def markdown_to_html(text: str, folder: Path) -> str:
    """The HTML body of `text` (see the module docstring); images are files in `folder`."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            i += 1
        elif heading := _HEADING.fullmatch(line):
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
        elif line.startswith("|"):
            start = i
            while i < len(lines) and lines[i].startswith("|"):
                i += 1
            out.append(_table(lines[start:i]))
        elif (image := _IMAGE.fullmatch(line.strip())) is not None:
            alt, src = image.groups()
            out.append(
                f'<figure><img src="{_embedded(src, folder)}" alt="{html.escape(alt)}">'
                f"<figcaption>{html.escape(alt)}</figcaption></figure>"
            )
            i += 1
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
        else:
            start, i = i, i + 1
            while i < len(lines) and lines[i].strip() and not _starts_block(lines[i]):
                i += 1
            out.append(f"<p>{' '.join(_inline(x.strip()) for x in lines[start:i])}</p>")
    return "\n".join(out)


def write_html_report(index_md: str | Path) -> Path:
    """`index.html` next to `index_md`, rendered from it with its images embedded. Returns its path."""
    index_md = Path(index_md)
    text = index_md.read_text(encoding="utf-8")
    title = text.split("\n", 1)[0].lstrip("# ").strip() or "CAMBench-QR report"
    body = markdown_to_html(text, index_md.parent)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
    return write_text_atomic(index_md.with_name("index.html"), page)
