"""The host-driven conservative pieces (deqff.export.graph_step: energy_grad, iterate_vjp, position_grad)
run by an emulated domain-decomposed host: ranks owning parts of a periodic box, ghost atoms (other
ranks' atoms and periodic images) filled by "forward communication" and their gradients summed into
their owners by "reverse communication", as the LAMMPS plugin does. The energy, the forces and the
fdotr virial over local + ghost atoms must equal the module's own conservative evaluation and -dE/dε
by finite differences of a box strain, for 1 and 2 ranks and for a layer of two blocks (two stages).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import torch

from deqff.export.export import export_model, load_potential
from deqff.export.options import ExportOptions
from deqff.export.testing import ETHANOL, ETHANOL_NUMBERS, tiny_model

CUTOFF = 3.0  # tiny_model's
BOX = 6.4  # Å, at least 2 * cutoff: minimum image for the module's own evaluation
TIGHT = dict(tol=1e-12, max_iter=300, adjoint_tol=1e-12, adjoint_max_iter=300)


@dataclass
class Rank:
    """One emulated rank: rows [n_all] = local atoms first, then ghosts; `atom` maps rows to owners."""

    atom: torch.Tensor  # [n_all] global atom index of each row
    positions: torch.Tensor  # [n_all, 3] Å (ghosts at their image positions)
    species: torch.Tensor  # [n_all]
    edges: torch.Tensor  # [2, E] row 0 local i, row 1 neighbor row j (full list)
    n_local: int


def build_rank(positions: torch.Tensor, species: torch.Tensor, cell: torch.Tensor, owned: list[int]) -> Rank:
    images = [torch.tensor(n, dtype=torch.float64) @ cell for n in itertools.product((-1, 0, 1), repeat=3)]
    atom, rows = list(owned), [positions[a] for a in owned]
    local = positions[owned]
    for a in range(positions.shape[0]):
        for shift in images:
            if a in owned and bool((shift == 0).all()):
                continue
            p = positions[a] + shift
            if float(torch.linalg.norm(local - p, dim=-1).min()) < CUTOFF:
                atom.append(a)
                rows.append(p)
    x = torch.stack(rows)
    dist = torch.cdist(x[: len(owned)], x)
    i, j = torch.nonzero((dist < CUTOFF) & (dist > 0), as_tuple=True)
    atom_t = torch.tensor(atom)
    return Rank(atom_t, x, species[atom_t], torch.stack([i, j]), len(owned))


def host_conservative(module, ranks: list[Rank], n_atoms: int, stages: int):
    """(energy eV, forces [N, 3] eV/Å, virial [3, 3] eV = sum over ranks and rows of -x ⊗ dE/dx)."""
    D = int(module.metadata()["feature_dim"])
    zeros = torch.zeros(n_atoms, D, dtype=torch.float64)
    owners = [rank.atom[: rank.n_local] for rank in ranks]
    embedded = [module.lammps_embed(r.positions, r.species, r.edges, r.n_local) for r in ranks]
    injection = zeros.clone()
    for own, (inj, _) in zip(owners, embedded, strict=True):
        injection[own] = inj

    def stage_pass(z: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """f(z) [N, D] and the stage inputs (ghost rows filled) of every rank."""
        inputs: list[list[torch.Tensor]] = [[] for _ in ranks]
        out = z
        for stage in range(stages):
            new = zeros.clone()
            for k, (rank, own, (_, feats)) in enumerate(zip(ranks, owners, embedded, strict=True)):
                h = out[rank.atom]  # forward communication
                inputs[k].append(h)
                new[own] = module.lammps_iterate(h, injection[rank.atom], feats, rank.n_local, stage)
            out = new
        return out, inputs

    def transpose(g: torch.Tensor, inputs) -> tuple[torch.Tensor, list[list[torch.Tensor]], torch.Tensor]:
        """J^T g [N, D], the stage cotangents of each rank, and the injection cotangents [N, D] that
        ghost rows send to their owners (local rows excluded)."""
        cotangents: list[list[torch.Tensor]] = [[torch.zeros(0)] * stages for _ in ranks]
        remote = zeros.clone()
        c = g
        for stage in reversed(range(stages)):
            total = zeros.clone()
            for k, (rank, own, (_, feats)) in enumerate(zip(ranks, owners, embedded, strict=True)):
                cotangents[k][stage] = c[own]
                dh, du = module.lammps_iterate_vjp(
                    inputs[k][stage], injection[rank.atom], feats, rank.n_local, stage, c[own]
                )
                total.index_add_(0, rank.atom, dh)  # reverse communication (local rows included)
                if stage == 0:
                    remote.index_add_(0, rank.atom[rank.n_local :], du[rank.n_local :])
            c = total
        return c, cotangents, remote

    z = zeros.clone()
    for _ in range(500):
        fz, _ = stage_pass(z)
        if float(torch.linalg.norm(fz - z)) < 1e-13 * float(torch.linalg.norm(fz)):
            break
        z = fz
    s, inputs = stage_pass(z)
    energy = torch.zeros((), dtype=torch.float64)
    v = zeros.clone()
    for rank, own in zip(ranks, owners, strict=True):
        atom_energy, grad = module.lammps_energy_grad(s[own], rank.species[: rank.n_local])
        energy = energy + atom_energy.sum()
        v[own] = grad
    g = v.clone()
    for _ in range(500):
        new = v + transpose(g, inputs)[0]
        if float(torch.linalg.norm(new - g)) < 1e-13 * float(torch.linalg.norm(new)):
            break
        g = new
    _, cotangents, remote = transpose(g, inputs)
    forces = torch.zeros(n_atoms, 3, dtype=torch.float64)
    virial = torch.zeros(3, 3, dtype=torch.float64)
    for k, (rank, own) in enumerate(zip(ranks, owners, strict=True)):
        prior, grad = module.lammps_position_grad(
            rank.positions, rank.species, rank.edges, rank.n_local, inputs[k], injection[rank.atom],
            cotangents[k], remote[own],
        )  # fmt: skip
        energy = energy + prior.sum()
        forces.index_add_(0, rank.atom, -grad)  # ghost forces to their owners (newton_pair on)
        virial -= rank.positions.T @ grad
    return energy, forces, virial


def periodic_ethanol(shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Ethanol in a BOX Å cubic box, shifted so that it straddles a face ([9, 3] Å, cell [3, 3])."""
    x = torch.tensor(ETHANOL, dtype=torch.float64) + torch.tensor([BOX - 1.0 + shift, 1.0, 2.0])
    cell = BOX * torch.eye(3, dtype=torch.float64)
    return torch.remainder(x, BOX), cell


