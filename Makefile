# Two commands do everything on a fresh machine:
#   make demo   - set up, then run the grounding agent on a real clip (tiny offline models unless MODEL is set)
#   make test   - set up, then run the whole test suite (slow and integration tests included)
SHELL := /bin/bash
VIDEO ?= ../shared/data/videos/timer1_charades_OHOFG.mp4
QUERY ?= person sits down in a chair, then eats some food
TINY  ?= $(HOME)/.cache/grounding-agent/tiny-models-demo
MODEL ?= $(TINY)/qwen2_5_vl
CLIP  ?= $(TINY)/clip
PYTEST_ARGS ?=
# The speech demo: a generated talking clip (espeak-ng) and a quoted-speech query, answered by real Whisper base.
TALK  ?= $(HOME)/.cache/grounding-agent/demo-talk.mp4
SPEECH_QUERY ?= when does she say 'my favorite color is blue'

.PHONY: setup demo test lint bench

setup:
	bash scripts/setup_env.sh

demo: setup
	@if [ "$(MODEL)" = "$(TINY)/qwen2_5_vl" ]; then .venv/bin/python tests/assets/build_tiny_models.py $(TINY) >/dev/null; fi
	.venv/bin/grounding-agent ground "$(VIDEO)" "$(QUERY)" --agent --explain --backend hf --model "$(MODEL)" --saliency-model "$(CLIP)"
	@.venv/bin/python -m tests.speechgen "$(TALK)"
	.venv/bin/grounding-agent ground "$(TALK)" "$(SPEECH_QUERY)" --backend hf --model "$(MODEL)" --asr-model "$$(.venv/bin/python tests/assets/whisper_base.py)"

test: setup lint
	.venv/bin/python -m pytest $(PYTEST_ARGS)

# ruff's rules and line length are in pyproject.toml; CI runs this through `make test`.
lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

bench: setup
	.venv/bin/pip install -q --no-build-isolation -e '.[bench]'
	for b in bench/[!_]*.py; do .venv/bin/python $$b || exit 1; done
