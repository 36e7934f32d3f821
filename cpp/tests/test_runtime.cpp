// ctest: the deqff runtime loads exported models, evaluates them against closed-form answers,
// keeps module state across calls, and rejects bad files with clear messages.
// Usage: test_runtime FIXTURE_DIR (written by tests/fixtures/write_models.py)
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "deqff/mdet.h"
#include "deqff/model.h"
#include "deqff/solver.h"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "  ok    " : "  FAIL  ") << what << "\n";
  if (!ok) ++failures;
}

void check_close(double actual, double expected, double tol, const std::string& what) {
  check(std::abs(actual - expected) <= tol,
        what + " (got " + std::to_string(actual) + ", expected " + std::to_string(expected) + ")");
}

// Expect `action` to throw deqff::ModelError whose message contains `needle`.
void check_throws(const std::function<void()>& action, const std::string& needle, const std::string& what) {
  try {
    action();
    check(false, what + ": no error raised");
  } catch (const deqff::ModelError& error) {
    const std::string message = error.what();
    check(message.find(needle) != std::string::npos, what + ": \"" + message + "\"");
  }
}

constexpr double kEvToKjPerMol = 96.48533212331002;

// E = sum_{i<j} sqrt(s_i s_j) eps (1 - r^2/rc^2)^2, the closed form of SmoothPairPotential.
void test_smooth_pair(const std::string& dir) {
  std::cout << "smooth pair potential\n";
  deqff::Model model(dir + "/smooth_pair.pt");
  const auto& meta = model.metadata();
  check(meta.format_version == deqff::kFormatVersion, "format version read");
  check(meta.elements == std::vector<std::string>{"H", "C", "O"}, "elements read");
  check_close(meta.cutoff, 3.0, 1e-12, "cutoff read");
  check(model.species_index("O") == 2, "species index of O");
  check_throws([&] { model.species_index("Xe"); }, "it knows: H C O", "unknown element named");

  // Three atoms H, C, O: all pairs within the cutoff, a full neighbor list, no ghosts.
  const std::vector<double> x = {0.0, 0.0, 0.0, 1.1, 0.0, 0.0, 0.3, 1.4, 0.2};
  const std::vector<int64_t> species = {0, 1, 2};
  const std::vector<double> scale = {1.0, 2.0, 3.0};
  const double eps = 0.5, rc = 3.0;
  std::vector<int64_t> senders, receivers;
  double energy = 0.0;
  std::vector<double> forces(9, 0.0);
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      if (i == j) continue;
      senders.push_back(i);
      receivers.push_back(j);
      if (j < i) continue;
      double d[3], r2 = 0.0;
      for (int k = 0; k < 3; ++k) {
        d[k] = x[3 * j + k] - x[3 * i + k];
        r2 += d[k] * d[k];
      }
      const double s = std::sqrt(scale[i] * scale[j]) * eps, u = 1.0 - r2 / (rc * rc);
      energy += s * u * u;
      for (int k = 0; k < 3; ++k) {  // dE/dx_j = s * 2u * (-2 d / rc^2)
        const double g = s * 2.0 * u * (-2.0 * d[k] / (rc * rc));
        forces[3 * j + k] -= g;
        forces[3 * i + k] += g;
      }
    }
  }
  std::vector<int64_t> edges(senders);
  edges.insert(edges.end(), receivers.begin(), receivers.end());
  auto result = model.compute_local(x.data(), species.data(), 3, 3, edges.data(), senders.size());
  check_close(result.energy, energy, 1e-12, "energy equals the closed form");
  double max_error = 0.0;
  for (int k = 0; k < 9; ++k) max_error = std::max(max_error, std::abs(result.forces[k] - forces[k]));
  check(max_error < 1e-12, "forces equal the closed form (max error " + std::to_string(max_error) + ")");
}

