"""What is in a media file, one module per job:

- `video`: open a video (path and container checks, decord's frame index): `open_video`, `frame_times`;
- `containers`: PyAV container checks (a video stream, its codec, rotation, a cut-off file);
- `frame_plan`: which frames a sampling takes (`plan_frames`, `fit_max_pixels`);
- `frame_cache`: decoded frames kept within a byte budget (`FrameCache`);
- `decode`: decoding them, GOP runs in parallel (`sample_frames`, `iter_frame_chunks`);
- `audio`: audio streams: presence, loudness curve, 16 kHz blocks for ASR (`iter_audio`);
- `transcript`: `Word`, `Segment`, `Transcript` and their JSON, quote search (`search_words`, `said_in`);
- `text_match`: token normalisation and fuzzy phrase alignment;
- `speech_query`: which queries are about speech;
- `vad`: voice activity (Silero VAD), chunk cuts, Whisper clips, words clamped to voice;
- `asr`: Whisper transcription with its content-hash cache (`Transcriber`);
- `ocr`: on-screen text (`ScreenReader`).

May import: the core modules (`types`, `errors`, `defaults`, `io`) and `utils`; never grounders, agent,
highlights, conversation or edit. Nothing here knows about grounders, agents or sessions.
"""
