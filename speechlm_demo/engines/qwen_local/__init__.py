"""In-process Qwen audio models with transformers: Qwen2.5-Omni (speech out) and Qwen2-Audio (text out + TTS)."""