void test_state_persists(const std::string& dir) {
  std::cout << "stateful model (call counter)\n";
  deqff::Model model(dir + "/harmonic_tether.pt");
  const std::vector<double> x = {1.0, 2.0, 3.0, -1.0, 0.5, 0.0};
  const std::vector<int64_t> species = {0, 0};
  const double k = 1.0 / (kEvToKjPerMol * 100.0);  // 1 kJ/mol/nm^2 in eV/Å^2
  const double base = k * (1.0 + 4.0 + 9.0 + 1.0 + 0.25);
  for (int call = 1; call <= 3; ++call) {
    auto result = model.compute_local(x.data(), species.data(), 2, 2, nullptr, 0);
    check_close(result.energy, base + call / kEvToKjPerMol, 1e-12, "energy shows call " + std::to_string(call));
    check_close(result.forces[0], -2.0 * k * 1.0, 1e-15, "force x of atom 0 is -2kx");
  }
  model.reset();
  auto result = model.compute_local(x.data(), species.data(), 2, 2, nullptr, 0);
  check_close(result.energy, base + 1.0 / kEvToKjPerMol, 1e-12, "reset() restarts the counter");
}

// The tiny exported DEQ on ethanol (one process, no ghosts): the C++ solver loop around the model's
// steps equals the Python module's own result (tiny_deq_ethanol.txt), and warm starts work.
// A molecule of a reference file (tiny_deq_ethanol.txt: a line `N ENERGY_eV`, then N lines
// `symbol x y z fx fy fz`, Å and eV/Å) with the Python module's energy and forces.
struct Molecule {
  int64_t n = 0;
  double energy = 0.0;
  torch::Tensor positions, species, forces;  // [n, 3] Å, [n], [n, 3] eV/Å

  // Full neighbor list [2, E] (row 0 i, row 1 j) of `x` [n, 3] within `cutoff` Å.
  torch::Tensor edges(const torch::Tensor& x, double cutoff) const {
    std::vector<int64_t> first, second;
    const auto d = (x.unsqueeze(0) - x.unsqueeze(1)).pow(2).sum(-1);  // d[i][j] = |x_j - x_i|^2
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        if (i != j && d[i][j].item<double>() < cutoff * cutoff) {
          first.push_back(i);
          second.push_back(j);
        }
    const int64_t n_edges = static_cast<int64_t>(first.size());
    first.insert(first.end(), second.begin(), second.end());
    return torch::tensor(first, torch::kInt64).view({2, n_edges});
  }
};

Molecule read_molecule(const std::string& path, const deqff::Model& model) {
  std::ifstream in(path);
  Molecule m;
  in >> m.n >> m.energy;
  std::vector<double> x(m.n * 3), f(m.n * 3);
  std::vector<int64_t> species(m.n);
  for (int64_t i = 0; i < m.n; ++i) {
    std::string element;
    in >> element >> x[3 * i] >> x[3 * i + 1] >> x[3 * i + 2] >> f[3 * i] >> f[3 * i + 1] >> f[3 * i + 2];
    species[i] = model.species_index(element);
  }
  m.positions = torch::tensor(x, torch::kFloat64).view({m.n, 3});
  m.forces = torch::tensor(f, torch::kFloat64).view({m.n, 3});
  m.species = torch::tensor(species, torch::kInt64);
  return m;
}

