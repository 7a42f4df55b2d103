"""Study (c): ViT vs CNN under FT-LeakMin. Does the leakage penalty act on a vision transformer's CAMs (on
its token grid, inferred by the CAM engine) as it does on a CNN's, and do their CAMs follow the parts the
model relies on?

For each backbone (default: timm ``test_resnet`` and ``test_vit``, 16 px patches): ZS, then FT-LeakMin with
lambda 0 (the no-penalty control: same regime and schedule) and with lambda 0.25, trained on ``standard``
and evaluated on the ``standard`` test split and the ``interventions`` config. Reported per backbone and
lambda: accuracy, and per CAM method FMR (higher is better), BL (lower is better) and the causal
agreement (``harness.causal``: per-image Spearman between the CAM's mass on each part and the logit drop
when that part is randomised; higher is better), each mean [95% CI]; plus the model's mean logit drop per
intervened part. The penalty's effect is the lambda 0.25 row against the lambda 0 row of the same backbone.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/study_vit_cnn.py
        [--backbones test_resnet,test_vit,test_convnext] [--epochs 2] [--image-size 128]
        [--num-interventions 120]
"""

from __future__ import annotations

import argparse

import study_common as study

from cambench_qr.dataset_builder.interventions import INTERVENED_PARTS

NAME = "vit_cnn"
LAMBDAS = (0.0, 0.25)
CONFIGS = ("standard", "interventions")


def causal_rows(summary: dict, kind: str) -> list[dict]:
    return [r for r in summary["causal"] if r.get("kind") == kind]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    study.add_arguments(parser, NAME)
    parser.add_argument("--backbones", default="test_resnet,test_vit", help="timm backbones (comma list)")
    parser.add_argument("--num-interventions", type=int, default=120,
                        help="rows of the interventions config (about 20 originals; default 120)")
    args = parser.parse_args()
    methods = study.split_list(args.methods)
    data = study.build_data(args, extra=("interventions",), num_interventions=args.num_interventions)
    rows = []
    lines = [f"### Study (c): ViT vs CNN under FT-LeakMin (random init, CPU; {args.epochs} epochs per "
             f"regime, {args.image_size} px, {args.num_train} train / {args.num_test} test rows, "
             f"{args.num_interventions} intervention rows)", "",
             "| backbone | lambda | accuracy | method | FMR ↑ | BL ↓ | causal agreement ↑ |",
             "|---|---|---|---|---|---|---|"]
    drops = ["", "Mean logit drop of the explained class when a part is randomised (the model's reliance):",
             "", "| backbone | lambda | " + " | ".join(INTERVENED_PARTS) + " |",
             "|---|---|" + "---|" * len(INTERVENED_PARTS)]
    for backbone in study.split_list(args.backbones):
        runs = {f"{backbone}-leakmin-{lam}": {"regime": "ft_leakmin", "leak_lambda": lam} for lam in LAMBDAS}
        models = study.train_runs(args, data, backbone, runs)
        summaries = study.evaluate_runs(args, data, {name: models[name] for name in runs}, CONFIGS, methods)
        for (name, summary), lam in zip(summaries.items(), LAMBDAS, strict=True):
            acc = study.accuracy(summary, "standard")
            agreement = {r["method"]: r for r in causal_rows(summary, "intervention_agreement")}
            for method in (*methods, "null_uniform"):
                fmr, bl = (study.structure(summary, "standard", method, s) for s in ("fmr", "bl"))
                rows += [{"model": name, "backbone": backbone, "lambda": lam, "method": method, "score": s,
                          **study.stats(r)} for s, r in (("fmr", fmr), ("bl", bl),
                                                    ("causal_agreement", agreement[method]))]
                cells = " | ".join(study.cell(r) for r in (fmr, bl, agreement[method]))
                lines.append(f"| {backbone} | {lam} | {acc:.3f} | {method} | {cells} |")
            reliance = {r["intervention"]: r for r in causal_rows(summary, "intervention_drop")
                        if r["score"] == "logit_drop"}
            rows += [{"model": name, "backbone": backbone, "lambda": lam, "method": None,
                      "score": f"logit_drop_{p}", **study.stats(reliance[p])} for p in INTERVENED_PARTS]
            cells = " | ".join(study.cell(reliance[p]) for p in INTERVENED_PARTS)
            drops.append(f"| {backbone} | {lam} | {cells} |")
    markdown = "\n".join(lines + drops) + "\n"
    study.write_results(args, NAME, rows, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
