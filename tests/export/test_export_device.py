"""Exported models run on the device of their inputs (issue #16 item 6).

openmm-torch moves a TorchForce's module to the Context's GPU (`module.to(cuda:N)`, then freezes it),
the LAMMPS plugin loads it there (`torch::jit::load(path, device)`), the ASE calculator and
PythonForce call `.to(device)`. That works only if every tensor the module's code creates is made on
the device of its inputs or buffers and the warm-start state is made of registered buffers.

Without a GPU here, three checks stand in: the TorchScript graphs of every exported method contain
no tensor factory call without a device (nor a literal CPU device, nor a non-scalar tensor constant);
the state buffers follow a model loaded onto the `meta` device through reset / set_state /
lammps_wigner (which mix a CPU tensor into meta ones only by raising); and the state tensors are
registered buffers. The CUDA tests at the end run where torch sees a GPU (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deqff.export.analytic import export_harmonic_tether, export_smooth_pair
from deqff.export.export import export_checkpoint, export_model, load_potential
from deqff.export.options import ExportOptions
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, freeze, md_like_frames, openmm_inputs, tiny_model

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / "models" / "ethanol_conservative.pt"
SHIPPED_CHECKPOINT = REPO_ROOT / "models" / "ethanol_conservative.ckpt"
NO_CUDA = (
    "no CUDA device visible to torch (torch.cuda.is_available() is False); "
    "benchmarks/gpu_check.sh runs these on a GPU"
)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)

#: ATen factories that take a `device` argument: without one (None) they allocate on the CPU.
FACTORIES = {
    "aten::arange",
    "aten::as_tensor",
    "aten::empty",
    "aten::empty_strided",
    "aten::eye",
    "aten::full",
    "aten::linspace",
    "aten::logspace",
    "aten::ones",
    "aten::rand",
    "aten::randint",
    "aten::randn",
    "aten::randperm",
    "aten::scalar_tensor",
    "aten::tensor",
    "aten::zeros",
}
#: The warm-start state and the per-system tensors of DeqffPotential: registered buffers, so that
#: `module.to(device)` (openmm-torch on CUDA) moves them.
STATE_BUFFERS = {
    "species_table",
    "like",
    "atomic_numbers",
    "species",
    "atom_indices",
    "z_state",
    "g_state",
    "cache_positions",
    "cache_cell",
    "cache_energy",
    "cache_forces",
}


def _nodes(block):
    for node in block.nodes():
        yield node
        for sub in node.blocks():
            yield from _nodes(sub)


def device_problems(module: torch.jit.ScriptModule) -> list[str]:
    """Places in the (inlined) graphs of all of `module`'s methods that make tensors on the CPU
    whatever the device of the inputs: a factory call (FACTORIES) whose device is None or "cpu", a
    literal CPU device, a tensor constant of more than one element (a 0-d constant is a scalar, which
    torch combines with tensors of any device). Each entry: "method: op (source line)"."""
    found: list[str] = []
    for name in module._c._method_names():
        graph = module._c._get_method(name).graph.copy()
        torch._C._jit_pass_inline(graph)
        for node in _nodes(graph):
            kind = node.kind()
            where = str(node).split("#", 1)[-1].strip() if "#" in str(node) else "?"
            if kind in FACTORIES:
                arguments = [a.name for a in torch._C.parse_schema(node.schema()).arguments]
                if "device" not in arguments:
                    found.append(f"{name}: {kind} without a device argument ({where})")
                    continue
                device = list(node.inputs())[arguments.index("device")]
                if device.node().kind() == "prim::Constant":
                    value = device.toIValue()
                    if value is None or (isinstance(value, torch.device) and value.type == "cpu"):
                        found.append(f"{name}: {kind}(device={value}) ({where})")
            elif kind == "prim::Constant":
                output = node.output()
                if isinstance(output.type(), torch._C.DeviceObjType) and output.toIValue().type == "cpu":
                    found.append(f"{name}: literal device 'cpu' ({where})")
                elif isinstance(output.type(), torch._C.TensorType):
                    value = output.toIValue()
                    if value is not None and value.dim() > 0:
                        found.append(f"{name}: tensor constant of shape {list(value.shape)} ({where})")
    return sorted(set(found))


class _DeviceFree(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.zeros(3, dtype=x.dtype)


class _OnInputDevice(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.zeros(3, dtype=x.dtype, device=x.device) + torch.ones_like(x)


class _LiteralCpu(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.ones(3, dtype=x.dtype, device=torch.device("cpu")).to(x.device)


class _Outer(torch.nn.Module):
    """A device-free factory two calls deep (a submodule's helper): found through inlining."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _DeviceFree()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def test_device_check_catches_what_it_is_for():
    assert device_problems(torch.jit.script(_OnInputDevice())) == []
    problems = device_problems(torch.jit.script(_DeviceFree()))
    assert len(problems) == 1 and "aten::zeros(device=None)" in problems[0], problems
    assert "test_export_device.py" in problems[0]  # names the source line
    assert any(
        "literal device 'cpu'" in p or "device=cpu" in p
        for p in device_problems(torch.jit.script(_LiteralCpu()))
    )
    assert len(device_problems(torch.jit.script(_Outer()))) == 1


EXPORTS = {
    "direct": (dict(force_mode="direct"), ExportOptions()),
    "conservative": (dict(force_mode="conservative"), ExportOptions()),
    "phantom": (dict(force_mode="phantom"), ExportOptions()),
    "explicit": (dict(model_type="explicit", depth=2), ExportOptions()),
    "mdet_predictor": (
        dict(force_mode="conservative"),
        ExportOptions(random_rotation=True, remove_net_force=True, remove_net_torque=True, predictor_order=2),
    ),
    "energy_convention": (dict(force_mode="conservative"), ExportOptions(convention="openmm-energy")),
    "prior": (dict(force_mode="direct", repulsion="zbl"), ExportOptions()),
}


@pytest.fixture(scope="module")
def device_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("device_exports")
    paths = {
        name: export_model(tiny_model(**model), out / f"{name}.pt", options)
        for name, (model, options) in EXPORTS.items()
    }
    paths["smooth_pair"] = export_smooth_pair(out / "smooth_pair.pt")
    paths["harmonic_tether"] = export_harmonic_tether(out / "harmonic_tether.pt")
    return paths


@pytest.mark.parametrize("name", [*EXPORTS, "smooth_pair", "harmonic_tether"])
def test_exported_code_makes_tensors_on_the_inputs_device(device_exports, name):
    problems = device_problems(torch.jit.load(str(device_exports[name])))
    assert problems == [], "tensors made on the CPU whatever the input device:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", ["conservative", "mdet_predictor"])
