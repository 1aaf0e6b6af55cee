"""Client of GLM-4-Voice's model server (``POST /generate_stream``), with its speech tokenizer and decoder
run on this side, as its own web demo does."""
