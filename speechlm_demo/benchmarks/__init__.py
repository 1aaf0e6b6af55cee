"""The measuring commands: ``bench`` (:mod:`.latency`), ``make-prompts`` (:mod:`.prompt_sets`),
``bench-moshi`` (:mod:`.moshi_frames`) and ``bench-votes`` (:mod:`.vote_backend`)."""
