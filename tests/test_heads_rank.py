"""Learned ranking heads (Less is More, engagement), the head registry and `--like` personalization.

Fast: the registry contract (save -> load gives identical scores; wrong recipe, a PEFT folder, missing or
damaged weights -> one-line typed errors), the losses, the engagement CSV checks, personalization's checks
and that it moves a ranking towards the likes. Slow: each head, trained on its generated task with the tiny
random-weight CLIP, beats zero-shot on the held-out split; a recipe killed with SIGKILL resumes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune.engagement import read_engagement
from finetune.highlight_tasks_rank import RankTaskSpec, make_rank_task
from grounding_agent.cli.finetune import RECIPES, recipe_path
from grounding_agent.errors import ConfigError, HeadError
from grounding_agent.highlights.clip import FrameEmbeddings
from grounding_agent.highlights.head_rank import (
    ClipScorer,
    PairConfidence,
    RankHead,
    head_config,
    hinge,
    less_is_more_loss,
    listnet_loss,
    ranknet_loss,
    resample_to_clips,
)
from grounding_agent.highlights.heads import HEADS, clip_features, load_head, save_head
from grounding_agent.highlights.personalize import parse_likes, personalize
from tests.killed_runs import kill_when
from tests.test_hostile_options import assert_one_line_error, run_cli

REPO = Path(__file__).resolve().parents[1]
DIM = 16


def _trained_head(folder: Path, recipe: str = "less-is-more") -> tuple[ClipScorer, Path]:
    torch.manual_seed(0)
    scorer = ClipScorer(DIM, 8).eval()
    save_head(folder, head_config(recipe, "tiny-clip", DIM, 8), scorer.state_dict())
    return scorer, folder


# --- the registry contract -------------------------------------------------------------------------


def test_the_registry_names_every_recipe_module():
    assert HEADS == {
        "vcl": "grounding_agent.highlights.head_vcl",
        "taohighlight": "grounding_agent.highlights.head_tao",
        "less-is-more": "grounding_agent.highlights.head_rank",
        "engagement": "grounding_agent.highlights.head_rank",
    }
    assert {"less-is-more", "engagement"} <= set(RECIPES)
    assert recipe_path("less-is-more").name == "less_is_more.py" and recipe_path("engagement").is_file()


@pytest.mark.parametrize("recipe", ["less-is-more", "engagement"])
def test_save_then_load_scores_identically(tmp_path, recipe):
    scorer, folder = _trained_head(tmp_path / "head", recipe)
    feats = np.random.default_rng(0).normal(size=(7, DIM)).astype(np.float32)
    head = load_head(folder, expect=recipe)
    assert isinstance(head, RankHead) and head.recipe == recipe and not head.needs_text
    with torch.inference_mode():
        expected = scorer(torch.from_numpy(feats)).double().numpy()
    np.testing.assert_array_equal(head.score_clips(feats), expected)
    config = json.loads((folder / "head_config.json").read_text())
    assert (
        config["format"] == "grounding-agent-head" and config["version"] == 1 and config["feature_dim"] == DIM
    )


def test_features_of_another_model_are_refused_in_one_line(tmp_path):
    _, folder = _trained_head(tmp_path / "head")
    with pytest.raises(HeadError, match="pass --clip-model tiny-clip"):
        load_head(folder).score_clips(np.zeros((3, DIM + 1), np.float32))


def _peft(folder: Path) -> Path:
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    return folder


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path.parent


def _version(folder: Path, version: int) -> Path:
    config = json.loads((folder / "head_config.json").read_text())
    (folder / "head_config.json").write_text(json.dumps({**config, "version": version}))
    return folder


@pytest.mark.parametrize(
    "break_it, fragment",
    [
        (lambda f: f.parent / "absent", "does not exist"),
        (lambda f: _peft(f.parent / "adapter"), "PEFT adapter folder"),
        (lambda f: _version(f, 99), "version 99"),
        (lambda f: (f / "head.safetensors").unlink() or f, "no head.safetensors"),
        (lambda f: _write(f / "head.safetensors", b"\x00" * 12), "damaged"),
        (lambda f: _write(f / "head_config.json", b"{nope"), "not valid JSON"),
    ],
    ids=["no-folder", "peft-folder", "unknown-version", "missing-weights", "damaged-weights", "bad-json"],
)
def test_bad_head_folders_are_one_line_typed_errors(tmp_path, break_it, fragment):
    _, folder = _trained_head(tmp_path / "head")
    with pytest.raises(HeadError, match=fragment) as info:
        load_head(break_it(folder))
    assert "\n" not in str(info.value)


def test_another_recipe_than_expected_is_refused_and_never_overwritten(tmp_path):
    _, folder = _trained_head(tmp_path / "head", "less-is-more")
    with pytest.raises(HeadError, match="holds a 'less-is-more' head, not 'engagement'"):
        load_head(folder, expect="engagement")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(HeadError, match="another output folder"):
        save_head(folder, head_config("engagement", "tiny-clip", DIM, 8), ClipScorer(DIM, 8).state_dict())
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with pytest.raises(HeadError, match="holds no head"):
        save_head(_peft(tmp_path / "adapter"), head_config("engagement", "m", DIM, 8), {})


def test_clip_features_are_unit_means_per_two_second_clip():
    vectors = np.eye(4, dtype=np.float32)[[0, 0, 1, 2]]  # frames at 0.5, 1.5, 2.5, 6.5 s
    emb = FrameEmbeddings(np.array([0.5, 1.5, 2.5, 6.5]), np.arange(4), vectors)
    feats = clip_features(emb, duration_s=7.0)
    assert feats.shape == (4, 4)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(feats[0], [1, 0, 0, 0])
    np.testing.assert_allclose(feats[2], feats[3])  # clip [4, 6) has no frame: the nearest one's (6.5 s)


# --- losses ---------------------------------------------------------------------------------------


def test_hinge_and_the_softmax_pair_weights():
    s_i, s_j = torch.tensor([2.0, 0.5, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    np.testing.assert_allclose(hinge(s_i, s_j).numpy(), [0.0, 0.5, 2.0])
    torch.manual_seed(0)
    scorer, conf = ClipScorer(DIM, 8, dropout=0.0), PairConfidence(DIM, 8, dropout=0.0)
    x_i, x_j = torch.randn(32, DIM), torch.randn(32, DIM)
    with torch.no_grad():
        loss, weights = less_is_more_loss(scorer, conf, x_i, x_j)
        pair = hinge(scorer(x_i), scorer(x_j))
        uniform, w = less_is_more_loss(scorer, None, x_i, x_j)
    assert weights.shape == (32,) and torch.all(weights > 0) and abs(float(weights.sum()) - 1) < 1e-5
    assert float(loss) == pytest.approx(float((weights * pair).sum()), rel=1e-5)
    assert float(uniform) == pytest.approx(float(pair.mean()), rel=1e-5)
    assert torch.allclose(w, torch.full((32,), 1 / 32))


@pytest.fixture
def one_thread():
    """A tiny MLP on a shared 2-core machine: one torch thread is ~30x faster than two waiting on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_few_steps_rank_short_video_clips_above_long_ones(one_thread):
    torch.manual_seed(0)
    x_short, x_long = torch.randn(64, DIM) + 1.0, torch.randn(64, DIM) - 1.0
    scorer, conf = ClipScorer(DIM, 16, dropout=0.0), PairConfidence(DIM, 16, dropout=0.0)
    opt = torch.optim.AdamW([*scorer.parameters(), *conf.parameters()], lr=1e-2)
    gap = lambda: float(scorer(x_short).mean().detach() - scorer(x_long).mean().detach())  # noqa: E731
    before = gap()
    for _ in range(30):
        loss, _ = less_is_more_loss(scorer, conf, x_short, x_long)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert gap() > before + 0.5


