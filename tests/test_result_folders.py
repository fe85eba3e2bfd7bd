"""Every UI run writes its downloads to a ``tempo-result-*`` folder of the temp dir: at most
``app.max_result_folders`` of them stay, the oldest go first."""
import tempfile
from pathlib import Path

import gradio as gr
import pytest

from tempo.engine.runner import Tempo
from tempo.models.loading import load_model
from tempo.result import Candidate, GenerationResult, ModelInfo, Step, Timing
from tempo.serve.scheduler import Scheduler
from tempo.settings.loader import load_settings
from tempo.ui.app import create_demo
from tempo.ui.downloads import PREFIX, ResultFolders

pytestmark = pytest.mark.usefixtures("clean_tempo_env")


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """The temp dir of ``tempfile`` (where the folders go) is the test's own, so the count is ours."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def result_folders(root):
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def a_result(n: int) -> GenerationResult:
    steps = [Step(0, 1, 0.1, candidates=[Candidate(1, f" word{n}", 0.9)])]
    return GenerationResult(prompt=f"p{n}", mode="tempo", text=f" word{n}", clean_text=f" word{n}", steps=steps,
                            settings={}, timing=Timing(), model=ModelInfo("m", "cpu", "float32"))


def test_the_oldest_folders_go_first(temp_dir):
    folders = ResultFolders(limit=4)
    saved = [folders.save(a_result(n)) for n in range(20)]
    left = result_folders(temp_dir)
    assert len(left) == 4
    assert {p / "tempo_result.json" for p in left} == {Path(json_path) for json_path, _ in saved[-4:]}  # the newest
    assert '"prompt": "p19"' in Path(saved[-1][0]).read_text() and Path(saved[-1][1]).exists()


def test_the_limit_is_a_declared_setting():
    assert load_settings().app.max_result_folders == 32
    with pytest.raises(ValueError, match="max_result_folders"):
        ResultFolders(limit=0)


@pytest.mark.slow
def test_twenty_ui_runs_leave_at_most_the_limit(temp_dir, tiny_model_dir):
    """The Generate button's own handler, run to the end 20 times, as 20 users' clicks would."""
    settings = load_settings(overrides={"app.max_result_folders": 3, "app.stream_interval": 0.0})
    engine = Tempo(load_model(str(tiny_model_dir["llama"])), settings)
    scheduler = Scheduler(engine, max_batch_size=4)
    try:
        demo = create_demo(scheduler, settings)
        assert demo.delete_cache == (3600, 3600)  # Gradio's copies of the downloads go after app.download_cache_age
        handler = next(f for f in demo.fns.values() if f.api_name == "ui_generate")
        values = {c.elem_id: c.value for c in handler.inputs}
        assert len(values) == len(handler.inputs)  # every control named once, in the handler's order
        values.update({"prompt": "the cat sat on the", "ctl-mode": "tempo", "ctl-max_tokens": 3})
        for _ in range(20):
            final = list(handler.fn(*values.values()))[-1]
            downloads = [Path(v.value["path"]) for v in final.values() if isinstance(v, gr.DownloadButton)]
            assert [p.name for p in downloads] == ["tempo_result.json", "tempo_candidates.csv"]
            assert all(p.exists() for p in downloads)  # Gradio's copy (under temp_dir/gradio), served to the page
        assert len(result_folders(temp_dir)) == 3
    finally:
        scheduler.close()
