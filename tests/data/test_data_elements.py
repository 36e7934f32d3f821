from __future__ import annotations

import pytest
from ase.data import chemical_symbols

from deqff.data import elements
from deqff.data.validate import element_symbol


def test_symbol_table_matches_ase() -> None:
    assert list(elements.CHEMICAL_SYMBOLS) == list(chemical_symbols)[: len(elements.CHEMICAL_SYMBOLS)]
    for z in range(1, elements.MAX_ATOMIC_NUMBER + 1):
        assert element_symbol(z) == elements.CHEMICAL_SYMBOLS[z]


def test_round_trip_and_errors() -> None:
    assert elements.atomic_number("cl") == 17
    assert elements.symbol(8) == "O"
    assert elements.atomic_numbers(["C", "H", "O"]).tolist() == [6, 1, 8]
    assert elements.formula([6, 6, 1, 1, 1, 1, 1, 1, 8]) == "C2H6O"
    assert elements.formula([8, 1, 1]) == "H2O"
    with pytest.raises(ValueError, match="unknown chemical symbol 'Xx'"):
        elements.atomic_number("Xx")
    with pytest.raises(ValueError, match="not an element"):
        elements.symbol(0)
    assert element_symbol(200) == "Z=200"
