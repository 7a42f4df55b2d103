"""Models from the Hub, not only folders: ``evaluate --model``, ``train --init-from`` and ``load_model`` take
a Hub repo id (a ``transformers`` repo or a timm ``hf-hub:`` repo), download through huggingface_hub's cache,
honour ``--revision`` and record the resolved commit. Against the local Hub-compatible server
(tests/hub_server.py); the client runs in a fresh interpreter pointed at it."""

from __future__ import annotations

import pytest
from hub_server import hub_server_fixture, run_client  # noqa: F401 - the fixture `hub_server`

from cambench_qr.harness.models import load_model


def test_unknown_repo_offline_and_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="cannot fetch the model nobody/nothing .*offline") as err:
        load_model("nobody/nothing")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="neither a model folder nor a Hub repo id"):
        load_model("no/such/folder")
    with pytest.raises(ValueError, match="--revision v1 applies to Hub repo ids, not to the folder"):
        load_model(tmp_path, revision="v1")


@pytest.mark.slow
def test_hub_repo_ids_with_revisions_for_evaluate_train_and_the_api(hub_server, tmp_path):
    code = """
    import json, sys
    from pathlib import Path
    import timm, torch, transformers as tf
    from huggingface_hub import HfApi
    from cambench_qr.cli import main
    from cambench_qr.dataset_builder.build import build_dataset
    from cambench_qr.harness.models import load_model

    root = Path(sys.argv[1])
    api = HfApi()
    labels = {"id2label": {0: "non_qr", 1: "qr"}, "label2id": {"non_qr": 0, "qr": 1}}
    config = tf.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          image_size=64, patch_size=8, **labels)
    api.create_repo("alice/vit")
    commits, states = [], []
    for seed in (0, 1):  # two commits with different weights
        torch.manual_seed(seed)
        model = tf.ViTForImageClassification(config)
        model.save_pretrained(root / f"vit{seed}")
        states.append(model.state_dict())
        commits.append(api.upload_folder(repo_id="alice/vit", folder_path=root / f"vit{seed}").oid)

    for revision, expected in ((commits[0], 0), (None, 1)):
        model, training, origin = load_model("alice/vit", revision=revision)
        assert origin == {"repo_id": "alice/vit", "revision": revision or "main", "commit": commits[expected]}
        assert training == {} and model.config.id2label == {0: "non_qr", 1: "qr"}
        assert all(torch.equal(v, states[expected][k]) for k, v in model.state_dict().items())

    timm_model = timm.create_model("test_resnet", num_classes=2)
    timm.models.save_for_hf(timm_model, root / "resnet", model_config={"label_names": ["non_qr", "qr"]},
                            safe_serialization=True)
    api.create_repo("alice/resnet")
    resnet_commit = api.upload_folder(repo_id="alice/resnet", folder_path=root / "resnet").oid
    model, _, origin = load_model("hf-hub:alice/resnet")
    assert origin["commit"] == resnet_commit
    assert all(torch.equal(v, timm_model.state_dict()[k]) for k, v in model.state_dict().items())

    data = str(build_dataset("standard", root / "data", num_train=8, num_test=6, image_size=64, quiet=True))
    assert main(["--quiet", "evaluate", "--model", "alice/vit", "--revision", commits[0], "--data", data,
                 "--methods", "gradcam", "--out", str(root / "eval"), "--batch-size", "3", "--n-boot", "5",
                 "--faithfulness-samples", "1", "--cross-resolution", "64", "--latency-batch", "0",
                 "--image-size", "64"]) == 0
    summary = json.loads((root / "eval" / "summary.json").read_text())["model"]
    assert summary["source"] == {"repo_id": "alice/vit", "revision": commits[0], "commit": commits[0]}
    assert summary["path"] == "alice/vit"

    assert main(["--quiet", "train", "--data", data, "--init-from", "alice/vit", "--revision", commits[0],
                 "--regime", "ft_struct", "--epochs", "1", "--image-size", "64", "--batch-size", "4",
                 "--out", str(root / "ft")]) == 0
    training = json.loads((root / "ft" / "training.json").read_text())
    assert training["init_from"] == "alice/vit" and training["init_from_commit"] == commits[0]
    assert training["backbone"] == "transformers:alice/vit"
    assert main(["--quiet", "evaluate", "--model", "alice/vit", "--revision", "no-such-branch",
                 "--data", data, "--out", str(root / "bad")]) == 2
    print("OK")
    """
    proc = run_client(hub_server, tmp_path, code, str(tmp_path))
    assert "OK" in proc.stdout
