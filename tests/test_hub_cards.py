"""Cards, eval.yaml, the metric and leaderboard Space folders and `cambench-qr push`'s input checks; the
leaderboard Space's push and Hub read through the local test server (tests/hub_server.py)."""

from __future__ import annotations

import json
import sys

import huggingface_hub.constants
import pytest
import yaml
from hub_server import hub_server_fixture, run_client  # noqa: F401 - the fixture `hub_server`
from hub_summaries import summary, training
from huggingface_hub import ModelCard

from cambench_qr.cli import main
from cambench_qr.hub_cards import HubRoot, write_eval_yaml, write_metric_space, write_model_card

DATASET_CARD = """---
configs:
- config_name: standard
  data_files:
  - split: train
    path: data/standard/train-*
  - split: test
    path: data/standard/test-*
  default: true
- config_name: blur
  data_files:
  - split: test
    path: data/blur/test-*
- config_name: trainonly
  data_files:
  - split: train
    path: data/trainonly/train-*
---
# CAMBench-QR
"""


def test_eval_yaml_declares_one_task_per_config_score_and_method(tmp_path):
    (tmp_path / "README.md").write_text(DATASET_CARD)
    spec = yaml.safe_load(write_eval_yaml(tmp_path, ["gradcam", "layercam"]).read_text())
    ids = [t["id"] for t in spec["tasks"]]
    assert len(ids) == len(set(ids)) == 2 * (1 + 2 * 3)  # configs with a test split x (accuracy + 3 x 2)
    assert ids[:4] == [
        "accuracy_standard",
        "fmr_gradcam_standard",
        "tmr_gradcam_standard",
        "bl_gradcam_standard",
    ]
    assert {(t["config"], t["split"]) for t in spec["tasks"]} == {("standard", "test"), ("blur", "test")}
    (tmp_path / "README.md").write_text(DATASET_CARD.replace("- split: test", "- split: train"))
    with pytest.raises(ValueError, match="no config with a test split"):
        write_eval_yaml(tmp_path, ["gradcam"])


def test_model_card_content_and_errors(tmp_path):
    hub = HubRoot(tmp_path, "alice")
    folder = hub.model_dir("test_resnet", "zs")
    folder.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="training.json"):
        write_model_card(folder, summary(), hub)
    (folder / "training.json").write_text(json.dumps(training()))
    card = ModelCard.load(write_model_card(folder, summary(configs=("standard",)), hub))
    assert "[More Information Needed]" not in card.content
    assert 'timm.create_model("hf-hub:alice/test_resnet-zs", pretrained=True)' in card.content
    assert "| standard | LayerCAM | FMR ↑ | 0.520 [0.470, 0.570] | 0.250 | 20 (1) |" in card.content
    results = card.data.eval_results
    assert len(results) == 1 + 4 * 7 and len({r.unique_identifier for r in results}) == 1
    entries = yaml.safe_load((folder / ".eval_results" / "cambench-qr.yaml").read_text())
    assert [e["dataset"]["task_id"] for e in entries][:3] == [
        "accuracy_standard",
        "fmr_gradcam_standard",
        "tmr_gradcam_standard",
    ]  # the grouped accuracy rows (negative kinds, version bands) stay out of model-index and entries
    assert [e["dataset"]["task_id"] for e in entries].count("accuracy_standard") == 1
    assert "Competent: accuracy 0.900 on `standard`, at least the competence floor 0.90." in card.content
    # verdicts against the uniform and the best (edge) null map: tests/hub_summaries.py, method index 2
    assert (
        "| LayerCAM | FMR ↑ | ≈: 0.000 [-0.050, 0.050] | null: edge | worse: -0.100 [-0.150, -0.050] |"
        in (card.content)
    )
    assert (
        "| Grad-CAM | DtS ↓ | better: -0.100 [-0.150, -0.050] | null: edge | ≈: 0.000 [-0.050, 0.050] |"
        in (card.content)
    )
    assert card.content.count("| null: edge |") == 4 * 3  # methods x FMR, BL, DtS


def test_model_card_marks_a_model_that_is_not_competent(tmp_path):
    hub = HubRoot(tmp_path, "alice")
    folder = hub.model_dir("test_resnet", "zs")
    folder.mkdir(parents=True)
    (folder / "training.json").write_text(json.dumps(training()))
    card = ModelCard.load(write_model_card(folder, summary(accuracy=0.6), hub)).content
    assert "**Not competent**: accuracy 0.600 on `standard`, below the competence floor 0.90." in card
    old = summary(accuracy=0.85, legacy=True, configs=("blur",))  # judged on the first config
    card = ModelCard.load(write_model_card(folder, old, hub)).content
    assert "**Not competent**: accuracy 0.850 on `blur`" in card and "Against the null maps" not in card


