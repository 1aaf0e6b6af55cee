"""Client of LLaMA-Omni2's controller + model worker (``POST /worker_generate_stream``)."""
