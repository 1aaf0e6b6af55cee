"""Helpers shared by the transport and browser tests (launchers, network namespace, speech clips)."""
