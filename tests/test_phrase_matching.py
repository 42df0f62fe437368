"""One phrase matcher for `ground`, `chat`, `transcribe --search` and `edit`: quotes with number, currency,
spelling, contraction and punctuation variants find the same words in an edit as in `Transcript.search`
and the transcript grounder, on a transcript built here and on a real talking clip through real Whisper."""

from __future__ import annotations

import json

import pytest

from grounding_agent.edit import plan_edit
from grounding_agent.edit.sources import find_phrases
from grounding_agent.grounders.transcript import TranscriptGrounder
from grounding_agent.media.text_match import normalize
from grounding_agent.media.transcript import Transcript
from tests.test_hostile_options import run_cli
from tests.videogen import make_edit_video


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("$49", "forty nine dollars"),
        ("$49.99", "forty-nine dollars and ninety-nine cents"),
        ("49", "forty-nine"),
        ("£5", "five pounds"),
        ("49%", "forty nine percent"),
        ("my favourite colour", "My favorite color"),
        ("the centre of the theatre", "the center of the theater"),
        ("we organised the catalogue", "we organized the catalog"),
        ("they travelled and analysed it", "they traveled and analyzed it"),
        ("it's here", "it is here"),
        ("don't go", "do not go"),
        ("Let's go!", "let us go"),
        ("“Quoted,” she said.", "quoted she said"),
        ("at 7:30", "at seven thirty"),
    ],
)
def test_variants_normalise_to_the_same_tokens(one, other):
    assert normalize(one) == normalize(other) != []


def test_short_words_are_not_respelled():
    # The spelling table leaves short stems alone: "four" is not "for", "hour" not "hor".
    assert normalize("four hours of your tour") == ["four", "hours", "of", "your", "tour"]
    assert normalize("John's car") == ["johns", "car"]  # a possessive is not "john is"


# What was "said", as an ASR writes it (digits, symbols, American spelling, punctuation).
TRANSCRIPT = {
    "duration_s": 12.0,
    "language": "en",
    "segments": [
        {"text": " The price is $49.", "start_s": 0.5, "end_s": 2.4, "probability": 0.9,
         "words": [[" The", 0.5, 0.7, 0.9], [" price", 0.7, 1.1, 0.9], [" is", 1.1, 1.3, 0.9],
                   [" $49.", 1.3, 2.4, 0.9]]},
        {"text": " My favorite color is gray.", "start_s": 4.0, "end_s": 6.0, "probability": 0.9,
         "words": [[" My", 4.0, 4.2, 0.9], [" favorite", 4.2, 4.8, 0.9], [" color", 4.8, 5.2, 0.9],
                   [" is", 5.2, 5.4, 0.9], [" gray.", 5.4, 6.0, 0.9]]},
        {"text": " It's twenty-one degrees, isn't it?", "start_s": 8.0, "end_s": 10.5, "probability": 0.9,
         "words": [[" It's", 8.0, 8.3, 0.9], [" twenty-one", 8.3, 9.0, 0.9], [" degrees,", 9.0, 9.6, 0.9],
                   [" isn't", 9.6, 10.0, 0.9], [" it?", 10.0, 10.5, 0.9]]},
    ],
}  # fmt: skip
# (quote as a user writes it, the words it must land on)
QUOTES = [
    ("the price is $49", (0.5, 2.4)),
    ("the price is forty nine dollars", (0.5, 2.4)),  # currency spelled out
    ("The price is $49.", (0.5, 2.4)),  # copied verbatim
    ("my favourite colour is grey", (4.0, 6.0)),  # British spelling
    ("MY FAVORITE COLOR, IS GRAY!", (4.0, 6.0)),  # case and punctuation
    ("it is 21 degrees", (8.0, 9.6)),  # contraction and number the other way
    ("is not it", (9.6, 10.5)),
]


@pytest.fixture(scope="module")
def transcript() -> Transcript:
    return Transcript.from_dict(TRANSCRIPT)


class KnownTranscriptForTests:
    """Test double for the ASR: the transcript above (the search above the model is under test)."""

    def __init__(self, transcript: Transcript):
        self.transcript = transcript

    def transcribe(self, video):
        return self.transcript


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_edit_video(tmp_path_factory.mktemp("phrases") / "clip.mp4", audio=False)


