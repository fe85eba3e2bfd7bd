"""Trainer configuration: presets with the seeds' dimensions, precedence, and clear errors."""
import ast
import dataclasses
import inspect

import pytest
import torch

from tempo.cli.main import main
from tempo.settings.loader import load_settings
from tempo.settings.schema import TrainSettings
from tempo.train import config as train_config
from tempo.train.config import MODEL_KEYS, MODEL_PRESETS, TrainConfig, TrainConfigError, load_yaml, resolve_config
from tempo.train.modeling import architecture, build_model, count_parameters, expected_parameters

SEEDS_TABLE = {  # the seeds' model-size table: d_model, n_layers, n_heads, d_ff, max_seq_len, vocab_size
    "tiny": (256, 4, 4, 1024, 512, 32000),
    "medium": (768, 12, 12, 3072, 1024, 32000),
    "large": (1600, 32, 25, 6400, 4096, 32000),
    "xlarge": (2048, 40, 32, 8192, 8192, 32000),
}


@pytest.mark.parametrize("size", list(SEEDS_TABLE))
def test_preset_builds_with_the_seeds_dimensions(size):
    config = resolve_config({}, {}, {"model_size": size})
    model = build_model(config, device="meta")  # shapes only: no memory for the 2.7B model
    hf = model.config
    dims = (hf.hidden_size, hf.num_hidden_layers, hf.num_attention_heads, hf.intermediate_size,
            hf.max_position_embeddings, hf.vocab_size)
    assert dims == SEEDS_TABLE[size]
    assert type(model).__name__ == "LlamaForCausalLM"
    assert all(p.device.type == "meta" for p in model.parameters())
    assert count_parameters(model) == expected_parameters(config)


def test_parameter_counts_match_the_seeds_sizes():
    counts = {size: expected_parameters(resolve_config({}, {}, {"model_size": size})) for size in MODEL_PRESETS}
    assert 10e6 <= counts["tiny"] <= 13e6       # seeds: ~10M
    assert 130e6 <= counts["medium"] <= 170e6   # seeds: ~150M
    assert 1.3e9 <= counts["large"] <= 1.7e9    # seeds: ~1.6B
    assert 2.6e9 <= counts["xlarge"] <= 2.9e9   # seeds say ~7B; their own dimensions give 2.75B
    assert counts["nano"] < 6e6


@pytest.mark.parametrize("rmsnorm, rope, kind, cls", [
    (True, True, "llama", "LlamaForCausalLM"),
    (False, True, "gpt_neox", "GPTNeoXForCausalLM"),
    (False, False, "gpt2", "GPT2LMHeadModel"),
])
def test_norm_and_position_options_map_to_standard_architectures(rmsnorm, rope, kind, cls):
    config = resolve_config({}, {}, dict(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_seq_len=16, vocab_size=300,
                                         use_rmsnorm=rmsnorm, use_rope=rope, dropout=0.1))
    assert architecture(config) == kind
    model = build_model(config)
    assert type(model).__name__ == cls
    assert count_parameters(model) == expected_parameters(config)
    ids = torch.randint(0, 300, (2, 16))
    assert model(input_ids=ids, labels=ids).loss.isfinite()


def test_rmsnorm_without_rope_is_refused():
    with pytest.raises(TrainConfigError, match="use_rmsnorm without use_rope is not supported"):
        resolve_config({}, {}, {"use_rmsnorm": True, "use_rope": False})


@pytest.mark.parametrize("values, message", [
    ({"model_size": "huge"}, "model_size must be one of tiny, medium, large, xlarge, nano, got 'huge'"),
    ({"learning_rate": -1e-4}, "learning_rate must be > 0, got -0.0001"),
    ({"d_model": 250}, r"d_model \(250\) must be divisible by n_heads \(4\)"),
    ({"stage": "pretrain"}, "stage must be one of language, code, tools, rlhf"),
    ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ({"lr_decay": "step"}, "lr_decay must be one of cosine, linear, constant"),
    ({"val_fraction": 1.5}, r"val_fraction must be in \(0, 1\)"),
    ({"seq_length": 1000}, r"seq_length \(1000\) must be <= max_seq_len \(256\)"),
])
def test_bad_values_raise_a_clear_error(values, message):
    with pytest.raises(TrainConfigError, match=message):
        resolve_config({}, {}, values)


def test_unknown_option_and_bad_type_name_the_key():
    with pytest.raises(TrainConfigError, match="--config: unknown option 'learnin_rate'"):
        resolve_config({}, {"learnin_rate": 1e-3})
    with pytest.raises(TrainConfigError, match="--config: batch_size must be int, got 'two'"):
        resolve_config({}, {"batch_size": "two"})


