"""Clients of vLLM-Omni servers (Qwen2.5-Omni, Qwen3-Omni): chat completions over SSE and the realtime websocket.

Wire formats matched: vllm-omni 0.30.0 (``vllm_omni/entrypoints/openai/serving_chat.py``,
``realtime_connection.py``) on vllm 0.30.0 (``vllm/entrypoints/openai/chat_completion/protocol.py``,
``vllm/entrypoints/speech_to_text/realtime/``).
"""
