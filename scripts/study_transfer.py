"""Study (a): real-world transfer. Do models trained on the synthetic ``standard`` config, and their CAMs,
carry over to real photographs (the ``real`` config, built from assets/realqr)?

Every model of ``make run`` (each quick-preset backbone trained from random init on ``standard``, and
FT-LeakMin lambda 0.25 from it), evaluated on the run's ``standard`` test rows and on ``real``. Reported
per model: accuracy, QR recall (share of QR images
predicted ``qr``; ``real`` holds QR photos only, so its accuracy *is* a QR recall and the comparable
synthetic figure is the QR recall on ``standard``), and per CAM method FMR / TMR (higher is better) and
BL / DtS (lower is better) with bootstrap 95% CIs on both configs, plus the gap real - standard
(``harness.transfer``). The uniform null map's scores are the chance level of each config.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/study_transfer.py [--hub hub] [--num-test 400]
        [--photos assets/realqr]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.parquet as pq
import study_common as study

from cambench_qr.harness.transfer import TRANSFER_SCORES

NAME = "transfer"
CONFIGS = ("standard", "real")
LABELS = {"fmr": "FMR ↑", "tmr": "TMR ↑", "bl": "BL ↓", "dts": "DtS ↓"}


def qr_recall(eval_dir: Path, config: str) -> float:
    """Share of ``config``'s QR rows predicted ``qr`` (per_sample.parquet holds QR rows, once per method)."""
    table = pq.read_table(eval_dir / "per_sample.parquet", columns=["config", "method", "pred"]).to_pydict()
    first = table["method"][0]
    preds = [p for c, m, p in zip(table["config"], table["method"], table["pred"], strict=True)
             if c == config and m == first]
    return sum(p == 1 for p in preds) / len(preds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    study.add_arguments(parser, NAME)
    parser.add_argument("--photos", default=str(study.DEFAULT_PHOTOS), help="photos with manifest.csv")
    args = parser.parse_args()
    methods = study.split_list(args.methods)
    _, models = study.run_models(args)
    data = study.build_data(args, extra=("real",), photos=args.photos)
    rows, lines = [], []
    summaries = study.evaluate_runs(args, data, models, CONFIGS, methods)
    for name, summary in summaries.items():
        backbone = summary["model"]["backbone"]
        recall = {c: qr_recall(Path(args.out) / "eval" / name, c) for c in CONFIGS}
        acc = {c: study.accuracy(summary, c) for c in CONFIGS}
        rows += [{"model": name, "backbone": backbone, "config": c, "method": None, "score": score,
                  "mean": value[c]} for c in CONFIGS for score, value in (("accuracy", acc),
                                                                          ("qr_recall", recall))]
        lines += [f"#### {name}: accuracy {acc['standard']:.3f} -> {acc['real']:.3f}, QR recall "
                  f"{recall['standard']:.3f} -> {recall['real']:.3f} (standard -> real)", "",
                  "| method | " + " | ".join(f"{LABELS[s]} standard | {LABELS[s]} real" for s in
                                             TRANSFER_SCORES) + " |",
                  "|---|" + "---|---|" * len(TRANSFER_SCORES)]
        for method in (*methods, "null_uniform", "null_edge"):
            cells = []
            for score in TRANSFER_SCORES:
                pair = [study.structure(summary, c, method, score) for c in CONFIGS]
                rows += [{"model": name, "backbone": backbone, "config": c, "method": method,
                          "score": score, **study.stats(r)}
                         for c, r in zip(CONFIGS, pair, strict=True)]
                cells += [study.cell(r) for r in pair]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    header = (f"### Study (a): real-photo transfer (the `make run` models, trained from random init on "
              f"`standard`; evaluated on {args.num_test} `standard` test rows and the `real` photos)\n\n")
    study.write_results(args, NAME, rows, header + "\n".join(lines))
    print(header + "\n".join(lines))


if __name__ == "__main__":
    main()
