"""Files and devices as outputs: the atomic writer replaces only regular files it may write, keeps modes
and the umask, and turns every OS failure (directory, FIFO, device, symlink, read-only, unwritable place,
full disk, NUL) into one `OutputError` line; nothing beside the requested output is touched.

Policy for a symlink at the output path: refused (neither replaced by a file nor written through); the
message names its target, so the user can write there on purpose.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from grounding_agent.errors import GroundingAgentError, OutputError
from grounding_agent.io import atomic_path, check_output_path, write_json_atomic, write_text_atomic
from tests.test_hostile_options import CLIP, assert_one_line_error, run_cli


def _listing(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """name -> (file type and mode, content of regular files): what must not change."""
    out = {}
    for p in sorted(folder.iterdir()):
        st = os.lstat(p)
        out[p.name] = (st.st_mode, p.read_bytes() if stat.S_ISREG(st.st_mode) else None)
    return out


def _one_line(exc: BaseException) -> str:
    assert "\n" not in str(exc)
    return str(exc)


# --- what sits at the path -----------------------------------------------------------------------------------


def test_fifo_is_refused_and_left_a_fifo(tmp_path) -> None:
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    before = _listing(tmp_path)
    with pytest.raises(OutputError, match="not a regular file"):
        write_json_atomic(fifo, {"a": 1})  # must not block on the FIFO either
    assert _listing(tmp_path) == before and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_character_device_is_refused() -> None:
    st = os.stat("/dev/null")
    with pytest.raises(OutputError, match="not a regular file"):
        write_text_atomic("/dev/null", "x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and os.stat("/dev/null").st_rdev == st.st_rdev


def test_symlink_is_refused_and_neither_link_nor_target_changes(tmp_path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    before = _listing(tmp_path)
    with pytest.raises(OutputError, match=r"symbolic link: write to its target \(.*real.json\)"):
        write_text_atomic(link, "new")
    assert _listing(tmp_path) == before and link.is_symlink()


def test_dangling_symlink_is_refused(tmp_path) -> None:
    link = tmp_path / "out.png"
    link.symlink_to(tmp_path / "nowhere" / "x.png")
    with pytest.raises(OutputError, match="symbolic link"), atomic_path(link) as tmp:
        tmp.write_bytes(b"png")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("mode", [0o444, 0o400, 0o000])
def test_read_only_file_is_refused_and_kept(tmp_path, mode) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("keep me")
    target.chmod(mode)
    try:
        with pytest.raises(OutputError, match="read-only"):
            write_text_atomic(target, "clobbered")
        assert stat.S_IMODE(os.lstat(target).st_mode) == mode
        target.chmod(0o600)
        assert target.read_text() == "keep me" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    finally:
        target.chmod(0o600)


def test_directory_is_refused(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        write_text_atomic(tmp_path / "out", "x")
    assert list((tmp_path / "out").iterdir()) == []


def test_parent_that_is_a_file_is_refused(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="(?i)not a directory"):
        write_text_atomic(tmp_path / "file" / "sub" / "out.json", "x")
    assert _listing(tmp_path) == {"file": (os.lstat(tmp_path / "file").st_mode, b"x")}


def test_unwritable_place_is_one_line() -> None:
    with pytest.raises(OutputError) as info:  # /proc is no place for files, even for root
        write_text_atomic("/proc/no-such-dir/out.json", "x")
    assert "/proc/no-such-dir/out.json" in _one_line(info.value)


@pytest.mark.parametrize("name", ["out\x00.json", "", "   "])
def test_nul_or_empty_path_is_an_output_error(name) -> None:
    with pytest.raises(OutputError):
        write_text_atomic(name, "x")


# --- modes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_honours_the_umask(tmp_path, umask, expected) -> None:
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == expected


def test_replaced_file_keeps_its_mode(tmp_path) -> None:
    target = tmp_path / "shared.json"
    target.write_text("{}")
    target.chmod(0o640)
    write_json_atomic(target, {"a": 1})
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640 and target.read_text() == '{\n  "a": 1\n}\n'


def test_lone_surrogates_are_never_written_as_invalid_utf8(tmp_path) -> None:
    write_json_atomic(tmp_path / "q.json", {"query": "caf\udce9"})
    (tmp_path / "q.json").read_bytes().decode("utf-8")  # raises on invalid UTF-8


def test_nan_and_infinity_are_written_as_null(tmp_path) -> None:
    """A metric over nothing (NaN) must not make a file that jq or JSON.parse rejects."""
    import numpy as np

    obj = {"mIoU": float("nan"), "rows": [1.5, float("inf"), (np.float64("-inf"), 2)], "n": 0}
    write_json_atomic(tmp_path / "m.json", obj)

    def reject(word: str) -> None:
        raise AssertionError(f"non-standard JSON constant {word}")

    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=reject) == {
        "mIoU": None, "rows": [1.5, None, [None, 2]], "n": 0
    }  # fmt: skip


# --- full disk -----------------------------------------------------------------------------------------------


def test_disk_full_during_write_is_one_line_and_leaves_the_old_file(tmp_path, monkeypatch) -> None:
    target = tmp_path / "preds.json"
    target.write_text("old")

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OutputError, match="no space left"):
        write_text_atomic(target, "new")
    monkeypatch.undo()
    assert _listing(tmp_path) == {"preds.json": (os.lstat(target).st_mode, b"old")}


def test_disk_full_inside_an_atomic_block_is_an_output_error(tmp_path) -> None:
    with pytest.raises(OutputError, match="no space left"), atomic_path(tmp_path / "plot.png"):
        raise OSError(errno.ENOSPC, "No space left on device")  # e.g. savefig on a full disk
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs (needs mount rights: skipped where there are none)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_real_full_disk_is_one_line(tiny_tmpfs) -> None:
    (tiny_tmpfs / "old.txt").write_text("old")
    with pytest.raises(OutputError, match="no space left"):
        write_text_atomic(tiny_tmpfs / "old.txt", "x" * (1 << 20))
    assert (tiny_tmpfs / "old.txt").read_text() == "old" and [p.name for p in tiny_tmpfs.iterdir()] == [
        "old.txt"
    ]


# --- the CLI -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dir", "fifo", "symlink", "readonly", "nul", "devnull"])
def test_cli_output_options_refuse_bad_targets_before_any_work(capsys, tmp_path, monkeypatch, kind) -> None:
    monkeypatch.chdir(tmp_path)
    target = {"dir": "plots", "fifo": "p.png", "symlink": "l.png", "readonly": "r.png", "nul": "a\x00.png",
              "devnull": "/dev/null"}[kind]  # fmt: skip
    if kind == "dir":
        Path(target).mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        Path(target).symlink_to("elsewhere.png")
    elif kind == "readonly":
        Path(target).write_bytes(b"old")
        Path(target).chmod(0o444)
    before = _listing(tmp_path)
    rc, out, err = run_cli(capsys, "highlights", CLIP, "--plot", target)
    assert_one_line_error(rc, err, "--plot")
    assert out == "" and _listing(tmp_path) == before


def test_url_keeps_both_slashes_in_the_message(capsys) -> None:
    for argv in (["ground", "http://example.com/clips/a.mp4", "person opens the door", "--backend", "uniform"],
                 ["highlights", "https://example.com/a.mp4"], ["probe", "http://example.com/a.mp4"]):  # fmt: skip
        rc, _, err = run_cli(capsys, *argv)
        assert_one_line_error(rc, err, argv[1])


def test_check_output_path_accepts_new_files_in_new_folders(tmp_path) -> None:
    assert check_output_path(tmp_path / "a" / "b" / "c.json") == tmp_path / "a" / "b" / "c.json"
    assert not (tmp_path / "a").exists()  # checking creates nothing
    assert issubclass(OutputError, GroundingAgentError)


@pytest.mark.parametrize("kind", ["file", "devnull", "unwritable", "nul"])
def test_eval_run_out_that_cannot_be_a_folder_is_one_line_and_touches_nothing(
    capsys, tmp_path, shared_data, kind
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    out = {"file": tmp_path / "notes.txt", "devnull": Path("/dev/null"), "unwritable": Path("/proc/no-such/run"),
           "nul": f"{tmp_path}/run\x00x"}[kind]  # fmt: skip
    before = _listing(tmp_path)
    rc, _, err = run_cli(capsys, "eval", "run", "--dataset", "charades-sta", "--gt",
                         shared_data / "charades_sta" / "charades_sta_test.txt", "--backend", "uniform", "--limit", "2",
                         "--out", out, "--no-progress")  # fmt: skip
    assert_one_line_error(rc, err, "--out")
    assert _listing(tmp_path) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["highlights", "{v}", "--plot", "{v}"],
        ["ground", "{v}", "person opens the door", "--backend", "uniform", "--timeline", "{v}"],
    ],
)
def test_output_that_is_the_input_video_is_refused(capsys, tmp_path, argv) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(CLIP.read_bytes())
    before = _listing(tmp_path)
    rc, _, err = run_cli(capsys, *[a.format(v=video) for a in argv])
    assert_one_line_error(rc, err, "is the input video")
    assert _listing(tmp_path) == before


def test_fifo_that_appears_while_writing_is_not_replaced(tmp_path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(OutputError, match="not a regular file"), atomic_path(target) as tmp:
        tmp.write_text("{}")
        os.mkfifo(target)  # another process puts a FIFO there before the move
    assert stat.S_ISFIFO(os.lstat(target).st_mode) and [p.name for p in tmp_path.iterdir()] == ["out.json"]
