"""`grounding-agent highlights VIDEO [--query Q] [--top-k K] [--model CLIP] [--plot out.png] [--json]`.

With --query: the query's CLIP saliency per 2-s clip and its top windows (needs --model), or with
`--head DIR` a learned head's scores for the query (VCL reads it through its prompts). Without: generic
highlights fusing CLIP similarity to a prompt set and to `--title` (only with --model), motion, scene
novelty, loudness, speech arousal and applause, and when given speech activity (`--asr-model`), speech
emotion (`--emotion-model`), a learned head (`--head`) and liked spans (`--like`); each window with the
signals that put it there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from grounding_agent.cli._common import (
    check_output_path,
    check_plot_path,
    command_inputs,
    fmt_s,
    fps_float,
    nonneg_float,
    print_json,
    text_arg,
    top_k_int,
    unit_float,
)
from grounding_agent.defaults import HIGHLIGHTS, SAMPLING
from grounding_agent.errors import ConfigError
from grounding_agent.highlights.plots import NOTHING_STANDS_OUT


def add_arguments(p: argparse.ArgumentParser) -> None:
    from grounding_agent.highlights.vision_backends import BACKENDS

    p.add_argument("video", help="video file")  # str: Path() would fold a URL's "//"
    p.add_argument(
        "--query", type=text_arg, help="what to look for; omit for generic (query-free) highlights"
    )
    p.add_argument(
        "--top-k",
        type=top_k_int,
        default=HIGHLIGHTS.top_k,
        help=f"windows to return (default {HIGHLIGHTS.top_k})",
    )
    p.add_argument("--model", help="CLIP/SigLIP hub id or local folder (needed with --query)")
    p.add_argument(
        "--fps",
        type=fps_float,
        help=f"frames per second to sample (default: {HIGHLIGHTS.clip_fps:g} CLIP, {SAMPLING.fps:g} motion)",
    )
    p.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default=HIGHLIGHTS.backend,
        help=f"CLIP vision tower runtime (default {HIGHLIGHTS.backend}; torch is the fp32 reference)",
    )
    p.add_argument(
        "--cache-dir", type=Path, help="frame-embedding cache (default ~/.cache/grounding-agent/embeddings)"
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    p.add_argument(
        "--weights", default="", help="generic signal weights, e.g. 'audio=2,motion=1,scene=0.5,clip=1'"
    )
    p.add_argument(
        "--prompt", action="append", help="generic CLIP prompt (repeatable; replaces the default set)"
    )
    p.add_argument(
        "--nms-iou",
        type=unit_float,
        default=HIGHLIGHTS.nms_iou,
        help=f"temporal NMS IoU threshold (default {HIGHLIGHTS.nms_iou:g})",
    )
    p.add_argument(
        "--diversity",
        type=nonneg_float,
        default=HIGHLIGHTS.diversity,
        help=f"penalty per unit IoU with chosen windows (default {HIGHLIGHTS.diversity:g})",
    )
    p.add_argument("--plot", type=Path, help="write a PNG of the saliency curves with the chosen windows")
    p.add_argument("--json", action="store_true", help="print the QVHighlights-shaped prediction as JSON")
    from grounding_agent.cli.options import add_asr_options

    add_asr_options(p)  # generic mode: speech activity becomes a signal
    add_signal_arguments(p)


def add_signal_arguments(p: argparse.ArgumentParser) -> None:
    """Generic mode's optional signals: title, speech emotion, a learned head, liked spans."""
    p.add_argument(
        "--title", type=text_arg, help="the video's title (or metadata) as a CLIP query (needs --model)"
    )
    p.add_argument(
        "--emotion-model", help="folder of a transformers speech-emotion (audio-classification) model"
    )
    p.add_argument(
        "--emotion-map",
        help="emotion label -> arousal 0..1 for --emotion-model, e.g. 'angry=1,happy=0.8,neutral=0' "
        "(default: angry/surprised/excited 1, happy/fearful 0.8, neutral/calm/sad 0)",
    )
    p.add_argument(
        "--head", help="folder of a trained highlight head (`finetune`); its CLIP model unless --model"
    )
    p.add_argument(
        "--like",
        action="append",
        metavar="START-END",
        help="a span you liked, in seconds (repeatable, 1-5): clips like it score higher (needs a CLIP model)",
    )


