"""Issue 15, the seeds' flags in process: ``threshold`` as the alias of ``selection_threshold`` (declared once,
resolved by ``build_request``), the global flags after the command, ``--use-custom-rope`` (always on, said once),
and ``--save-visualization`` (every plot of the Plots tab as PNG, the result JSON, the candidates CSV).
The seeds' command lines themselves run in tests/test_seed_commands.py."""
import json

import matplotlib.image
import pandas as pd
import pytest

from tempo.cli import build_parser, main
from tempo.cli.visualization import plot_name, run_folder, slug
from tempo.errors import RequestError
from tempo.fields import resolve_aliases
from tempo.request import FIELDS, build_request
from tempo.result import GenerationResult
from tempo.serve.rest import request_model
from tempo.ui.downloads import CSV_NAME, JSON_NAME
from tempo.ui.plots import result_figures

pytestmark = pytest.mark.usefixtures("clean_tempo_env")


# --- threshold, the seeds' name of selection_threshold ----------------------------------------------------------

def test_threshold_is_declared_once_as_an_alias_of_selection_threshold():
    assert FIELDS["selection_threshold"].aliases == ("threshold",)
    assert [spec.name for spec in FIELDS.values() if spec.aliases] == ["selection_threshold"]
    assert FIELDS["selection_threshold"].cli[0].names == ("--selection-threshold", "--threshold")


def test_threshold_keyword_sets_selection_threshold():
    assert build_request("x", threshold=0.3).selection_threshold == 0.3
    assert build_request("x", threshold=None, selection_threshold=0.2).selection_threshold == 0.2
    assert build_request("x").selection_threshold == FIELDS["selection_threshold"].default


def test_threshold_and_selection_threshold_together_is_an_error_naming_both():
    with pytest.raises(RequestError) as caught:
        build_request("x", threshold=0.3, selection_threshold=0.2)
    assert caught.value.field == "selection_threshold"
    assert "threshold (its other name)" in str(caught.value) and str(caught.value).startswith("selection_threshold:")


def test_a_bad_threshold_is_checked_as_selection_threshold():
    with pytest.raises(RequestError, match=r"selection_threshold: must be in \[0.0, 1.0\], got 2.0"):
        build_request("x", threshold=2.0)


def test_resolve_aliases_leaves_other_names_alone():
    given = {"max_tokens": 3, "threshold": 0.4, "unknown": 1}
    assert resolve_aliases(given, FIELDS) == {"max_tokens": 3, "selection_threshold": 0.4, "unknown": 1}
    assert given == {"max_tokens": 3, "threshold": 0.4, "unknown": 1}  # the caller's dict is not changed


def test_rest_body_accepts_threshold_and_still_forbids_unknown_fields():
    Body = request_model()
    assert Body(prompt="x", threshold=0.1).model_dump(exclude_none=True) == {"prompt": "x", "threshold": 0.1}
    with pytest.raises(Exception, match="threshol"):
        Body(prompt="x", threshol=0.1)


# --- the global flags after the command -------------------------------------------------------------------------

GLOBAL = {"debug_mode": True, "profile": True}


@pytest.mark.parametrize("before", [True, False])
@pytest.mark.parametrize("command", [["generate", "--prompt", "x"], ["compare", "--prompt", "x"], ["info"],
                                     ["config", "--show"], ["train"], ["train", "prepare"], ["deploy"]])
def test_global_flags_are_accepted_before_or_after_the_command(command, before, tmp_path):
    flags = ["--debug-mode", "--use-cprofile", "--profile-output", str(tmp_path / "p.prof"),
             "--settings", str(tmp_path / "s.toml")]
    args = build_parser().parse_args(flags + command if before else command + flags)
    assert (args.debug_mode, args.profile) == (True, True)
    assert args.profile_output == tmp_path / "p.prof" and args.settings == tmp_path / "s.toml"


@pytest.mark.parametrize("command", [["generate", "--prompt", "x"], ["info"]])
def test_flags_left_out_keep_their_defaults_and_a_flag_before_stays_set(command):
    args = build_parser().parse_args(command)
    assert (args.debug_mode, args.profile, args.profile_output, args.settings) == (False, False, None, None)
    assert build_parser().parse_args(["--debug-mode", *command]).debug_mode is True


def test_dry_run_after_a_command_without_one_names_the_commands_that_have_it(capsys):
    assert main(["info", "--dry-run"]) == 2
    assert "--dry-run: the info command has no dry run (generate, compare, deploy)" in capsys.readouterr().err


