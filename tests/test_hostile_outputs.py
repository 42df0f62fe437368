"""An output that is an input, or a file the user did not name (issue 32): every writer refuses a path that is
an input of the same command (by name, through a symbolic link or as a hard link), and several outputs of one
command are written all or nothing.

Each case hashes every file in its folder before and after: an input or a pre-existing output that changed,
or a file that appeared without being named, fails the test."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
from pathlib import Path

import pytest

from grounding_agent.errors import GroundingAgentError, OutputError
from grounding_agent.io import atomic_paths, refuse_inputs, same_file
from tests.test_hostile_options import assert_one_line_error, run_cli
from tests.videogen import make_edit_video

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder`: name -> sha256 of its bytes (a link: where it points)."""
    state = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            state[key] = "link -> " + os.readlink(path)
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """4 s at 12.5 fps (not a SMPTE rate: an EDL cannot hold it), tone on [0, 1) and [2, 4)."""
    folder = tmp_path_factory.mktemp("hostile_outputs")
    return make_edit_video(
        folder / "clip.mp4", duration_s=4.0, fps=12.5, loud_spans=((0.0, 1.0), (2.0, 4.0)),
        colours=((0.0, "red"), (2.0, "blue")),
    )  # fmt: skip


@pytest.fixture
def work(source, tmp_path, monkeypatch) -> Path:
    """A folder holding clip.mp4, a symlink and a hard link to it, a transcript and training annotations;
    the working directory."""
    shutil.copy(source, tmp_path / "clip.mp4")
    (tmp_path / "link.mp4").symlink_to("clip.mp4")
    (tmp_path / "link.otio").symlink_to("clip.mp4")
    os.link(tmp_path / "clip.mp4", tmp_path / "hard.mp4")
    os.link(tmp_path / "clip.mp4", tmp_path / "hard.otio")
    (tmp_path / "t.json").write_text('{"segments": [], "has_audio": true}\n')
    (tmp_path / "train.txt").write_text("AAAAA 1.0 2.0##person sits down.\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(capsys, folder: Path, argv: list[str], *fragments: str) -> str:
    """Run the CLI: exit 2, one `error:` line holding every fragment, and not one byte changed in `folder`."""
    before = snapshot(folder)
    rc, _, err = run_cli(capsys, *argv)
    line = assert_one_line_error(rc, err, *fragments)
    assert snapshot(folder) == before
    return line


# --- transcribe ---------------------------------------------------------------------------------------------

TRANSCRIBE = ["transcribe", "clip.mp4", "--asr-model", "no-model-needed-it-is-refused-first"]


@pytest.mark.parametrize("option", ["--srt", "--vtt"])
@pytest.mark.parametrize("target", ["clip.mp4", "./clip.mp4", "link.mp4", "hard.mp4"])
def test_transcribe_subtitles_onto_the_video_are_refused(capsys, work, option, target) -> None:
    refused(capsys, work, [*TRANSCRIBE, option, target], f"{option} {target} is the input video")


def test_transcribe_subtitles_onto_the_video_by_absolute_path(capsys, work) -> None:
    refused(capsys, work, [*TRANSCRIBE, "--srt", str(work / "clip.mp4")], "is the input video")


def test_transcribe_json_takes_no_path(capsys, work) -> None:
    # --json prints to stdout; a path after it is an argument error, never a file written.
    before = snapshot(work)
    rc, _, err = run_cli(capsys, *TRANSCRIBE, "--json", "clip.mp4")
    assert rc == 2 and err.startswith("error: ")
    assert snapshot(work) == before


def test_transcribe_srt_and_vtt_into_one_file_are_refused(capsys, work) -> None:
    refused(capsys, work, [*TRANSCRIBE, "--srt", "subs.txt", "--vtt", "./subs.txt"], "two outputs")


# --- edit ---------------------------------------------------------------------------------------------------

EDIT = ["edit", "clip.mp4", "cut 0:01 to 0:02"]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--export", "clip.mp4"], "--export clip.mp4 is the input video"),
        (["--export", "link.otio"], "--export link.otio is the input video"),
        (["--export", "hard.otio"], "--export hard.otio is the input video"),
        (["--render", "clip.mp4"], "--render clip.mp4 is the input video"),
        (["--render", "link.mp4"], "--render link.mp4 is the input video"),
        (["--render", "hard.mp4"], "--render hard.mp4 is the input video"),
        (["--thumbnails", "link.mp4"], "--thumbnails link.mp4 is the input video"),
        (["--export", "t.json", "--transcript", "t.json"], "--export t.json is the --transcript file"),
        (["--export", "train.txt", "--prior-train", "train.txt"], "is the --prior-train file"),
        (["--export", "a.otio", "--export", "./a.otio"], "two outputs"),
        (["--export", "a.json", "--export", "a.srt", "--export", "a.json"], "two outputs"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_edit_output_that_is_an_input_or_another_output_is_refused(capsys, work, extra, fragment) -> None:
    refused(capsys, work, [*EDIT, *extra], fragment)


def test_edit_export_that_fails_after_another_writes_nothing(capsys, work) -> None:
    # The .otio is written first, then the EDL is refused at 12.5 fps: no a.otio may be left behind.
    line = refused(capsys, work, [*EDIT, "--export", "a.otio", "--export", "a.edl"], "a.edl", "SMPTE")
    assert ".tmp" not in line  # the message names the user's file, not a temporary one
    assert not (work / "a.otio").exists()


def test_edit_failed_multi_export_leaves_existing_outputs_untouched(capsys, work) -> None:
    (work / "a.otio").write_text("the user's earlier timeline\n")
    (work / "a.otio").chmod(0o640)
    refused(capsys, work, [*EDIT, "--export", "a.otio", "--export", "a.json", "--export", "a.edl"], "SMPTE")
    assert (work / "a.otio").read_text() == "the user's earlier timeline\n"
    assert not (work / "a.json").exists()


def test_edit_successful_multi_export_writes_every_file(capsys, work) -> None:
    (work / "a.otio").write_text("old\n")
    (work / "a.otio").chmod(0o640)
    named = ["a.otio", "a.json", "a.srt", "a.txt", "sheet.png", "cut.mp4"]
    before = snapshot(work)
    rc, out, err = run_cli(
        capsys, *EDIT, "--export", "a.otio", "--export", "a.json", "--export", "a.srt", "--export", "a.txt",
        "--thumbnails", "sheet.png", "--render", "cut.mp4",
    )  # fmt: skip
    assert rc == 0, err
    after = snapshot(work)
    assert set(after) == set(before) | set(named)  # every named file, and nothing else (no temporaries)
    assert {k: v for k, v in after.items() if k in before and k != "a.otio"} == {
        k: v for k, v in before.items() if k != "a.otio"
    }
    assert "OTIO_SCHEMA" in (work / "a.otio").read_text()
    assert (work / "a.otio").stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    assert "rendered cut.mp4" in out and "wrote sheet.png" in out and ".tmp" not in out


def test_edit_render_result_names_the_target(capsys, work) -> None:
    import json

    rc, out, err = run_cli(capsys, *EDIT, "--render", "cut.mp4", "--export", "a.otio", "--json")
    assert rc == 0, err
    outputs = json.loads(out)["outputs"]
    assert outputs["render"]["path"] == "cut.mp4" and outputs["exports"] == ["a.otio"]


# --- chat /export -------------------------------------------------------------------------------------------


def chat(capsys, monkeypatch, folder: Path, lines: list[str], *extra: str) -> str:
    """`grounding-agent chat clip.mp4` fed `lines` on stdin: exit 0 (the session goes on), nothing changed."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join([*lines, "/history"]) + "\n"))
    before = snapshot(folder)
    rc, out, err = run_cli(capsys, "chat", "clip.mp4", "--backend", "uniform", *extra)
    assert rc == 0 and err == "", err
    assert snapshot(folder) == before
    assert out.rstrip().endswith("no turns yet")  # the REPL read the line after each refusal
    return out


@pytest.mark.parametrize(
    "line",
    [
        "/export clip.mp4",
        "/export clip.mp4 cut 0:01 to 0:02",
        "/export link.otio cut 0:01 to 0:02",
        "/export hard.otio cut 0:01 to 0:02",
    ],
)
def test_chat_export_onto_the_video_is_refused(capsys, monkeypatch, work, line) -> None:
    out = chat(capsys, monkeypatch, work, [line])
    assert f"error: /export {line.split()[1]} is the video this chat is about" in out


def test_chat_export_onto_another_input_is_refused(capsys, monkeypatch, work) -> None:
    (work / "notes.json").write_text("[]\n")
    out = chat(
        capsys, monkeypatch, work,
        ["/export train.txt cut 0:01 to 0:02", "/export clip.mp4/chat.json"],
        "--prior-train", "train.txt",
    )  # fmt: skip
    assert "error: /export train.txt is the --prior-train file" in out
    assert out.count("error: ") == 2  # the unwritable chat export is one line too, and the REPL goes on


def test_chat_export_of_the_conversation_through_a_link_to_the_video_is_refused(
    capsys, monkeypatch, work
) -> None:
    (work / "chat.json").symlink_to("clip.mp4")
    out = chat(capsys, monkeypatch, work, ["/export chat.json"])
    assert "error: /export chat.json is the video this chat is about" in out


# --- ground, highlights, eval, finetune ---------------------------------------------------------------------


def test_ground_timeline_onto_the_prior_train_file_is_refused(capsys, work) -> None:
    argv = ["ground", "clip.mp4", "a person sits down", "--backend", "prior", "--prior-train", "train.txt"]
    refused(
        capsys, work, [*argv, "--timeline", "train.txt"], "--timeline train.txt is the --prior-train file"
    )


def test_highlights_plot_through_a_link_to_the_video_is_refused(capsys, work) -> None:
    refused(
        capsys, work, ["highlights", "clip.mp4", "--plot", "link.mp4"], "--plot link.mp4 is the input video"
    )


def test_serve_log_onto_the_vllm_interpreter_is_refused(capsys, work) -> None:
    (work / "model").mkdir()
    (work / "model" / "config.json").write_text("{}\n")
    (work / "python").write_text("#!/bin/sh\n")
    argv = ["serve", "--model", "model", "--vllm-python", "python", "--log", "./python"]
    refused(capsys, work, argv, "--log ./python is the --vllm-python interpreter")


def test_eval_run_refuses_an_input_inside_out_that_the_run_writes(capsys, work) -> None:
    out = work / "run"
    out.mkdir()
    shutil.copy(SHARED / "charades_sta" / "Charades_v1_test.csv", out / "metrics.json")
    gt = SHARED / "charades_sta" / "charades_sta_test.txt"
    argv = ["eval", "run", "--dataset", "charades-sta", "--gt", str(gt), "--durations", str(out / "metrics.json"),
            "--backend", "uniform", "--out", str(out), "--limit", "2", "--no-progress"]  # fmt: skip
    refused(capsys, work, argv, "is the --durations file")


def test_finetune_output_dir_that_is_its_data_is_refused(work) -> None:
    from finetune.config import load_config

    config = work / "cfg.yaml"
    config.write_text(
        "model: {name_or_path: Qwen/Qwen2-VL-2B-Instruct}\ndata: {train: train.txt}\n"
        "training: {output_dir: train.txt}\n"
    )
    before = snapshot(work)
    with pytest.raises(OutputError, match="training.output_dir train.txt is data.train"):
        load_config(config)
    with pytest.raises(OutputError, match="is the config file"):
        load_config(config, ["training.output_dir=cfg.yaml"])
    assert snapshot(work) == before


# --- the helpers ------------------------------------------------------------------------------------------


def test_same_file_sees_links_and_new_paths(work) -> None:
    assert same_file("clip.mp4", work / "clip.mp4") and same_file("link.mp4", "hard.mp4")
    assert not same_file("new.otio", "clip.mp4") and same_file("new.otio", "./new.otio")
    assert not same_file(3, "clip.mp4") and not same_file("a\x00b", "clip.mp4")


def test_refuse_inputs_names_the_option_and_the_input(work) -> None:
    with pytest.raises(OutputError, match=r"^--srt hard.mp4 is the input video; choose another file$"):
        refuse_inputs([("--srt", "hard.mp4")], [("the input video", "clip.mp4")])
    refuse_inputs([("--srt", None), ("--vtt", "a.vtt")], [("the input video", "clip.mp4"), ("x", None)])


def test_atomic_paths_all_or_nothing(work) -> None:
    (work / "b.txt").write_text("old b\n")
    before = snapshot(work)
    with pytest.raises(GroundingAgentError, match=r"^a.txt: failed$") as caught:
        with atomic_paths(["a.txt", "b.txt"]) as (a, b):
            b.write_text("new b\n")
            raise GroundingAgentError(f"{a}: failed")  # the temporary's name becomes the target's
    assert ".tmp" not in str(caught.value)
    assert snapshot(work) == before
    with atomic_paths(["a.txt", "b.txt"]) as (a, b):
        a.write_text("new a\n")
        b.write_text("new b\n")
    assert (work / "a.txt").read_text() == "new a\n" and (work / "b.txt").read_text() == "new b\n"
    assert set(snapshot(work)) == set(before) | {"a.txt"}


def test_atomic_paths_puts_back_what_it_replaced_when_a_move_fails(work, monkeypatch) -> None:
    (work / "a.txt").write_text("old a\n")
    (work / "b.txt").write_text("old b\n")
    before = snapshot(work)
    real_replace = os.replace

    def flaky(src, dst):
        if Path(dst).name == "b.txt" and ".tmp" in str(src):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OutputError, match="none of the outputs was written"):
        with atomic_paths(["a.txt", "b.txt"]) as (a, b):
            a.write_text("new a\n")
            b.write_text("new b\n")
    assert snapshot(work) == before
