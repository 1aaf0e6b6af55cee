"""Blind A/B votes: the store (:mod:`.store`), rounds and their votes (:mod:`.rounds`), the retry queue
(:mod:`.pending`), the leaderboard (:mod:`.ratings`) and the CLI commands (:mod:`.commands`)."""
