"""Fan-out: two live tiny vLLM servers in one run; queries spread over both, throughput reported.

Starts its own two servers (3-4 GB and 1-3 minutes each on CPU): run it on its own."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from eval import runner
from grounding_agent.errors import ServerStartError
from grounding_agent.grounders.serving import VLLMServer
from tests.conftest import TINY_MODEL_NAME, VIDEOS

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def two_servers(tiny_models, tmp_path):
    servers = [
        VLLMServer(
            tiny_models["qwen2_5_vl"], served_model_name=TINY_MODEL_NAME, log_path=tmp_path / f"vllm{i}.log"
        )
        for i in range(2)
    ]
    try:
        with ThreadPoolExecutor(2) as pool:  # both start at once: the start is mostly waiting
            list(pool.map(lambda s: s.start(timeout_s=400), servers))
    except ServerStartError as exc:
        for s in servers:
            s.stop()
        pytest.fail(f"{exc}\n--- vLLM log tail ---\n{exc.log_tail}", pytrace=False)
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


def test_queries_spread_over_two_live_servers_and_throughput_is_reported(two_servers, shared_data, tmp_path):
    urls = [s.base_url for s in two_servers]
    out = tmp_path / "run"
    gt = shared_data / "charades_sta" / "charades_sta_test.txt"
    rc = runner.main(
        ["--dataset", "charades-sta", "--gt", str(gt), "--videos", str(VIDEOS), "--video-pattern", "*_{vid}.mp4",
         "--vids", "Y1HGC,OHOFG", "--backend", "vllm", "--server", urls[0], "--server", urls[1],
         "--max-frames", "8", "--concurrency", "4", "--out", str(out), "--no-progress", "--log-samples"]
    )  # fmt: skip
    assert rc == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all("error" not in r and r["raw_text"] for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    tp = metrics["throughput"]
    assert tp["per_worker"] == {urls[0]: 4, urls[1]: 4}  # OHOFG's 6 queries split at the fair share 4
    assert tp["queries"] == 8 and tp["queries_per_s"] > 0 and tp["wall_s"] > 0
    assert f"{tp['queries_per_s']:.2f} queries/s over 2 worker(s)" in (out / "report.md").read_text()
    served = json.loads((out / "run.json").read_text())["served"]
    assert served["model"] == TINY_MODEL_NAME and served["root"] and served["config_sha256"]
    assert metrics["model"] == TINY_MODEL_NAME
