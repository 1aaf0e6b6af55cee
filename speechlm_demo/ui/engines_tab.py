"""Engines tab: this host's hardware and every catalogue entry with "available" or the reason why not."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..catalog import engine_table_rows
from ..engines.registry import EngineRegistry


def build_engines_tab(registry: EngineRegistry) -> None:
    """Render the host line and the engine table (call inside a ``gr.Tab``)."""
    gr.Markdown(f"**This host:** {registry.host.describe()}")
    rows = engine_table_rows(registry.availability.values())
    gr.Dataframe(pd.DataFrame(rows), interactive=False, wrap=True, elem_id="engines-table")
    gr.Markdown(
        "Engines marked *experimental* on this accelerator are offered when `SPEECHLM_EXPERIMENTAL=1`. "
        "The catalogue is `configs/engines.yaml` (or the file named by `SPEECHLM_CATALOG`)."
    )