void test_exported_deq(const std::string& dir) {
  std::cout << "exported deqff DEQ (C++ solver loop)\n";
  deqff::Model model(dir + "/tiny_deq.pt");
  check(model.has_graph_step() && !model.has_compute_local(), "has the LAMMPS steps, no compute_local");
  const auto& meta = model.metadata();
  check(meta.model_type == "deq" && meta.force_mode == "direct", "model type deq, force mode direct");
  const auto& settings = model.solver_settings();
  check(settings.implicit && settings.anderson && settings.feature_dim == 20 && settings.stages == 1,
        "solver settings: implicit, Anderson, D = 20, one stage");
  check_close(settings.tol, 1e-10, 1e-20, "tolerance from the export");

  const Molecule ethanol = read_molecule(dir + "/tiny_deq_ethanol.txt", model);
  const int64_t n = ethanol.n;
  const double energy = ethanol.energy;
  const auto& positions = ethanol.positions;
  const auto& species_t = ethanol.species;
  const auto edges = ethanol.edges(positions, meta.cutoff);

  deqff::DeqSolver solver(model, settings);
  deqff::NoExchange exchange;
  auto cold = solver.evaluate(positions, species_t, edges, n, torch::Tensor(), exchange);
  check_close(cold.atom_energy.sum().item<double>(), energy, 1e-9, "energy equals the Python module's");
  const auto& expected = ethanol.forces;
  const double max_error = (cold.forces - expected).abs().max().item<double>();
  check(max_error < 1e-9, "forces equal the Python module's (max error " + std::to_string(max_error) + ")");
  check(cold.stats.cold && cold.stats.iterations > 5, "first call is a cold solve (" +
                                                          std::to_string(cold.stats.iterations) + " iterations)");

  auto warm = solver.evaluate(positions, species_t, edges, n, cold.z, exchange);
  check(!warm.stats.cold && warm.stats.iterations == 1, "warm start at the fixed point: 1 iteration (" +
                                                            std::to_string(warm.stats.iterations) + ")");
  auto garbage = solver.evaluate(positions, species_t, edges, n, cold.z * 50.0, exchange);
  check(garbage.stats.rejected && garbage.stats.cold, "a warm start worse than cold is rejected");

  auto strict = settings;
  strict.max_iter = 2;
  strict.fallback_max_iter = 3;
  deqff::DeqSolver capped(model, strict);
  try {
    capped.evaluate(positions, species_t, edges, n, torch::Tensor(), exchange);
    check(false, "an unconverged solve raises");
  } catch (const deqff::SolveError& error) {
    const std::string message = error.what();
    check(message.find("did not converge even from a cold start") != std::string::npos,
          "an unconverged solve raises: \"" + message.substr(0, 80) + "...\"");
  }
}

// Gradient forces of the C++ backward pass (DeqSolver::evaluate_gradients: the adjoint solve of a
// conservative DEQ, the transpose of a conservative explicit stack) equal -dE/dx by central differences
// of the energy it returns, for every coordinate of ethanol.
void test_gradient_forces_equal_energy_differences(const std::string& dir) {
  std::cout << "gradient forces (C++ adjoint) vs central differences of the energy\n";
  for (const std::string name : {"tiny_conservative.pt", "tiny_explicit_conservative.pt"}) {
    deqff::Model model(dir + "/" + name);
    check(model.has_gradient_steps(), name + ": the host computes its gradient forces");
    const Molecule ethanol = read_molecule(dir + "/tiny_deq_ethanol.txt", model);
    const double cutoff = model.metadata().cutoff;
    deqff::DeqSolver solver(model, model.solver_settings());
    deqff::NoExchange exchange;
    auto energy_at = [&](const torch::Tensor& x) {
      return solver.evaluate_gradients(x, ethanol.species, ethanol.edges(x, cutoff), ethanol.n, torch::Tensor(),
                                       torch::Tensor(), exchange);
    };
    const auto result = energy_at(ethanol.positions);
    const double h = 1e-5;  // Å: truncation ~h^2, solver noise ~1e-12 / h
    double worst = 0.0, largest = 0.0;
    for (int64_t i = 0; i < ethanol.n; ++i)
      for (int64_t k = 0; k < 3; ++k) {
        auto plus = ethanol.positions.clone(), minus = ethanol.positions.clone();
        plus[i][k] += h;
        minus[i][k] -= h;
        const double difference = (energy_at(plus).atom_energy.sum().item<double>() -
                                   energy_at(minus).atom_energy.sum().item<double>()) / (2 * h);
        const double force = result.forces[i][k].item<double>();
        worst = std::max(worst, std::abs(force + difference));
        largest = std::max(largest, std::abs(force));
      }
    std::ostringstream what;
    what << name << ": max |F + dE/dx| " << std::scientific << std::setprecision(2) << worst << " eV/A (max |F| "
         << largest << ")";
    check(largest > 0.1 && worst < 1e-6, what.str());
  }
}

