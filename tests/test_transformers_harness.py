"""``--backbone transformers:<folder>``: building with the dataset's labels, head replacement, the depth
ablation on encoder layers / stages, FT-LeakMin, ``save_pretrained`` checkpoints that reload with
``AutoModelForImageClassification`` and ``pipeline``, ``evaluate`` and bad input. Tiny local configs only."""

from __future__ import annotations

import json

import datasets
import pytest
import torch
import transformers as tf
from huggingface_hub import ModelCard

from cambench_qr.cli import main as cli_main
from cambench_qr.dataset_builder.build import build_dataset
from cambench_qr.harness.data import TensorRows, normalize
from cambench_qr.harness.models import build_model, load_checkpoint, set_trainable
from cambench_qr.harness.train import train
from cambench_qr.hub_cards import HubRoot, write_model_card
from cambench_qr.hub_cards.leaderboard import collect_rows

TINY = {"image_size": 64, "batch_size": 8, "quiet": True}
VIT = tf.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                   image_size=32, patch_size=8, num_labels=5)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("data") / "cambench"
    return str(build_dataset("standard", root, num_train=24, num_test=8, image_size=64, quiet=True))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A 5-class tiny ViT with weights, the same config without weights, and a text model's config."""
    root = tmp_path_factory.mktemp("sources")
    torch.manual_seed(0)
    tf.ViTForImageClassification(VIT).save_pretrained(root / "vit5")
    VIT.save_pretrained(root / "vit_config_only")
    tf.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=32).save_pretrained(root / "bert")
    return root


@pytest.fixture(scope="module")
def zs(data, sources, tmp_path_factory):
    vit5 = str(sources / "vit5")
    return train(data=data, out=tmp_path_factory.mktemp("zs") / "model", backbone=f"transformers:{vit5}",
                 pretrained=vit5, regime="zs", epochs=1, **TINY)


def test_pretrained_head_is_replaced_and_reported(sources, capsys):
    vit5 = str(sources / "vit5")
    model = build_model(f"transformers:{vit5}", vit5)
    assert "re-initialised for 2 classes: classifier.bias, classifier.weight" in capsys.readouterr().err
    assert model.config.id2label == {0: "non_qr", 1: "qr"} and model.config.label2id == {"non_qr": 0, "qr": 1}
    source = tf.ViTForImageClassification.from_pretrained(vit5).state_dict()
    for name, value in model.state_dict().items():
        if not name.startswith("classifier."):
            assert torch.equal(value, source[name]), name


def test_zs_trains_the_head_only_and_the_folder_reloads_with_transformers(zs, sources):
    assert {p.name for p in zs.iterdir()} == {"config.json", "model.safetensors", "preprocessor_config.json",
                                              "training.json"}
    info = json.loads((zs / "training.json").read_text())
    assert info["backbone"] == f"transformers:{sources / 'vit5'}" and info["depth"] == "head"
    reloaded = tf.AutoModelForImageClassification.from_pretrained(zs)
    assert reloaded.config.id2label == {0: "non_qr", 1: "qr"}
    assert reloaded.config.image_size == 64  # saved at the training size (trained at 64, config said 32)
    source = tf.ViTForImageClassification.from_pretrained(sources / "vit5")
    changed = {k for k, v in reloaded.state_dict().items()
               if v.shape != source.state_dict()[k].shape or not torch.equal(v, source.state_dict()[k])}
    assert changed == {"classifier.weight", "classifier.bias", "vit.embeddings.position_embeddings"}
    # the 64 px folder computes what the 32 px source with the trained head computes at 64 px
    source.classifier = reloaded.classifier
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = source.eval()(images, interpolate_pos_encoding=True).logits
        torch.testing.assert_close(reloaded.eval()(images).logits, expected, rtol=1e-5, atol=1e-5)


def test_pipeline_predicts_the_harness_classes(zs, data):
    rows = datasets.load_dataset(data, "standard")["test"]
    model, info = load_checkpoint(zs)
    images = torch.stack([TensorRows(rows, 64, with_parts=False)[i]["image"] for i in range(len(rows))])
    with torch.no_grad():
        probs = model.eval()(normalize(images, info["mean"], info["std"])).softmax(1)
    classify = tf.pipeline("image-classification", model=str(zs), device="cpu")
    for i, result in enumerate(classify(list(rows["image"]), top_k=2)):
        best = max(result, key=lambda r: r["score"])
        assert best["label"] == ("non_qr", "qr")[int(probs[i].argmax())]
        assert best["score"] == pytest.approx(float(probs[i].max()), abs=1e-4)