def test_listwise_and_pairwise_losses_prefer_the_target_order():
    target = torch.tensor([0.0, 2.0, 1.0, -1.0])
    right, wrong = target.clone(), -target
    assert float(listnet_loss(right, target)) < float(listnet_loss(wrong, target))
    assert float(ranknet_loss(right, target)) < float(ranknet_loss(wrong, target))
    assert float(ranknet_loss(right, torch.zeros(4))) == 0.0  # a flat series orders nothing


def test_engagement_is_resampled_to_two_second_clips():
    clips = resample_to_clips(np.array([0.5, 1.5, 2.5, 7.0]), np.array([1.0, 3.0, 5.0, 9.0]), n_clips=4)
    np.testing.assert_allclose(
        clips, [2.0, 5.0, 5 + 4 * 2.5 / 4.5, 9.0]
    )  # clip 2 [4, 6): interpolated at 5 s


# --- the engagement CSV ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rows, fragment",
    [
        ("video,t_s,value\nother.mp4,1,2\n", "unknown video 'other.mp4'"),
        ("video,t_s,value\na.mp4,one,2\n", "t_s 'one' is not a number"),
        ("video,t_s,value\na.mp4,1,nan\n", "not a finite number"),
        ("video,t_s,value\na.mp4,1,inf\n", "not a finite number"),
        ("video,t_s,value\na.mp4,-1,3\n", "negative"),
        ("video,time,value\na.mp4,1,2\n", "header must name"),
        ("video,t_s,value\n", "has no rows"),
    ],
    ids=["unknown-video", "not-a-number", "nan", "inf", "negative-time", "bad-header", "empty"],
)
def test_bad_engagement_csvs_are_one_line_errors(tmp_path, rows, fragment):
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "e.csv").write_text(rows)
    with pytest.raises(ConfigError, match=fragment) as info:
        read_engagement(tmp_path / "e.csv", [tmp_path / "a.mp4"])
    assert "\n" not in str(info.value)


