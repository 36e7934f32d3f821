from __future__ import annotations

import pytest
import torch

from deqff.data.graph import edge_vectors, neighbor_list
from deqff.data.validate import check_cell_fits_cutoff, check_elements, check_finite, check_positions


def water_dimer() -> tuple[torch.Tensor, torch.Tensor]:
    positions = torch.tensor(
        [
            [0.0, 0.0, 0.0],
            [0.96, 0.0, 0.0],
            [-0.24, 0.93, 0.0],
            [3.0, 0.0, 0.0],
            [3.5, 0.8, 0.0],
            [3.5, -0.8, 0.0],
        ],
        dtype=torch.float64,
    )
    return positions, torch.tensor([8, 1, 1, 8, 1, 1])


@pytest.mark.parametrize("scripted", [False, True])
def test_checks_pass_and_fail_with_clear_messages(scripted: bool) -> None:
    check = torch.jit.script(check_positions) if scripted else check_positions
    error = torch.jit.Error if scripted else ValueError
    positions, numbers = water_dimer()
    edge_index, shifts = neighbor_list(positions, 5.0)
    vectors = edge_vectors(positions, edge_index, shifts)
    check(positions, numbers, [1, 6, 8], edge_index, vectors, 0.1)

    with pytest.raises(error, match=r"unknown element\(s\) O .*this model knows only H, C"):
        check(positions, numbers, [1, 6], edge_index, vectors, 0.1)

    close = positions.clone()
    close[4] = close[3] + torch.tensor([0.05, 0.0, 0.0], dtype=torch.float64)
    edge_index, shifts = neighbor_list(close, 5.0)
    with pytest.raises(
        error, match=r"atom (3 \(O\) and atom 4 \(H\)|4 \(H\) and atom 3 \(O\)) are 0.05 Å apart"
    ):
        check(close, numbers, [1, 8], edge_index, edge_vectors(close, edge_index, shifts), 0.1)

    broken = positions.clone()
    broken[2, 1] = float("nan")
    with pytest.raises(error, match=r"NaN or infinite values \(1 atoms, first: atom 2 \(H\)\)"):
        check(broken, numbers, [1, 8], edge_index, vectors, 0.1)


def test_periodic_image_overlap_and_cell_check() -> None:
    positions = torch.tensor([[0.02, 1.0, 1.0], [4.99, 1.0, 1.0]], dtype=torch.float64)
    cell = 5.0 * torch.eye(3, dtype=torch.float64)
    edge_index, shifts = neighbor_list(positions, 2.0, cell)
    with pytest.raises(ValueError, match=r"0\.03 Å apart"):
        check_positions(
            positions,
            torch.tensor([1, 1]),
            [1],
            edge_index,
            edge_vectors(positions, edge_index, shifts, cell),
        )
    check_cell_fits_cutoff(cell, torch.tensor([True, True, True]), 2.5)
    with pytest.raises(ValueError, match=r"perpendicular width along lattice vector 0 is 5\.0 Å"):
        check_cell_fits_cutoff(cell, torch.tensor([True, True, True]), 2.6)
    check_cell_fits_cutoff(cell, torch.tensor([False, False, False]), 2.6)


def test_check_elements_and_finite_standalone() -> None:
    check_elements(torch.tensor([1, 8]), [1, 8])
    with pytest.raises(ValueError, match=r"unknown element.*Cl"):
        check_elements(torch.tensor([1, 17, 17]), [1, 8])
    check_finite(torch.zeros(3, 3))


@pytest.mark.parametrize("scripted", [False, True])
def test_positions_in_nm_name_the_unit_mix_up(scripted: bool) -> None:
    """Bonds all ~10x too short: nm read as Å (even water, whose O-H of 0.096 "Å" is below the
    0.1 Å overlap limit); atoms on top of each other stay the overlap error."""
    check = torch.jit.script(check_positions) if scripted else check_positions
    error = torch.jit.Error if scripted else ValueError
    positions, numbers = water_dimer()
    for nm, z in ((positions / 10.0, numbers), (positions[:3] / 10.0, numbers[:3])):
        edge_index, shifts = neighbor_list(nm, 5.0)
        with pytest.raises(error, match=r"every atom has a neighbor closer than 0\.5 Å.*look like nm"):
            check(nm, z, [1, 8], edge_index, edge_vectors(nm, edge_index, shifts), 0.1)
    doubled = torch.cat([positions, positions + 0.001])
    edge_index, shifts = neighbor_list(doubled, 5.0)
    with pytest.raises(error, match=r"0\.0017 Å apart.*overlapping atoms"):
        check(doubled, numbers.repeat(2), [1, 8], edge_index, edge_vectors(doubled, edge_index, shifts), 0.1)