void test_bad_files(const std::string& dir) {
  std::cout << "bad model files\n";
  check_throws([&] { deqff::Model m(dir + "/smooth_pair_format999.pt"); }, "format version 999",
               "wrong format version named");
  check_throws([&] { deqff::Model m(dir + "/not_deqff.pt"); }, "not a deqff model", "foreign TorchScript file");
  check_throws([&] { deqff::Model m(dir + "/garbage.pt"); }, "cannot load", "not a TorchScript file");
  check_throws([&] { deqff::Model m(dir + "/does_not_exist.pt"); }, "cannot load", "missing file");
  check_throws([&] { deqff::Model m(dir + "/openmm_only.pt"); }, "Re-export the checkpoint",
               "model without LAMMPS calls");
  deqff::Model analytic(dir + "/smooth_pair.pt");
  check_throws([&] { analytic.solver_settings(); }, "not a deqff DEQ/explicit model", "analytic has no solver");
}

// The solve's settings read from the metadata (Model::solver_settings / adjoint_settings) equal the Python
// reader's (deqff.export.metadata.host_settings, written to host_settings.txt by write_models.py), for
// this deqff's exports and the shipped files of older formats.
void test_settings_from_metadata(const std::string& dir) {
  std::cout << "solver settings from the metadata (C++ == Python)\n";
  std::ifstream in(dir + "/host_settings.txt");
  std::string line;
  int models = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string path, item;
    fields >> path;
    std::map<std::string, double> expected;
    while (fields >> item) {
      const auto eq = item.find('=');
      expected[item.substr(0, eq)] = std::stod(item.substr(eq + 1));
    }
    deqff::Model model(path);
    const auto& s = model.solver_settings();
    std::map<std::string, double> got = {
        {"feature_dim", double(s.feature_dim)}, {"stages", double(s.stages)},
        {"implicit", s.implicit ? 1.0 : 0.0},   {"warm_start", s.warm_start ? 1.0 : 0.0},
        {"predictor_order", double(s.predictor_order)}, {"secant_memory", double(s.secant_memory)}};
    auto add = [&](const deqff::SolverSettings& t, const std::string& prefix) {
      got[prefix + "tol"] = t.tol;
      got[prefix + "max_iter"] = double(t.max_iter);
      got[prefix + "fallback_max_iter"] = double(t.fallback_max_iter);
      got[prefix + "stop_rel"] = t.stop_rel ? 1.0 : 0.0;
      got[prefix + "anderson"] = t.anderson ? 1.0 : 0.0;
      got[prefix + "m"] = double(t.m);
      got[prefix + "beta"] = t.beta;
      got[prefix + "lam"] = t.lam;
      got[prefix + "damping"] = t.damping;
      got[prefix + "return_best"] = t.return_best ? 1.0 : 0.0;
    };
    if (s.implicit) add(s, "");
    if (s.phantom_steps > 0) {
      got["phantom_steps"] = double(s.phantom_steps);
      got["phantom_tau"] = s.phantom_tau;
    }
    if (model.has_adjoint_steps()) add(model.adjoint_settings(), "adjoint_");
    std::string differences;
    for (const auto& [key, value] : expected)
      if (!got.count(key) || got[key] != value) differences += " " + key;
    for (const auto& [key, value] : got)
      if (!expected.count(key)) differences += " +" + key;
    check(differences.empty(), path.substr(path.rfind('/') + 1) + " (format " +
                                   std::to_string(model.metadata().format_version) + "): " +
                                   std::to_string(expected.size()) + " settings equal" +
                                   (differences.empty() ? "" : ", differ:" + differences));
    ++models;
  }
  check(models >= 3, "host_settings.txt lists the exported models (" + std::to_string(models) + ")");
}

