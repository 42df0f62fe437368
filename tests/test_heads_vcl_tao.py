"""VCL and TaoHighlight heads (grounding_agent/highlights/head_vcl.py, head_tao.py) and their recipes
(finetune/vcl.py, finetune/taohighlight.py): parameter count, prompt insertion, frozen CLIP, GIoU and
Hungarian matching, save -> load_head, the moment_detr npz path, learning on the generated task (slow),
resume after kill -9 (slow), and a head folder of another recipe refused."""

from __future__ import annotations

import importlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune import vcl_tao_train as common
from grounding_agent.highlights import head_tao, head_vcl
from grounding_agent.highlights.heads import load_head
from tests.killed_runs import kill_when, torch_threads

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / ".venv" / "bin" / "grounding-agent"
VCL_CONFIG = REPO / "finetune" / "configs" / "vcl_tiny.yaml"
TAO_CONFIG = REPO / "finetune" / "configs" / "taohighlight_tiny.yaml"
VCL_HEAD = {"n_prompts": 4, "window": 5, "hidden": 10, "init_std": 0.02}
TAO_HEAD = {"hidden": 32, "n_heads": 2}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tiny_clip(tiny_models) -> str:
    return str(tiny_models["clip"])


def test_vcl_trainable_parameters_are_prompts_and_mlp_2141_for_vit_b32_width(tiny_clip):
    """N*w + (window*h + h) + (3h + 3): 4*512 + 93 = 2,141 at ViT-B/32's text width; 221 for the tiny CLIP."""
    from transformers import CLIPConfig, CLIPModel

    tiny, _, _ = head_vcl.build(tiny_clip, VCL_HEAD)
    assert tiny.num_trainable() == 4 * 32 + 93 == 221
    # ViT-B/32's text width (512) and projection, one layer deep: the count depends on the width only.
    config = CLIPConfig(
        text_config={
            "vocab_size": 1000,
            "hidden_size": 512,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 8,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
        },
        projection_dim=512,
    )
    net = head_vcl.VCLNet(CLIPModel(config).requires_grad_(False), **VCL_HEAD)
    assert net.num_trainable() == 2141
    assert set(net.trainable_state()) == {
        "encoder.prompts",
        "mlp.0.weight",
        "mlp.0.bias",
        "mlp.2.weight",
        "mlp.2.bias",
    }


def test_zero_prompts_reproduce_clip_text_features_and_prompts_change_them(tiny_clip):
    from transformers import CLIPModel

    texts = ["a red ball appears", "the green gift box is on screen now"]  # different lengths: padding
    plain, tokenizer, _ = head_vcl.build(tiny_clip, {**VCL_HEAD, "n_prompts": 0})
    inputs = head_vcl.tokenize(tokenizer, texts, 0, 77)
    with torch.no_grad():
        ours = plain.encoder(inputs["input_ids"], inputs["attention_mask"])
        theirs = CLIPModel.from_pretrained(tiny_clip).get_text_features(**inputs)
    theirs = getattr(theirs, "pooler_output", theirs)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)

    torch.manual_seed(0)
    prompted, tokenizer, _ = head_vcl.build(tiny_clip, {**VCL_HEAD, "init_std": 1.0})
    inputs = head_vcl.tokenize(tokenizer, texts, 4, 77)
    with torch.no_grad():
        with_prompts = prompted.text_features(inputs["input_ids"], inputs["attention_mask"])
        prompted.encoder.prompts.mul_(-1.0)
        flipped = prompted.text_features(inputs["input_ids"], inputs["attention_mask"])
    cos = torch.nn.functional.cosine_similarity(with_prompts, torch.nn.functional.normalize(theirs, dim=-1))
    assert (cos < 0.99).all()  # inserting vectors moved the features
    assert (with_prompts - flipped).abs().max() > 1e-3  # and the features depend on the prompts' values


def test_gradients_reach_only_the_prompts_and_the_mlp(tiny_clip):
    from finetune.vcl import sample_loss

    net, tokenizer, dim = head_vcl.build(tiny_clip, VCL_HEAD)
    inputs = head_vcl.tokenize(tokenizer, ["a blue ball"], 4, 77)
    text = net.text_features(inputs["input_ids"], inputs["attention_mask"])[0]
    labels = np.zeros(8, np.float32)
    labels[3:5] = 1.0
    ann = common.Annotation(0, "v", "a blue ball", 16.0, ((6.0, 10.0),), (3, 4), ((4,), (4,)))
    sample = common.Sample(
        ann, "a blue ball", np.random.default_rng(0).normal(size=(8, dim)).astype(np.float32), labels
    )
    weights = {"saliency": 1.0, "membership": 1.0, "giou": 1.0, "match_p": 1.0}
    sample_loss(net, sample, text, weights, torch.device("cpu")).backward()
    for name, p in net.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    frozen = sum(p.numel() for p in net.parameters() if not p.requires_grad)
    assert frozen > 100 * net.num_trainable()  # the whole text tower is there, and frozen