def test_scratch_from_config_then_ft_leakmin_then_evaluate(data, sources, tmp_path):
    config_only = str(sources / "vit_config_only")
    scratch = train(data=data, out=tmp_path / "scratch", backbone=f"transformers:{config_only}",
                    pretrained="none", regime="scratch", epochs=1, **TINY)
    leak = train(data=data, out=tmp_path / "leak", init_from=scratch, regime="ft_leakmin", epochs=1, **TINY)
    record = json.loads((leak / "training.json").read_text())["history"][0]
    assert record["penalty"] > 0 and 0 < record["cam_leakage"] < 1
    code = cli_main(["--quiet", "evaluate", "--model", str(leak), "--data", data,
                     "--methods", "layercam,eigengradcam", "--out", str(tmp_path / "eval"),
                     "--batch-size", "4", "--n-boot", "10",
                     "--faithfulness-samples", "1", "--cross-resolution", "64,80", "--latency-batch", "0"])
    assert code == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["model"]["backbone"] == f"transformers:{config_only}"
    assert summary["model"]["cam_grid"] == [8, 8]  # 64 px / patch 8, class token dropped
    sides = {r["image_size"] for r in summary["robustness"] if r.get("kind") == "cross_resolution"}
    assert sides == {64, 80} and not any("error" in r for r in summary["robustness"])

    # cards and leaderboard, as for timm models
    hub = HubRoot(tmp_path / "hub", "alice")
    card = ModelCard.load(write_model_card(leak, summary, hub))
    assert card.data.library_name == "transformers" and "transformers" in card.data.tags
    assert 'pipeline("image-classification", model="alice/leak")' in card.content
    assert card.data.eval_results and (leak / ".eval_results" / "cambench-qr.yaml").is_file()
    rows = collect_rows([tmp_path / "eval" / "summary.json"])
    assert {r["backbone"] for r in rows} == {f"transformers:{config_only}"}
    assert {r["method"] for r in rows} >= {"layercam", "eigengradcam"}


@pytest.mark.parametrize(("config", "last_stage"), [
    (tf.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4),
     "swin.encoder.layers.1."),
    (tf.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2), "convnext.encoder.stages.1."),
    (VIT, "vit.layers.1."),
])
def test_depth_ablation_maps_onto_stages_or_encoder_layers(config, last_stage, tmp_path):
    config.save_pretrained(tmp_path)
    model = build_model(f"transformers:{tmp_path}", "none")
    set_trainable(model, "last")
    names = [n for n, _ in model.named_parameters()]
    first = min(i for i, n in enumerate(names) if n.startswith(last_stage))
    assert [p.requires_grad for p in model.parameters()] == [i >= first for i in range(len(names))]
    set_trainable(model, "head")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}


@pytest.mark.parametrize(("backbone", "pretrained", "message"), [
    ("vit_config_only", "vit_config_only", "cannot load the weights of .*vit_config_only"),
    ("no-such-user/no-such-model", "none", "cannot load the config of 'no-such-user/no-such-model'"),
    ("bert", "none", "'.*bert' is not a transformers image classifier"),
    ("vit5", "timm/resnet50.a1_in1k", "--pretrained is 'none' .* or the backbone's source"),
])
def test_bad_sources_are_one_line_errors(sources, backbone, pretrained, message):
    source = backbone if "/" in backbone else str(sources / backbone)
    pretrained = str(sources / pretrained) if pretrained == backbone else pretrained
    with pytest.raises(ValueError, match=message) as err:
        build_model(f"transformers:{source}", pretrained)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_two_processes_train_ft_leakmin(zs, data, tmp_path):
    # DDP through the differentiable CAM of a transformers ViT (double backward through eager attention).
    from test_harness_eval import _launch

    _launch("cambench_qr.harness.train", "--data", data, "--init-from", str(zs), "--regime", "ft_leakmin",
            "--epochs", "1", "--image-size", "64", "--batch-size", "4", "--out", str(tmp_path / "ddp"))
    training = json.loads((tmp_path / "ddp" / "training.json").read_text())
    assert training["num_processes"] == 2 and training["history"][0]["n"] >= 24
    assert training["history"][0]["penalty"] > 0
    assert tf.AutoModelForImageClassification.from_pretrained(tmp_path / "ddp").config.id2label[1] == "qr"
