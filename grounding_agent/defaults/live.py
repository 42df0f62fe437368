"""Live streams (`watch`): sampling, the ring recording, alerts, online highlights, webhooks, degradation."""

from __future__ import annotations

from dataclasses import dataclass

__all__: list[str] = []


@dataclass(frozen=True)
class LiveConfig:
    """Knobs of `grounding-agent watch` and `grounding_agent.live`.

    Attributes:
        fps: frames sampled per second of stream (OCR, motion, scene, visual alerts).
        keep_s: seconds of stream kept in the ring recording on disk (anything older is deleted).
        segment_s: target length of one ring segment (cut at the next keyframe after it).
        delay_s: online highlights look this far ahead at most (a peak is final `delay_s` after it).
        timeout_s: seconds without data before a source counts as stalled (also the open timeout).
        reconnects: reconnect attempts after a drop before giving up (0: never reconnect).
        backoff_s: first reconnect wait; doubled per attempt up to `backoff_max_s`.
        backoff_max_s: the longest reconnect wait.
        pre_s, post_s: `--clip` keeps this much before an alert's start and after its end.
        min_score: fuzzy match score (0-1) an alert's words must reach, spoken or on screen.
        asr_silence_s: an utterance is transcribed once this much silence follows it.
        asr_max_s: an utterance is transcribed at this length even while it goes on (bounds the delay).
        asr_context_s: seconds of transcribed words kept to match phrases across utterances.
        asr_beam_size: Whisper beam size on live audio (greedy: the delay matters more than a rare word).
        asr_hotwords: pass the speech alerts' phrases to Whisper as hotwords (biases it towards them).
        asr_no_speech, asr_unsure_logprob: a Whisper segment with a no-speech probability at least
            `asr_no_speech` and a mean token log-probability under `asr_unsure_logprob` is dropped (made up).
        asr_max_compression: a Whisper segment whose text compresses more than this (gzip) is a loop: dropped.
        asr_max_tokens: tokens one Whisper decode may write (8 s of fast speech: ~40; bounds a loop's cost).
        max_pixels: sampled frames are resized to at most this many pixels.
        visual_calls_per_min: grounder calls allowed per minute for visual alerts.
        visual_window_s: a visual alert grounds the last this-many seconds of the recording.
        highlight_z: an online-highlight score (z over the running statistics) at or above this is an event.
        highlight_top_k: highlights kept in the running top-k.
        stats_halflife_s: half-life of the running mean/variance each signal is normalised by.
        max_lag_s: behind real time by more than this, the watcher degrades (see `watcher.DEGRADE_ORDER`).
        webhook_queue: events waiting for the webhook at most (beyond: dropped and counted).
        webhook_retries: POST attempts per event.
        webhook_timeout_s: seconds one POST may take.
        max_streams: watches one HTTP service runs at once (`api --streams`).
        keep_events: events kept per watch for `/v1/streams/{id}/events` readers (older ones dropped).
        chat_stop_s: after `/quit`, `chat --live` waits this long for its watch to finish (the last
            utterance's transcription, the recording's last segment) before it gives up on it.
    """

    fps: float = 2.0
    keep_s: float = 600.0
    segment_s: float = 2.0
    delay_s: float = 4.0
    timeout_s: float = 10.0
    reconnects: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    pre_s: float = 5.0
    post_s: float = 3.0
    min_score: float = 0.8
    asr_silence_s: float = 0.4
    asr_max_s: float = 8.0
    asr_context_s: float = 12.0
    asr_beam_size: int = 1
    asr_hotwords: bool = True
    asr_no_speech: float = 0.5
    asr_unsure_logprob: float = -0.5
    asr_max_compression: float = 2.4
    asr_max_tokens: int = 64
    max_pixels: int = 320 * 240
    visual_calls_per_min: int = 6
    visual_window_s: float = 8.0
    highlight_z: float = 2.5
    highlight_top_k: int = 10
    stats_halflife_s: float = 120.0
    max_lag_s: float = 4.0
    webhook_queue: int = 256
    webhook_retries: int = 3
    webhook_timeout_s: float = 5.0
    max_streams: int = 4
    keep_events: int = 1000
    chat_stop_s: float = 30.0


LIVE = LiveConfig()

__all__ += ["LIVE", "LiveConfig"]
