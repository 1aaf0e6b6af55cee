"""Blind A/B votes: the store (:mod:`.store`), rounds and their votes (:mod:`.rounds`), pair drawing
(:mod:`.pairs`), the voter id (:mod:`.voter`) and the vote limits (:mod:`.limits`), the retry queue
(:mod:`.pending`), the leaderboard (:mod:`.ratings`) and the CLI commands (:mod:`.commands`)."""
