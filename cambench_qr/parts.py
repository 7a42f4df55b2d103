"""The part-label contract: one uint8 id per pixel, a disjoint partition of the canvas
(docs/architecture.md s.2.1).

Every room that speaks of parts imports the ids and named regions from here and nowhere else.
"""

from __future__ import annotations

PART_NAMES: tuple[str, ...] = (
    "background",  # 0: outside the symbol and its quiet zone
    "quiet_zone",  # 1: the light margin around the symbol
    "finder",  # 2: the three 7x7 finder patterns
    "separator",  # 3: the 1-module light border of each finder
    "timing",  # 4: row 6 / column 6 between the separators
    "alignment",  # 5: alignment patterns (version >= 2)
    "format_info",  # 6: format information modules and the dark module
    "version_info",  # 7: version information blocks (version >= 7)
    "data",  # 8: data + error-correction codewords + remainder
    "distractor",  # 9: non-QR objects: other 2D codes, QR-like clutter, shapes
)
PART_IDS: dict[str, int] = {name: i for i, name in enumerate(PART_NAMES)}
NUM_PARTS = len(PART_NAMES)

(BACKGROUND, QUIET_ZONE, FINDER, SEPARATOR, TIMING,
 ALIGNMENT, FORMAT_INFO, VERSION_INFO, DATA, DISTRACTOR) = range(NUM_PARTS)

# Named regions used by the metrics: each is a set of part ids.
REGIONS: dict[str, tuple[int, ...]] = {
    "finder": (FINDER,),
    "timing": (TIMING,),
    "structure": (FINDER, TIMING),
    "box": (FINDER, SEPARATOR, TIMING, ALIGNMENT, FORMAT_INFO, VERSION_INFO, DATA),
    "outside": (BACKGROUND, QUIET_ZONE, DISTRACTOR),
}

LABEL_NAMES: tuple[str, ...] = ("non_qr", "qr")

PART_DESCRIPTIONS: dict[str, str] = {
    "background": "outside the symbol and its quiet zone",
    "quiet_zone": "the light margin around the symbol (4 modules by the spec; configurable)",
    "finder": "the three 7x7 finder patterns",
    "separator": "the 1-module light border of each finder",
    "timing": "row 6 / column 6 between the separators",
    "alignment": "alignment patterns (version >= 2)",
    "format_info": "format information modules and the dark module",
    "version_info": "version information blocks (version >= 7)",
    "data": "data + error-correction codewords + remainder",
    "distractor": "non-QR objects: other 2D codes, QR-like clutter, shapes",
}


def part_table_markdown() -> str:
    """The part-id table as markdown, for dataset and metric cards."""
    rows = ["| id | name | what |", "|---|---|---|"]
    rows += [f"| {i} | {n} | {PART_DESCRIPTIONS[n]} |" for i, n in enumerate(PART_NAMES)]
    return "\n".join(rows)
