// MD-ET inference options applied by a host that drives the model itself (LAMMPS), with the same
// definitions as python/deqff/export/mdet.py, on atoms spread over ranks (global sums via Exchange):
//  * remove_net_force:  F_i -= (1/N) sum_j F_j over all N model atoms (unweighted);
//  * remove_net_torque: F_i -= w x (r_i - c), c the centre of geometry, I w = tau with the unweighted
//    inertia tensor I (pseudo-inverse: linear molecules) and tau = sum (r_i - c) x F_i; molecules only;
//  * random_rotation:   one uniformly random rotation R per evaluation, the same on every rank; the
//    host rotates positions (x -> R x), the state (z -> z @ D(R)^T, Model::wigner) and rotates forces
//    back (F -> R^T F).
// Rows are [n, 3] row-major double arrays; forces in any unit, positions in any length unit.
#pragma once

#include <array>
#include <cstdint>
#include <random>

#include "deqff/solver.h"

namespace deqff {

using Rotation = std::array<double, 9>;  // row-major R [3, 3], det +1

// The rotation of the unit quaternion built from three uniforms in [0, 1) (Shoemake 1992): uniformly
// distributed over SO(3) when the uniforms are.
Rotation rotation_from_uniforms(double u1, double u2, double u3);

// Seeded source of uniformly random rotations (deterministic for a given seed).
class RotationSource {
 public:
  explicit RotationSource(uint64_t seed) : engine_(seed) {}
  Rotation draw();

 private:
  double uniform();  // in [0, 1), 53 random bits
  std::mt19937_64 engine_;
};

// rows [n, 3]: v -> R v (transpose = false) or v -> R^T v (transpose = true), in place.
void rotate_rows(double* rows, int64_t n, const Rotation& rotation, bool transpose);

// Subtract the mean force over all ranks' atoms (forces [n, 3] of this rank's atoms). Collective.
// With n_rows > n, forces has n_rows rows: the n local atoms' then ghost rows that the host will add to
// their owners' (conservative forces); all rows enter the sum, the mean is over local atoms and is
// subtracted from the local rows only, so every atom's total loses the mean once.
void remove_net_force(double* forces, int64_t n, Exchange& exchange, int64_t n_rows = -1);

// Subtract the rigid-rotation part about the centre of geometry of all ranks' atoms (forces and
// positions [n, 3] of this rank's atoms); leaves the net force unchanged. Collective.
void remove_net_torque(double* forces, const double* positions, int64_t n, Exchange& exchange);

}  // namespace deqff
