"""Real-photo transfer: how a model's accuracy and explanation scores move from the synthetic ``standard``
test split to the ``real`` photographs, read from one evaluation's own summary rows.

    gap = mean on real - mean on standard     (per method and score; accuracy per model)

A gap's sign is read with the score's direction (``metrics.SCORES``): a negative FMR gap or a positive BL
gap means the explanations sit worse on real photos. Only clean rows (``distortion == "none"``) count.
"""

from __future__ import annotations

from ..results import TRANSFER_SCORES

SOURCE, TARGET = "standard", "real"


def transfer_summary(accuracy: list[dict], structure: list[dict]) -> list[dict]:
    """summary.json ``robustness`` rows ``{"kind": "transfer", "source", "target", "split", "method",
    "score", "source_mean", "target_mean", "gap"}`` (``method`` None for ``accuracy``); empty unless both
    configs were evaluated on the same split."""
    acc = {(r["config"], r["split"]): r["value"] for r in accuracy}
    clean = {(r["config"], r["split"], r["method"], r["score"]): r["mean"] for r in structure
             if r.get("distortion") == "none" and r["score"] in TRANSFER_SCORES}
    out = []
    for split in sorted({s for c, s in acc if c == TARGET and (SOURCE, s) in acc}):
        pairs = [(None, "accuracy", acc[(SOURCE, split)], acc[(TARGET, split)])]
        pairs += [(method, score, value, clean[(TARGET, s, method, score)])
                  for (config, s, method, score), value in clean.items()
                  if config == SOURCE and s == split and (TARGET, s, method, score) in clean]
        out += [{"kind": "transfer", "source": SOURCE, "target": TARGET, "split": split, "method": method,
                 "score": score, "source_mean": a, "target_mean": b, "gap": b - a}
                for method, score, a, b in pairs]
    return out
