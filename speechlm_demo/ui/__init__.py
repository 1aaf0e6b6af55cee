"""The Gradio UI: one module per tab, assembled by :mod:`speechlm_demo.ui.layout`."""