@pytest.mark.parametrize(("quote", "span"), QUOTES, ids=[q for q, _ in QUOTES])
def test_edit_finds_what_search_and_ground_find(transcript, clip, quote, span):
    (best,) = transcript.search(quote, top_k=1)
    assert (best.start_s, best.end_s) == span and best.score == pytest.approx(1.0)
    # edit's matcher: the same words
    (hit,) = find_phrases(transcript.words, [quote])
    assert (hit.start_s, hit.end_s) == span
    # ground (the transcript grounder, what `ground` and `chat` use for speech)
    grounder = TranscriptGrounder(None, KnownTranscriptForTests(transcript))
    moment = grounder.ground(clip, f"when does she say '{quote}'", top_k=1).moments[0]
    assert (moment.start_s, moment.end_s) == span
    # a whole edit: the cut holds the quote's words (padding aside), and nothing else was said in it
    plan = plan_edit(clip, f'cut the words "{quote}"', transcript=transcript)
    (cut,) = [s for s in plan.segments if s.action == "cut"]
    frame = 1 / 25
    assert cut.start_s <= span[0] + frame and cut.end_s >= span[1] - frame
    assert cut.end_s - cut.start_s <= span[1] - span[0] + 0.3
    assert "matched nothing" not in " ".join(plan.notes)


def test_edit_does_not_take_a_loose_paraphrase(transcript):
    # `ground` returns its best guess for a paraphrase; an edit removes material, so it wants the words.
    for other in ("my favorite color is red", "the price is fifty"):  # not what was said
        (guess,) = transcript.search(other, top_k=1)
        assert 0.35 <= guess.score < 0.8
        assert find_phrases(transcript.words, [other]) == []


def test_every_occurrence_of_a_phrase_is_found():
    words = Transcript.from_dict({"duration_s": 9.0, "segments": [
        {"text": t, "start_s": a, "end_s": a + 0.5, "probability": 0.9, "words": [[t, a, a + 0.5, 0.9]]}
        for t, a in (("Um,", 0.0), ("so", 1.0), ("um", 2.0), ("umbrella", 3.0), ("UM.", 5.0))
    ]}).words  # fmt: skip
    assert [h.start_s for h in find_phrases(words, ["um"])] == [0.0, 2.0, 5.0]


# --- a real talking clip, real Whisper ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_variant_quotes_match_in_edit_as_in_search_through_real_whisper(
    tmp_path_factory, whisper_base, capsys
):
    from grounding_agent.media.asr import Transcriber
    from tests.speechgen import Utterance, make_talking_video

    folder = tmp_path_factory.mktemp("phrases_whisper")
    talk = make_talking_video(
        folder / "talk.mp4",
        [Utterance("the price is twenty dollars", at_s=1.0), Utterance("my favorite color is blue", at_s=6.0)],
        duration_s=10.0,
    )  # fmt: skip
    transcript = Transcriber(whisper_base, language="en", cache_dir=folder / "cache").transcribe(talk.path)
    for quote, spoken in (
        ("the price is $20", talk.utterances[0]),
        ("my favourite colour is blue", talk.utterances[1]),
    ):
        (best,) = transcript.search(quote, top_k=1)
        hits = find_phrases(transcript.words, [quote])
        assert [(h.start_s, h.end_s) for h in hits] == [(best.start_s, best.end_s)], transcript.text
        # Whisper's words are within a few tenths of a second of the synthesized ones.
        assert abs(best.start_s - spoken.start_s) <= 0.7 and abs(best.end_s - spoken.end_s) <= 0.7
        plan = plan_edit(talk.path, f"keep only where she says '{quote}'", transcript=transcript)
        half = 0.5 / plan.video.avg_fps  # kept spans snap to the nearest frame boundary
        (kept,) = plan.kept
        assert kept.start_s <= best.start_s + half and kept.end_s >= best.end_s - half
        # `transcribe --search` says the same
        rc, out, err = run_cli(capsys, "transcribe", talk.path, "--asr-model", whisper_base, "--asr-language", "en",
                               "--no-cache", "--search", quote, "--top-k", "1", "--json")  # fmt: skip
        assert rc == 0, err
        (said,) = json.loads(out)["matches"]
        assert (said["start_s"], said["end_s"]) == (best.start_s, best.end_s)