@pytest.fixture(
    scope="module",
    params=[(1, False), (2, False), (2, True)],
    ids=["one_block", "two_blocks", "two_blocks_gains"],
)
def conservative(request, tmp_path_factory):
    """(module, stages): a tiny conservative DEQ with the ZBL prior, exported with tight solves; with
    embedding gains every stage depends on the injection (its cotangents come from every stage)."""
    blocks, gains = request.param
    model = tiny_model(
        force_mode="conservative", blocks_per_layer=blocks, repulsion="zbl", embedding_gains=gains
    )
    model.repulsion.set_radii(torch.full((3, 3), 1.6, dtype=torch.float64))  # on at bond lengths
    path = export_model(model, tmp_path_factory.mktemp("adjoint") / "model.pt", ExportOptions(**TIGHT))
    module, _ = load_potential(path, ETHANOL_NUMBERS)
    return module, blocks


TWO_RANKS = [[0, 2, 3, 5, 7], [1, 4, 6, 8]]


@pytest.mark.parametrize("owned", [[list(range(9))], TWO_RANKS], ids=["1rank", "2ranks"])
def test_host_driven_conservative_equals_module(conservative, owned):
    module, stages = conservative
    assert int(module.metadata()["stages"]) == stages
    x, cell = periodic_ethanol()
    species = module.species.clone()
    ranks = [build_rank(x, species, cell, part) for part in owned]
    assert all(r.positions.shape[0] > r.n_local for r in ranks)  # every rank has ghosts (images, others)
    energy, forces, _ = host_conservative(module, ranks, 9, stages)
    module.reset()
    ref_energy, ref_forces = module.compute(x, cell)
    assert float(energy) == pytest.approx(float(ref_energy), abs=1e-9)
    torch.testing.assert_close(forces, ref_forces, atol=1e-8, rtol=0)
    assert float(ref_forces.abs().max()) > 1e-2  # not trivially zero


def test_host_virial_equals_strain_derivative(conservative):
    """The fdotr virial over local + ghost rows (2 ranks) equals -dE/dε of a homogeneous strain
    x -> (1 + ε) x, cell -> (1 + ε) cell, by central differences, for a shear and a diagonal strain."""
    module, stages = conservative
    x, cell = periodic_ethanol()
    species = module.species.clone()
    ranks = [build_rank(x, species, cell, part) for part in TWO_RANKS]
    _, _, virial = host_conservative(module, ranks, 9, stages)
    h = 1e-5
    for a, b in [(0, 0), (1, 2), (2, 0)]:
        strain = torch.zeros(3, 3, dtype=torch.float64)
        strain[a, b] = h
        energies = []
        for sign in (1.0, -1.0):
            deform = torch.eye(3, dtype=torch.float64) + sign * strain
            module.reset()
            energies.append(float(module.compute(x @ deform.T, cell @ deform.T)[0]))
        derivative = (energies[0] - energies[1]) / (2 * h)
        assert float(virial[a, b]) == pytest.approx(-derivative, rel=1e-6, abs=1e-8)


def test_stage_graph_transposes_as_iterate_vjp(conservative):
    """`lammps_stage_graph` records a stage once; its transposes by autograd (retain_graph, several
    cotangents, as the C++ adjoint loop takes them) equal `lammps_iterate_vjp`'s."""
    module, stages = conservative
    x, cell = periodic_ethanol()
    rank = build_rank(x, module.species.clone(), cell, TWO_RANKS[0])
    _, features = module.lammps_embed(rank.positions, rank.species, rank.edges, rank.n_local)
    D = int(module.metadata()["feature_dim"])
    generator = torch.Generator().manual_seed(0)
    n_all = rank.positions.shape[0]
    h = torch.randn(n_all, D, generator=generator, dtype=torch.float64)
    u = torch.randn(n_all, D, generator=generator, dtype=torch.float64)
    for stage in range(stages):
        leaf_h, leaf_u, out = module.lammps_stage_graph(h, u, features, rank.n_local, stage)
        assert out.requires_grad and out.shape == (rank.n_local, D)
        for _ in range(2):
            cotangent = torch.randn(rank.n_local, D, generator=generator, dtype=torch.float64)
            dh, du = torch.autograd.grad(
                [out], [leaf_h, leaf_u], [cotangent.to(out.dtype)], retain_graph=True, allow_unused=True
            )
            ref_dh, ref_du = module.lammps_iterate_vjp(h, u, features, rank.n_local, stage, cotangent)
            torch.testing.assert_close(dh.to(torch.float64), ref_dh, atol=1e-12, rtol=1e-12)
            expected_du = torch.zeros_like(ref_du) if du is None else du.to(torch.float64)
            torch.testing.assert_close(expected_du, ref_du, atol=1e-12, rtol=1e-12)
            assert float(ref_dh.abs().max()) > 0
