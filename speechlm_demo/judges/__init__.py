"""Automatic judges of replies: DNSMOS, round-trip intelligibility, speaking rate and signal figures,
latencies; identity-leak detection; their storage beside the votes and their plots."""
