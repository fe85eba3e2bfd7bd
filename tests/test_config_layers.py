"""Settings layers: argument > environment (both spellings) > file (profile > default) > shipped default;
TEMPO_CONFIG_FILE, profiles, aliases, the guide's keys as a contract, every rejected key's reason."""
import logging

import pytest

from tempo.settings.loader import PROFILES, REJECTED, load_settings, read_settings
from tempo.errors import SettingsError
from tempo.request import build_request

# The configuration guide's keys (seeds/000_61d20784e6ecd759.txt), the contract of this issue.
GUIDE_KEYS = {
    "logging": ["enable_file_logging", "log_dir", "log_level", "console_logging", "max_log_size_mb", "backup_count",
                "log_format"],
    "model": ["model_id", "device", "quantization", "trust_remote_code", "use_fast_tokenizer", "revision",
              "low_cpu_mem_usage", "torch_dtype", "cache_dir", "local_files_only", "max_memory", "offload_folder",
              "offload_state_dict"],
    "generation": ["max_length", "top_k", "top_p", "temperature", "repetition_penalty", "length_penalty",
                   "beam_width", "use_dynamic_thresholding", "use_retroactive_pruning", "use_parallel_generation",
                   "max_parallel_tokens", "min_steps", "early_stopping", "pad_token_id", "eos_token_id", "use_cache",
                   "selection_threshold"],
    "api": ["host", "port", "cors_origins", "debug", "enable_docs", "api_version", "max_concurrent_requests",
            "request_timeout", "rate_limit", "enable_metrics", "metrics_port", "rate_limit_window",
            "rate_limit_strategy"],
    "debug": ["global_debug", "save_intermediate_states", "log_attention_maps", "profile_memory", "trace_execution"]
    + [f"module_debug.{name}" for name in (
        "token_generator", "attention_manager", "rope_modifier", "model_wrapper", "token_selector",
        "parallel_generator", "experiment_runner", "retroactive_pruner", "mcts_generator", "api", "cache_manager",
        "performance_tracker")],
    "performance": ["enable_profiling", "profile_output_dir", "memory_efficient_mode", "batch_size", "num_workers",
                    "prefetch_factor", "persistent_workers", "pin_memory"],
    "cache": ["enable_prompt_cache", "prompt_cache_size", "enable_kv_cache", "kv_cache_implementation", "cache_dir",
              "max_cache_size_gb", "cache_eviction_policy"],
    "experimental": ["enable_flash_attention", "enable_xformers", "enable_torch_compile", "torch_compile_mode",
                     "enable_gradient_checkpointing", "mixed_precision"],
    "pruning": ["attention_threshold", "dynamic_threshold"],
    "mcts": ["simulations"],
}
NESTED = "debug.module_debug.token_generator"


pytestmark = pytest.mark.usefixtures("clean_tempo_env")  # no TEMPO_ variable of the caller's shell


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("key", [f"{s}.{k}" for s, keys in GUIDE_KEYS.items() for k in keys])
def test_every_key_of_the_guide_is_a_setting(key):
    loaded = read_settings()
    assert loaded.raw.get(key) is not None, key
    assert loaded.errors == [] and loaded.unknown == []


def test_precedence_argument_environment_file_default_for_a_nested_key(monkeypatch, tmp_path):
    assert read_settings().source(NESTED) == "default"
    file = write(tmp_path / "s.toml", "[default.debug.module_debug]\ntoken_generator = true\n")
    loaded = read_settings(file)
    assert loaded.raw.get(NESTED) is True and loaded.source(NESTED) == f"file {file} [default]"
    monkeypatch.setenv("TEMPO_DEBUG__MODULE_DEBUG__TOKEN_GENERATOR", "false")
    loaded = read_settings(file)
    assert loaded.raw.get(NESTED) is False
    assert loaded.source(NESTED) == "environment TEMPO_DEBUG__MODULE_DEBUG__TOKEN_GENERATOR"
    loaded = read_settings(file, overrides={NESTED: True})
    assert loaded.raw.get(NESTED) is True and loaded.source(NESTED) == "argument --set"


