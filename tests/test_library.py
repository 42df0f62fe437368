"""The video library on real models: 8 generated clips with known speech (espeak-ng -> real Whisper base) and
known titles (drawtext -> real RapidOCR), frames embedded by the tiny random-weight CLIP.

Search must put the right clip first with the right span (IoU >= 0.5) for quotes, paraphrases and titles;
`index` must be incremental; retrieve-then-ground and sessions come from the same library.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grounding_agent.cli import main
from grounding_agent.library import Library
from tests.librarygen import iou, library_clips

N_CLIPS = 8


@pytest.fixture(scope="session")
def clips():
    return library_clips(N_CLIPS)


@pytest.fixture(scope="session")
def library(clips, tiny_models, whisper_base, tmp_path_factory) -> Library:
    """The 8 clips indexed through the CLI, all three channels (model outputs are cached by content)."""
    folder = tmp_path_factory.mktemp("lib") / "library"
    code = main(["index", str(clips[0].path.parent), "--library", str(folder), "--quiet",
                 "--saliency-model", str(tiny_models["clip"]), "--asr-model", str(whisper_base)])  # fmt: skip
    assert code == 0
    return Library(folder, saliency=tiny_models["clip"], transcriber=whisper_base)


@pytest.mark.parametrize("kind", ["quote", "paraphrase", "title"])
def test_search_puts_the_right_clip_and_span_first(library, clips, kind):
    right = 0
    for clip in clips:
        query, span = clip.queries()[kind]
        best = library.search(query, k=5)[0]
        right += best.path == clip.path.resolve() and iou((best.start_s, best.end_s), span) >= 0.5
    assert right == len(clips), f"{kind}: {right}/{len(clips)} at rank 1"


def test_hits_carry_evidence_per_channel(library, clips):
    hit = library.search(f'someone says "{clips[2].quote}"', k=3)[0]
    kinds = {e.kind for e in hit.evidence}
    assert {"speech", "saliency"} <= kinds
    speech = next(e for e in hit.evidence if e.kind == "speech")
    assert clips[2].quote.split()[-1].lower() in speech.text.lower()
    title = library.search(f"the slide titled {clips[3].title}", k=1, channels=["ocr"])[0]
    assert [e.kind for e in title.evidence][0] == "ocr" and clips[3].title.lower() in title.evidence[
        0
    ].text.lower()


def test_relations_compose_across_channels(library, clips):
    clip = clips[4]
    thing = clip.sentence.split()[4]  # "Laura bought the old guitar in Rome": said while the title shows
    query = f"the slide titled {clip.title} while someone says {thing}"
    hits = library.search(query, k=3)
    assert hits and hits[0].path == clip.path.resolve()
    assert any(e.kind == "composition" for e in hits[0].evidence)


def test_search_cli_prints_hits_and_json(library, capsys):
    assert (
        main(["search", "the slide titled Quarterly Results", "--library", str(library.folder), "-k", "2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "clip000.mp4" in out.splitlines()[0] and "ocr" in out


def test_index_is_incremental(clips, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for clip in clips[:3]:
        shutil.copy(clip.path, folder / clip.path.name)
    lib = Library(tmp_path / "lib", create=True)
    first = lib.index([folder], channels=["ocr"])
    assert first.count("indexed") == 3
    again = lib.index([folder], channels=["ocr"])
    assert again.count("unchanged") == 3 and again.count("indexed") == 0
    (folder / clips[0].path.name).unlink()
    shutil.copy(clips[5].path, folder / clips[1].path.name)  # same name, other content: re-indexed
    shutil.copy(clips[2].path, folder / "copy.mp4")  # same content, other name: a duplicate
    third = {Path(r.path).name: r for r in lib.index([folder], channels=["ocr"]).rows}
    assert third[clips[0].path.name].status == "removed"
    assert third[clips[1].path.name].status == "indexed"
    assert third["copy.mp4"].status == "skipped" and "duplicate" in third["copy.mp4"].reason
    assert len(lib.videos()) == 2
    assert lib.search(f"the slide titled {clips[5].title}", k=1)[0].path.name == clips[1].path.name


def test_retrieve_then_ground_says_what_it_looked_at(library, clips):
    from grounding_agent.grounders.registry import make_grounder

    answer = library.ground(f'someone says "{clips[1].quote}"', grounder=make_grounder("uniform"), k_videos=2)
    assert answer.videos_looked_at == 2 and answer.grounder_calls == 2
    assert 0 < answer.seconds_looked_at <= 2 * 5.0 + 1e-6
    assert answer.grounded[0].hit.path == clips[1].path.resolve()


def test_session_on_a_library_video_reuses_its_transcript(library, clips):
    session = library.session(clips[0].path)
    assert session.transcript is not None and "old" in session.transcript.text.lower()
