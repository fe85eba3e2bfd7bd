"""The Model tab's picker (the bundled model, the curated ``app.models``, or any hub id / local path typed in)
with a Switch button and a status line, and the page's fallback banner. The handlers are thin: the switch itself
is ``tempo.serve.switch.ModelSwitcher``'s, shared with REST ``POST /model``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from tempo.models.fallback import banner_text
from tempo.serve.switch import ModelSwitcher, SwitchError


def banner(switcher: ModelSwitcher) -> gr.Markdown:
    """A line at the top of the page while the app serves its fallback model (empty otherwise); read again at
    each page load (``Picker.on_load``), so it is gone once a switch has loaded a model."""
    return gr.Markdown(banner_text(switcher.fallback), elem_id="fallback-banner")


@dataclass
class Picker:
    """The picker's components that a page load refreshes (the model served may have changed since the page
    was built): ``demo.load(picker.on_load, None, picker.outputs)``."""

    switcher: ModelSwitcher
    banner: gr.Markdown
    choice: gr.Dropdown
    status: gr.Markdown

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.banner, self.choice, self.status]

    def on_load(self) -> tuple[str, str, str]:
        return banner_text(self.switcher.fallback), self.switcher.model_id, idle_status(self.switcher)


def idle_status(switcher: ModelSwitcher) -> str:
    """The status line before any switch: the model served, and whether switching is possible."""
    line = f"Serving **{switcher.model_id}**."
    if not switcher.allowed:
        return line + " Switching is off (`app.allow_model_switch = false`)."
    if switcher.needs_token:
        return line + " A switch needs the admin token (`api.admin_token`)."
    return line


def outcome_status(outcome: dict[str, Any]) -> str:
    cancelled = outcome["cancelled"]
    return (f"✔ Serving **{outcome['model']}** (was {outcome['previous']}): {outcome['parameters'] / 1e6:,.1f}M "
            f"parameters on {outcome['device']}, loaded in {outcome['load_s']:.1f} s"
            + (f"; {cancelled} running request{'s' if cancelled != 1 else ''} cancelled" if cancelled else "")
            + ".")


def picker(switcher: ModelSwitcher, page_banner: gr.Markdown, views: list[gr.components.Component],
           model_views: Callable[[], tuple]) -> Picker:
    """The picker, the token box (when ``api.admin_token`` is set), Switch and the status line, wired; inside the
    Model tab. Disabled, saying why, when ``app.allow_model_switch`` is off. After a switch, ``model_views()``
    refreshes ``views`` (the tab's description of the model)."""
    gr.Markdown("### Switch the model")
    with gr.Row():
        choice = gr.Dropdown(switcher.choices(), value=switcher.model_id, allow_custom_value=True,
                             label="Model (pick one, or type a hub id or a local path)", scale=4,
                             interactive=switcher.allowed, elem_id="model-choice")
        token = gr.Textbox(label="Admin token", type="password", visible=switcher.needs_token and switcher.allowed,
                           scale=2, elem_id="admin-token")
        button = gr.Button("Switch", variant="secondary", interactive=switcher.allowed, scale=1,
                           elem_id="switch-model")
    status = gr.Markdown(idle_status(switcher), elem_id="switch-status")

    def switch(model_id: str, admin_token: str) -> tuple:
        try:
            switcher.authorize(admin_token or None)
            line = outcome_status(switcher.switch(model_id))
        except SwitchError as exc:
            line = f"✘ {exc}"
        return line, banner_text(switcher.fallback), *model_views()

    def announce(model_id: str) -> str:
        return f"⏳ Loading **{model_id}**: running requests finish on {switcher.model_id} first…"

    button.click(announce, choice, status, api_name="ui_switch_announce", api_visibility="private",
                 queue=False).then(switch, [choice, token], [status, page_banner, *views],
                                   api_name="ui_switch_model", api_visibility="private", concurrency_limit=1)
    return Picker(switcher, page_banner, choice, status)
