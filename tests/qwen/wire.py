"""The bytes vLLM / vLLM-Omni servers send, built key by key in the servers' own field order.

Matched (read, not imported; both need CUDA torch) against:
- vllm-omni 0.30.0 ``vllm_omni/entrypoints/openai/serving_chat.py`` (``chat_completion_stream_generator``:
  role chunk, text deltas, ``_create_audio_choice`` audio chunks with ``audio_metadata``, usage on audio
  chunks, ``data: [DONE]``; ``chat_completion_full_generator`` + ``_merge_audio_choices`` for the JSON body),
  ``protocol/chat_completion.py`` (``modality`` and ``metrics`` fields) and ``realtime_connection.py``.
- vllm 0.30.0 ``vllm/entrypoints/openai/chat_completion/{protocol,serving,api_router}.py``,
  ``vllm/entrypoints/serve/engine/protocol.py`` (``ErrorInfo``, ``UsageInfo``, ``ModelCard``),
  ``vllm/entrypoints/generate/base/serving.py`` (``create_streaming_error_response``: ``json.dumps`` with its
  default separators) and ``vllm/entrypoints/speech_to_text/realtime/{protocol,connection}.py``.
Pydantic's ``model_dump_json`` writes compact JSON (no spaces, non-ASCII kept); ``exclude_unset`` keeps the
fields a constructor was given, ``None`` included. Starlette's ``JSONResponse`` is compact too.
"""

from __future__ import annotations

import json
from typing import Any


def compact(value: Any) -> str:
    """JSON as pydantic's ``model_dump_json`` / Starlette's ``JSONResponse`` write it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def sse(value: Any) -> str:
    """One server-sent event line pair."""
    return f"data: {compact(value)}\n\n"


DONE = "data: [DONE]\n\n"


def head(request_id: str, created: int, model: str) -> dict[str, Any]:
    return {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model}


def role_chunk(request_id: str, created: int, model: str, *, omni: bool) -> str:
    """First chunk: ``DeltaMessage(role=..., content="")``; prompt_token_ids / prompt_text passed as None."""
    chunk = {
        **head(request_id, created, model),
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}],
        "prompt_token_ids": None,
        "prompt_text": None,
    }
    if omni:
        chunk["modality"] = "text"
    return sse(chunk)


def text_chunk(request_id: str, created: int, model: str, text: str, *, omni: bool, finish: str | None = None, last: bool = False) -> str:
    """A text delta; the last one also passes ``stop_reason`` (finish_reason is None while audio is pending)."""
    choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": finish}
    if last:
        choice["stop_reason"] = None
    choice["token_ids"] = None
    chunk: dict[str, Any] = {**head(request_id, created, model), "choices": [choice]}
    if omni:
        chunk["metrics"] = None
        chunk["modality"] = "text"
    return sse(chunk)


def audio_chunk(
    request_id: str, created: int, model: str, b64: str, *, frames: int, rate: int, fmt: str, finish: str | None, prompt_tokens: int
) -> str:
    """``OmniChatCompletionResponseStreamChoice`` (audio_metadata last) + usage set after construction."""
    choice: dict[str, Any] = {
        "index": 0,
        "delta": {"role": "assistant", "content": b64},
        "logprobs": None,
        "finish_reason": finish,
        "stop_reason": None,
        "token_ids": None,
    }
    if b64:
        choice["audio_metadata"] = {"format": fmt, "sample_rate_hz": rate, "frame_count": frames, "channels": 1}
    return sse(
        {
            **head(request_id, created, model),
            "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens, "completion_tokens": 0},
            "metrics": None,
            "modality": "audio",
        }
    )


def streaming_error(message: str, err_type: str = "InternalServerError", code: int = 500) -> str:
    """``create_streaming_error_response``: ``json.dumps(ErrorResponse.model_dump())``, default separators."""
    body = {"error": {"message": message, "type": err_type, "param": None, "code": code}}
    return f"data: {json.dumps(body)}\n\n"


def error_body(message: str, err_type: str, code: int, param: str | None = None) -> str:
    """``JSONResponse(content=ErrorResponse.model_dump(), status_code=code)``."""
    return compact({"error": {"message": message, "type": err_type, "param": param, "code": code}})


def full_response(
    request_id: str, created: int, model: str, text: str, audio_b64: str | None, *, frames: int, rate: int, prompt_tokens: int, completion_tokens: int
) -> str:
    """``OmniChatCompletionResponse.model_dump()`` with the audio merged into the text choice."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "reasoning": None,
    }
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": "stop",
        "stop_reason": None,
        "token_ids": None,
        "routed_experts": None,
        "audio_metadata": None,
    }
    if audio_b64 is not None:
        message["audio"] = {"id": f"audio-{request_id[-16:]}", "data": audio_b64, "expires_at": created + 86400, "transcript": ""}
        choice["audio_metadata"] = {"format": "wav", "sample_rate_hz": rate, "frame_count": frames, "channels": 1}
    return compact(
        {
            "id": request_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "service_tier": None,
            "system_fingerprint": None,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "completion_tokens": completion_tokens,
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            },
            "prompt_logprobs": None,
            "prompt_token_ids": None,
            "prompt_text": None,
            "kv_transfer_params": None,
            "ec_transfer_params": None,
            "metrics": None,
        }
    )


def models_list(model: str, created: int, max_model_len: int = 32768) -> str:
    """``GET /v1/models``: ``ModelList`` of one ``ModelCard`` (vllm 0.30.0 serve/engine/protocol.py)."""
    card = {
        "id": model,
        "object": "model",
        "created": created,
        "owned_by": "vllm",
        "root": model,
        "parent": None,
        "max_model_len": max_model_len,
        "permission": [
            {
                "id": f"modelperm-{created:x}",
                "object": "model_permission",
                "created": created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ],
    }
    return compact({"object": "list", "data": [card]})


# Realtime (websocket) events: pydantic events via model_dump_json() (compact, every field); audio events
# via json.dumps(payload) (default separators) in vllm-omni's RealtimeConnection.send_json.
def rt_session_created(session_id: str, created: int) -> str:
    return compact({"type": "session.created", "id": session_id, "created": created})


def rt_delta(text: str) -> str:
    return compact({"type": "transcription.delta", "delta": text})


def rt_done(text: str, prompt_tokens: int, completion_tokens: int) -> str:
    usage = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }
    return compact({"type": "transcription.done", "text": text, "usage": usage})


def rt_audio(b64: str, rate: int | str) -> str:  # a str only in the fake's garbled_fields scenario
    return json.dumps({"type": "response.output_audio.delta", "audio": b64, "format": "pcm16", "sample_rate_hz": rate})


def rt_audio_done(has_audio: bool) -> str:
    return json.dumps({"type": "response.output_audio.done", "has_audio": has_audio})


def rt_error(message: str, code: str | None) -> str:
    return compact({"type": "error", "error": message, "code": code})
