"""The run report: the leaderboard's headline, then the leaderboard's tables, its figures and CAM overlay
galleries, as one markdown page (`index.md`) and the same as one self-contained HTML file (`index.html`,
`hub_cards.html_report`).

Galleries are drawn with OpenCV: one row per image (the image, its colour-coded part map, then each CAM
as a JET overlay on the image), one column header per panel.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..dataset_builder.card import PART_COLORS
from ._io import write_bytes_atomic, write_text_atomic
from .html_report import write_html_report
from .leaderboard import HEADLINE_FILE
from .scores import method_label

TILE = 128
# a leaderboard figure line of leaderboard.md, moved after the tables in the report
FIGURE = re.compile(r"!\[[^\]]*\]\(leaderboard[^)]*\.png\)")
HEADER = 28
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.42) -> None:
    cv2.putText(image, text, origin, FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def draw_gallery(
    images: np.ndarray, parts: np.ndarray, maps: dict[str, np.ndarray], captions: list[str]
) -> np.ndarray:
    """RGB gallery (uint8). `images` (N,H,W,3) uint8, `parts` (N,H,W) part ids, `maps` {method: (N,H,W)
    floats in [0, 1]} (NaN, a map with no positive mass, is drawn as the bare image), one caption per row."""
    n = len(images)
    if not (len(parts) == n == len(captions)) or any(len(m) != n for m in maps.values()):
        raise ValueError("images, parts, captions and every map need the same number of rows")
    columns = ["image", "part map", *(method_label(m) for m in maps)]
    gallery = np.full((HEADER + n * (TILE + HEADER), len(columns) * (TILE + 4) + 4, 3), 255, np.uint8)
    for c, name in enumerate(columns):
        _label(gallery, name, (4 + c * (TILE + 4) + 2, 19), 0.5)
    for r in range(n):
        image = cv2.resize(images[r], (TILE, TILE), interpolation=cv2.INTER_AREA)
        part_map = cv2.resize(PART_COLORS[parts[r]], (TILE, TILE), interpolation=cv2.INTER_NEAREST)
        panels = [image, part_map]
        for method_maps in maps.values():
            heat = np.nan_to_num(np.clip(method_maps[r], 0.0, 1.0), nan=0.0)
            heat = cv2.resize((heat * 255).astype(np.uint8), (TILE, TILE), interpolation=cv2.INTER_LINEAR)
            jet = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
            panels.append(
                image if np.isnan(method_maps[r]).all() else cv2.addWeighted(image, 0.5, jet, 0.5, 0)
            )
        y = HEADER + r * (TILE + HEADER)
        for c, panel in enumerate(panels):
            x = 4 + c * (TILE + 4)
            gallery[y : y + TILE, x : x + TILE] = panel
        _label(gallery, captions[r], (6, y + TILE + 18))
    return gallery


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode the image as PNG")
    return png.tobytes()


def write_report(
    report_dir: str | Path,
    leaderboard_dir: str | Path,
    galleries: dict[str, bytes],
    outputs: list[str],
    floors: list[str] | None = None,
) -> Path:
    """`report_dir/index.md` and `index.html`: ``floors`` (markdown lines on the run's accuracy floors)
    first, then the leaderboard's headline (`headline.md`: the competent models' CAMs on clean images
    against the null maps, and the models left out as not competent; skipped for a leaderboard folder
    without it), the leaderboard's tables (it holds the accuracy by negative kind, QR version band and
    distortion severity), its figures (PNG and SVG copied alongside), one gallery PNG per model, and the
    list of every output of the run. Returns the index.md path."""
    report_dir, leaderboard_dir = Path(report_dir), Path(leaderboard_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    for figure in [*leaderboard_dir.glob("leaderboard*.png"), *leaderboard_dir.glob("leaderboard*.svg")]:
        shutil.copyfile(figure, report_dir / figure.name)
    headline = leaderboard_dir / HEADLINE_FILE
    details = (leaderboard_dir / "leaderboard.md").read_text().split("\n", 1)[1].split("\n")
    figures = [line for line in details if FIGURE.fullmatch(line)]
    lines = [
        "# CAMBench-QR run report",
        "",
        *([*floors, ""] if floors else []),
        *([headline.read_text(), "", "## Details"] if headline.is_file() else []),
        *(line for line in details if not FIGURE.fullmatch(line)),
        "## Figures",
        "",
        *(f"{figure}\n" for figure in figures),
        "## Overlay galleries",
        "",
        "Rows: QR test images of the `standard` config; columns: the image, its",
        "part map (finder, timing, data ... in the dataset card's colours) and each CAM (min-max scaled).",
        "",
    ]
    for name, png in galleries.items():
        write_bytes_atomic(report_dir / f"gallery-{name}.png", png)
        lines += [f"### {name}", "", f"![{name}](gallery-{name}.png)", ""]
    lines += ["## Outputs", "", *(f"- `{o}`" for o in outputs), ""]
    index = write_text_atomic(report_dir / "index.md", "\n".join(lines))
    write_html_report(index)
    return index
