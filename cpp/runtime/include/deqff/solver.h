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
#include <vector>

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
  // rows: [n_all, D] float64, contiguous; add each ghost row [n_local, n_all) to its owner's row
  // (LAMMPS reverse communication). Ghost rows are undefined afterwards.
  virtual void reverse(torch::Tensor& rows) = 0;
};

// Exchange of a single process without ghost atoms (a molecule, tests).
class NoExchange : public Exchange {
 public:
  void forward(torch::Tensor&) override {}
  void sum(double*, int) override {}
  void reverse(torch::Tensor&) override {}
};

// Statistics of one evaluation (same meaning as deqff.export.runner.STAT_NAMES).
struct SolveStats {
  int64_t iterations = 0;       // evaluations of f (warm probe, solves and retries)
  bool cold = false;            // the returned fixed point was solved from zero
  bool rejected = false;        // a warm start was discarded (first residual >= 1)
  int64_t retried = 0;          // solves retried cold with the fallback cap
  double residual = 0.0;        // stop-mode residual of the returned fixed point
  double start_residual = 1.0;  // relative residual of the warm start (1 when cold)
  int64_t adjoint_iterations = 0;  // evaluations of the adjoint map (conservative forces)
  double adjoint_residual = 0.0;   // stop-mode residual of the returned adjoint
  bool adjoint_cold = false;       // the adjoint was solved from its right-hand side, not a warm start
};

// Result of DeqSolver::evaluate, local atoms only, float64.
struct DeqResult {
  torch::Tensor atom_energy;  // [n_local] eV
  torch::Tensor forces;       // [n_local, 3] eV/Å (direct head; zeros for other force modes)
  torch::Tensor z;            // [n_local, D] fixed point (the next warm start); [n_local, D] of the
                              // last stage for explicit models
  SolveStats stats;
};

// Result of DeqSolver::evaluate_gradients, float64.
struct GradientResult {
  torch::Tensor atom_energy;  // [n_local] eV, read out from the model's final state (see
                              // evaluate_gradients), plus the prior's halves of pairs
  torch::Tensor forces;       // [n_all, 3] eV/Å = -dE/dx of local AND ghost positions: the host adds
                              // ghost rows to their owners (LAMMPS newton_pair on); fdotr over all
                              // rows is the exact virial
  torch::Tensor z, g;         // [n_local, D] fixed point and adjoint (the next warm starts); g is
                              // undefined but for conservative DEQs, both for explicit stacks
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

  // Forces as -dE/dx (Model::has_gradient_steps), as deqff.export.runner computes them on one process,
  // on local and ghost positions; J^T reaches other ranks' atoms through Exchange::reverse.
  //   conservative DEQ: z* = f(z*) (warm start z0 as `evaluate`), E = sum_i e(s_i) with s = f(z*), the
  //     adjoint g = dE/ds + J^T g (warm start g0 [n_local, D] or undefined: from dE/ds; retried from
  //     dE/ds with the fallback cap), forces -g df/dx - dE_prior/dx;
  //   phantom DEQ: z* as above, E read out from z_K after K damped steps z <- (1 - tau) z + tau f(z)
  //     from z* (held fixed), forces back through the K steps (no adjoint solve; g0 unused);
  //   explicit stack: E read out from one pass from z = 0, forces back through it.
  // Throws SolveError (on every rank) if the fixed point or the adjoint does not converge.
  GradientResult evaluate_gradients(const torch::Tensor& positions, const torch::Tensor& species,
                                    const torch::Tensor& edges, int64_t n_local, const torch::Tensor& z0,
                                    const torch::Tensor& g0, Exchange& exchange);

 private:
  // One geometry's inputs of f on local + ghost rows.
  struct Pass {
    c10::IValue features;     // edge features (Model::embed)
    torch::Tensor injection;  // [n_all, D], ghost rows from their owners
    torch::Tensor h;          // [n_all, D] buffer of a stage's input
    int64_t n_local = 0;
    std::vector<StageGraph> graphs;  // conservative: each stage at the fixed point (Model::stage_graph)
    PositionGraph position_graph;    // with Model::has_position_graphs: features and injection with graphs
  };
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
  Solve solve(const Func& f, const torch::Tensor& z0, int64_t max_iter, const SolverSettings& s,
              Exchange& exchange) const;
  torch::Tensor cold_solve(const Func& f, const torch::Tensor& zero, bool retry_only, SolveStats& stats,
                           Exchange& exchange) const;
  torch::Tensor warm_solve(const Func& f, const torch::Tensor& z0, const torch::Tensor& zero, SolveStats& stats,
                           Exchange& exchange) const;
  // The embedding and ghost injection rows of a geometry (collective); with `position_graph`, the
  // embedding and edge features are recorded with graphs to the positions (pass.position_graph).
  Pass prepare(const torch::Tensor& positions, const torch::Tensor& species, const torch::Tensor& edges,
               int64_t n_local, Exchange& exchange, bool position_graph = false);
  // f(z) [n_local, D] (or one explicit pass); with `inputs`, each stage's input with ghost rows filled
  // is appended to it; with `record_graphs`, each stage is evaluated with its autograd graph, kept in
  // pass.graphs for the adjoint's transposes (one evaluation of f instead of two).
  torch::Tensor apply(Pass& pass, const torch::Tensor& z, Exchange& exchange,
                      std::vector<torch::Tensor>* inputs = nullptr, bool record_graphs = false);
  // The conservative DEQ's adjoint g = v + J^T g at the stage inputs of s = f(z*) (warm from g0 if
  // every rank has one, else from v; retried from v); adjoint stats filled. Throws SolveError.
  torch::Tensor adjoint(Pass& pass, const std::vector<torch::Tensor>& inputs, const torch::Tensor& v,
                        const torch::Tensor& g0, SolveStats& stats, Exchange& exchange);
  // Phantom DEQ: the stage cotangents [K * S] of z_K's cotangent v carried back through the K damped
  // steps whose stage inputs are `inputs` [K * S], and the injection cotangents other ranks send.
  void phantom_cotangents(Pass& pass, const std::vector<torch::Tensor>& inputs, const torch::Tensor& v,
                          Exchange& exchange, std::vector<torch::Tensor>& cotangents, torch::Tensor& remote);
  // The fixed point from z0 (warm if every rank has one) or cold; stats filled.
  torch::Tensor fixed_point(const Func& f, const torch::Tensor& z0, int64_t n_local, SolveStats& stats,
                            Exchange& exchange);
  // J^T c [n_local, D] for a cotangent c [n_local, D] of f's output at the stage inputs [S]; with
  // `cotangents`, each stage's output cotangent, and with `injection_grad`, the injection cotangent
  // [n_local, D] that other ranks' ghost rows send to the local atoms (summed over stages: explicit
  // stacks inject in every layer's first stage); with `injection_local`, the local rows' own injection
  // cotangent [n_local, D] (summed over stages).
  torch::Tensor transpose(Pass& pass, const std::vector<torch::Tensor>& inputs, const torch::Tensor& c,
                          Exchange& exchange, std::vector<torch::Tensor>* cotangents = nullptr,
                          torch::Tensor* injection_grad = nullptr, torch::Tensor* injection_local = nullptr);

  Model& model_;
  SolverSettings settings_;
};

}  // namespace deqff
