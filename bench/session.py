"""Session reuse and HTTP overhead.

1. First vs second question on one `Session`, end to end: the first opens the video and decodes its frames
   (then grounds and writes the text: two generations); the second reuses the frames and, for the
   in-process model, the processor and vision-tower outputs and the language model's KV cache of the
   prompt prefix (system text + visual tokens; `grounders.vision_cache`, `grounders.hf.generate`). Rounds
   alternate cache on / off on fresh sessions; min / median / max of per-round ratios. Goal: the second
   >= 5x faster. Rows "budget: default" use the default token budgets (TOKENS.answer for grounding, the
   describer's 64); an extra, separate row per cache setting, "budget: answer-length", caps both questions'
   generations at a real answer's length in the model's tokenizer (grounding: "12.00 - 15.50 seconds",
   describe: a one-sentence description, each + 1 end-of-turn token), since a random model never stops
   early. It is printed and stored next to the default rows, never instead of them. Each row also times
   the second question's `generate` calls (its own prefill and every generated token): first / that time
   is the bound on the speedup that any reuse of frames, vision outputs or prefixes could reach.
   Backends: the tiny HF Qwen2.5-VL / Qwen3-VL (`--family`; offline, random weights: its vision tower is
   tiny and it never stops early, so each answer generates its whole token budget and generation
   dominates — a real model's share of vision tower + prefill is far larger), the model-free `uniform`
   baseline, `--server` for a vLLM server, `--model` for a real checkpoint.
   On a loaded 2-core machine torch's default 2 threads make the tiny model's small ops ~10x slower
   (threads wait on each other); `--threads 1` shows the compute itself.
2. HTTP overhead: median latency of POST /v1/ground on a real uvicorn on 127.0.0.1 (keep-alive client)
   minus the median of the same in-process `Session.ground` call. Goal: <= 5 ms.

    .venv/bin/python bench/session.py
    .venv/bin/python bench/session.py --threads 1 --family qwen3_vl
    .venv/bin/python bench/session.py --model Qwen/Qwen2.5-VL-7B-Instruct --rounds 3

Prints a table; writes bench/results/session.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from grounding_agent.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench._common import machine, now, spread

VIDEOS = REPO.parent / "shared" / "data" / "videos"
CLIP = "timer1_charades_OHOFG.mp4"
# Two independent questions of the same kind: the second differs only in what is already decoded.
FIRST, SECOND = "when does the person sit down in a chair?", "when does the person eat some food?"


# Typical real answers (the length of the extra "answer-length" rows): a grounding answer, a description.
TYPICAL_ANSWER = "12.00 - 15.50 seconds"
TYPICAL_DESCRIPTION = "The person sits down on a chair, then picks up a plate and eats some food."


def answer_lengths(grounder) -> dict:
    """Token budgets of the typical answers in the grounder's tokenizer, + 1 for the end-of-turn token."""
    tok = grounder.processor.tokenizer
    return {"answer": len(tok(TYPICAL_ANSWER)["input_ids"]) + 1,
            "describe": len(tok(TYPICAL_DESCRIPTION)["input_ids"]) + 1}  # fmt: skip


class GenerateClock:
    """Wraps `model.generate` of an in-process model: seconds spent in it and tokens it generated (the
    question's own prefill and the token-by-token decoding: what no reuse of frames or prefixes can save)."""

    def __init__(self, model):
        self.seconds, self.tokens, self._generate = 0.0, 0, model.generate
        model.generate = self  # an instance attribute: shadows the method for this model only

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self._generate(*args, **kwargs)
        self.seconds += time.perf_counter() - t0
        sequences = getattr(out, "sequences", out)
        self.tokens += int(sequences.shape[1] - kwargs["input_ids"].shape[1])
        return out


def _one_session(grounder, video: Path, cache: bool, describe_tokens: int | None = None) -> dict:
    """Seconds of one fresh session: open + decode, first ask, second ask (and its time in `generate`);
    the vision-cache hits."""
    from grounding_agent import Session
    from grounding_agent.conversation.describe import HFDescriber
    from grounding_agent.media import decode as video_mod

    video_mod.DEFAULT_FRAME_CACHE.clear()  # a new video for the process: nothing decoded or indexed yet
    video_mod._load_index.cache_clear()
    t0 = time.perf_counter()
    describer = HFDescriber(grounder, max_new_tokens=describe_tokens) if describe_tokens else None
    session = Session(video, grounder, vision_cache=cache, describer=describer)
    if grounder.needs_pixels:
        _ = session.frames  # decoded here rather than inside the first ask, to time it on its own
    t_open = time.perf_counter()
    session.ask(FIRST)
    clock = getattr(getattr(grounder, "model", None), "generate", None)
    gen_s, gen_tokens = (clock.seconds, clock.tokens) if isinstance(clock, GenerateClock) else (0.0, 0)
    t1 = time.perf_counter()
    session.ask(SECOND)
    t2 = time.perf_counter()
    if isinstance(clock, GenerateClock):
        gen_s, gen_tokens = clock.seconds - gen_s, clock.tokens - gen_tokens
    hits = dict(session.vision_cache.hits) if session.vision_cache is not None else {}
    return {"open_s": t_open - t0, "first_ask_s": t1 - t_open, "first_s": t1 - t0, "second_s": t2 - t1,
            "second_generate_s": gen_s, "second_tokens": gen_tokens,
            "frames": len(session.frames) if getattr(grounder, "needs_pixels", True) else 0, "hits": hits}  # fmt: skip