def test_a_csv_with_an_unknown_video_exits_2_and_writes_nothing(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"")
    (tmp_path / "e.csv").write_text("video,t_s,value\na.mp4,1,2\nb.mp4,1,2\n")
    out = tmp_path / "head"
    rc, _, err = run_cli(
        capsys, "finetune", "--recipe", "engagement", REPO / "finetune/configs/tiny_engagement.yaml",
        f"data.videos={videos}", f"data.csv={tmp_path / 'e.csv'}", "data.synthetic=false",
        f"training.output_dir={out}",
    )  # fmt: skip
    assert_one_line_error(rc, err, "line 3", "unknown video 'b.mp4'")
    assert not out.exists()


def test_a_head_folder_of_another_recipe_exits_2_and_is_kept(tmp_path, capsys):
    _, folder = _trained_head(tmp_path / "head", "engagement")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    rc, _, err = run_cli(
        capsys, "finetune", "--recipe", "less-is-more", REPO / "finetune/configs/tiny_less_is_more.yaml",
        f"training.output_dir={folder}",
    )  # fmt: skip
    assert_one_line_error(rc, err, "holds a 'engagement' head")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


# --- personalization ------------------------------------------------------------------------------


def _two_kinds(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """20 clips: kind 1 (every 3rd) and kind 0 around two directions, plus noise."""
    rng = np.random.default_rng(seed)
    kind = (np.arange(20) % 3 == 0).astype(int)
    centres = rng.normal(size=(2, DIM))
    feats = centres[kind] + 0.3 * rng.normal(size=(20, DIM))
    return feats / np.linalg.norm(feats, axis=1, keepdims=True), kind


@pytest.mark.parametrize(
    "likes, fragment",
    [
        ([], "give 1 to 5 liked spans"),
        ([(0, 2)] * 6, "give 1 to 5 liked spans"),
        ([(4, 4)], "start < end"),
        ([(float("nan"), 2)], "start < end"),
        ([(38, 44)], "outside the video"),
        ([(-1, 2)], "outside the video"),
    ],
    ids=["none", "six", "empty-span", "nan", "past-the-end", "negative"],
)
def test_personalize_checks_the_likes(likes, fragment):
    feats, _ = _two_kinds()
    with pytest.raises(ConfigError, match=fragment):
        personalize(feats, likes)


def test_parse_likes_reads_start_end_or_says_how():
    assert parse_likes(["12-18.5", " 0-2 "]) == [(12.0, 18.5), (0.0, 2.0)]
    with pytest.raises(ConfigError, match="START-END"):
        parse_likes(["12"])


def test_likes_move_the_ranking_towards_them():
    from scipy.stats import kendalltau

    feats, kind = _two_kinds()
    base = 1.0 - kind + 0.1 * np.random.default_rng(1).random(20)  # ranks kind 0 first
    liked = personalize(feats, [(0.0, 2.0)])  # clip 0: kind 1
    moved = base + 2 * (liked - liked.min()) / np.ptp(liked)
    keep = np.arange(1, 20)  # the liked clip itself aside
    assert kendalltau(moved[keep], kind[keep]).statistic > 0.5 > kendalltau(base[keep], kind[keep]).statistic
    assert kind[keep][np.argmax(moved[keep])] == 1


# --- slow: the heads learn, the recipes resume ------------------------------------------------------

SMALL = {"num_short": 10, "num_long": 5, "num_eng_train": 8, "num_test": 4, "num_eng_test": 4}


@pytest.fixture(scope="session")
def rank_task(tmp_path_factory) -> Path:
    return make_rank_task(RankTaskSpec(out=str(tmp_path_factory.mktemp("rank_task")), **SMALL))


def _overrides(tiny_models, rank_task: Path, out: Path, *extra: str) -> list[str]:
    task = "{" + ", ".join(f"{k}: {v}" for k, v in {"out": rank_task, **SMALL}.items()) + "}"
    return [
        f"model.clip_model={tiny_models['clip']}",
        f"data.synthetic={task}",
        f"training.output_dir={out}",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("recipe, split", [("less-is-more", "test"), ("engagement", "eng_test")])
def test_each_head_beats_zero_shot_on_its_own_held_out_task(
    tmp_path, tiny_models, rank_task, recipe, split, capsys
):
    config = REPO / f"finetune/configs/tiny_{recipe.replace('-', '_')}.yaml"
    out = tmp_path / "head"
    rc, stdout, err = run_cli(capsys, "finetune", "--recipe", recipe, config,
                              *_overrides(tiny_models, rank_task, out, "training.steps=150"))  # fmt: skip
    assert rc == 0, err
    table = json.loads((out / "eval.json").read_text())
    head, zero = table[split][f"head:{recipe}"], table[split]["zero-shot"]
    assert head["map"] > zero["map"] + 10 and head["tau"] > zero["tau"] and head["hit1"] >= zero["hit1"], (
        table
    )
    if recipe == "less-is-more":  # one liked kind-a clip lifts the other kind-a clips
        mine = table["personalization"]
        assert mine["1 like"]["map"] > mine["no likes"]["map"], mine
    assert load_head(out, expect=recipe).score_clips(np.zeros((2, head_dim(out)), np.float32)).shape == (2,)


def head_dim(folder: Path) -> int:
    return int(json.loads((folder / "head_config.json").read_text())["feature_dim"])


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["less-is-more", "engagement"])
def test_a_recipe_killed_after_a_checkpoint_resumes_and_ends_like_the_uninterrupted_run(
    tmp_path, tiny_models, rank_task, recipe
):
    """SIGKILL the recipe once a checkpoint exists, rerun it: it resumes there, and its head equals a run
    of as many steps that was never killed (the seed fixes the initial weights, the batches, the dropout)."""
    from safetensors.torch import load_file

    config = REPO / f"finetune/configs/tiny_{recipe.replace('-', '_')}.yaml"

    def argv(out: Path, *extra: str) -> list[str]:
        overrides = _overrides(
            tiny_models, rank_task, out, "training.save_every=20", "eval.after_training=false"
        )
        return [sys.executable, str(REPO / recipe_path(recipe)), str(config), *overrides, *extra]

    def train_to(folder: Path, steps: int) -> str:
        done = subprocess.run(
            argv(folder, f"training.steps={steps}"), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    out, fresh = tmp_path / "head", tmp_path / "uninterrupted"
    state = out / "checkpoint" / "state.pt"
    kill_when(argv(out, "training.steps=1000000"), state.exists, timeout_s=240)
    assert not (out / "head_config.json").exists()  # killed mid-training: no head yet
    step = int(torch.load(state, weights_only=True)["step"])
    assert f"resumed from step {step}" in train_to(out, step + 20)
    assert "resumed" not in train_to(fresh, step + 20)
    assert int(torch.load(state, weights_only=True)["step"]) == step + 20
    assert load_head(out, expect=recipe).recipe == recipe
    ours, reference = load_file(out / "head.safetensors"), load_file(fresh / "head.safetensors")
    assert set(ours) == set(reference)
    for name, tensor in reference.items():
        torch.testing.assert_close(ours[name], tensor, atol=1e-5, rtol=1e-4)