def test_metric_space_is_a_clean_copy(tmp_path):
    module = tmp_path / "cambench_structure"
    (module / "__pycache__").mkdir(parents=True)
    (module / "cambench_structure.py").write_text("# metric\n")
    (module / "__pycache__" / "x.pyc").write_bytes(b"0")
    space = tmp_path / "hub" / "spaces" / "alice" / "cambench_structure"
    space.mkdir(parents=True)
    (space / "stale.txt").write_text("old")
    write_metric_space(module, space)
    assert sorted(p.name for p in space.iterdir()) == ["cambench_structure.py"]
    with pytest.raises(FileNotFoundError, match="not an evaluate module folder"):
        write_metric_space(tmp_path, space)


def test_push_input_errors_are_one_line_and_leave_folders_alone(tmp_path, monkeypatch, capsys):
    hub = HubRoot(tmp_path / "hub", "alice")
    hub.dataset_dir.mkdir(parents=True)
    (hub.dataset_dir / "README.md").write_text(DATASET_CARD)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    base = ["push", "--user", "alice", "--hub-root", str(hub.root)]
    cases = [
        ([], "no Hugging Face token"),
        (["--what", "bogus"], "unknown push target 'bogus'"),
        (["--what", "models", "--token", "hf_x"], "nothing to push for 'models'"),
        (["--user", "bad/name"], "invalid Hub user name"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert (hub.dataset_dir / "README.md").read_text() == DATASET_CARD


def _leaderboard(tmp_path) -> HubRoot:
    """A local Hub root with the leaderboard of two synthetic models (standard + blur) built by the CLI."""
    from hub_summaries import write_summary

    for regime, quality in (("zs", 0.5), ("ft_struct", 0.6)):
        write_summary(tmp_path / "eval" / regime, summary(regime=regime, quality=quality))
    hub = HubRoot(tmp_path / "hub", "alice")
    assert main(["leaderboard", "--results", str(tmp_path / "eval"), "--hub-root", str(hub.root),
                 "--user", "alice"]) == 0
    return hub


def test_leaderboard_space_folder(tmp_path, capsys):
    import ast
    from importlib import metadata

    import gradio

    from cambench_qr.hub_cards.space import GRADIO_VERSION
    from cambench_qr.spaces import LEADERBOARD_APP

    hub = _leaderboard(tmp_path)
    printed = capsys.readouterr().out
    folder = hub.leaderboard_space_dir
    assert folder == hub.root / "spaces" / "alice" / "cambench-qr-leaderboard"
    assert f"space app: {folder / 'app.py'}" in printed
    files = ["README.md", "app.py", "requirements.txt", "space.json"]
    assert sorted(p.name for p in folder.iterdir()) == files
    assert (folder / "app.py").read_bytes() == LEADERBOARD_APP.read_bytes()
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(LEADERBOARD_APP.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not any(name.startswith("cambench_qr") for name in imported), imported  # runs without the package
    assert GRADIO_VERSION == gradio.__version__  # the Space runs the gradio the browser tests exercise
    assert (folder / "requirements.txt").read_text().split() == [
        f"gradio=={GRADIO_VERSION}",
        f"pandas=={metadata.version('pandas')}",
        f"pyarrow=={metadata.version('pyarrow')}",
        f"huggingface_hub=={metadata.version('huggingface_hub')}",
    ]
    card = ModelCard.load(folder / "README.md").data.to_dict()  # any repo card: the YAML header
    assert card["sdk"] == "gradio" and card["app_file"] == "app.py" and card["sdk_version"] == GRADIO_VERSION
    assert card["datasets"] == ["alice/cambench-qr-leaderboard"]
    assert card["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    settings = json.loads((folder / "space.json").read_text())
    assert settings["dataset"] == "alice/cambench-qr-leaderboard" and settings["schema_version"] == 1
    assert settings["sort"] == ["fmr", True] and settings["scores"][0] == ["fmr", "FMR ↑"]
    # the submission commands name this leaderboard's configs and CAM methods (table order: by name)
    evaluate = (
        "cambench-qr evaluate --model path/to/your-model --data alice/cambench-qr --configs blur,standard "
        "--methods eigengradcam,gradcam,layercam,xgradcam --out runs/eval/your-model"
    )
    upload = (
        "hf upload alice/cambench-qr-leaderboard runs/eval/your-model/summary.json "
        "submissions/your-model/summary.json --repo-type dataset --create-pr"
    )
    for text in (settings["submit"], (folder / "README.md").read_text()):
        assert evaluate in text and upload in text


@pytest.mark.slow
def test_leaderboard_space_push_and_read_from_the_hub(hub_server, tmp_path):
    """`push --what spaces` uploads the Space folder; the Space's app reads the leaderboard dataset by its
    Hub id (pushed with `--what leaderboard`) and gets the local rows."""
    hub = _leaderboard(tmp_path)
    code = """
    import sys
    from pathlib import Path
    import importlib.util
    from huggingface_hub import HfApi
    from cambench_qr.hub_cards import HubRoot, push

    hub = HubRoot(Path(sys.argv[1]), "alice")
    results = push(hub, "spaces", quiet=True) + push(hub, "leaderboard", quiet=True)
    assert [(r.repo_type, r.ok) for r in results] == [("space", True), ("dataset", True)], results
    files = HfApi().list_repo_files("alice/cambench-qr-leaderboard", repo_type="space")
    assert sorted(files) == [".gitattributes", "README.md", "app.py", "requirements.txt", "space.json"], files
    spec = importlib.util.spec_from_file_location("app", hub.leaderboard_space_dir / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    remote = app.load_rows(app.fetch("alice/cambench-qr-leaderboard"), 1)
    local = app.load_rows(hub.leaderboard_dir, 1)
    assert remote.equals(local), (remote.shape, local.shape)
    print("OK", len(remote))
    """
    proc = run_client(hub_server, tmp_path, code, str(hub.root))
    assert proc.stdout.strip().splitlines()[-1] == "OK 32"  # 2 models x (6 clean + 2 x 5 blur rows)


def test_leaderboard_space_filters_keep_revisions_apart(tmp_path):
    """The Space's table logic (no browser): a leaderboard of two revisions is shown one revision at a
    time; filters select by key ('–' for a missing severity); bad folders raise one-line errors."""
    import importlib.util

    from hub_summaries import with_sanity, write_summary

    from cambench_qr.hub_cards import build_leaderboard
    from cambench_qr.hub_cards.space import write_leaderboard_space

    write_summary(tmp_path / "eval" / "a", summary(revision="rev-a", quality=0.5))
    payload = with_sanity(summary(revision="rev-b", quality=0.6, configs=("standard", "paper")))
    write_summary(tmp_path / "eval" / "b", payload)
    hub = HubRoot(tmp_path / "hub", "alice")
    build_leaderboard([tmp_path / "eval"], hub.leaderboard_dir, by_revision=True)
    write_leaderboard_space(hub)
    spec = importlib.util.spec_from_file_location("space_app", hub.leaderboard_space_dir / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    settings = app.read_settings(hub.leaderboard_space_dir / "space.json")
    rows = app.load_rows(app.fetch(str(hub.leaderboard_dir)), 1)
    assert sorted(set(rows["revision"])) == ["0.1.0, data rev-a", "0.1.0, data rev-b"]
    b = app.filter_rows(rows, {"revision": "0.1.0, data rev-b"}, competent_only=True)
    assert len(b) == 6 + 8  # standard: 4 CAMs + 2 null maps; paper: 4 CAMs x 2 groups without severity
    paper = app.filter_rows(rows, {"revision": "0.1.0, data rev-b", "severity": "–"}, competent_only=True)
    assert set(paper["config"]) == {"paper"} and len(paper) == 8
    table = app.display_table(app.filter_rows(b, {"config": "standard"}, True), settings)
    # CAM methods first, best FMR first (method index 3 scores 0.6 + 0.03), then the null maps
    assert list(table["method"]) == ["EigenGrad-CAM", "LayerCAM", "XGrad-CAM", "Grad-CAM", "null: edge",
                                     "null: uniform"]
    assert list(table["FMR ↑"])[:2] == [0.63, 0.62] and table["FMR ↑ 95% CI"][0] == "[0.580, 0.680]"
    # hub_summaries.SANITY_VERDICTS: gradcam passes, xgradcam fails, the others are undetermined
    assert list(table["passes sanity"]) == ["undetermined", "undetermined", "no", "yes", "–", "–"]
    a = app.filter_rows(rows, {"revision": "0.1.0, data rev-a"}, competent_only=True)
    assert set(app.display_table(a, settings)["passes sanity"]) == {"–"}  # no sanity checks run
    assert table["vs best null map (FMR ↑, BL ↓, DtS ↓)"][3] == "≈ (edge), ≈ (edge), ≈ (edge)"
    with pytest.raises(app.LeaderboardError, match="neither a folder nor a Hub dataset id"):
        app.fetch(str(tmp_path / "missing" / "folder"))
    with pytest.raises(app.LeaderboardError, match="holds no leaderboard table"):
        app.load_rows(tmp_path / "eval", 1)