def test_giou_and_hungarian_matching():
    from finetune.vcl import giou_1d, hungarian_giou

    pred = torch.tensor([[0.0, 2.0], [5.0, 7.0], [1.0, 3.0]])
    gt = torch.tensor([[5.0, 7.0], [0.0, 2.0]])
    g = giou_1d(pred, gt)
    assert g[1, 0] == pytest.approx(1.0) and g[0, 1] == pytest.approx(1.0)
    assert g[0, 0] == pytest.approx(0 - (7 - 4) / 7)  # disjoint: IoU 0 minus the empty hull share
    assert g[2, 1] == pytest.approx(1 / 3)
    # Clip windows: clip i spans [i + 0.5 - d_start, i + 0.5 + d_end]. Clip 1 hits [0, 2] and clip 6 hits
    # [5, 7] exactly: the optimal matching pairs them and the loss is 0 whatever the other clips say.
    outputs = torch.zeros(8, 3)
    outputs[:, 1:] = 3.0
    outputs[1, 1:] = torch.tensor([1.5, 0.5])
    outputs[6, 1:] = torch.tensor([1.5, 0.5])
    assert hungarian_giou(outputs, gt, match_p=1.0) == pytest.approx(0.0, abs=1e-6)
    outputs[6, 1:] = torch.tensor([0.5, 0.5])  # now [6, 7]: half of [5, 7]
    assert hungarian_giou(outputs, gt, match_p=1.0) == pytest.approx(0.25, abs=1e-6)


def test_tao_span_terms():
    from finetune.taohighlight import span_terms

    l1, iou, distance = span_terms(torch.tensor([0.2, 0.6]), torch.tensor([0.4, 0.8]))
    assert float(l1) == pytest.approx(0.4)
    assert float(iou) == pytest.approx(0.2 / 0.6)
    assert float(distance) == pytest.approx(0.2 / 0.6)


@pytest.mark.parametrize("module, head", [(head_vcl, VCL_HEAD), (head_tao, TAO_HEAD)])
def test_saved_head_loads_by_path_and_scores_identically(module, head, tiny_clip, tmp_path):
    torch.manual_seed(1)
    net, tokenizer, dim = module.build(tiny_clip, head)
    with torch.no_grad():
        for p in net.trainable_state().values():
            p.add_(torch.randn_like(p) * 0.1)
    cfg = common.RunConfig(tiny_clip, head, {}, {}, {"output_dir": str(tmp_path / "head")})
    common.finish(module.RECIPE, net, cfg, dim)
    feats = np.random.default_rng(0).normal(size=(9, dim)).astype(np.float32)
    text = "Red ball - limited offer"
    in_memory = (head_vcl.VCLHead if module is head_vcl else head_tao.TaoHighlightHead)(
        net, tokenizer, clip_model=tiny_clip, feature_dim=dim
    )
    loaded = load_head(tmp_path / "head", expect=module.RECIPE)
    assert loaded.recipe == module.RECIPE and loaded.needs_text
    np.testing.assert_array_equal(loaded.score_clips(feats, text), in_memory.score_clips(feats, text))
    assert len(loaded.score_clips(feats, text)) == 9


