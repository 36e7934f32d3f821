// deqff C++ runtime: the DEQ solve driven by a host that owns local atoms and sees ghost copies of
// others (LAMMPS ranks). The model gives one iteration (Model::embed / iterate / readout); this file
// runs the solve around it: forward communication of ghost rows between stages, residuals and
// Anderson inner products summed over all ranks, warm starts with the same rule as the Python
// runner (python/deqff/export/runner.py), and an error instead of unconverged forces.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

#include <torch/script.h>

#include "deqff/model.h"

namespace deqff {

// The solve failed even from a cold start (the same on every rank: decisions use global residuals).
class SolveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the host provides. Both calls are collective: every rank calls them in the same order.
class Exchange {
 public:
  virtual ~Exchange() = default;
  // rows: [n_all, D] float64, contiguous; fill rows [n_local, n_all) (ghosts) from their owners' rows.
  virtual void forward(torch::Tensor& rows) = 0;
  // Sum values[0..n) over all ranks, in place.
  virtual void sum(double* values, int n) = 0;
};

// Exchange of a single process without ghost atoms (a molecule, tests).
class NoExchange : public Exchange {
 public:
  void forward(torch::Tensor&) override {}
  void sum(double*, int) override {}
};

// Statistics of one evaluation (same meaning as deqff.export.runner.STAT_NAMES).
struct SolveStats {
  int64_t iterations = 0;       // evaluations of f (warm probe, solves and retries)
  bool cold = false;            // the returned fixed point was solved from zero
  bool rejected = false;        // a warm start was discarded (first residual >= 1)
  int64_t retried = 0;          // solves retried cold with the fallback cap
  double residual = 0.0;        // stop-mode residual of the returned fixed point
  double start_residual = 1.0;  // relative residual of the warm start (1 when cold)
};

// Result of DeqSolver::evaluate, local atoms only, float64.
struct DeqResult {
  torch::Tensor atom_energy;  // [n_local] eV
  torch::Tensor forces;       // [n_local, 3] eV/Å (direct head; zeros for other force modes)
  torch::Tensor z;            // [n_local, D] fixed point (the next warm start); [n_local, D] of the
                              // last stage for explicit models
  SolveStats stats;
};

class DeqSolver {
 public:
  // `settings` start as the model's (Model::solver_settings()); callers may override tol etc.
  DeqSolver(Model& model, const SolverSettings& settings);

  const SolverSettings& settings() const { return settings_; }

  // Evaluate on local + ghost atoms.
  //   positions [n_all, 3] Å, species [n_all] int64, edges [2, E] int64 (row 0 local i, row 1 j)
  //   z0 [n_local, D] warm start, or an undefined tensor for a cold start. If any rank passes none,
  //   all ranks start cold (so a single new atom restarts everyone consistently).
  // Throws SolveError (on every rank) if the solve does not converge even cold.
  DeqResult evaluate(const torch::Tensor& positions, const torch::Tensor& species, const torch::Tensor& edges,
                     int64_t n_local, const torch::Tensor& z0, Exchange& exchange);

 private:
  struct Residual {
    double abs = 0.0, rel = 0.0;
    bool finite = true;
    double stop(bool stop_rel) const { return stop_rel ? rel : abs; }
  };
  struct Solve {
    torch::Tensor z;
    int64_t iterations = 0;
    Residual residual;
    bool converged = false;
  };
  using Func = std::function<torch::Tensor(const torch::Tensor&)>;

  Residual residual(const torch::Tensor& z, const torch::Tensor& fz, Exchange& exchange) const;
  Solve solve(const Func& f, const torch::Tensor& z0, int64_t max_iter, Exchange& exchange) const;
  torch::Tensor cold_solve(const Func& f, const torch::Tensor& zero, bool retry_only, SolveStats& stats,
                           Exchange& exchange) const;
  torch::Tensor warm_solve(const Func& f, const torch::Tensor& z0, const torch::Tensor& zero, SolveStats& stats,
                           Exchange& exchange) const;

  Model& model_;
  SolverSettings settings_;
};

}  // namespace deqff
