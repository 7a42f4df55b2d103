"""Study (b): surrogate fidelity. FT-LeakMin penalises the background leakage of one differentiable CAM
(the surrogate); does the leakage fall for every CAM method, or only for the one it was trained against?

From ``make run``'s competent scratch model of one backbone (default the CNN), FT-LeakMin (lambda 0.25,
the run's FT-LeakMin settings) is trained once per surrogate method (same data, seed and schedule), plus
FT-LeakMin with lambda 0 (same regime and schedule, no penalty) as the reference; every model is evaluated
on the run's ``standard`` test rows with every method. The result is a matrix: rows =
surrogate used in training, columns = method used in evaluation, cells = BL (background leakage, lower is
better) mean [95% CI]; a second matrix holds the change against the reference
(BL(LeakMin, surrogate s; method m) - BL(lambda 0; m): negative = less leakage). A surrogate with high
fidelity lowers BL on its own column and the others alike.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/study_surrogate.py [--surrogates gradcam,xgradcam,...]
        [--backbone resnet-tiny] [--num-train 4000] [--hub hub]
"""

from __future__ import annotations

import argparse

import study_common as study

NAME = "surrogate"
SCORES = ("bl", "fmr")
REFERENCE = "leakmin-lambda0"


def label(name: str) -> str:
    return "lambda 0 (no penalty)" if name == REFERENCE else f"LeakMin / {name.removeprefix('leakmin-')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    study.add_arguments(parser, NAME)
    parser.add_argument("--backbone", default=study.PRESET.backbones[0].name,
                        help=f"quick-preset backbone (default {study.PRESET.backbones[0].name})")
    parser.add_argument("--surrogates", default=",".join(study.METHODS), help="surrogate CAMs (comma list)")
    parser.add_argument("--leak-lambda", type=float, default=0.25, help="FT-LeakMin lambda (default 0.25)")
    args = parser.parse_args()
    methods, surrogates = study.split_list(args.methods), study.split_list(args.surrogates)
    hub, _ = study.run_models(args)
    data = study.build_data(args)
    runs = {REFERENCE: {"leak_lambda": 0.0}}
    runs.update({f"leakmin-{s}": {"surrogate": s, "leak_lambda": args.leak_lambda} for s in surrogates})
    models = study.fine_tune(args, hub, args.backbone, runs)
    summaries = study.evaluate_runs(args, data, {name: models[name] for name in runs}, ("standard",), methods)
    scores = {(name, m, score): study.structure(summary, "standard", m, score)
              for name, summary in summaries.items() for m in methods for score in SCORES}
    rows = [{"model": name, "surrogate": runs[name].get("surrogate"), "method": m, "score": score,
             **study.stats(r)} for (name, m, score), r in scores.items()]
    header = ["| surrogate (rows) / evaluated with (columns) | " + " | ".join(methods) + " |",
              "|---|" + "---|" * len(methods)]
    train_rows = args.num_train or study.LEAKMIN.overrides.get("num_train", "all the run's")
    accuracies = ", ".join(f"{label(name)} {study.accuracy(summary, 'standard'):.3f}"
                           for name, summary in summaries.items())
    lines = [f"### Study (b): surrogate fidelity ({args.backbone} from `make run`'s scratch model; "
             f"FT-LeakMin lambda {args.leak_lambda}, {train_rows} training rows; "
             f"{args.num_test} `standard` test rows)", "", f"Accuracy: {accuracies}.", "",
             "BL ↓ on `standard` test, mean [95% CI]:", "", *header]
    lines += [f"| {label(name)} | " + " | ".join(study.cell(scores[(name, m, "bl")]) for m in methods) + " |"
              for name in runs]
    lines += ["", "BL change against lambda 0 (negative: less leakage; on the diagonal the evaluated method "
              "is the surrogate):", "", *header]
    for name in runs:
        if name != REFERENCE:
            deltas = [scores[(name, m, "bl")]["mean"] - scores[(REFERENCE, m, "bl")]["mean"] for m in methods]
            lines.append(f"| {label(name)} | " + " | ".join(f"{d:+.3f}" for d in deltas) + " |")
    markdown = "\n".join(lines) + "\n"
    study.write_results(args, NAME, rows, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
