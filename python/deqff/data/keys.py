"""Names and shapes of the batch dictionary that data code produces and models consume.

A batch is a `dict[str, torch.Tensor]` holding B graphs with N atoms and E directed edges in total.
Units are deqff's internal ones: Å, eV, eV/Å.

Edge convention (sender -> receiver, PyTorch Geometric's "source_to_target" flow):

* `edge_index[0]` = j, the **sender** (source, the neighbor whose features are sent);
* `edge_index[1]` = i, the **receiver** (target, the atom whose features are updated);
* `edge_vectors[e] = positions[j] - positions[i] + cell_shifts[e] @ cell[batch[i]]`, i.e. the vector
  from the receiver to the (image of the) sender, in Å;
* both directions of every pair are present (i -> j and j -> i), no self loops with zero shift;
* `cell_shifts` are integer lattice-vector multiples (stored in the positions' dtype); zero for
  molecules.

Shapes (dtype):

=================  ==============  =========================================================
key                shape           meaning
=================  ==============  =========================================================
positions          [N, 3]          Cartesian coordinates, Å (float32/float64)
atomic_numbers     [N]             atomic numbers Z (int64)
batch              [N]             index of the graph each atom belongs to, sorted (int64)
ptr                [B + 1]         atoms of graph b are ptr[b]:ptr[b+1] (int64)
num_atoms          [B]             atoms per graph (int64)
edge_index         [2, E]          row 0 sender j, row 1 receiver i (int64)
edge_vectors       [E, 3]          r_j - r_i + shift, Å
edge_lengths       [E]             |edge_vectors|, Å
cell               [B, 3, 3]       lattice vectors as rows, Å (zeros for molecules)
pbc                [B, 3]          periodic directions (bool)
cell_shifts        [E, 3]          integer image offsets n, Cartesian shift = n @ cell
energy             [B]             total potential energy, eV
forces             [N, 3]          forces, eV/Å
stress             [B, 3, 3]       stress (1/V) dE/d(strain), eV/Å³ (periodic frames with one)
num_graphs         []              B (int64 scalar tensor)
frame_index        [B]             the frames' indices in their loader's datasets (`BatchLoader`)
=================  ==============  =========================================================
"""

from __future__ import annotations

from typing import Final

POSITIONS: Final[str] = "positions"
ATOMIC_NUMBERS: Final[str] = "atomic_numbers"
BATCH: Final[str] = "batch"
PTR: Final[str] = "ptr"
NUM_ATOMS: Final[str] = "num_atoms"
EDGE_INDEX: Final[str] = "edge_index"
EDGE_VECTORS: Final[str] = "edge_vectors"
EDGE_LENGTHS: Final[str] = "edge_lengths"
CELL: Final[str] = "cell"
PBC: Final[str] = "pbc"
CELL_SHIFTS: Final[str] = "cell_shifts"
ENERGY: Final[str] = "energy"
FORCES: Final[str] = "forces"
STRESS: Final[str] = "stress"
NUM_GRAPHS: Final[str] = "num_graphs"
#: Present in batches of a `BatchLoader`: which frames they hold (e.g. to keep per-frame solutions).
FRAME_INDEX: Final[str] = "frame_index"

#: Row of `edge_index` holding the sender j (source).
SENDER: Final[int] = 0
#: Row of `edge_index` holding the receiver i (target).
RECEIVER: Final[int] = 1

#: Keys every collated batch has.
REQUIRED_KEYS: Final[tuple[str, ...]] = (
    POSITIONS,
    ATOMIC_NUMBERS,
    BATCH,
    PTR,
    NUM_ATOMS,
    EDGE_INDEX,
    CELL,
    PBC,
    CELL_SHIFTS,
    NUM_GRAPHS,
)
#: Keys present when the frames carry reference labels.
LABEL_KEYS: Final[tuple[str, ...]] = (ENERGY, FORCES)

#: Internal units (what every reader converts to and every writer records).
LENGTH_UNIT: Final[str] = "Angstrom"
ENERGY_UNIT: Final[str] = "eV"
FORCE_UNIT: Final[str] = "eV/Angstrom"
STRESS_UNIT: Final[str] = "eV/Angstrom^3"
