"""`deqff export`: options reach the file's metadata and behavior; checkpoints of both layouts load."""

from __future__ import annotations

import json

import pytest
import torch

from deqff.cli import main
from deqff.export.export import export_model, load_potential, model_from_checkpoint
from deqff.export.metadata import FORMAT_VERSION, ModelFormatError, read_metadata
from deqff.export.options import ExportOptions
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, tiny_model, write_checkpoint


def test_export_command_writes_options_into_the_model(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "ckpt.pt", tiny_model(force_mode="direct"))
    out = tmp_path / "model.pt"
    argv = ["export", str(checkpoint), "-o", str(out), "--force-mode", "conservative", "--tol", "1e-5"]
    argv += ["--max-iter", "25", "--fallback-max-iter", "80", "--dtype", "float32"]
    argv += ["--convention", "openmm-energy", "--adjoint-max-iter", "40", "--adjoint-tol", "1e-5"]
    assert main(argv) == 0
    assert "force mode conservative, float32, convention openmm-energy" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta.format_version == FORMAT_VERSION and meta.model_type == "deq"
    assert (meta.force_mode, meta.dtype, meta.cutoff, meta.elements) == (
        "conservative",
        "float32",
        3.0,
        ["H", "C", "O"],
    )
    assert meta.solver["inference"]["tol"] == 1e-5 and meta.solver["inference"]["max_iter"] == 25
    assert meta.solver["fallback"]["max_iter"] == 80 and meta.solver["adjoint"]["max_iter"] == 40
    assert meta.solver["warm_start"] is True
    assert meta.extra["forward_energy_unit"] == "kJ/mol" and meta.extra["forward_length_unit"] == "nm"
    module, _ = load_potential(out, ETHANOL_NUMBERS)
    strings = module.metadata()
    assert strings["format_version"] == str(FORMAT_VERSION) and strings["dtype"] == "float32"
    assert json.loads(strings["solver"])["inference"]["tol"] == 1e-5
    x = (torch.tensor(ETHANOL, dtype=torch.float64) / 10).requires_grad_(True)
    energy = module(x)  # energy only, float64 out of a float32 model
    energy.backward()
    assert energy.dtype == torch.float64 and x.grad.abs().max() > 0


def test_float32_export_is_close_to_float64(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "ckpt.pt", tiny_model(force_mode="conservative"))
    x = torch.tensor(ETHANOL, dtype=torch.float64)
    results = {}
    for dtype in ("float32", "float64"):
        out = tmp_path / f"{dtype}.pt"
        main(
            [
                "export",
                str(checkpoint),
                "-o",
                str(out),
                "--dtype",
                dtype,
                "--tol",
                "1e-5",
                "--adjoint-tol",
                "1e-5",
            ]
        )
        module, _ = load_potential(out, ETHANOL_NUMBERS)
        results[dtype] = module.compute(x)
    assert results["float32"][0].item() == pytest.approx(results["float64"][0].item(), rel=1e-5)
    torch.testing.assert_close(results["float32"][1], results["float64"][1], rtol=1e-3, atol=1e-3)


def test_export_command_defaults_to_float32_unless_the_tolerance_needs_float64(tmp_path, capsys):
    direct = write_checkpoint(tmp_path / "direct.pt", tiny_model(force_mode="direct"))  # tol 1e-6
    assert main(["export", str(direct), "-o", str(tmp_path / "direct32.pt")]) == 0
    assert read_metadata(tmp_path / "direct32.pt").dtype == "float32"
    assert "exporting float64" not in capsys.readouterr().out
    # The conservative tiny model's adjoint tolerance (1e-8) is below float32's reach: float64, said.
    conservative = write_checkpoint(tmp_path / "cons.pt", tiny_model(force_mode="conservative"))
    assert main(["export", str(conservative), "-o", str(tmp_path / "cons64.pt")]) == 0
    out = capsys.readouterr().out
    assert "exporting float64: adjoint_tol=1e-08 is below what float32 resolves" in out
    assert "--adjoint-tol 1e-06 or looser" in out
    assert read_metadata(tmp_path / "cons64.pt").dtype == "float64"
    argv = ["export", str(conservative), "-o", str(tmp_path / "cons32.pt"), "--adjoint-tol", "1e-5"]
    assert main(argv) == 0
    assert read_metadata(tmp_path / "cons32.pt").dtype == "float32"
    # An explicit --dtype is kept (or refused when it cannot hold the tolerance).
    assert main(["export", str(direct), "-o", str(tmp_path / "direct64.pt"), "--dtype", "float64"]) == 0
    assert read_metadata(tmp_path / "direct64.pt").dtype == "float64"
    with pytest.raises(ValueError, match="adjoint_tol=1e-08 is below what float32 can resolve"):
        main(["export", str(conservative), "-o", str(tmp_path / "x.pt"), "--dtype", "float32"])


def test_direct_export_of_a_conservative_checkpoint_warns(tmp_path, capsys):
    """Its direct force head was not what training fitted: the export says so (and still writes the file)."""
    conservative = write_checkpoint(tmp_path / "cons.pt", tiny_model(force_mode="conservative"))
    argv = ["export", str(conservative), "-o", str(tmp_path / "direct.pt"), "--force-mode", "direct"]
    assert main(argv) == 0
    assert "trained with force mode 'conservative'" in capsys.readouterr().err
    assert read_metadata(tmp_path / "direct.pt").force_mode == "direct"
    direct = write_checkpoint(tmp_path / "direct_ckpt.pt", tiny_model(force_mode="direct"))
    assert main(["export", str(direct), "-o", str(tmp_path / "d.pt"), "--force-mode", "direct"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_checkpoints_prefer_ema_weights(tmp_path):
    model = tiny_model()
    checkpoint = {
        "model_config": model.config.to_dict(),
        "state_dict": {
            k: torch.zeros_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()
        },
        "ema_state_dict": model.state_dict(),
        "dtype": "float64",
    }
    torch.save(checkpoint, tmp_path / "ckpt.pt")
    ema = model_from_checkpoint(tmp_path / "ckpt.pt")
    raw = model_from_checkpoint(tmp_path / "ckpt.pt", weights="model")
    assert torch.equal(ema.energy_head.mlp[-1].weight, model.energy_head.mlp[-1].weight)
    assert torch.all(raw.energy_head.mlp[-1].weight == 0)


def test_training_checkpoint_layout_is_accepted(tmp_path):
    from deqff.train.checkpoint import save_checkpoint

    model = tiny_model()
    state = {"model_config": model.config.to_dict(), "state_dict": model.state_dict(), "dtype": "float64"}
    save_checkpoint(tmp_path / "train.pt", {**state, "ema_state_dict": model.state_dict()})
    loaded = model_from_checkpoint(tmp_path / "train.pt")
    assert torch.equal(loaded.energy_head.shift, model.energy_head.shift)


def test_not_a_checkpoint(tmp_path, exported):
    with pytest.raises(ModelFormatError, match="is an exported TorchScript model, not a training checkpoint"):
        model_from_checkpoint(exported("direct"))
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ModelFormatError, match="needs 'model_config' and 'state_dict'"):
        model_from_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"adjoint_tol=1e-08 is below what float32 can resolve"):
        export_model(tiny_model(force_mode="conservative"), tmp_path / "y.pt", ExportOptions(dtype="float32"))
    direct = write_checkpoint(tmp_path / "direct.pt", tiny_model(force_mode="direct"))
    with pytest.raises(ValueError, match="'openmm-energy' returns only the energy"):
        main(["export", str(direct), "-o", str(tmp_path / "x.pt"), "--convention", "openmm-energy"])
