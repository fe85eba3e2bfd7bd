"""Serving: the batch scheduler and its jobs, REST, gradio_client endpoints, ZeroGPU."""