def _npz_task(root: Path, dim: int, key: str) -> Path:
    """moment_detr layout: clip_features/{vid}.npz and QVHighlights jsonl; the event clips share a direction."""
    rng = np.random.default_rng(0)
    event = rng.normal(size=dim)
    (root / "clip_features").mkdir(parents=True)
    for split, n in (("train", 12), ("val", 4)):
        rows = []
        for i in range(n):
            vid, clips = f"{split}{i}", int(rng.integers(8, 14))
            first = int(rng.integers(0, clips - 3))
            feats = rng.normal(size=(clips, dim))
            feats[first : first + 3] += 3 * event
            np.savez(root / "clip_features" / f"{vid}.npz", **{key: feats.astype(np.float32)})
            rows.append(
                {"qid": len(rows) + (0 if split == "train" else 100), "query": "a red ball appears", "vid": vid,
                 "duration": clips * 2.0, "relevant_windows": [[first * 2.0, first * 2.0 + 6]],
                 "relevant_clip_ids": [first, first + 1, first + 2], "saliency_scores": [[4, 3, 3], [4, 4, 4], [4, 3, 3]],
                 "title": "Red ball"}
            )  # fmt: skip
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_vcl_trains_from_moment_detr_npz_features(tiny_clip, tmp_path, capsys):
    from finetune.vcl import main

    data = _npz_task(tmp_path / "qvh", 32, "pooler_output")
    out = tmp_path / "run"
    args = [
        f"model.clip_model={tiny_clip}", f"data.train={data / 'train.jsonl'}", f"data.val={data / 'val.jsonl'}",
        f"data.features={data / 'clip_features'}", f"training.output_dir={out}", "training.steps=60",
        "training.save_every=30", "data.generated=null", f"data.cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    assert main([str(VCL_CONFIG), *args]) == 0
    printed = capsys.readouterr().out
    assert "vcl: 221 trainable parameters" in printed
    rows = json.loads((out / "eval.json").read_text())["rows"]
    assert set(rows) == {"head", "zero-shot CLIP"}  # no videos: no heuristic fusion row
    assert rows["head"]["mAP"] > rows["zero-shot CLIP"]["mAP"]
    assert load_head(out).recipe == "vcl"


def test_npz_keys_features_or_pooler_output_else_one_clear_error(tmp_path):
    from grounding_agent.errors import DatasetError

    np.savez(tmp_path / "v.npz", other=np.zeros((3, 4), np.float32))
    with pytest.raises(DatasetError, match="neither 'pooler_output' nor 'features'"):
        common.npz_features(tmp_path, "v")
    np.savez(tmp_path / "w.npz", features=np.full((3, 4), 2.0, np.float32))  # moment_detr's video key
    np.testing.assert_allclose(common.npz_features(tmp_path, "w"), np.full((3, 4), 0.5))


# --- the generated task: learning, resume, wrong recipe (slow) -----------------------------------------


@pytest.fixture(scope="module")
def task_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("highlight_task")


def task_args(clip: str, root: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"model.clip_model={clip}",
        f"data.generated={{out: {root / 'task'}, num_train: 16, num_val: 8, seed: 0}}",
        f"data.cache_dir={root / 'cache'}",
        f"training.output_dir={out}",
        "training.steps=150",
        *extra,
    ]


@pytest.fixture(scope="module")
def vcl_run(tiny_clip, task_root) -> Path:
    from finetune.vcl import main

    out = task_root / "vcl"
    assert main([str(VCL_CONFIG), *task_args(tiny_clip, task_root, out)]) == 0
    return out


@pytest.fixture(scope="module")
def tao_run(tiny_clip, task_root) -> Path:
    from finetune.taohighlight import main

    out = task_root / "tao"
    assert main([str(TAO_CONFIG), *task_args(tiny_clip, task_root, out)]) == 0
    return out


@pytest.mark.slow
def test_each_head_beats_zero_shot_on_its_generated_task(vcl_run, tao_run):
    for out in (vcl_run, tao_run):
        rows = json.loads((out / "eval.json").read_text())["rows"]
        head, zero = rows["head"], rows["zero-shot CLIP"]
        assert head["mAP"] > zero["mAP"] + 10 and head["HIT@1"] >= zero["HIT@1"], (out.name, rows)
        assert head["kendall_tau"] > zero["kendall_tau"], (out.name, rows)
        assert "heuristic fusion" in rows


@pytest.mark.slow
def test_highlights_query_with_a_vcl_head_scores_the_query_through_the_head(
    vcl_run, tiny_clip, task_root, capsys
):
    from grounding_agent.cli import main
    from grounding_agent.highlights.clip import ClipSaliency
    from grounding_agent.highlights.heads import head_scores

    row = json.loads((task_root / "task" / "val.jsonl").read_text().splitlines()[0])
    video = next(task_root.rglob(f"{row['vid']}.mp4"))
    capsys.readouterr()
    assert main(["highlights", str(video), "--query", row["query"], "--head", str(vcl_run), "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    direct = head_scores(
        load_head(vcl_run), ClipSaliency.from_pretrained(tiny_clip), video, text=row["query"]
    )
    np.testing.assert_allclose(pred["pred_saliency_scores"], direct, atol=1e-5)
    assert pred["pred_relevant_windows"], pred


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe, config, uninterrupted", [("vcl", VCL_CONFIG, "vcl_run"), ("taohighlight", TAO_CONFIG, "tao_run")]
)
def test_a_run_killed_after_a_checkpoint_resumes_and_ends_like_the_uninterrupted_run(
    recipe, config, uninterrupted, request, tiny_clip, task_root, capsys
):
    """SIGKILL the CLI-launched recipe once a checkpoint exists, rerun it in process: it says it resumed,
    and its head equals the uninterrupted run's (a resume that loaded nothing would train from scratch)."""
    from safetensors.torch import load_file

    reference = load_file(request.getfixturevalue(uninterrupted) / "head.safetensors")
    out = task_root / f"{recipe}_killed"
    args = task_args(tiny_clip, task_root, out)
    kill_when(
        [str(CLI), "finetune", "--recipe", recipe, str(config), *args],
        (out / "checkpoint" / "state.pt").is_file,
    )
    assert not (out / "head.safetensors").exists()
    capsys.readouterr()
    assert importlib.import_module(f"finetune.{recipe}").main([str(config), *args]) == 0  # the rerun
    resumed = int(capsys.readouterr().out.split("resumed from step ")[1].split()[0])
    assert 0 < resumed < 150
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=True)
    assert state["step"] == 150 and state["recipe"] == recipe
    ours = load_file(out / "head.safetensors")
    assert set(ours) == set(reference)
    for name, tensor in reference.items():
        torch.testing.assert_close(ours[name], tensor, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_a_head_folder_of_another_recipe_is_refused_and_left_alone(vcl_run, tiny_clip, task_root):
    before = {p: p.stat().st_mtime_ns for p in vcl_run.rglob("*")}
    cmd = [str(CLI), "finetune", "--recipe", "taohighlight", str(TAO_CONFIG)]
    done = subprocess.run(
        [*cmd, *task_args(tiny_clip, task_root, vcl_run)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'vcl' head" in lines[0], done.stderr
    assert {p: p.stat().st_mtime_ns for p in vcl_run.rglob("*")} == before
    with pytest.raises(Exception, match="not 'taohighlight'"):
        load_head(vcl_run, expect="taohighlight")


def test_a_checkpoint_of_another_recipe_is_refused_for_output_and_for_resume(tmp_path):
    from grounding_agent.errors import HeadError

    common.save_checkpoint(tmp_path / "run", {"recipe": "vcl", "step": 3, "model": {}, "optim": {}})
    with pytest.raises(HeadError, match="'vcl' checkpoint, not taohighlight"):
        common.check_output(tmp_path / "run", "taohighlight")
    cfg = common.RunConfig(
        "m", {}, {}, {}, {"output_dir": str(tmp_path / "new")}, resume=str(tmp_path / "run")
    )
    with pytest.raises(HeadError, match="not taohighlight"):
        common.resume_state(cfg, "taohighlight")
    assert common.resume_state(cfg, "vcl")["step"] == 3
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("training.steps=abc", "training.steps must be a number > 0"),
        ("training.lr=0", "training.lr must be a number > 0"),
        ("training.epochs=3", "unknown key"),
        ("data.generated=null", "set data.generated, or data.train"),
    ],
)
def test_bad_recipe_configs_are_one_line_config_errors(override, message, tmp_path):
    from finetune.vcl import DEFAULTS
    from grounding_agent.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        common.load_run_config(VCL_CONFIG, [override, f"training.output_dir={tmp_path / 'out'}"], DEFAULTS)
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_must_hold_exactly_the_trainable_weights_to_resume(tiny_clip, tmp_path):
    """The frozen CLIP is not in a checkpoint, so it loads with strict=False; a checkpoint missing a
    trainable weight (or holding a foreign one) must be refused, not resumed from untrained weights."""
    from grounding_agent.errors import HeadError

    net, _, _ = head_vcl.build(tiny_clip, VCL_HEAD)
    optim = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad])
    cfg = common.RunConfig(tiny_clip, VCL_HEAD, {}, {}, {"output_dir": str(tmp_path)})
    trained = {k: torch.full_like(v, 0.5) for k, v in net.trainable_state().items()}
    state = {"recipe": "vcl", "step": 7, "model": trained, "optim": optim.state_dict()}
    for model in (
        {k: v for k, v in trained.items() if k != "encoder.prompts"},
        {**trained, "other.w": torch.ones(1)},
    ):
        with pytest.raises(HeadError, match="does not fit this config's head"):
            common.resume(net, optim, {**state, "model": model}, cfg)
    assert not torch.equal(net.encoder.prompts, trained["encoder.prompts"])
    assert common.resume(net, optim, state, cfg) == 7
    for name, tensor in net.trainable_state().items():
        assert torch.equal(tensor, trained[name]), name


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a visible GPU")
def test_training_device_cuda_without_a_gpu_is_a_one_line_config_error(tmp_path):
    from grounding_agent.errors import ConfigError

    cuda = common.RunConfig("m", {}, {}, {}, {"output_dir": str(tmp_path), "device": "cuda"})
    with pytest.raises(ConfigError, match="no CUDA GPU is visible; set training.device=cpu"):
        common.device_of(cuda)
    auto = common.RunConfig("m", {}, {}, {}, {"output_dir": str(tmp_path), "threads": 1})
    assert common.device_of(auto) == torch.device("cpu") and torch.get_num_threads() == 1