# --- --use-custom-rope: always on, said once, changes nothing -----------------------------------------------------

def run_json(capsys, *argv) -> tuple[dict, str]:
    assert main(list(argv)) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    data.pop("timing")
    return data, out.err


def test_use_custom_rope_is_said_once_at_info_and_changes_nothing(tiny_model_dir, capsys):
    model = str(tiny_model_dir["llama"])
    base = ["generate", "--model", model, "--prompt", "the cat sat", "--max-tokens", "6", "--threshold", "0.05",
            "--json"]
    without, err = run_json(capsys, *base)
    assert "--use-custom-rope" not in err
    with_flag, err = run_json(capsys, *base, "--use-custom-rope")
    assert err.count("--use-custom-rope: always on") == 1 and " - INFO - " in err
    assert with_flag == without
    assert any(sum(c["status"] == "kept" for c in step["candidates"]) > 1 for step in with_flag["steps"]), \
        "the run holds a parallel set, whose tokens share a position"


# --- --save-visualization ----------------------------------------------------------------------------------------

def test_slug_and_run_folders(tmp_path):
    assert slug("def read_config(path):") == "def-read-config-path"
    assert slug("  ¿¡!  ") == "prompt" and len(slug("word " * 40)) <= 40
    first = run_folder(tmp_path / "out", "the cat", when=0)
    second = run_folder(tmp_path / "out", "the cat", when=0)
    assert first.name.endswith("-the-cat") and second.name == first.name + "-2"
    assert first.is_dir() and second.is_dir()


def check_saved(folder, result_json: dict) -> None:
    """The folder holds every plot of the Plots tab as a PNG matplotlib reads back, the JSON of the same result
    and a CSV row per candidate."""
    saved = json.loads((folder / JSON_NAME).read_text(encoding="utf-8"))
    assert saved == result_json
    result = GenerationResult.from_dict(saved)
    figures = result_figures(result)
    pngs = sorted(folder.glob("*.png"))
    assert [p.name for p in pngs] == sorted(plot_name(i, f) for i, f in enumerate(figures, start=1))
    for png in pngs:
        assert png.stat().st_size > 0
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0  # something was drawn
    table = pd.read_csv(folder / CSV_NAME)
    candidates = [(s.step, c.token_id, c.status) for s in result.steps for c in s.candidates]
    assert len(table) == len(candidates) > 0
    assert list(zip(table["step"], table["token_id"], table["status"])) == candidates


def test_generate_saves_plots_json_and_csv_in_a_folder_per_run(tiny_model_dir, tmp_path, capsys):
    model = str(tiny_model_dir["llama"])
    assert main(["generate", "--model", model, "--prompt", "the cat sat", "--max-tokens", "6", "--threshold",
                 "0.05", "--use-retroactive-pruning", "--json", "--save-visualization", "--output-dir",
                 str(tmp_path / "out")]) == 0
    printed = json.loads(capsys.readouterr().out)
    (folder,) = (tmp_path / "out").iterdir()
    assert folder.name.endswith("-the-cat-sat")
    check_saved(folder, printed)


def test_compare_saves_each_modes_files_in_its_subfolder(tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default folder: output/ of the working directory
    model = str(tiny_model_dir["llama"])
    assert main(["compare", "--model", model, "--prompt", "the dog", "--max-tokens", "4", "--threshold", "0.05",
                 "--mcts-simulations", "2", "--json", "--save-visualization"]) == 0
    printed = json.loads(capsys.readouterr().out)
    (folder,) = (tmp_path / "output").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == sorted(printed) == sorted(
        ["tempo", "tempo_pruning", "mcts", "default"])
    for mode, result_json in printed.items():
        check_saved(folder / mode, result_json)


def test_output_dir_implies_save_and_dry_run_saves_nothing(tiny_model_dir, tmp_path, capsys):
    model = str(tiny_model_dir["llama"])
    assert main(["generate", "--model", model, "--prompt", "x", "--dry-run", "--output-dir", str(tmp_path / "o")]) == 0
    assert not (tmp_path / "o").exists()
    assert main(["generate", "--model", model, "--prompt", "x", "--max-tokens", "2",
                 "--output-dir", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o").iterdir())) == 1


def test_an_output_dir_that_cannot_be_made_is_one_error_line(tiny_model_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["generate", "--model", str(tiny_model_dir["llama"]), "--prompt", "x", "--max-tokens", "2",
                 "--output-dir", str(blocker / "out")]) == 2
    assert "--output-dir: cannot create a folder in" in capsys.readouterr().err