def first_vs_second(
    grounder, video: Path, rounds: int, caches: tuple[bool, ...], budget: dict | None = None
) -> list[dict]:
    """First question (open + decode + ask) vs the second ask on fresh sessions, with the vision cache on
    and off in interleaved rounds (on, off, on, off, ...) so machine load hits both alike.

    `budget` ({"answer": n, "describe": m}): both questions' generation budgets (None: the defaults).
    """
    default_tokens = getattr(grounder, "max_new_tokens", None)
    if budget:
        grounder.max_new_tokens = budget["answer"]
    describe_tokens = budget["describe"] if budget else None
    try:
        _one_session(grounder, video, True, describe_tokens)  # warm-up: first-call costs of torch code paths
        runs: dict[bool, list[dict]] = {c: [] for c in caches}
        for _ in range(rounds):
            for cache in caches:
                runs[cache].append(_one_session(grounder, video, cache, describe_tokens))
    finally:
        if budget:
            grounder.max_new_tokens = default_tokens
    rows = []
    for cache, rs in runs.items():
        keys = ("open_s", "first_ask_s", "first_s", "second_s", "second_generate_s")
        row = {"grounder": grounder.name, "vision_cache": cache, "rounds": rounds, "frames": rs[-1]["frames"],
               "budget": "answer-length" if budget else "default", "tokens": budget or "default",
               **{k: spread([r[k] for r in rs]) for k in keys},
               # Per round: first / second of the same session (end to end), and of the asks alone.
               "speedup": spread([r["first_s"] / r["second_s"] for r in rs]),
               "ask_speedup": spread([r["first_ask_s"] / r["second_s"] for r in rs]),
               # The most any reuse could give: the second question still generates its tokens.
               "bound": spread([r["first_s"] / r["second_generate_s"] for r in rs if r["second_generate_s"]]
                               or [0.0]),
               "second_tokens": rs[-1]["second_tokens"],
               "hits": rs[-1]["hits"]}  # fmt: skip
        rows.append(row)
    return rows


