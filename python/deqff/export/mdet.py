"""MD-ET inference options of exported models: net force / net torque removal, random rotations.

From MD-ET (Eissler et al. 2025, arXiv 2503.01431), options that make direct (non-conservative)
forces behave better in MD. All default off; `ExportOptions` switches them on and the metadata
records them.

* remove_net_force:  F_i <- F_i - (1/N) sum_j F_j, so sum_i F_i = 0 (unweighted: the Euclidean
  projection of the 3N force vector off the rigid translations; equal to the mass-weighted choice
  only for equal masses, but the model knows no masses).
* remove_net_torque: F_i <- F_i - w x (r_i - c) with c the centre of geometry (unweighted mean of the
  model's atoms) and w solving I w = tau, tau = sum_i (r_i - c) x F_i, I = sum_i (|r_i - c|^2 1 -
  (r_i - c)(r_i - c)^T) (the unweighted inertia tensor; pseudo-inverse for linear molecules). This is
  the Euclidean projection off the rigid rotations about c, so the torque about any point vanishes
  once the net force does, and it does not change the net force. Non-periodic systems only: a call
  with a cell fails with a clear error (a rigid rotation is not a symmetry of a periodic box).
  Both are exact no-ops for conservative forces up to round-off (translation / rotation invariance).
* random_rotation: every call draws a uniformly random rotation R (float64, torch's global RNG),
  evaluates the model on R x (and rotated periodic shifts), and returns R^T F. The warm-start state
  is stored in the lab frame and rotated into the call's frame with the Wigner-D matrices of its
  irreps (`deqff.export.wigner`), z -> D(R) z per atom, and back with D(R)^T; the adjoint of
  conservative forces transforms the same way (D is orthogonal). An equivariant layer satisfies
  f(D z, R x) = D f(z, x), so the rotated state is as good a warm start as the unrotated one.

(No `from __future__ import annotations` here: TorchScript must see real annotations.)
"""

import torch
from torch import Tensor, nn

from deqff.export.wigner import IrrepsRotation

#: ExportOptions fields (and metadata keys) of the MD-ET options.
MDET_OPTIONS = ("remove_net_force", "remove_net_torque", "random_rotation")

#: Error of a net-torque removal on a periodic system (returned, then raised by the module).
PERIODIC_TORQUE_ERROR = (
    "deqff: remove_net_torque is only defined for non-periodic systems (molecules), but this call "
    "has a periodic cell; export the model without --remove-net-torque for periodic boxes"
)


def random_rotation(dtype: torch.dtype = torch.float64, device: torch.device | None = None) -> Tensor:
    """A uniformly distributed rotation matrix [3, 3] (det +1) from a random unit quaternion, on
    `device` (drawn from that device's generator; default: torch's default device).
    (Built from tensor ops: TorchScript's torch.tensor(list of floats) rounds through float32.)"""
    q = torch.randn(4, dtype=torch.float64, device=device)
    q = q / torch.linalg.norm(q)
    w, x, y, z = q[0], q[1], q[2], q[3]
    entries = [
        1.0 - 2.0 * (y * y + z * z),
        2.0 * (x * y - z * w),
        2.0 * (x * z + y * w),
        2.0 * (x * y + z * w),
        1.0 - 2.0 * (x * x + z * z),
        2.0 * (y * z - x * w),
        2.0 * (x * z - y * w),
        2.0 * (y * z + x * w),
        1.0 - 2.0 * (x * x + y * y),
    ]
    return torch.stack(entries).reshape(3, 3).to(dtype)


def remove_net_force(forces: Tensor) -> Tensor:
    """forces [N, 3] -> forces minus their mean, so that they sum to zero."""
    return forces - forces.mean(dim=0, keepdim=True)


def remove_net_torque(forces: Tensor, positions: Tensor) -> Tensor:
    """forces [N, 3], positions [N, 3] (any length unit) -> forces without their rigid-rotation part
    about the centre of geometry (unweighted; see the module docstring). Net force is unchanged."""
    r = positions.to(forces.dtype)
    r = r - r.mean(dim=0, keepdim=True)
    torque = torch.linalg.cross(r, forces, dim=-1).sum(dim=0)
    eye = torch.eye(3, dtype=forces.dtype, device=forces.device)
    inertia = (r * r).sum() * eye - r.T @ r
    omega = torch.linalg.pinv(inertia, hermitian=True) @ torque
    return forces - torch.linalg.cross(omega.expand_as(r), r, dim=-1)


