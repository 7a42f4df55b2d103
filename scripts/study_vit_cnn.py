"""Study (c): ViT vs CNN under FT-LeakMin. Does the leakage penalty act on a vision transformer's CAMs (on
its token grid, inferred by the CAM engine) as it does on a CNN's, and do their CAMs follow the parts the
model relies on?

For each backbone of the quick preset (a CNN and a ViT, both trained from random init by ``make run``):
FT-LeakMin with lambda 0.25 (the run's model) and with lambda 0 (the no-penalty control, trained here with
the same regime, schedule and rows), evaluated on the run's ``standard`` test rows and the
``interventions`` config. Reported per backbone and
lambda: accuracy, and per CAM method FMR (higher is better), BL (lower is better) and the causal
agreement (``harness.causal``: per-image Spearman between the CAM's mass on each part and the logit drop
when that part is randomised; higher is better), each mean [95% CI]; plus the model's mean logit drop per
intervened part. The penalty's effect is the lambda 0.25 row against the lambda 0 row of the same backbone.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/study_vit_cnn.py [--hub hub] [--num-interventions 300]
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
    parser.add_argument("--num-interventions", type=int, default=300,
                        help="rows of the interventions config (about 50 originals; default 300)")
    args = parser.parse_args()
    methods = study.split_list(args.methods)
    hub, run_models = study.run_models(args)
    data = study.build_data(args, extra=("interventions",), num_interventions=args.num_interventions)
    rows = []
    lines = [f"### Study (c): ViT vs CNN under FT-LeakMin (the `make run` scratch models; FT-LeakMin lambda "
             f"0 trained here like the run's lambda 0.25; {args.num_test} `standard` test rows, "
             f"{args.num_interventions} intervention rows)", "",
             "| backbone | lambda | accuracy | method | FMR ↑ | BL ↓ | causal agreement ↑ |",
             "|---|---|---|---|---|---|---|"]
    drops = ["", "Mean logit drop of the explained class when a part is randomised (the model's reliance):",
             "", "| backbone | lambda | " + " | ".join(INTERVENED_PARTS) + " |",
             "|---|---|" + "---|" * len(INTERVENED_PARTS)]
    for spec in study.PRESET.backbones:
        backbone = spec.name
        control = study.fine_tune(args, hub, backbone, {f"{backbone}-leakmin-0.0": {"leak_lambda": 0.0}})
        penalised = run_models[hub.model_dir(backbone, study.LEAKMIN.name).name]
        assert study.LEAKMIN.overrides["leak_lambda"] == LAMBDAS[1]
        models = {**control, f"{backbone}-leakmin-{LAMBDAS[1]}": penalised}
        summaries = study.evaluate_runs(args, data, models, CONFIGS, methods)
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
