"""Config loading: YAML + dotted overrides -> frozen dataclasses; one clear error per mistake."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from teduo_ray.config import RunConfig, load_config
from teduo_ray.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("job", ["tiny", "paper"])
def test_shipped_jobs_load(job: str) -> None:
    cfg = load_config(REPO / "jobs" / f"{job}.yaml")
    assert isinstance(cfg, RunConfig)
    assert cfg.run_dir == f"runs/{job}"


def test_paper_job_is_the_paper_setting() -> None:
    cfg = load_config(REPO / "jobs" / "paper.yaml")
    assert cfg.env.level == "BabyAI-Synth-v0"
    assert (cfg.env.num_train_goals, cfg.env.num_test_goals) == (500, 100)
    assert cfg.env.train_layouts == 40 and cfg.env.test_layouts == 2
    assert (cfg.rl.alpha, cfg.rl.gamma, cfg.rl.tolerance) == (0.1, 0.7, 1e-6)
    assert cfg.sft.model == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert (cfg.sft.lora_rank, cfg.sft.lora_alpha, cfg.sft.learning_rate) == (512, 512, 2e-5)


def test_overrides_set_nested_fields_with_yaml_types() -> None:
    cfg = load_config(
        REPO / "jobs" / "tiny.yaml",
        ["rl.gamma=0.9", "env.goal_types=[open, go_to]", "ray.num_cpus=2", "sft.use_gpu=false"],
    )
    assert cfg.rl.gamma == 0.9
    assert cfg.env.goal_types == ("open", "go_to")
    assert cfg.ray.num_cpus == 2
    assert cfg.sft.use_gpu is False


def test_config_is_frozen_and_replace_derives() -> None:
    cfg = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rl.gamma = 0.5  # type: ignore[misc]
    derived = dataclasses.replace(cfg, rl=dataclasses.replace(cfg.rl, gamma=0.5))
    assert derived.rl.gamma == 0.5 and cfg.rl.gamma == 0.7


def test_int_where_float_expected_is_accepted() -> None:
    assert load_config(None, ["rl.alpha=1"]).rl.alpha == 1.0


def test_exponent_floats_without_a_dot_are_numbers(tmp_path: Path) -> None:
    """PyYAML (YAML 1.1) reads "6e-3" as a string; a float field takes it as the number
    users mean, on the command line and in a job file. Other strings stay errors."""
    assert load_config(REPO / "jobs" / "tiny.yaml", ["sft.learning_rate=6e-3"]).sft.learning_rate == 0.006
    assert load_config(None, ["rl.alpha=1E-1", "rl.tolerance=+1e-9"]).rl.tolerance == 1e-9
    job = tmp_path / "job.yaml"
    text = (REPO / "jobs" / "tiny.yaml").read_text().replace("learning_rate: 3.0e-3", "learning_rate: 3e-3")
    assert "learning_rate: 3e-3" in text
    job.write_text(text)
    assert load_config(job).sft.learning_rate == 0.003
    for bad in ("rl.alpha=e-3", "rl.alpha=1e", "rl.alpha=abc", "rl.alpha=nan"):
        with pytest.raises(ConfigError, match="rl.alpha: expected a number"):
            load_config(None, [bad])
    with pytest.raises(ConfigError, match="sft.epochs: expected an integer"):
        load_config(None, ["sft.epochs=1e3"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rl.gama=0.5", "unknown key rl.gama (did you mean rl.gamma?)"),
        ("bogus=1", "unknown key bogus"),
        ("sft.epochs=abc", "sft.epochs: expected an integer"),
        ("sft.epochs=2.5", "sft.epochs: expected an integer"),
        ("sft.use_gpu=3", "sft.use_gpu: expected true/false"),
        ("rl.gamma=1.0", "rl.gamma: must be in [0, 1)"),
        ("env.heldout_fraction=0", "env.heldout_fraction: must be in (0, 1)"),
        ("env.text_mode=pixels", "env.text_mode: 'pixels' is not one of"),
        ("env.goal_types=[go_to, fly]", "env.goal_types[1]: 'fly' is not one of"),
        ("data.behaviour={bot: 1, expert: 2}", "data.behaviour: unknown policies ['expert']"),
        ("labeling.reward_max_pairs=-1", "labeling.reward_max_pairs: must be >= 0 (0 = all)"),
        ("labeling.reward_view_radius=-2", "labeling.reward_view_radius: must be >= 0 (0 = whole grid)"),
        ("labeling.precision_target=1.5", "labeling.precision_target: in [0, 1] (0 = no precision targeting"),
        ("eval.llm_replicas=0", "eval.llm_replicas: must be >= 1"),
        ("eval.llm_in_actor=false", "eval.llm_replicas: needs eval.llm_in_actor=true"),  # tiny.yaml has 2
        ("data.behaviour={bot: 0}", "data.behaviour: weights must be >= 0 and not all zero"),
        ("rl=3", "rl: expected a mapping"),
        ("sft.bf16=true", "sft.bf16: needs sft.use_gpu=true"),
        ("nokey", "expected dotted key=value"),
    ],
)
def test_bad_values_raise_one_clear_error(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(REPO / "jobs" / "tiny.yaml", [override])
    assert message in str(info.value)


def test_bad_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listy)


def test_section_hash_tracks_only_named_sections() -> None:
    base = load_config(None)
    assert base.section_hash("env", "data") == load_config(None, ["rl.gamma=0.5"]).section_hash("env", "data")
    assert base.section_hash("env", "data") != load_config(None, ["data.bot_epsilon=0.5"]).section_hash("env", "data")
    assert base.section_hash("env", "data") != load_config(None, ["seed=1"]).section_hash("env", "data")