def test_state_buffers_are_registered_and_follow_the_module_device(device_exports, name):
    module = torch.jit.load(str(device_exports[name]), map_location="meta")
    buffers = {key for key, _ in torch._C._jit_debug_module_iterators(module._c)["named_buffers"]}
    assert buffers >= STATE_BUFFERS, f"not registered buffers: {STATE_BUFFERS - buffers}"
    meta = torch.device("meta")
    module.reset()
    assert {t.device for _, t in torch._C._jit_debug_module_iterators(module._c)["named_buffers"]} == {meta}
    dim = int(module.metadata()["feature_dim"])
    state = [torch.zeros(9, dim, dtype=torch.float64, device=meta)] * 2
    module.set_state(state)
    assert all(t.device == meta for t in module.get_state())
    assert module.cache_positions.device == meta and module.cache_forces.device == meta
    assert module.lammps_wigner(torch.eye(3, dtype=torch.float64, device=meta)).device == meta


# -- on a GPU (skipped here) ---------------------------------------------------------------------------
def _calls(module, frames, device):
    out = []
    for frame in frames:
        energy, forces = module.compute(frame.to(device))
        out.append((energy.cpu(), forces.cpu(), module.last_iterations()))
    return out


def _compare_cpu_cuda(path: Path) -> None:
    cpu, _ = load_potential(path, ETHANOL_NUMBERS)
    gpu, _ = load_potential(path)
    gpu.to("cuda")
    gpu.set_atomic_numbers(torch.tensor(ETHANOL_NUMBERS))
    frames = md_like_frames(torch.tensor(ETHANOL, dtype=torch.float64), 6)
    on_cpu = _calls(cpu, frames, "cpu")
    on_gpu = _calls(gpu, frames, "cuda")
    assert gpu.z_state.device.type == "cuda" and gpu.cache_forces.device.type == "cuda"
    if gpu.metadata()["force_mode"] == "conservative":
        assert gpu.g_state.device.type == "cuda"
    for step, ((e_cpu, f_cpu, it_cpu), (e_gpu, f_gpu, it_gpu)) in enumerate(zip(on_cpu, on_gpu, strict=True)):
        assert it_cpu == it_gpu, f"step {step}: {it_gpu} solver iterations on CUDA, {it_cpu} on the CPU"
        torch.testing.assert_close(e_gpu, e_cpu, rtol=0.0, atol=1e-8)
        torch.testing.assert_close(f_gpu, f_cpu, rtol=0.0, atol=1e-8)


@cuda
@pytest.mark.cuda
def test_cuda_shipped_model_matches_cpu():
    _compare_cpu_cuda(SHIPPED)


@cuda
@pytest.mark.cuda
def test_cuda_fresh_export_of_shipped_checkpoint_matches_cpu(tmp_path):
    """The shipped checkpoint exported by this code (the shipped .pt may predate it), tight solves."""
    options = ExportOptions(tol=1e-10, max_iter=200, adjoint_tol=1e-10, adjoint_max_iter=200)
    _compare_cpu_cuda(export_checkpoint(SHIPPED_CHECKPOINT, tmp_path / "ethanol.pt", options))


@cuda
@pytest.mark.cuda
def test_cuda_frozen_forward_as_openmm_torch_runs_it():
    """openmm-torch on CUDA: module.to(cuda), then freeze, then forward with float64 positions on the
    device and a backward-free force output; several calls (warm starts), state on the device."""
    cpu, _ = load_potential(SHIPPED, ETHANOL_NUMBERS)
    gpu, _ = load_potential(SHIPPED, ETHANOL_NUMBERS)
    gpu.to("cuda")
    frozen_cpu, frozen_gpu = freeze(cpu), freeze(gpu)
    for frame in md_like_frames(torch.tensor(ETHANOL, dtype=torch.float64), 4):
        energy, forces = frozen_gpu(openmm_inputs(frame).cuda())
        energy_ref, forces_ref = frozen_cpu(openmm_inputs(frame))
        assert energy.device.type == "cuda" and forces.device.type == "cuda"
        torch.testing.assert_close(energy.cpu(), energy_ref, rtol=1e-11, atol=1e-6)  # kJ/mol
        torch.testing.assert_close(forces.cpu(), forces_ref, rtol=1e-11, atol=1e-6)