def run(args: argparse.Namespace) -> int:
    from grounding_agent.highlights import windows as hl

    if args.fps is not None and args.fps <= 0:
        raise ConfigError(f"--fps must be > 0, got {args.fps}")
    if args.query is not None and not args.query.strip():
        raise ConfigError("--query is empty: give a sentence, or omit it for generic highlights")
    if args.query and not (args.model or args.head):
        raise ConfigError("--query needs a CLIP model: pass --model HUB_ID_OR_FOLDER (or a --head DIR)")
    if args.query and (args.title or args.emotion_model or args.like):
        raise ConfigError("--title, --emotion-model and --like are for generic highlights: drop --query")
    _check_before_work(args)
    search = hl.WindowSearch(top_k=args.top_k, nms_iou=args.nms_iou, diversity=args.diversity)
    weights = hl.HighlightWeights.parse(args.weights)
    emotion = _load_emotion(args) if args.emotion_model and not args.query else None
    head = _load_head(args.head) if args.head else None
    saliency = _load_saliency(args, args.model or (head.clip_model if head else None))
    transcript = None
    if args.asr_model and not args.query:
        from grounding_agent.cli.options import build_transcriber

        transcript = build_transcriber(args).transcribe(args.video)
    if args.query:
        from grounding_agent.highlights.heads import head_scores

        # A learned head (VCL reads the query through its prompts) replaces raw CLIP similarity.
        scores = head_scores(head, saliency, args.video, text=args.query) if head else None
        result = hl.query_highlights(
            saliency, args.video, args.query, fps=args.fps, search=search, head_scores=scores
        )
    else:
        result = hl.generic_highlights(
            args.video,
            saliency=saliency if args.model else None,
            prompts=tuple(args.prompt) if args.prompt else HIGHLIGHTS.prompts,
            weights=weights,
            fps=args.fps or SAMPLING.fps,
            search=search,
            transcript=transcript,
            title=args.title,
            emotion=emotion,
            extra_clip_scores=_extra_scores(args, head, saliency),
        )
    if args.plot:
        hl.save_plot(result, args.plot)
    if args.json:
        print_json(result.prediction.to_dict())
    else:
        _print_text(args, result)
    return 0


def _check_before_work(args: argparse.Namespace) -> None:
    """Missing extras, model folders and unwritable outputs fail now, not after the video was scored."""
    from grounding_agent.io import check_model_source
    from grounding_agent.utils import extras

    if args.model:
        extras.require_spec(extras.HF, "--model (CLIP saliency)")
        check_model_source(args.model, "--model")
    for option, value in (("--emotion-model", args.emotion_model), ("--head", args.head)):
        if value:
            extras.require_spec(extras.HF, option)
    if args.title and not args.model:
        raise ConfigError("--title is matched by CLIP: pass --model HUB_ID_OR_FOLDER too")
    if args.like:
        from grounding_agent.highlights.personalize import parse_likes

        parse_likes(args.like)  # the format now; the spans against the video once it is open
        if not (args.model or args.head):
            raise ConfigError("--like compares clips by CLIP features: pass --model HUB_ID_OR_FOLDER too")
    if args.plot:
        check_output_path(args.plot, "--plot", inputs=tuple(command_inputs(args)))
        extras.require_spec(extras.PLOT, "--plot")
        check_plot_path(args.plot, "--plot")


def _load_emotion(args: argparse.Namespace):
    from grounding_agent.defaults import EMOTION_AROUSAL
    from grounding_agent.highlights.emotion import EmotionModel, parse_arousal_map

    arousal_map = parse_arousal_map(args.emotion_map) if args.emotion_map else EMOTION_AROUSAL
    return EmotionModel.from_pretrained(args.emotion_model, arousal_map=arousal_map)


def _load_head(folder: str):
    from grounding_agent.highlights.heads import load_head

    return load_head(folder)


def _extra_scores(args: argparse.Namespace, head, saliency) -> dict:
    """The learned head's per-clip scores and the liked spans' ("head", "like"), as asked."""
    if saliency is None or not (head or args.like):
        return {}
    from grounding_agent.highlights.heads import clip_features, head_scores
    from grounding_agent.highlights.personalize import parse_likes, personalize
    from grounding_agent.media.video import open_video

    out = {}
    if head is not None:
        out["head"] = head_scores(head, saliency, args.video, text=args.title)
    if args.like:
        duration_s = open_video(args.video).duration_s
        feats = clip_features(saliency.embed(args.video), duration_s)
        out["like"] = personalize(feats, parse_likes(args.like), duration_s=duration_s)
    return out


def _load_saliency(args: argparse.Namespace, model: str | None):
    from grounding_agent.highlights.clip import ClipSaliency

    if not model:
        return None
    return ClipSaliency.from_pretrained(
        model,
        backend=args.backend,
        fps=args.fps or HIGHLIGHTS.clip_fps,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
    )


def _print_text(args: argparse.Namespace, result) -> None:
    n = len(result.prediction.pred_saliency_scores or [])
    print(f"video: {args.video} ({fmt_s(result.duration_s)}, {n} clips of 2 s)")
    if args.query:
        print(f"query: {args.query}  (CLIP saliency, model {args.model})")
    else:
        used = ", ".join(f"{k} {v:.2f}" for k, v in result.weights.items()) or "none"
        print(f"generic highlights; signals used (weight): {used}")
        for name, why in result.absent.items():
            print(f"  not used: {name} ({why})")
        if not args.model:
            print("  note: no --model, so only model-free signals (motion, scene, audio, speech) were fused")
    print(f"{'#':>2}  {'start':>20}  {'end':>20}  score")
    for rank, w in enumerate(result.windows, 1):
        print(f"{rank:>2}  {fmt_s(w.start_s):>20}  {fmt_s(w.end_s):>20}  {w.score:.3f}")
        for ev in result.evidence(w.start_s, w.end_s):
            print(f"      [{ev.source.removeprefix('highlights:')}] {ev.text}")
    if not result.windows:
        print(NOTHING_STANDS_OUT)
    if args.plot:
        print(f"plot: {args.plot}")
