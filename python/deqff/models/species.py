"""Mapping atomic numbers to the model's species indices, with a clear error for unknown elements."""

import torch
from ase.data import atomic_numbers, chemical_symbols
from torch import Tensor


class SpeciesMap(torch.nn.Module):
    """atomic numbers [N] -> species indices [N] into `elements`; raises for elements not in the list."""

    def __init__(self, elements: list[str]) -> None:
        super().__init__()
        self.elements = list(elements)
        table = torch.full((len(chemical_symbols),), -1, dtype=torch.long)
        for index, symbol in enumerate(elements):
            if symbol not in atomic_numbers:
                raise ValueError(f"unknown chemical symbol {symbol!r}")
            table[atomic_numbers[symbol]] = index
        self.register_buffer("table", table, persistent=False)

    def forward(self, numbers: Tensor) -> Tensor:
        if numbers.numel() == 0:
            return numbers
        if int(numbers.min()) < 1 or int(numbers.max()) >= self.table.shape[0]:
            raise ValueError("atomic numbers must be between 1 and 118")
        species = self.table[numbers]
        if bool((species < 0).any()):
            unknown = torch.unique(numbers[species < 0]).tolist()
            raise ValueError(
                "atomic numbers "
                + str(unknown)
                + " are not elements of this model (it knows "
                + ", ".join(self.elements)
                + "); use a model trained on them or remove those atoms"
            )
        return species
