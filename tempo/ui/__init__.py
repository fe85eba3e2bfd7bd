"""The Gradio app: Blocks layout, controls, rendering of results, plots."""