class InferenceTransforms(nn.Module):
    """The MD-ET options of one exported model, applied around each evaluation (see module docstring).

    `draw(device)` gives the call's rotation ([3, 3] float64 on the inputs' device, the identity
    without random_rotation);
    `enter(R, positions, shifts, state)` rotates the inputs into the call's frame;
    `leave(R, forces, state, positions, cell, error)` rotates forces and state back to the lab frame,
    removes net force / torque and returns an error message for invalid requests ("" if fine).
    """

    def __init__(
        self,
        irreps: str,
        remove_net_force: bool = False,
        remove_net_torque: bool = False,
        random_rotation: bool = False,
    ) -> None:
        super().__init__()
        self.remove_net_force = remove_net_force
        self.remove_net_torque = remove_net_torque
        self.random_rotation = random_rotation
        self.wigner = IrrepsRotation(irreps)
        self.state_dim: int = self.wigner.dim
        self.periodic_torque_error: str = PERIODIC_TORQUE_ERROR

    def draw(self, device: torch.device | None = None) -> Tensor:
        """The rotation of this call on `device` (pass the inputs'; None: torch's default device):
        random if random_rotation, else the identity."""
        if self.random_rotation:
            return random_rotation(torch.float64, device)
        return torch.eye(3, dtype=torch.float64, device=device)

    def _rotate_state(self, state: list[Tensor], rotation: Tensor) -> list[Tensor]:
        """Each [N, D] state tensor -> D(R) applied per atom, each [K, N, D] one (secant pairs) per entry
        and atom ([0, D], [0, N, D] and non-irreps shapes kept)."""
        out: list[Tensor] = []
        for tensor in state:
            if tensor.dim() == 2 and tensor.shape[0] > 0 and tensor.shape[1] == self.state_dim:
                out.append(self.wigner.rotate(tensor, rotation))
            elif tensor.dim() == 3 and tensor.shape[0] > 0 and tensor.shape[2] == self.state_dim:
                flat = self.wigner.rotate(tensor.reshape(-1, self.state_dim), rotation)
                out.append(flat.reshape(tensor.shape))
            else:
                out.append(tensor)
        return out

    def enter(
        self, rotation: Tensor, positions: Tensor, shifts: Tensor, state: list[Tensor]
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """positions [N, 3] Å, shifts [E, 3] Å, state [z, g] (lab frame) -> the same in the frame
        rotated by R (positions @ R^T); unchanged without random_rotation."""
        if not self.random_rotation:
            return positions, shifts, state
        r = rotation.to(positions.dtype)
        return positions @ r.T, shifts @ rotation.to(shifts.dtype).T, self._rotate_state(state, rotation)

    def leave(
        self,
        rotation: Tensor,
        forces: Tensor,
        state: list[Tensor],
        positions: Tensor,
        cell: Tensor | None,
        error: str,
    ) -> tuple[Tensor, list[Tensor], str]:
        """forces [N, 3] (or [0, 3]) and state of the rotated frame -> lab frame (R^T), then net force
        and torque removal with the lab positions [N, 3] Å. Returns (forces, state, error)."""
        if error != "":
            return forces, state, error
        if self.remove_net_torque and cell is not None:
            return forces, state, self.periodic_torque_error
        if self.random_rotation:
            forces = forces @ rotation.to(forces.dtype)
            state = self._rotate_state(state, rotation.T)
        # (forces carry no graph here: direct forces come from no_grad code, -dE/dx from autograd.grad)
        if forces.shape[0] > 0 and self.remove_net_force:
            forces = remove_net_force(forces)
        if forces.shape[0] > 0 and self.remove_net_torque:
            forces = remove_net_torque(forces, positions)
        return forces, state, ""

    @torch.jit.export
    def settings(self) -> dict[str, bool]:
        return {
            "remove_net_force": self.remove_net_force,
            "remove_net_torque": self.remove_net_torque,
            "random_rotation": self.random_rotation,
        }
