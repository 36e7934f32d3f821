#include "deqff/mdet.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/torch.h>

namespace deqff {

Rotation rotation_from_uniforms(double u1, double u2, double u3) {
  constexpr double kTwoPi = 6.283185307179586;
  const double a = std::sqrt(1.0 - u1), b = std::sqrt(u1);
  const double x = a * std::sin(kTwoPi * u2), y = a * std::cos(kTwoPi * u2);
  const double z = b * std::sin(kTwoPi * u3), w = b * std::cos(kTwoPi * u3);
  // As deqff.export.mdet.random_rotation: R of the unit quaternion (w, x, y, z).
  return {1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - z * w),       2.0 * (x * z + y * w),
          2.0 * (x * y + z * w),       1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - x * w),
          2.0 * (x * z - y * w),       2.0 * (y * z + x * w),       1.0 - 2.0 * (x * x + y * y)};
}

double RotationSource::uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

Rotation RotationSource::draw() {
  const double u1 = uniform(), u2 = uniform(), u3 = uniform();
  return rotation_from_uniforms(u1, u2, u3);
}

void rotate_rows(double* rows, int64_t n, const Rotation& r, bool transpose) {
  for (int64_t i = 0; i < n; ++i) {
    double* v = rows + 3 * i;
    const double x = v[0], y = v[1], z = v[2];
    for (int a = 0; a < 3; ++a) {
      v[a] = transpose ? r[a] * x + r[3 + a] * y + r[6 + a] * z : r[3 * a] * x + r[3 * a + 1] * y + r[3 * a + 2] * z;
    }
  }
}

void remove_net_force(double* forces, int64_t n, Exchange& exchange, int64_t n_rows) {
  double sums[4] = {0.0, 0.0, 0.0, static_cast<double>(n)};
  for (int64_t i = 0; i < std::max(n, n_rows); ++i)
    for (int a = 0; a < 3; ++a) sums[a] += forces[3 * i + a];
  exchange.sum(sums, 4);
  if (sums[3] < 1.0) return;
  for (int64_t i = 0; i < n; ++i)
    for (int a = 0; a < 3; ++a) forces[3 * i + a] -= sums[a] / sums[3];
}

void remove_net_torque(double* forces, const double* positions, int64_t n, Exchange& exchange) {
  double centre[4] = {0.0, 0.0, 0.0, static_cast<double>(n)};
  for (int64_t i = 0; i < n; ++i)
    for (int a = 0; a < 3; ++a) centre[a] += positions[3 * i + a];
  exchange.sum(centre, 4);
  if (centre[3] < 1.0) return;
  for (int a = 0; a < 3; ++a) centre[a] /= centre[3];
  // sums: torque tau [3], sum |r|^2 [1], sum r r^T [9] (r relative to the centre).
  double sums[13] = {0.0};
  for (int64_t i = 0; i < n; ++i) {
    const double* f = forces + 3 * i;
    double r[3];
    for (int a = 0; a < 3; ++a) r[a] = positions[3 * i + a] - centre[a];
    sums[0] += r[1] * f[2] - r[2] * f[1];
    sums[1] += r[2] * f[0] - r[0] * f[2];
    sums[2] += r[0] * f[1] - r[1] * f[0];
    sums[3] += r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) sums[4 + 3 * a + b] += r[a] * r[b];
  }
  exchange.sum(sums, 13);
  auto inertia = torch::empty({3, 3}, torch::TensorOptions().dtype(torch::kFloat64));
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) inertia[a][b] = (a == b ? sums[3] : 0.0) - sums[4 + 3 * a + b];
  // Pseudo-inverse as torch.linalg.pinv(hermitian=True): eigenvalues below 3 eps max|lambda| dropped.
  auto [values, vectors] = torch::linalg_eigh(inertia);
  const double cut = 3.0 * std::numeric_limits<double>::epsilon() * values.abs().max().item<double>();
  auto inverse = torch::where(values.abs() > cut, 1.0 / values, torch::zeros_like(values));
  auto torque = torch::tensor({sums[0], sums[1], sums[2]}, torch::TensorOptions().dtype(torch::kFloat64));
  auto omega = vectors.matmul(inverse * vectors.t().matmul(torque)).contiguous();
  const double* w = omega.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    double* f = forces + 3 * i;
    double r[3];
    for (int a = 0; a < 3; ++a) r[a] = positions[3 * i + a] - centre[a];
    f[0] -= w[1] * r[2] - w[2] * r[1];
    f[1] -= w[2] * r[0] - w[0] * r[2];
    f[2] -= w[0] * r[1] - w[1] * r[0];
  }
}

}  // namespace deqff