def test_precedence_flags_over_yaml_over_presets_over_settings(tmp_path):
    path = tmp_path / "code.yaml"
    path.write_text("stage: code\nbatch_size: 2\nlearning_rate: 5e-6\nnum_epochs: 5\nuse_amp: true\n"
                    "name: tiny\nd_ff: 512\n")
    yaml_values = load_yaml(path)
    config = resolve_config({"learning_rate": 1.0, "warmup_steps": 7, "d_model": 64, "grad_clip": 0.5},
                            yaml_values, {"batch_size": 4, "use_amp": None})
    assert config.learning_rate == 5e-6     # YAML "5e-6" (a string to YAML 1.1) read as a float
    assert config.batch_size == 4           # flag over YAML
    assert config.use_amp is True           # an unset flag (None) leaves the YAML value
    assert config.warmup_steps == 1000      # the code stage over the settings section
    assert config.grad_clip == 1.0          # the code stage
    assert (config.d_model, config.d_ff) == (256, 512)  # preset `tiny` over settings, YAML over preset
    no_stage = resolve_config({"learning_rate": 3e-4, "warmup_steps": 7}, {}, {})
    assert (no_stage.learning_rate, no_stage.warmup_steps) == (3e-4, 7)


def test_stage_presets_use_the_seeds_learning_rates():
    assert resolve_config({}, {}, {"stage": "language"}).learning_rate == 1e-4
    assert resolve_config({}, {}, {"stage": "code"}).learning_rate == 5e-6


def test_settings_section_and_environment(monkeypatch):
    from tempo.cli.main import build_parser
    from tempo.cli.train import config_from_args

    monkeypatch.setenv("TEMPO_TRAIN__LEARNING_RATE", "3e-4")
    monkeypatch.setenv("TEMPO_TRAIN__BATCH_SIZE", "5")
    settings = load_settings()
    config = config_from_args(build_parser().parse_args(["train", "--max-steps", "7"]), settings)
    assert (config.learning_rate, config.batch_size, config.max_steps) == (3e-4, 5, 7)
    assert config.file_patterns == ["*.py"] and config.model_size == "nano"
    assert TrainConfig(**{**config.to_dict()}).validate() == config


def test_settings_validator_rejects_a_negative_learning_rate(monkeypatch):
    from tempo.errors import SettingsError

    monkeypatch.setenv("TEMPO_TRAIN__LEARNING_RATE", "-0.001")
    with pytest.raises(SettingsError, match="train.learning_rate must be > 0"):
        load_settings()


@pytest.mark.parametrize("argv, message", [
    (["train", "--model-size", "huge"], "model_size must be one of"),
    (["train", "--learning-rate", "-1"], "learning_rate must be > 0"),
    (["train", "--n-heads", "3"], "d_model (256) must be divisible by n_heads (3)"),
    (["train", "prepare", "--corpus-dir", "/no/such/folder"], "corpus_dir: /no/such/folder is not a folder"),
    (["train", "--data-dir", "/no/such/data"], "no prepared data in /no/such/data"),
])
def test_cli_reports_one_line_and_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def test_every_train_settings_key_has_the_declared_default():
    """A TrainConfig field that is a ``train`` settings key defaults to TrainSettings' declaration; the
    model dimensions (no settings keys) to the default model_size's preset; nothing else is a field."""
    declared = {f.name: f.default for f in dataclasses.fields(TrainSettings)}
    config = {f.name: _default(f) for f in dataclasses.fields(TrainConfig)}
    assert set(config) == set(declared) | set(MODEL_KEYS)
    for name, value in declared.items():
        expected = list(value) if isinstance(value, tuple) else value  # TrainConfig's lists are mutable
        assert config[name] == expected and type(config[name]) is type(expected), name
    assert {k: config[k] for k in MODEL_KEYS} == MODEL_PRESETS[declared["model_size"]]
    assert TrainConfig().validate() == TrainConfig()


def test_train_config_writes_no_default_of_its_own():
    """The defaults are declared once: TrainConfig's class body names the declaration, it writes no
    literal (even one equal to the declared default) for a settings key or a model dimension."""
    tree = ast.parse(inspect.getsource(train_config))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TrainConfig").body
    defaults = {n.target.id: n.value for n in body if isinstance(n, ast.AnnAssign) and n.value is not None}
    settings_keys = {f.name for f in dataclasses.fields(TrainSettings)}
    assert settings_keys <= set(defaults)
    for name in settings_keys:
        literals = [ast.unparse(n) for n in ast.walk(defaults[name]) if isinstance(n, ast.Constant)]
        assert not literals, f"TrainConfig.{name} writes {literals}: take the default from TrainSettings"
    for name in MODEL_KEYS:
        assert ast.unparse(defaults[name]) == f"_SIZE['{name}']", name
