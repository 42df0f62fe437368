"""Hostile options: every bad number, contradiction or missing path is one `error:` line, exit 2, before any
work starts, and nothing is written anywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from grounding_agent.cli import main
from grounding_agent.cli._common import (
    finite_float,
    nonneg_float,
    port,
    positive_float,
    positive_int,
    text_arg,
)

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "univtg_charades_Y1HGC.mp4"


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """`grounding-agent ARGV` in this process: (exit code, stdout, stderr)."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse exits
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *fragments: str) -> str:
    """Exit 2 and exactly one stderr line, `error: ...`, holding every fragment."""
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder; tests assert it is still empty afterwards (nothing written beside)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


GROUND_BAD = [
    (["--top-k", "-3"], "--top-k"),
    (["--top-k", "0"], "--top-k"),
    (["--top-k", "two"], "--top-k"),
    (["--fps", "nan"], "--fps"),
    (["--fps", "0"], "--fps"),
    (["--fps", "inf"], "--fps"),
    (["--max-frames", "0"], "--max-frames"),
    (["--samples", "0"], "--samples"),
    (["--timeout", "-1"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--timeout", "0"], "--timeout"),
    (["--before-tolerance-s", "nan"], "--before-tolerance-s"),
    (["--before-tolerance-s", "-1"], "--before-tolerance-s"),
    (["--step-top-k", "0"], "--step-top-k"),
    (["--max-vlm-calls", "-2"], "--max-vlm-calls"),
    (["--long-video-s", "nan"], "--long-video-s"),
    (["--agent", "--no-agent"], "--agent"),
]


@pytest.mark.parametrize(("extra", "flag"), GROUND_BAD, ids=[" ".join(e) for e, _ in GROUND_BAD])
def test_ground_refuses_bad_option_in_one_line(capsys, empty_cwd, extra, flag) -> None:
    rc, out, err = run_cli(capsys, "ground", CLIP, "person opens the door", "--backend", "uniform", *extra)
    assert_one_line_error(rc, err, flag)
    assert out == "" and list(empty_cwd.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "flag"),
    [(["--top-k", "0"], "--top-k"), (["--fps", "nan"], "--fps"), (["--nms-iou", "2"], "--nms-iou"),
     (["--diversity", "-1"], "--diversity")],
)  # fmt: skip
def test_highlights_refuses_bad_option_in_one_line(capsys, empty_cwd, extra, flag) -> None:
    rc, out, err = run_cli(capsys, "highlights", CLIP, *extra)
    assert_one_line_error(rc, err, flag)
    assert list(empty_cwd.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--port", "70000"], "--port"),
        (["--port", "-1"], "--port"),
        (["--max-model-len", "0"], "--max-model-len"),
        (["--startup-timeout", "nan"], "--startup-timeout"),
        (["--host", "no-such-host.invalid"], "--host no-such-host.invalid"),
        (["--limit-mm", "image=-3"], "--limit-mm"),
        (["--log", "."], "--log"),
    ],
)
def test_serve_refuses_bad_option_before_starting_vllm(
    capsys, empty_cwd, tiny_models, extra, fragment
) -> None:
    rc, out, err = run_cli(capsys, "serve", "--model", tiny_models["qwen2_5_vl"], *extra)
    assert "starting vLLM" not in err  # refused before the (half-minute) start
    assert_one_line_error(rc, err, fragment)
    assert list(empty_cwd.iterdir()) == []


@pytest.mark.parametrize("command", ["serve", "ground"])
def test_missing_local_model_folder_is_named_not_sent_to_the_hub(capsys, empty_cwd, command) -> None:
    argv = ["serve", "--model", "./models/missing-qwen"] if command == "serve" else [
        "ground", CLIP, "person opens the door", "--backend", "hf", "--model", "./models/missing-qwen"]  # fmt: skip
    rc, _, err = run_cli(capsys, *argv)
    line = assert_one_line_error(rc, err, "--model ./models/missing-qwen", "no such folder")
    assert "Repo id" not in line and "starting vLLM" not in err
    assert list(empty_cwd.iterdir()) == []


def test_prior_backend_names_its_flag(capsys, empty_cwd) -> None:
    rc, _, err = run_cli(capsys, "ground", CLIP, "person opens the door", "--backend", "prior")
    assert_one_line_error(rc, err, "--prior-train")


def test_eval_run_concurrency_zero_leaves_no_run_folder(capsys, tmp_path, shared_data) -> None:
    out = tmp_path / "run"
    gt = shared_data / "charades_sta" / "charades_sta_test.txt"
    rc, _, err = run_cli(
        capsys, "eval", "run", "--dataset", "charades-sta", "--gt", gt, "--backend", "uniform",
        "--out", out, "--concurrency", "0",
    )  # fmt: skip
    assert rc == 2 and "--concurrency" in err, err
    assert not out.exists()


def test_validators_accept_good_values_and_refuse_the_rest() -> None:
    assert positive_int("3") == 3 and positive_float("0.5") == 0.5 and nonneg_float("0") == 0.0
    assert port("0") == 0 and port("65535") == 65535 and finite_float("-2.5") == -2.5
    assert text_arg("café") == "café"
    bad = [(positive_int, "0"), (positive_int, "1.5"), (positive_float, "-0.1"), (positive_float, "nan"),
           (finite_float, "inf"), (nonneg_float, "-1e-9"), (port, "65536"), (port, "-1"), (text_arg, "  "),
           (text_arg, "caf\udce9")]  # fmt: skip
    for validator, text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            validator(text)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:99999/v1", "http://[::1/v1", "http://exa mple.com/v1", "ftp://x/v1", "127.0.0.1:8000"],
)
@pytest.mark.parametrize("command", ["ground", "plan"])
def test_malformed_server_url_is_one_line_before_any_request(capsys, empty_cwd, url, command) -> None:
    argv = (["ground", CLIP, "person opens the door", "--timeout", "3"] if command == "ground"
            else ["plan", "x, then y", "--planner", "llm", "--model", "m"])  # fmt: skip
    rc, out, err = run_cli(capsys, *argv, "--server", url)
    assert_one_line_error(rc, err, "--server", url)
    assert out == "" and list(empty_cwd.iterdir()) == []