def test_precedence_reaches_the_request(monkeypatch, tmp_path):
    file = write(tmp_path / "s.toml", "[default.pruning]\nattention_threshold = 0.2\n")
    assert build_request("x", load_settings()).attention_threshold == 0.01  # shipped default
    assert build_request("x", load_settings(file)).attention_threshold == 0.2  # file
    monkeypatch.setenv("TEMPO_PRUNING_ATTENTION_THRESHOLD", "0.3")
    assert build_request("x", load_settings(file)).attention_threshold == 0.3  # environment
    assert build_request("x", load_settings(file), attention_threshold=0.4).attention_threshold == 0.4  # argument


@pytest.mark.parametrize("variable,value,key,expected", [
    ("TEMPO_MODEL_DEVICE", "cpu", "model.device", "cpu"),
    ("TEMPO_GENERATION_MAX_LENGTH", "500", "generation.max_tokens", 500),
    ("TEMPO_DEBUG_MODULE_DEBUG_TOKEN_GENERATOR", "true", NESTED, True),
    ("TEMPO_DEBUG_GLOBAL_DEBUG", "true", "debug.global_debug", True),
    ("TEMPO_API_PORT", "8080", "api.port", 8080),
    ("TEMPO_PRUNING_ATTENTION_THRESHOLD", "0.05", "pruning.attention_threshold", 0.05),
    ("TEMPO_MCTS_ENABLED", "true", "generation.mode", "mcts"),
    ("TEMPO_GENERATION_DEFAULT_MODE", "true", "generation.mode", "default"),
    ("TEMPO_MCTS_SIMULATIONS", "7", "mcts.simulations", 7),
    ("TEMPO_COGITO_THINKING_ENABLED", "true", "generation.enable_thinking", True),
    ("TEMPO_GENERATION_USE_RETROACTIVE_PRUNING", "true", "pruning.use_retroactive_pruning", True),
    ("TEMPO_PRUNING_BEZIER_P1", "0.3", "generation.bezier_p1", 0.3),
    ("TEMPO_LOGGING_LOG_LEVEL", "DEBUG", "logging.log_level", "DEBUG"),
    ("TEMPO_MODEL_MODEL_ID", "some/model", "model.model_id", "some/model"),
])
def test_single_underscore_spelling(monkeypatch, variable, value, key, expected):
    monkeypatch.setenv(variable, value)
    loaded = read_settings()
    assert loaded.raw.get(key) == expected
    assert loaded.source(key).startswith(f"environment {variable}")
    assert loaded.errors == [] and loaded.unknown == []
    assert variable.removeprefix("TEMPO_") not in loaded.raw  # no stray top-level key


def test_double_underscore_wins_over_single(monkeypatch):
    monkeypatch.setenv("TEMPO_API_PORT", "8080")
    monkeypatch.setenv("TEMPO_API__PORT", "9000")
    loaded = read_settings()
    assert loaded.settings.api.port == 9000 and loaded.source("api.port") == "environment TEMPO_API__PORT"
    assert any("TEMPO_API_PORT" in note for note in loaded.notes)


def test_unknown_single_underscore_variable_is_reported(monkeypatch, caplog):
    monkeypatch.setenv("TEMPO_GENERATION_TEMPRATURE", "0.5")
    loaded = read_settings()
    assert any("TEMPO_GENERATION_TEMPRATURE names no setting" in line for line in loaded.unknown)
    logger = logging.getLogger("tempo.settings.loader")
    logger.addHandler(caplog.handler)  # the "tempo" logger may not propagate (tempo.settings.logs)
    try:
        load_settings()  # a warning at load, not an error
    finally:
        logger.removeHandler(caplog.handler)
    assert "TEMPO_GENERATION_TEMPRATURE names no setting" in caplog.text


def test_profile_and_config_file_variables_are_not_settings(monkeypatch):
    monkeypatch.setenv("TEMPO_PROFILE", "development")
    monkeypatch.setenv("TEMPO_CONFIG_FILE", str(read_settings().file))
    loaded = read_settings()
    assert loaded.unknown == [] and "PROFILE" not in loaded.raw and "CONFIG_FILE" not in loaded.raw


