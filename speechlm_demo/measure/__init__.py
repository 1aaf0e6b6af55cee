"""Measurement: the feeding driver of recorded turns and (soon) the one turn record every consumer reads."""
