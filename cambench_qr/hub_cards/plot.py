"""Structure score vs latency with the Pareto front, drawn with OpenCV (no plotting library needed)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .scores import higher_is_better, method_label, score_label

WIDTH, HEIGHT = 1000, 640
LEFT, RIGHT, TOP, BOTTOM = 90, 300, 60, 70
FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR colours, one per CAM method in order of appearance
PALETTE = [
    (180, 119, 31),
    (14, 127, 255),
    (44, 160, 44),
    (40, 39, 214),
    (189, 103, 148),
    (75, 86, 140),
    (194, 119, 227),
    (127, 127, 127),
]
FRONT_COLOUR = (0, 0, 200)


def pareto_front(points: list[dict], score: str) -> list[int]:
    """Indices of the points no other point dominates, in order of latency. q dominates p when
    q.ms_per_img <= p.ms_per_img and q's score is at least as good (higher, or lower for a
    lower-is-better score), one of them strictly."""
    sign = 1.0 if higher_is_better(score) else -1.0

    def dominates(q: dict, p: dict) -> bool:
        q_ms, p_ms, q_s, p_s = q["ms_per_img"], p["ms_per_img"], sign * q[score], sign * p[score]
        return q_ms <= p_ms and q_s >= p_s and (q_ms < p_ms or q_s > p_s)

    front = [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]
    return sorted(front, key=lambda i: (points[i]["ms_per_img"], -sign * points[i][score]))


def _finite_or(value: float | None, default: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else default


def _ticks(low: float, high: float, n: int = 5) -> list[float]:
    return list(np.linspace(low, high, n))


def draw_pareto_plot(points: list[dict], score: str, title: str = "") -> bytes:
    """PNG bytes: each point is one (model, CAM method) at (ms/img, score mean) with its 95% CI as a
    vertical bar, coloured by method and named by model at the model's fastest point; the Pareto front is
    joined by a red line and ringed; a dashed line marks the mean chance value (a uniform map)."""
    if not points or not all(math.isfinite(p[score]) and math.isfinite(p["ms_per_img"]) for p in points):
        raise ValueError("nothing to plot: every point needs a finite latency and score")
    image = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    ms = np.array([p["ms_per_img"] for p in points], float)
    # a CI that the bootstrap could not give (NaN, too few samples) is drawn as no bar
    lows = [_finite_or(p.get(f"{score}_ci_low"), p[score]) for p in points]
    highs = [_finite_or(p.get(f"{score}_ci_high"), p[score]) for p in points]
    chances = [p[f"{score}_chance"] for p in points if _finite_or(p.get(f"{score}_chance"), None) is not None]
    y_low = min([*lows, *chances]) if chances else min(lows)
    y_high = max([*highs, *chances]) if chances else max(highs)
    pad = max(y_high - y_low, 1e-3) * 0.08
    y_low, y_high = y_low - pad, y_high + pad
    x_high = float(ms.max()) * 1.1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(x: float, y: float) -> tuple[int, int]:
        return (
            int(round(LEFT + x / x_high * plot_w)),
            int(round(TOP + (y_high - y) / (y_high - y_low) * plot_h)),
        )

    cv2.rectangle(image, (LEFT, TOP), (LEFT + plot_w, TOP + plot_h), (0, 0, 0), 1)
    for t in _ticks(0.0, x_high):
        x, _ = xy(t, y_low)
        cv2.line(image, (x, TOP + plot_h), (x, TOP + plot_h + 5), (0, 0, 0), 1)
        cv2.putText(image, f"{t:.1f}", (x - 15, TOP + plot_h + 22), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for t in _ticks(y_low, y_high):
        _, y = xy(0.0, t)
        cv2.line(image, (LEFT - 5, y), (LEFT, y), (0, 0, 0), 1)
        cv2.line(image, (LEFT + 1, y), (LEFT + plot_w - 1, y), (235, 235, 235), 1)
        cv2.putText(image, f"{t:.3f}", (LEFT - 62, y + 5), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(
        image,
        "latency (ms per image)",
        (LEFT + plot_w // 2 - 90, HEIGHT - 20),
        FONT,
        0.55,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    cv2.putText(
        image, f"{score_label(score)} vs latency  {title}", (LEFT, 35), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA
    )
    if chances:
        chance = float(np.mean(chances))
        _, y = xy(0.0, chance)
        for x in range(LEFT, LEFT + plot_w, 12):
            cv2.line(image, (x, y), (min(x + 6, LEFT + plot_w), y), (120, 120, 120), 1)
        cv2.putText(image, "chance", (LEFT + plot_w - 60, y - 5), FONT, 0.45, (120, 120, 120), 1, cv2.LINE_AA)

    front = pareto_front(points, score)
    front_xy = [xy(points[i]["ms_per_img"], points[i][score]) for i in front]
    if len(front_xy) > 1:
        cv2.polylines(image, [np.array(front_xy, np.int32)], False, FRONT_COLOUR, 2, cv2.LINE_AA)
    methods = list(dict.fromkeys(p["method"] for p in points))
    # one name label per model, at its fastest point, so that labels do not pile up
    labelled = {p["model"]: i for i, p in sorted(enumerate(points), key=lambda t: -t[1]["ms_per_img"])}
    for i, p in enumerate(points):
        colour = PALETTE[methods.index(p["method"]) % len(PALETTE)]
        x, y = xy(p["ms_per_img"], p[score])
        cv2.line(image, xy(p["ms_per_img"], lows[i]), xy(p["ms_per_img"], highs[i]), colour, 1, cv2.LINE_AA)
        cv2.circle(image, (x, y), 5, colour, -1, cv2.LINE_AA)
        if i in front:
            cv2.circle(image, (x, y), 9, FRONT_COLOUR, 2, cv2.LINE_AA)
        if labelled[p["model"]] == i:
            cv2.putText(image, p["model"], (x - 20, y + 22), FONT, 0.42, (60, 60, 60), 1, cv2.LINE_AA)
    legend_x = LEFT + plot_w + 20
    for k, method in enumerate(methods):
        y = TOP + 10 + 24 * k
        cv2.circle(image, (legend_x, y), 5, PALETTE[k % len(PALETTE)], -1, cv2.LINE_AA)
        cv2.putText(image, method_label(method), (legend_x + 14, y + 5), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    y = TOP + 10 + 24 * len(methods)
    cv2.circle(image, (legend_x, y), 9, FRONT_COLOUR, 2, cv2.LINE_AA)
    cv2.putText(image, "Pareto front", (legend_x + 14, y + 5), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV could not encode the plot as PNG")
    return png.tobytes()