def test_config_file_variable_and_settings_argument(monkeypatch, tmp_path):
    env_file = write(tmp_path / "env.toml", "[default.generation]\ntop_k = 11\n")
    arg_file = write(tmp_path / "arg.toml", "[default.generation]\ntop_k = 22\n")
    monkeypatch.setenv("TEMPO_CONFIG_FILE", str(env_file))
    loaded = read_settings()
    assert loaded.file == env_file and loaded.settings.generation.top_k == 11
    assert loaded.settings.generation.top_p == 0.95  # unset keys keep the shipped default
    assert read_settings(arg_file).settings.generation.top_k == 22  # --settings wins over TEMPO_CONFIG_FILE
    monkeypatch.setenv("TEMPO_CONFIG_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(SettingsError, match="missing.toml not found"):
        load_settings()


def test_json_config_file_of_the_guide(monkeypatch, tmp_path):
    file = write(tmp_path / "config.json", '{"model": {"device": null}, "generation": {"max_tokens": 42}}')
    monkeypatch.setenv("TEMPO_CONFIG_FILE", str(file))
    settings = load_settings()
    assert settings.generation.max_tokens == 42 and settings.model.device == "auto"  # null = not set


def test_lists_in_a_file_replace_the_default():
    loaded = read_settings(overrides={"api.cors_origins": ["https://a.example"]})
    assert loaded.raw.api.cors_origins == ["https://a.example"]  # as read: the whole list replaced
    assert loaded.settings.api.cors_origins == ("https://a.example",)  # typed and frozen: a tuple


@pytest.mark.parametrize("profile,key,value", [
    ("development", "logging.log_level", "DEBUG"),
    ("development", "debug.global_debug", True),
    ("production", "logging.log_level", "WARNING"),
    ("production", "api.enable_docs", False),
    ("space", "api.host", "0.0.0.0"),
    ("space", "model.device", "cpu"),
    ("space", "generation.max_tokens_limit", 256),
    ("testing", "generation.max_tokens", 16),
    ("testing", "logging.enable_file_logging", False),
    ("testing", "mcts.simulations", 4),
])
def test_profiles(monkeypatch, profile, key, value):
    assert read_settings().raw.get(key) != value or key == "logging.enable_file_logging"
    monkeypatch.setenv("TEMPO_PROFILE", profile)
    loaded = read_settings()
    assert loaded.raw.get(key) == value and loaded.profile == profile
    assert loaded.errors == [] and loaded.unknown == []
    assert loaded.settings.generation.top_k == 50  # inherits [default]


def test_every_profile_is_valid(monkeypatch):
    for profile in PROFILES:
        monkeypatch.setenv("TEMPO_PROFILE", profile)
        load_settings()


def test_profile_in_a_config_file(monkeypatch, tmp_path):
    file = write(tmp_path / "s.toml", "[default.generation]\ntop_k = 5\n[production.generation]\ntop_k = 6\n")
    monkeypatch.setenv("TEMPO_PROFILE", "production")
    loaded = read_settings(file)
    assert loaded.settings.generation.top_k == 6 and loaded.source("generation.top_k") == f"file {file} [production]"
    assert loaded.settings.logging.log_level == "INFO"  # the project's [production] tables are not read


def test_unknown_profile_names_the_allowed_ones(monkeypatch):
    monkeypatch.setenv("TEMPO_PROFILE", "staging")
    with pytest.raises(SettingsError, match="TEMPO_PROFILE must be one of development, production, space, testing"):
        load_settings()


def test_alias_sets_its_target_unless_the_target_is_set_as_high(monkeypatch, tmp_path):
    file = write(tmp_path / "s.toml", "[default.generation]\nmax_length = 300\nuse_parallel_generation = false\n")
    settings = load_settings(file)
    assert settings.generation.max_tokens == 300 and read_settings(file).raw.generation.max_length == 300
    assert settings.generation.mode == "default"
    assert not hasattr(settings.generation, "max_length")  # an alias resolves at load; code reads the target
    both = write(tmp_path / "b.toml", "[default.generation]\nmax_length = 300\nmax_tokens = 200\n")
    loaded = read_settings(both)
    assert loaded.settings.generation.max_tokens == 200 and loaded.raw.generation.max_length == 200
    assert any("generation.max_length = 300" in note for note in loaded.notes)
    monkeypatch.setenv("TEMPO_GENERATION__MAX_LENGTH", "400")  # environment is above the file
    assert load_settings(both).generation.max_tokens == 400


def test_mcts_enabled_false_leaves_tempo(monkeypatch, tmp_path):
    file = write(tmp_path / "s.toml", '[default.generation]\nmode = "mcts"\n')
    monkeypatch.setenv("TEMPO_MCTS_ENABLED", "false")
    assert load_settings(file).generation.mode == "tempo"


def test_unknown_key_in_a_file_is_reported(tmp_path):
    loaded = read_settings(write(tmp_path / "s.toml", "[default.generation]\ntemprature = 0.5\n"))
    assert loaded.unknown == ["generation.temprature is not a setting of TEMPO (settings.toml names every key)"]


@pytest.mark.parametrize("key,accepted,why", REJECTED, ids=[key for key, _, _ in REJECTED])
def test_rejected_key_says_why(key, accepted, why):
    assert read_settings().raw.get(key) == accepted  # the shipped value is the accepted one
    other = {"": "x", True: False, False: True, 1: 4, 1.0: 1.5, 2: 3, 0: 9090, "v2": "v1", "no": "fp16",
             "default": "static", "lru": "lfu", "sliding_window": "fixed_window"}
    bad = {"cuda": "20GiB"} if accepted == {} else other[accepted]
    with pytest.raises(SettingsError) as error:
        load_settings(overrides={key: bad})
    assert f"{key} = " in str(error.value) and why in str(error.value)


@pytest.mark.parametrize("key,value,message", [
    ("model.quantization", "3bit", "model.quantization must be one of"),
    ("model.max_memory", {"gpu": "2GiB"}, "model.max_memory must be a table of device"),
    ("model.device_map", "everywhere", "model.device_map must be one of"),
    ("experimental.enable_flash_attention", True, "take no arbitrary 4D mask"),
    ("generation.beam_width", 4, "TEMPO does not beam-search"),
    ("generation.length_penalty", 1.2, "TEMPO does not beam-search"),
    ("generation.use_cache", False, "the parallel sets live in the KV cache"),
    ("cache.enable_kv_cache", False, "the parallel sets live in the KV cache"),
    ("api.api_version", "v1", 'only "v2"'),
    ("api.rate_limit_strategy", "token_bucket", "sliding-window log"),
    ("cache.prompt_cache_size", -1, "cache.prompt_cache_size must be an integer >= 0"),
    ("cache.max_cache_size_gb", 0, "cache.max_cache_size_gb must be a number > 0"),
    ("debug.module_debug.api", "loud", "debug.module_debug.api must be true or false"),
    ("performance.enable_profiling", "yes please", "performance.enable_profiling must be true or false"),
    ("model.device", "gpu", "model.device must be auto, cpu, cuda, cuda:N or mps"),
    ("generation.use_parallel_generation", "maybe", "generation.use_parallel_generation"),
])
def test_named_rejections(key, value, message):
    with pytest.raises(SettingsError, match=message.replace(".", r"\.")):
        load_settings(overrides={key: value})


def test_custom_rope_key_is_rejected_with_a_reason(tmp_path):
    with pytest.raises(SettingsError, match="no RoPE modification"):
        load_settings(write(tmp_path / "s.toml", "[default.model]\nuse_custom_rope = true\n"))


def test_every_rejected_key_is_documented():
    from tempo.settings.loader import PROJECT_ROOT

    docs = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    shipped = (PROJECT_ROOT / "settings.toml").read_text().splitlines()
    for key, _, _ in REJECTED:
        section, name = key.split(".", 1)
        assert f"`{key}`" in docs or f"`{name}`" in docs, key
        start = shipped.index(f"[default.{section}]")
        line = next(line for line in shipped[start:] if line.startswith(f"{name} ="))
        assert "# only" in line, line  # the file says which value is accepted, and why


def test_a_space_runs_the_space_profile_unless_told_otherwise(monkeypatch):
    from tempo.settings.loader import active_profile, load_settings

    monkeypatch.delenv("TEMPO_PROFILE", raising=False)
    monkeypatch.setenv("SPACE_ID", "someone/tempo")
    assert active_profile() == "space"
    assert load_settings().generation.max_tokens_limit == 256  # [space.generation]
    monkeypatch.setenv("TEMPO_PROFILE", "production")
    assert active_profile() == "production"
    monkeypatch.setenv("TEMPO_PROFILE", "")
    assert active_profile() == "default"  # set but empty: no profile, as the Space's owner asked
