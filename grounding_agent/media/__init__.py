"""What is in a file: video metadata and frame decoding (`video`), audio and speech — transcripts,
word matching, Whisper and VAD (`speech`) — and on-screen text (`ocr`).

May import: the core modules and `utils`. Nothing here knows about grounders, agents or sessions.
"""
