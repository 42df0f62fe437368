"""Libraries of generated clips with known truth: each clip speaks one sentence (espeak-ng, word-exact) and
shows one title (ffmpeg drawtext) over a plain background, so speech and on-screen text are both known.

    clips = library_clips(8)             # cached under ~/.cache/grounding-agent/library-clips-<key>/
    clips[0].path, clips[0].quote, clips[0].quote_span_s, clips[0].title, TITLE_SPAN_S

Queries per clip: a quote (part of the sentence, said verbatim), a paraphrase (its content words, other
phrasing) and a title query. Clips are made once per (count, size, this file's content) and reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.speechgen import Utterance, _write_wav, synth_utterance
from tests.videogen import _ffmpeg

NAMES = "Anna Peter Maria David Laura James Sophie Daniel Emma Robert".split()
VERBS = "bought sold found painted lost".split()
THINGS = "bicycle piano umbrella camera guitar lamp jacket kettle ladder blanket".split()
CITIES = "Paris London Berlin Madrid Rome Vienna Dublin Prague Oslo Lisbon".split()
ADJECTIVES = "Quarterly Annual Global Digital Summer Winter Urban Coastal Modern Classic".split()
NOUNS = "Results Strategy Review Outlook Festival Summit Gallery Workshop Journey Harvest".split()
COLOURS = "navy darkgreen maroon black darkslategray indigo saddlebrown teal".split()
SPEECH_AT_S = 0.5
TITLE_SPAN_S = (1.0, 4.0)
DURATION_S = 5.0
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


@dataclass(frozen=True)
class Clip:
    path: Path
    sentence: str
    sentence_span_s: tuple[float, float]
    quote: str  # the sentence from its verb on, said verbatim
    quote_span_s: tuple[float, float]
    paraphrase: str
    title: str

    def queries(self) -> dict[str, tuple[str, tuple[float, float]]]:
        """kind -> (query, true span)."""
        return {
            "quote": (f'someone says "{self.quote}"', self.quote_span_s),
            "paraphrase": (self.paraphrase, self.sentence_span_s),
            "title": (f"the slide titled {self.title}", TITLE_SPAN_S),
        }


def spec(i: int) -> tuple[str, str, str]:
    """(sentence, paraphrase, title) of clip `i` (< 100): no two clips share a thing-city pair or a title."""
    name, verb, thing = NAMES[i % 10], VERBS[(i // 10) % 5], THINGS[i % 10]
    city = CITIES[(i // 10 + i) % 10]
    title = f"{ADJECTIVES[i % 10]} {NOUNS[(3 * (i // 10) + i) % 10]}"
    return f"{name} {verb} the old {thing} in {city}", f"when do they talk about a {thing} from {city}", title


def make_clip(path: Path, i: int, size: tuple[int, int]) -> Clip:
    sentence, paraphrase, title = spec(i)
    with tempfile.TemporaryDirectory() as tmp:
        samples, spoken = synth_utterance(Utterance(sentence, SPEECH_AT_S), Path(tmp))
        import numpy as np

        track = np.zeros(int(DURATION_S * 22_050), np.float32)
        at = round(SPEECH_AT_S * 22_050)
        track[at : at + len(samples)] = samples[: len(track) - at]
        wav = Path(tmp) / "s.wav"
        _write_wav(wav, track)
        w, h = size
        a, b = TITLE_SPAN_S
        text = f"drawtext=fontfile={FONT}:text='{title}':fontsize={h // 8}:fontcolor=white:x=(w-tw)/2:y=h/3"
        _ffmpeg(
            "-f", "lavfi", "-i", f"color=c={COLOURS[i % len(COLOURS)]}:size={w}x{h}:rate=10:duration={DURATION_S}",
            "-i", str(wav), "-vf", f"{text}:enable='between(t,{a},{b})'",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "1",
            "-c:a", "aac", "-b:a", "64k", "-t", str(DURATION_S), str(path),
        )  # fmt: skip
    words = spoken.words[1:]  # from the verb on
    return Clip(
        path, sentence, (spoken.start_s, spoken.end_s), " ".join(w.text for w in words),
        (words[0].start_s, words[-1].end_s), paraphrase, title,
    )  # fmt: skip


def library_clips(count: int, size: tuple[int, int] = (320, 180), root: Path | None = None) -> list[Clip]:
    """`count` clips (made once, cached by their recipe) in their own folder."""
    key = hashlib.sha256(
        (Path(__file__).read_bytes() + Path(__file__).with_name("speechgen.py").read_bytes())
        + f"{count}-{size}".encode()
    ).hexdigest()[:12]
    base = root or Path(os.environ.get("GROUNDING_AGENT_CACHE", Path.home() / ".cache" / "grounding-agent"))
    folder = base / f"library-clips-{key}"
    manifest = folder / "clips.json"
    if manifest.is_file():
        return [_clip(d) for d in json.loads(manifest.read_text())]
    work = Path(tempfile.mkdtemp(dir=base if base.is_dir() else None))
    clips = [make_clip(work / f"clip{i:03d}.mp4", i, size) for i in range(count)]
    (work / "clips.json").write_text(json.dumps([_dict(c, folder) for c in clips]))
    shutil.rmtree(folder, ignore_errors=True)
    work.rename(folder)  # all clips or none: a killed run leaves no half-made folder behind
    return [_clip(d) for d in json.loads(manifest.read_text())]


def _dict(c: Clip, folder: Path) -> dict:
    d = asdict(c)
    d["path"] = str(folder / c.path.name)
    return d


def _clip(d: dict) -> Clip:
    return Clip(
        Path(d["path"]), d["sentence"], tuple(d["sentence_span_s"]), d["quote"], tuple(d["quote_span_s"]),
        d["paraphrase"], d["title"],
    )  # fmt: skip


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0
