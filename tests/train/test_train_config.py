"""Run configs: the shipped YAML files load, and mistakes get messages naming file, key and allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from train_fixtures import REPO_ROOT, TINY_CONFIG

from deqff.train.cli import parse_overrides
from deqff.train.config import ConfigError, RunConfig, load_config

SHIPPED = sorted((REPO_ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_configs_load_and_round_trip(path: Path) -> None:
    config = load_config(path)
    again = RunConfig.from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict())), "copy")
    assert again == config


def test_shipped_configs_include_the_four_runs() -> None:
    names = {p.name for p in SHIPPED}
    assert {"ethanol_deq.yaml", "aspirin_deq.yaml", "aspirin_explicit.yaml", "tiny_test.yaml"} <= names


def _write(tmp_path: Path, change: dict) -> Path:
    raw = yaml.safe_load(TINY_CONFIG.read_text())
    for dotted, value in change.items():
        section, key = dotted.split(".")
        raw[section][key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_unknown_key_names_file_section_and_allowed_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, {"train.learning_rate": 0.1})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "learning_rate" in message and "'train'" in message
    assert "lr" in message and "allowed" in message


def test_unknown_section(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(TINY_CONFIG.read_text()), "optimizer": {"lr": 1}}))
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['optimizer'\].*allowed"):
        load_config(path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"train.dtype": "float16"}, r"train\.dtype='float16' \(choose from \['float32', 'float64'\]\)"),
        ({"train.schedule": "step"}, r"train\.schedule='step' \(choose from"),
        ({"train.ema_decay": 1.5}, r"train\.ema_decay=1\.5 \(must be in \[0, 1\)"),
        ({"train.lr": -1.0}, r"train\.lr=-1\.0 \(must be > 0\)"),
        ({"train.lr": "fast"}, r"train\.lr='fast': expected a number"),
        ({"train.epochs": 2.5}, r"train\.epochs=2\.5: expected an integer"),
        ({"train.grad_clip": 0}, r"train\.grad_clip=0\.0 \(must be > 0 or null\)"),
        ({"train.malloc": "huge"}, r"train\.malloc='huge' \(choose from \['keep', 'system'\]\)"),
        ({"data.batch_size": 0}, r"data\.batch_size=0 \(must be >= 1\)"),
        (
            {"data.split_mode": "shuffled"},
            r"data\.split_mode='shuffled' \(choose from \['temporal'",
        ),
        ({"data.splits": {"train": 5}}, r"data\.splits lacks part\(s\) \['val'\]"),
        ({"data.units": {"energy": "furlongs"}}, r"data\.units\.energy: unknown unit 'furlongs'"),
        ({"data.units": {"mass": "g"}}, r"data\.units\.mass \(allowed keys: \['energy', 'length'\]\)"),
        ({"model.force_mode": "magic"}, r"section 'model': invalid model config: force_mode='magic'"),
        ({"model.irreps": "8x0e"}, r"section 'model': unknown model config key\(s\) \['irreps'\]"),
        ({"model.correction_states": 1}, r"train\.fpc_weight > 0 needs model\.correction_states >= 2"),
    ],
)
def test_bad_values_are_explained(tmp_path: Path, change: dict, expected: str) -> None:
    path = _write(tmp_path, change)
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_exponent_strings_are_numbers_and_overrides_apply(tmp_path: Path) -> None:
    path = _write(tmp_path, {"train.lr": "1e-3"})  # PyYAML reads 1e-3 (no dot) as a string
    config = load_config(path, {"train.epochs": 7, "output.dir": "elsewhere"})
    assert config.train.lr == 1e-3 and config.train.epochs == 7 and config.output.dir == "elsewhere"


def test_fpc_and_jacobian_need_a_deq(tmp_path: Path) -> None:
    path = _write(tmp_path, {"model.model_type": "explicit"})
    with pytest.raises(ConfigError, match=r"train\.fpc_weight > 0 needs model\.model_type 'deq'"):
        load_config(path)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_cli_overrides_parse_yaml_values() -> None:
    assert parse_overrides(["train.lr=1.0e-3", "data.splits={train: 5, val: 2}", "train.grad_clip=null"]) == {
        "train.lr": 1e-3,
        "data.splits": {"train": 5, "val": 2},
        "train.grad_clip": None,
    }
    with pytest.raises(ValueError, match=r"SECTION\.KEY=VALUE"):
        parse_overrides(["train.lr"])
