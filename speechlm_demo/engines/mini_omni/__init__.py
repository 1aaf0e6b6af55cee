"""Clients of Mini-Omni and Mini-Omni2's own Flask servers (``POST /chat``)."""