def wider_vision(folder: Path, width: int, depth: int = 4) -> Path:
    """A copy of a tiny model whose vision tower has `depth` blocks of `width` (seeded random weights):
    the same language model and processor, a vision share nearer a real model's."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    out = Path(tempfile.mkdtemp(prefix="bench-wide-vision-"))
    for f in folder.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            shutil.copy(f, out / f.name)
    config = AutoConfig.from_pretrained(folder)
    v = config.vision_config
    v.hidden_size, v.intermediate_size, v.num_heads, v.depth = width, 2 * width, max(2, width // 64), depth
    if hasattr(v, "fullatt_block_indexes"):
        v.fullatt_block_indexes = [depth // 2 - 1, depth - 1]
    if hasattr(v, "deepstack_visual_indexes"):
        v.deepstack_visual_indexes = [depth // 2]
    torch.manual_seed(0)
    AutoModelForImageTextToText.from_config(config).save_pretrained(out)
    return out


def http_overhead(video: Path, n: int) -> dict:
    """Median ms of POST /v1/ground over HTTP vs the in-process call (uniform backend, same session)."""
    import httpx
    import uvicorn

    from grounding_agent import Session
    from grounding_agent.grounders.baselines import UniformGrounder
    from grounding_agent.grounders.serving import free_port
    from grounding_agent.http import create_app

    media = Path(tempfile.mkdtemp(prefix="bench-media-"))
    shutil.copy(video, media / video.name)
    session = Session(media / video.name, UniformGrounder())
    app = create_app(lambda path: session, media_root=media, grounder_name="uniform")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    body = {"video": video.name, "query": "person sitting down in a chair.", "top_k": 1}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(20):  # warm up: connection, first session, code paths
                client.post("/v1/ground", json=body).raise_for_status()
            http = []
            cpu0 = time.process_time()
            for _ in range(n):
                t0 = time.perf_counter()
                client.post("/v1/ground", json=body).raise_for_status()
                http.append(time.perf_counter() - t0)
            http_cpu_s = (time.process_time() - cpu0) / n
        inproc = []
        cpu0 = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            session.ground(body["query"], top_k=1).to_dict()
            inproc.append(time.perf_counter() - t0)
        inproc_cpu_s = (time.process_time() - cpu0) / n
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        shutil.rmtree(media, ignore_errors=True)
    http_ms, inproc_ms = statistics.median(http) * 1e3, statistics.median(inproc) * 1e3
    return {"requests": n, "http_median_ms": http_ms, "inprocess_median_ms": inproc_ms,
            "overhead_ms": http_ms - inproc_ms, "http_p90_ms": statistics.quantiles(http, n=10)[-1] * 1e3,
            # CPU time of this process (client + server) per request: less sensitive to other jobs' load.
            "overhead_cpu_ms": (http_cpu_s - inproc_cpu_s) * 1e3}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="HF model id/folder (default: a tiny random-weight model, see --family)")
    p.add_argument("--family", default="qwen2_5_vl", choices=("qwen2_5_vl", "qwen3_vl"), help="tiny model")
    p.add_argument(
        "--vision-width",
        type=int,
        help="tiny model with a wider vision tower (random weights, "
        "4 blocks of this width; Qwen2.5-VL-7B's is 32 blocks of 1280)",
    )
    p.add_argument("--server", help="also measure a vLLM server (OpenAI API URL) ...")
    p.add_argument("--served-model", help="... serving this model name (default: its first)")
    p.add_argument("--video", type=Path, default=VIDEOS / CLIP)
    p.add_argument("--rounds", type=int, default=5, help="fresh sessions per backend and cache setting")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own; see the docstring)")
    p.add_argument("--requests", type=int, default=300, help="HTTP requests timed")
    p.add_argument("--http-only", action="store_true", help="skip the first-vs-second part")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "session.json")
    args = p.parse_args()

    model = args.model
    if model is None:
        from tests.assets.build_tiny_models import cached_tiny_models

        model = str(cached_tiny_models()[args.family])
        if args.vision_width:
            model = str(wider_vision(Path(model), args.vision_width))

    def hf():
        from grounding_agent.grounders.hf import HFGrounder

        grounder = HFGrounder(model, device="cpu")
        GenerateClock(grounder.model)
        return grounder

    def uniform():
        from grounding_agent.grounders.baselines import UniformGrounder

        return UniformGrounder()

    def vllm():
        from grounding_agent.grounders.vllm import VLLMGrounder

        return VLLMGrounder(args.server, args.served_model, max_frames=16)

    makers = (hf, uniform, vllm) if args.server else (hf, uniform)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = []
    for make in [] if args.http_only else makers:
        grounder = make()  # loaded once: model loading is not part of a question
        caches = (True, False) if make is hf else (True,)  # the vision cache is the in-process model's
        rows += first_vs_second(grounder, args.video, args.rounds, caches)
        if make is hf:  # the extra, declared row: both questions at a real answer's length
            rows += first_vs_second(grounder, args.video, args.rounds, caches, answer_lengths(grounder))
    overhead = http_overhead(args.video, args.requests)

    print(f"{'grounder':<30} {'budget':>13} {'cache':>5} {'frames':>6} {'decode s':>8} {'1st ask s':>9} "
          f"{'first s':>8} {'second s':>9} {'gen s':>6} {'tokens':>6} {'speedup':>19} {'ask-only':>8} "
          f"{'bound':>6}   (min / median / max over rounds; goal >= 5x)")  # fmt: skip
    for r in rows:
        keys = ("open_s", "first_ask_s", "first_s", "second_s", "second_generate_s")
        med = {k: r[k]["median"] for k in keys}
        sp = r["speedup"]
        print(f"{r['grounder'][-30:]:<30} {r['budget']:>13} {'on' if r['vision_cache'] else 'off':>5} "
              f"{r['frames']:>6} {med['open_s']:>8.3f} {med['first_ask_s']:>9.3f} {med['first_s']:>8.3f} "
              f"{med['second_s']:>9.3f} {med['second_generate_s']:>6.3f} {r['second_tokens']:>6} "
              f"{sp['min']:>5.1f} /{sp['median']:>5.1f} /{sp['max']:>5.1f}x "
              f"{r['ask_speedup']['median']:>7.1f}x {r['bound']['median']:>5.1f}x")  # fmt: skip
    print(
        "gen s: the second question's time in `generate` (its own prefill + decoding `tokens` tokens);\n"
        "bound: first s / gen s, the most any reuse could give while the second question generates them"
    )
    print(f"\nHTTP /v1/ground on 127.0.0.1: median {overhead['http_median_ms']:.2f} ms, in-process "
          f"{overhead['inprocess_median_ms']:.2f} ms -> overhead {overhead['overhead_ms']:.2f} ms (goal <= 5 ms); "
          f"p90 {overhead['http_p90_ms']:.2f} ms over {overhead['requests']} requests; "
          f"CPU time (client + server) {overhead['overhead_cpu_ms']:.2f} ms per request")  # fmt: skip
    result = {
        "bench": "session",
        "when": now(),
        "video": args.video.name,
        "first_vs_second": rows,
        "http": overhead,
        "goals": {"speedup_min": 5.0, "http_overhead_ms_max": 5.0},
        "machine": machine(torch_threads=args.threads or "default"),
    }
    print(f"wrote {write_json_atomic(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