// deqff/mdet.h on one process: rotations are proper and orthogonal, removals are projections that
// leave zero net force / torque (also for a linear molecule, whose inertia tensor is singular).
void test_mdet() {
  std::cout << "MD-ET options\n";
  deqff::RotationSource source(7);
  double worst = 0.0;
  for (int k = 0; k < 20; ++k) {
    const deqff::Rotation r = source.draw();
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) {
        double dot = 0.0;
        for (int c = 0; c < 3; ++c) dot += r[3 * a + c] * r[3 * b + c];
        worst = std::max(worst, std::abs(dot - (a == b ? 1.0 : 0.0)));
      }
    const double det = r[0] * (r[4] * r[8] - r[5] * r[7]) - r[1] * (r[3] * r[8] - r[5] * r[6]) +
                       r[2] * (r[3] * r[7] - r[4] * r[6]);
    worst = std::max(worst, std::abs(det - 1.0));
  }
  check(worst < 1e-14, "random rotations are orthogonal with det +1 (worst " + std::to_string(worst) + ")");
  deqff::RotationSource same(7);
  check(same.draw() == deqff::RotationSource(7).draw(), "the same seed gives the same rotation");

  std::vector<double> v = {0.3, -1.2, 2.0}, back = v;
  const deqff::Rotation r = source.draw();
  deqff::rotate_rows(back.data(), 1, r, false);
  deqff::rotate_rows(back.data(), 1, r, true);
  check(std::abs(back[0] - v[0]) + std::abs(back[1] - v[1]) + std::abs(back[2] - v[2]) < 1e-14, "R^T R v = v");

  deqff::NoExchange none;
  auto net = [](const std::vector<double>& f, const std::vector<double>& x, bool torque) {
    double c[3] = {0, 0, 0}, out[3] = {0, 0, 0};
    const size_t n = f.size() / 3;
    for (size_t i = 0; i < n; ++i)
      for (int a = 0; a < 3; ++a) c[a] += x[3 * i + a] / n;
    for (size_t i = 0; i < n; ++i) {
      const double* q = &f[3 * i];
      double p[3] = {x[3 * i] - c[0], x[3 * i + 1] - c[1], x[3 * i + 2] - c[2]};
      if (!torque) p[0] = p[1] = p[2] = 0.0;
      out[0] += torque ? p[1] * q[2] - p[2] * q[1] : q[0];
      out[1] += torque ? p[2] * q[0] - p[0] * q[2] : q[1];
      out[2] += torque ? p[0] * q[1] - p[1] * q[0] : q[2];
    }
    return std::abs(out[0]) + std::abs(out[1]) + std::abs(out[2]);
  };
  const std::vector<double> x = {0.1, 0.2, 0.3, 1.4, -0.2, 0.5, -0.7, 1.1, 0.0, 0.4, 0.3, -1.2};
  std::vector<double> f = {1.0, -2.0, 0.5, 0.3, 0.8, -1.1, -0.4, 0.2, 0.9, 2.2, -0.6, 0.1};
  const double net_before = net(f, x, false);
  deqff::remove_net_torque(f.data(), x.data(), 4, none);
  check(net(f, x, true) < 1e-13, "net torque removed");
  check(std::abs(net(f, x, false) - net_before) < 1e-13, "net torque removal keeps the net force");
  deqff::remove_net_force(f.data(), 4, none);
  check(net(f, x, false) < 1e-13 && net(f, x, true) < 1e-13, "net force removed, torque stays zero");
  // A linear molecule along (1, 2, 0.5): the inertia tensor is singular (pseudo-inverse).
  std::vector<double> line, g = {0.5, -1.0, 0.2, 1.5, 0.3, -0.7, -0.2, 0.9, 1.1};
  for (double t : {-1.0, 0.2, 1.0}) line.insert(line.end(), {t, 2.0 * t, 0.5 * t});
  deqff::remove_net_torque(g.data(), line.data(), 3, none);
  check(net(g, line, true) < 1e-13 && std::isfinite(g[0]), "net torque removed for a linear molecule");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: test_runtime FIXTURE_DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  test_smooth_pair(dir);
  test_state_persists(dir);
  test_exported_deq(dir);
  test_gradient_forces_equal_energy_differences(dir);
  test_bad_files(dir);
  test_settings_from_metadata(dir);
  test_mdet();
  std::cout << (failures == 0 ? "all runtime checks passed\n" : "runtime checks FAILED\n");
  return failures == 0 ? 0 : 1;
}
