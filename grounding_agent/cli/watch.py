"""`grounding-agent watch SOURCE`: watch a live stream as it plays; events as JSON lines on stdout.

grounding-agent watch udp://127.0.0.1:5000 --out w --alert "when someone says 'discount code'" --asr-model DIR
grounding-agent watch http://host/live.m3u8 --out w --alert "the slide titled Results" --clip
grounding-agent watch growing.ts --out w --webhook http://127.0.0.1:9000/hook      # a file being written
ffmpeg ... -f mpegts - | grounding-agent watch - --out w                          # a pipe

Everything written goes under --out: the ring recording (ring/, the last --keep-s seconds), clips/ (with
--clip: each alert's moment as mp4 + OTIO (+ EDL at SMPTE rates)) and report.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grounding_agent.cli._common import nonneg_float, nonneg_int, positive_float, text_arg, unit_float
from grounding_agent.defaults import LIVE
from grounding_agent.errors import ConfigError

SOURCE_HELP = (
    "udp://, rtp://, srt://, rtmp://, rtsp://, tcp://, an HLS .m3u8 URL, a file being written, - (a pipe), "
    "or FORMAT:INPUT for an FFmpeg input device (lavfi:GRAPH, v4l2:/dev/video0)"
)


def add_recording_arguments(p: argparse.ArgumentParser, *, out_required: bool = True) -> None:
    """--out and --keep-s: where a watch records and for how long (`watch`, `chat --live`)."""
    p.add_argument(
        "--out", required=out_required, metavar="DIR", help="folder for the ring recording, clips and report"
    )
    p.add_argument(
        "--keep-s", type=positive_float, default=LIVE.keep_s, help="seconds kept in the ring recording"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help=SOURCE_HELP)
    add_recording_arguments(p)
    p.add_argument("--alert", action="append", type=text_arg, default=[], metavar="QUERY",
                   help="a standing query (repeatable): \"when someone says 'X'\", \"the slide titled X\", or visual")  # fmt: skip
    p.add_argument("--segment-s", type=positive_float, default=LIVE.segment_s, help="ring segment length (s)")
    p.add_argument("--fps", type=positive_float, default=LIVE.fps, help="frames sampled per second")
    p.add_argument(
        "--delay-s", type=nonneg_float, default=LIVE.delay_s, help="online highlights' look-ahead (s)"
    )
    p.add_argument("--no-highlights", action="store_true", help="no online highlight events")
    p.add_argument("--clip", action="store_true", help="write each alert's moment as mp4 + OTIO/EDL")
    p.add_argument("--pre-s", type=nonneg_float, default=LIVE.pre_s, help="--clip: seconds before the alert")
    p.add_argument("--post-s", type=nonneg_float, default=LIVE.post_s, help="--clip: seconds after the alert")
    p.add_argument("--min-score", type=unit_float, default=LIVE.min_score, help="alert match score (0-1)")
    p.add_argument("--webhook", metavar="URL", help="also POST each event as JSON to URL (bounded queue)")
    p.add_argument("--timeout", type=positive_float, default=LIVE.timeout_s,
                   help="seconds without data before the source counts as stalled (files: ended)")  # fmt: skip
    p.add_argument(
        "--reconnects", type=nonneg_int, default=LIVE.reconnects, help="reconnect attempts per drop"
    )
    p.add_argument(
        "--max-lag-s", type=positive_float, default=LIVE.max_lag_s, help="lag that starts degrading"
    )
    p.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds of stream")
    p.add_argument("--speed", type=positive_float, metavar="X", help="read a file at X times real time")
    p.add_argument("--asr-model", metavar="DIR", help="CTranslate2 Whisper folder: needed by speech alerts")
    p.add_argument("--asr-language", metavar="CODE", help="language spoken (default: detected)")
    p.add_argument("--grounder", metavar="NAME", help="grounder for visual alerts (hf, vllm or a baseline)")
    p.add_argument(
        "--grounder-model", metavar="ID", help="hf: hub id or folder; vllm: served model name (visual alerts)"
    )
    p.add_argument("--grounder-server", metavar="URL", help="vllm: the OpenAI-compatible server's /v1 URL")
    p.add_argument(
        "--saliency-model", metavar="DIR", help="CLIP folder: adds a CLIP signal to online highlights"
    )
    p.add_argument("--head", metavar="DIR",
                   help="folder of a trained highlight head (`finetune`): its score per 2-s clip is an online-"
                        "highlight signal (on its own CLIP model unless --saliency-model)")  # fmt: skip
    p.add_argument("--head-text", type=text_arg, metavar="TEXT",
                   help="what a vcl / taohighlight head scores the clips against (a query, the stream's title)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from grounding_agent.live import Watcher, WatchOptions
    from grounding_agent.live.alerts import read_alert
    from grounding_agent.live.sinks import JsonLinesSink

    if args.head and args.no_highlights:
        raise ConfigError("--head scores the online highlights: drop --no-highlights")
    if args.head:  # a wrong folder is refused before --out is made (the head loads with the watch)
        from grounding_agent.highlights.heads import read_config

        read_config(args.head)
    out = check_out(args.out, args.source)
    options = WatchOptions(
        alerts=tuple(args.alert), fps=args.fps, keep_s=args.keep_s, segment_s=args.segment_s,
        delay_s=args.delay_s, timeout_s=args.timeout, reconnects=args.reconnects, clip=args.clip,
        pre_s=args.pre_s, post_s=args.post_s, min_score=args.min_score, max_lag_s=args.max_lag_s,
        highlights=not args.no_highlights, asr_language=args.asr_language, speed=args.speed,
        duration_s=args.duration, head=args.head, head_text=args.head_text,
    )  # fmt: skip
    webhook = _webhook(args.webhook)
    sinks = [JsonLinesSink(sys.stdout)] + ([webhook] if webhook is not None else [])
    # Alerts are read (and refused) before any model loads or the source is opened.
    channels = {read_alert(a).channel for a in args.alert}
    if "visual" in channels and not args.grounder:
        Watcher(args.source, options, out)  # raises the one-line "pass --grounder" error
    whisper = live_whisper(args, "a speech alert") if "speech" in channels else None
    grounder = _grounder(args) if args.grounder and "visual" in channels else None
    saliency = _saliency(args.saliency_model) if args.saliency_model and not args.no_highlights else None
    watcher = Watcher(
        args.source, options, out, sinks=sinks, whisper=whisper, grounder=grounder, saliency=saliency
    )
    try:
        report = watcher.run()
    finally:
        if webhook is not None:
            webhook.close()
    data = report.to_dict()
    if webhook is not None:
        data["webhook"] = webhook.stats.to_dict()
        if webhook.stats.dropped or webhook.stats.failed or webhook.stats.pending:
            s = webhook.stats
            text = (
                f"webhook: {s.dropped} event(s) dropped (queue full), {s.failed} failed, {s.pending} pending"
            )
            watcher.emit("status", report.stream_s, report.stream_s, "webhook", text, data=s.to_dict())
    watcher.emit("status", report.stream_s, report.stream_s, "ended", report.ended, data=data)
    write_report(out, data)
    return 0


def write_report(out: Path, data: dict) -> None:
    """--out/report.json, replaced whole (temp + rename)."""
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(out / "report.json")


def check_out(path: str, source: str) -> Path:
    """The --out folder, created; refused in one line when it is a file or holds the source."""
    from grounding_agent.errors import OutputError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {path}: not a folder; give a folder for the ring recording and clips")
    if source != "-" and "://" not in source and Path(source).resolve().is_relative_to(out.resolve()):
        raise OutputError(f"--out {path}: holds the source {source}; give another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"--out {path}: cannot create it ({exc.strerror}); give a writable folder"
        ) from None
    return out


def live_whisper(args: argparse.Namespace, needed_by: str):
    """--asr-model's Whisper (int8) for a watch, --asr-language checked; `needed_by` says who needs it."""
    from grounding_agent.media.asr import check_language, load_whisper

    if not args.asr_model:
        raise ConfigError(f"{needed_by} needs --asr-model DIR (a CTranslate2 Whisper folder)")
    check_language(args.asr_language)
    return load_whisper(args.asr_model, compute_type="int8")


def _grounder(args: argparse.Namespace):
    """The visual alerts' grounder: `--grounder hf --grounder-model DIR`, `--grounder vllm
    [--grounder-server URL] [--grounder-model NAME]`, or a model-free baseline by name."""
    from grounding_agent.grounders.registry import GROUNDERS, make_grounder

    name = args.grounder
    if name not in GROUNDERS:
        raise ConfigError(f"--grounder {name[:40]!r} is unknown; give one of: {', '.join(sorted(GROUNDERS))}")
    options = {}
    if args.grounder_model:
        options["model"] = args.grounder_model
    if args.grounder_server:
        options["server"] = args.grounder_server
    if name == "hf" and not args.grounder_model:
        raise ConfigError("--grounder hf needs --grounder-model HUB_ID_OR_FOLDER")
    return make_grounder(name, **options)


def _saliency(path: str):
    from grounding_agent.highlights.clip import ClipSaliency

    return ClipSaliency.from_pretrained(path, use_cache=False)  # nothing written outside --out


def _webhook(url: str | None):
    from grounding_agent.live.sinks import WebhookSink

    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--webhook {url[:60]!r} is not an http(s) URL")
    return WebhookSink(url)
