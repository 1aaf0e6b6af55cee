"""Speech in, text out, spoken by the cascade's TTS: audio-input LLMs served by vLLM (Ultravox, Qwen2-Audio, ...)."""
