"""Round trips through a local Hub-compatible server (tests/hub_server.py): push with `cambench-qr push`'s
code, read back with datasets / timm / evaluate / huggingface_hub exactly as a user would.

huggingface_hub, datasets and evaluate read HF_ENDPOINT at import, and other tests in this worker may have
imported them already, so every client runs in a fresh interpreter with the server's environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_server import hub_server_fixture, run_client  # noqa: F401 - the fixture `hub_server`

pytestmark = pytest.mark.slow


def test_dataset_two_configs_push_and_load_back(hub_server, tmp_path):
    code = """
    import sys
    from pathlib import Path
    import numpy as np
    from datasets import load_dataset, get_dataset_config_names
    from huggingface_hub import HfApi
    from cambench_qr.dataset_builder import build_dataset
    from cambench_qr.hub_cards import HubRoot, push, write_eval_yaml

    hub = HubRoot(Path(sys.argv[1]), "alice")
    folder = hub.dataset_dir
    configs = {"standard": (6, 4), "blur": (0, 5)}
    for cfg, (num_train, num_test) in configs.items():
        build_dataset(cfg, folder, num_train=num_train, num_test=num_test, image_size=64, quiet=True)
    write_eval_yaml(folder, ["gradcam"])

    results = push(hub, "dataset", quiet=True)
    assert [r.ok for r in results] == [True], [r.line() for r in results]
    assert sorted(get_dataset_config_names("alice/cambench-qr")) == ["blur", "standard"]
    for cfg, sizes in configs.items():
        remote = load_dataset("alice/cambench-qr", cfg)
        local = load_dataset(str(folder), cfg)
        assert [remote[s].num_rows for s in ("train", "test") if s in remote] == [n for n in sizes if n]
        for split in remote:
            assert remote[split].features == local[split].features
            for a, b in zip(remote[split], local[split], strict=True):
                assert a.keys() == b.keys() and a["id"] == b["id"]
                for key in a:
                    if key in ("image", "parts", "occluded"):
                        assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key
                    else:
                        assert a[key] == b[key], key
    assert set(load_dataset("alice/cambench-qr", "blur", split="test")["severity"]) <= {1, 2, 3, 4, 5}
    api = HfApi()
    assert "eval.yaml" in api.list_repo_files("alice/cambench-qr", repo_type="dataset")
    n_commits = len(api.list_repo_commits("alice/cambench-qr", repo_type="dataset"))
    again = push(hub, "dataset", quiet=True)
    assert again[0].ok, again[0].line()
    assert len(api.list_repo_commits("alice/cambench-qr", repo_type="dataset")) == n_commits  # a no-op
    print("OK")
    """
    proc = run_client(hub_server, tmp_path, code, str(tmp_path / "hub"))
    assert proc.stdout.strip().endswith("OK")
    assert ("POST", "/datasets/alice/cambench-qr.git/info/lfs/objects/batch") in hub_server.requests


def test_model_and_card_push_and_load_back(hub_server, tmp_path):
    code = """
    import json, sys
    from pathlib import Path
    import timm, torch, yaml
    from huggingface_hub import ModelCard, hf_hub_download, parse_eval_result_entries
    from cambench_qr.hub_cards import HubRoot, push, write_model_card
    from cambench_qr.hub_cards.cards import eval_result_entries
    sys.path.insert(0, sys.argv[2])
    from hub_summaries import summary, training

    hub = HubRoot(Path(sys.argv[1]), "alice")
    folder = hub.model_dir("test_resnet", "zs")
    model = timm.create_model("test_resnet", num_classes=2)
    timm.models.save_for_hf(model, folder, model_config={"label_names": ["non_qr", "qr"]},
                            safe_serialization=True)
    (folder / "training.json").write_text(json.dumps(training()))
    write_model_card(folder, summary(), hub)
    broken = hub.model_dir("test_resnet", "broken")
    broken.mkdir(parents=True)
    (broken / "README.md").write_text("---\\nlicense: [unclosed\\n---\\nbad card\\n")

    results = {r.repo_id: r for r in push(hub, "models", quiet=True)}
    assert results["alice/test_resnet-zs"].ok, results["alice/test_resnet-zs"].line()
    assert not results["alice/test_resnet-broken"].ok
    assert "Invalid metadata" in results["alice/test_resnet-broken"].message
    assert (broken / "README.md").read_text().startswith("---\\nlicense: [unclosed")  # local folder intact

    loaded = timm.create_model("hf-hub:alice/test_resnet-zs", pretrained=True)
    assert loaded.pretrained_cfg["label_names"] == ["non_qr", "qr"]
    local, remote = model.state_dict(), loaded.state_dict()
    assert local.keys() == remote.keys() and all(torch.equal(local[k], remote[k]) for k in local)

    card = ModelCard.load("alice/test_resnet-zs")
    assert "[More Information Needed]" not in card.content
    results = card.data.eval_results
    assert results == ModelCard.load(folder / "README.md").data.eval_results
    assert len(results) == 2 + 4 * 7 + 2 * 4 * 7  # accuracy x 2 configs, standard, blur x 2 severities
    fmr = [r for r in results if r.metric_type == "fmr" and r.dataset_config == "standard"
           and r.metric_args["method"] == "layercam"]
    assert [r.metric_value for r in fmr] == [0.52]
    assert {(r.source_url, r.task_name) for r in results} == {
        ("https://huggingface.co/spaces/alice/cambench_structure", results[0].task_name)}

    path = hf_hub_download("alice/test_resnet-zs", ".eval_results/cambench-qr.yaml")
    entries = parse_eval_result_entries(yaml.safe_load(Path(path).read_text()))
    assert entries == eval_result_entries(summary(), hub, "alice/test_resnet-zs")
    acc = {e.task_id: e.value for e in entries if e.task_id.startswith("accuracy")}
    assert acc == {"accuracy_standard": 0.9, "accuracy_blur": 0.85}
    print("OK")
    """
    proc = run_client(hub_server, tmp_path, code, str(tmp_path / "hub"), str(Path(__file__).parent))
    assert proc.stdout.strip().endswith("OK")


def test_metric_space_push_and_evaluate_load(hub_server, tmp_path):
    code = """
    import json, sys
    from pathlib import Path
    import evaluate
    import numpy as np
    from cambench_qr.hub_cards import HubRoot, push, write_metric_space
    from cambench_qr.metrics import EVALUATE_MODULE

    hub = HubRoot(Path(sys.argv[1]), "alice")
    write_metric_space(EVALUATE_MODULE, hub.metric_dir)
    results = push(hub, "metric", quiet=True)
    assert [r.ok for r in results] == [True], [r.line() for r in results]
    parts = np.zeros((2, 4, 4), np.uint8)
    parts[:, :2, :2] = 2  # a 2x2 finder
    saliency = np.zeros((2, 4, 4), np.float32)
    saliency[:, 0, 0] = 3
    saliency[:, 3, 3] = 1
    local = evaluate.load(EVALUATE_MODULE).compute(saliency=saliency, parts=parts)
    remote = evaluate.load("alice/cambench_structure").compute(saliency=saliency, parts=parts)
    assert json.dumps(remote, sort_keys=True) == json.dumps(local, sort_keys=True)
    print("OK", round(remote["fmr"], 4))
    """
    proc = run_client(hub_server, tmp_path, code, str(tmp_path / "hub"))
    assert proc.stdout.strip().splitlines()[-1] == "OK 0.75"  # 3 of the 4 units of mass on the finder
    script_url = "/spaces/alice/cambench_structure/resolve/main/cambench_structure.py"
    assert ("GET", script_url) in hub_server.requests
