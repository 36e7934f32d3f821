#include "deqff/solver.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

namespace deqff {
namespace {

constexpr double kResidualEps = 1e-12;  // rel = abs / (|f(z)| + eps), as deqff.deq.stats.residuals
constexpr double kScaleFloor = 1e-30;   // deqff.deq.anderson.mixing_weights
constexpr double kAlphaMax = 1e4;       // deqff.deq.anderson.anderson_step restart safeguard

std::string format_residual(double value) {
  std::ostringstream out;
  out.precision(2);
  out << std::scientific << value;
  return out.str();
}

// Anderson acceleration on the local rows with global inner products, as deqff.deq.anderson:
// history of mixed points Y_i = z_i + beta g_i and residuals g_i = f(z_i) - z_i; weights alpha
// minimize |sum alpha_i g_i|^2 + lam |g_newest|^2 |alpha|^2 with sum alpha = 1. The history Y, G
// lives on the state's device; the small Gram matrix H [m, m] and the weights are on the host (its
// new column is summed over ranks there anyway), so a step moves m values each way.
class Anderson {
 public:
  Anderson(const torch::Tensor& like, int64_t m, double beta, double lam)
      : m_(m), beta_(beta), lam_(lam),
        Y_(torch::zeros({m, like.size(0), like.size(1)}, like.options())),
        G_(torch::zeros({m, like.size(0), like.size(1)}, like.options())),
        H_(torch::zeros({m, m}, like.options().device(torch::kCPU))), valid_(m, false) {}

  torch::Tensor step(const torch::Tensor& z, const torch::Tensor& fz, int64_t k, Exchange& exchange) {
    const int64_t slot = k % m_;
    torch::Tensor g = fz - z;
    Y_[slot] = z + beta_ * g;
    G_[slot] = g;
    // <g, G_i> over local rows, summed over ranks: the same Gram matrix (and weights) everywhere.
    torch::Tensor col = (G_ * g.unsqueeze(0)).sum({1, 2}).to(torch::kCPU).contiguous();
    exchange.sum(col.data_ptr<double>(), static_cast<int>(m_));
    H_.index_put_({slot}, col);
    H_.index_put_({torch::indexing::Slice(), slot}, col);
    valid_[slot] = true;
    torch::Tensor alpha = weights(slot);
    const bool bad = !torch::isfinite(alpha).all().item<bool>() || alpha.abs().sum().item<double>() > kAlphaMax;
    if (bad) {  // ill-conditioned history: restart from the newest pair (a damped fixed-point step)
      std::fill(valid_.begin(), valid_.end(), false);
      valid_[slot] = true;
      alpha = torch::zeros({m_}, H_.options());
      alpha[slot] = 1.0;
    }
    return (alpha.to(Y_.device()).view({m_, 1, 1}) * Y_).sum(0);
  }

 private:
  torch::Tensor weights(int64_t newest) const {
    auto mask = torch::zeros({m_}, H_.options());
    for (int64_t i = 0; i < m_; ++i) mask[i] = valid_[i] ? 1.0 : 0.0;
    const double scale = std::max(H_[newest][newest].item<double>(), kScaleFloor);
    auto pair = mask.unsqueeze(1) * mask.unsqueeze(0);
    auto A = H_ * pair + torch::diag(lam_ * scale * mask + (1.0 - mask));
    auto [w, info] = torch::linalg_solve_ex(A.unsqueeze(0), mask.view({1, m_, 1}));
    if (info.item<int64_t>() != 0) return torch::full({m_}, std::numeric_limits<double>::quiet_NaN(), H_.options());
    w = w.view({m_}) * mask;
    return w / w.sum();
  }

  int64_t m_;
  double beta_, lam_;
  torch::Tensor Y_, G_, H_;
  std::vector<bool> valid_;
};

}  // namespace

DeqSolver::DeqSolver(Model& model, const SolverSettings& settings) : model_(model), settings_(settings) {}

DeqSolver::Residual DeqSolver::residual(const torch::Tensor& z, const torch::Tensor& fz, Exchange& exchange) const {
  // Both sums in one copy to the host (one wait per iteration on a GPU): the stopping test needs them.
  const torch::Tensor local = torch::stack({(fz - z).pow(2).sum(), fz.pow(2).sum()}).to(torch::kCPU, torch::kFloat64);
  double sums[2] = {local[0].item<double>(), local[1].item<double>()};
  exchange.sum(sums, 2);
  Residual r;
  r.abs = std::sqrt(sums[0]);
  r.rel = r.abs / (std::sqrt(sums[1]) + kResidualEps);
  r.finite = std::isfinite(r.abs) && std::isfinite(r.rel);
  return r;
}

// deqff.deq.solver.FixedPointSolver._solve for one segment: evaluate f at z_k, stop when the residual
// of (z_k, f(z_k)) is below tol, keep the best iterate, step with Anderson or damped iteration.
DeqSolver::Solve DeqSolver::solve(const Func& f, const torch::Tensor& z0, int64_t max_iter, const SolverSettings& s,
                                  Exchange& exchange) const {
  Anderson anderson(z0, s.m, s.beta, s.lam);
  Solve last, best;
  best.residual.abs = best.residual.rel = std::numeric_limits<double>::infinity();
  bool found = false;
  torch::Tensor z = z0;
  for (int64_t k = 0; k < max_iter; ++k) {
    torch::Tensor fz = f(z);
    Residual r = residual(z, fz, exchange);
    last = Solve{z, k + 1, r, false};
    if (!r.finite) break;
    if (r.stop(s.stop_rel) < best.residual.stop(s.stop_rel)) {
      best = last;
      found = true;
    }
    if (r.stop(s.stop_rel) < s.tol) {
      last.converged = true;
      break;
    }
    if (k + 1 == max_iter) break;
    z = s.anderson ? anderson.step(z, fz, k, exchange) : z + s.damping * (fz - z);
  }
  if (s.return_best && found) {
    best.iterations = last.iterations;
    best.converged = last.converged;
    return best;
  }
  return last;
}

torch::Tensor DeqSolver::cold_solve(const Func& f, const torch::Tensor& zero, bool retry_only, SolveStats& stats,
                                    Exchange& exchange) const {
  stats.cold = true;
  if (!retry_only) {
    Solve result = solve(f, zero, settings_.max_iter, settings_, exchange);
    stats.iterations += result.iterations;
    stats.residual = result.residual.stop(settings_.stop_rel);
    if (result.converged) return result.z;
  }
  stats.retried += 1;
  Solve result = solve(f, zero, settings_.fallback_max_iter, settings_, exchange);
  stats.iterations += result.iterations;
  stats.residual = result.residual.stop(settings_.stop_rel);
  if (!result.converged) {
    throw SolveError("deqff: the DEQ fixed-point solve did not converge even from a cold start: residual " +
                     format_residual(result.residual.stop(settings_.stop_rel)) + " (" +
                     (settings_.stop_rel ? "rel" : "abs") + ") after " + std::to_string(result.iterations) +
                     " iterations, tolerance " + format_residual(settings_.tol) +
                     ". The structure is probably outside what the model knows (broken geometry, atoms too "
                     "close or too far apart, a blown-up simulation): check it; or loosen `tol` / raise "
                     "`max_iter` in pair_style deq (or export with a larger --fallback-max-iter).");
  }
  return result.z;
}

// deqff.export.runner.ImplicitRunner.solve: probe f(z0); worse than cold (relative residual >= 1) ->
// cold; converged -> f(z0); otherwise continue from f(z0), retried cold if it does not converge.
torch::Tensor DeqSolver::warm_solve(const Func& f, const torch::Tensor& z0, const torch::Tensor& zero,
                                    SolveStats& stats, Exchange& exchange) const {
  torch::Tensor fz = f(z0);
  Residual r = residual(z0, fz, exchange);
  stats.iterations = 1;
  stats.start_residual = r.rel;
  if (!(r.rel < 1.0) || !r.finite) {
    stats.rejected = true;
    return cold_solve(f, zero, false, stats, exchange);
  }
  if (r.stop(settings_.stop_rel) < settings_.tol) {
    stats.residual = r.stop(settings_.stop_rel);
    return fz;
  }
  Solve result = solve(f, fz, settings_.max_iter, settings_, exchange);
  stats.iterations += result.iterations;
  stats.residual = result.residual.stop(settings_.stop_rel);
  if (result.converged) return result.z;
  return cold_solve(f, zero, true, stats, exchange);
}

DeqSolver::Pass DeqSolver::prepare(const torch::Tensor& positions, const torch::Tensor& species,
                                   const torch::Tensor& edges, int64_t n_local, Exchange& exchange,
                                   bool position_graph) {
  const int64_t n_all = positions.size(0);
  const auto f64 = positions.options().dtype(torch::kFloat64);  // on the inputs' (the model's) device
  Pass pass;
  pass.n_local = n_local;
  pass.injection = torch::zeros({n_all, settings_.feature_dim}, f64);
  pass.h = torch::zeros({n_all, settings_.feature_dim}, f64);
  // Injection of the local atoms (a rank may own none: a molecule in a big box); ghosts' from owners.
  if (n_local > 0 && position_graph) {
    pass.position_graph = model_.embed_graph(positions, species, edges, n_local);
    pass.features = pass.position_graph.features;
    pass.injection.narrow(0, 0, n_local).copy_(pass.position_graph.own.detach());
  } else if (n_local > 0) {
    pass.injection.narrow(0, 0, n_local).copy_(model_.embed(positions, species, edges, n_local, &pass.features));
  }
  exchange.forward(pass.injection);
  return pass;
}

// Stages with ghost rows refreshed before each.
torch::Tensor DeqSolver::apply(Pass& pass, const torch::Tensor& z, Exchange& exchange,
                               std::vector<torch::Tensor>* inputs, bool record_graphs) {
  const int64_t n_local = pass.n_local;
  torch::Tensor out = z;
  for (int64_t stage = 0; stage < settings_.stages; ++stage) {
    pass.h.narrow(0, 0, n_local).copy_(out);
    exchange.forward(pass.h);
    if (inputs) inputs->push_back(pass.h.clone());
    if (n_local == 0) {
      out = torch::zeros({0, settings_.feature_dim}, pass.h.options());
    } else if (record_graphs) {  // the stage's leaves are copies: pass.h may change after this
      pass.graphs.push_back(model_.stage_graph(pass.h, pass.injection, pass.features, n_local, stage));
      out = pass.graphs.back().out.detach().to(torch::kFloat64);
    } else {
      out = model_.iterate(pass.h, pass.injection, pass.features, n_local, stage);
    }
  }
  return out;
}

torch::Tensor DeqSolver::fixed_point(const Func& f, const torch::Tensor& z0, int64_t n_local, SolveStats& stats,
                                     Exchange& exchange) {
  const torch::Tensor zero =
      torch::zeros({n_local, settings_.feature_dim}, torch::TensorOptions().dtype(torch::kFloat64).device(model_.device()));
  // Warm only if every rank has a warm start for all of its atoms.
  const bool usable = settings_.warm_start && z0.defined() && z0.size(0) == n_local &&
                      z0.size(1) == settings_.feature_dim;
  double missing = usable ? 0.0 : 1.0;
  exchange.sum(&missing, 1);
  if (missing > 0.0) return cold_solve(f, zero, false, stats, exchange);
  return warm_solve(f, z0.to(torch::kFloat64).contiguous(), zero, stats, exchange);
}

DeqResult DeqSolver::evaluate(const torch::Tensor& positions, const torch::Tensor& species,
                              const torch::Tensor& edges, int64_t n_local, const torch::Tensor& z0,
                              Exchange& exchange) {
  const auto f64 = positions.options().dtype(torch::kFloat64);
  Pass pass = prepare(positions, species, edges, n_local, exchange);
  const Func f = [&](const torch::Tensor& z) { return apply(pass, z, exchange); };
  DeqResult result;
  if (!settings_.implicit) {
    result.z = f(torch::zeros({n_local, settings_.feature_dim}, f64));
    result.stats.cold = true;
  } else {
    result.z = fixed_point(f, z0, n_local, result.stats, exchange);
  }
  if (n_local > 0) {
    auto [energy, forces] = model_.readout(result.z, species.narrow(0, 0, n_local));
    result.atom_energy = energy.to(torch::kFloat64).contiguous();
    result.forces = forces.to(torch::kFloat64).contiguous();
  } else {
    result.atom_energy = torch::zeros({0}, f64);
    result.forces = torch::zeros({0, 3}, f64);
  }
  return result;
}

torch::Tensor DeqSolver::transpose(Pass& pass, const std::vector<torch::Tensor>& inputs, const torch::Tensor& c,
                                   Exchange& exchange, std::vector<torch::Tensor>* cotangents,
                                   torch::Tensor* injection_grad, torch::Tensor* injection_local) {
  const int64_t n_local = pass.n_local;
  const int64_t n_all = pass.h.size(0);
  if (cotangents) cotangents->assign(settings_.stages, torch::Tensor());
  torch::Tensor out = c;
  torch::Tensor injection_sum;
  for (int64_t stage = settings_.stages - 1; stage >= 0; --stage) {
    if (cotangents) (*cotangents)[stage] = out;
    torch::Tensor dh, du;
    if (n_local > 0) {
      std::tie(dh, du) = pass.graphs.empty()
                             ? model_.iterate_vjp(inputs[stage], pass.injection, pass.features, n_local, stage, out)
                             : Model::stage_vjp(pass.graphs[stage], out);
    } else {
      dh = torch::zeros({n_all, settings_.feature_dim}, pass.h.options());
      du = torch::zeros_like(dh);
    }
    exchange.reverse(dh);  // ghost rows' cotangents to their owners
    out = dh.narrow(0, 0, n_local).clone();
    if (injection_grad || injection_local) injection_sum = injection_sum.defined() ? injection_sum + du : du.clone();
  }
  if (injection_local) *injection_local = injection_sum.narrow(0, 0, n_local).clone();
  if (injection_grad) {
    // Only what ghost rows send: the own rows are differentiated again by position_grad, through the
    // local embedding.
    injection_sum.narrow(0, 0, n_local).zero_();
    exchange.reverse(injection_sum);
    *injection_grad = injection_sum.narrow(0, 0, n_local).clone();
  }
  return out;
}

torch::Tensor DeqSolver::adjoint(Pass& pass, const std::vector<torch::Tensor>& inputs, const torch::Tensor& v,
                                 const torch::Tensor& g0, SolveStats& stats, Exchange& exchange) {
  const SolverSettings& adjoint = model_.adjoint_settings();
  const int64_t n_local = pass.n_local;
  const int64_t D = settings_.feature_dim;
  // Every adjoint iteration transposes f at the same point: record each stage's graph once (unless
  // the evaluation of s = f(z*) recorded them).
  if (n_local > 0 && model_.has_stage_graph() && pass.graphs.empty()) {
    for (int64_t stage = 0; stage < settings_.stages; ++stage)
      pass.graphs.push_back(model_.stage_graph(inputs[stage], pass.injection, pass.features, n_local, stage));
  }
  const Func map = [&](const torch::Tensor& g) { return v + transpose(pass, inputs, g, exchange); };
  const bool usable = settings_.warm_start && g0.defined() && g0.size(0) == n_local && g0.size(1) == D;
  double missing = usable ? 0.0 : 1.0;
  exchange.sum(&missing, 1);
  stats.adjoint_cold = missing > 0.0;
  Solve solved = solve(map, missing > 0.0 ? v : g0.to(torch::kFloat64).contiguous(), adjoint.max_iter, adjoint,
                       exchange);
  stats.adjoint_iterations = solved.iterations;
  if (!solved.converged) {
    stats.retried += 1;
    stats.adjoint_cold = true;
    solved = solve(map, v, adjoint.fallback_max_iter, adjoint, exchange);
    stats.adjoint_iterations += solved.iterations;
  }
  stats.adjoint_residual = solved.residual.stop(adjoint.stop_rel);
  if (!solved.converged) {
    throw SolveError("deqff: the adjoint solve of the conservative forces did not converge: residual " +
                     format_residual(stats.adjoint_residual) + " (" + (adjoint.stop_rel ? "rel" : "abs") +
                     ") after " + std::to_string(solved.iterations) + " iterations, tolerance " +
                     format_residual(adjoint.tol) +
                     ". Check the structure (atoms too close, a blown-up simulation), or export with a larger "
                     "--adjoint-max-iter or a looser --adjoint-tol.");
  }
  return solved.z;
}

void DeqSolver::phantom_cotangents(Pass& pass, const std::vector<torch::Tensor>& inputs, const torch::Tensor& v,
                                   Exchange& exchange, std::vector<torch::Tensor>& cotangents,
                                   torch::Tensor& remote) {
  const int64_t S = settings_.stages;
  const int64_t K = settings_.phantom_steps;
  const double tau = settings_.phantom_tau;
  cotangents.assign(K * S, torch::Tensor());
  remote = torch::zeros_like(v);
  // z_{k+1} = (1 - tau) z_k + tau f(z_k): the cotangent c of z_{k+1} gives tau c to f's output at step
  // k and (1 - tau) c + J_k^T (tau c) to z_k. z_0 = z* is held fixed (no gradient through the solve).
  torch::Tensor c = v;
  for (int64_t k = K - 1; k >= 0; --k) {
    const std::vector<torch::Tensor> step(inputs.begin() + k * S, inputs.begin() + (k + 1) * S);
    std::vector<torch::Tensor> step_cotangents;
    torch::Tensor step_remote;
    const torch::Tensor back = transpose(pass, step, tau * c, exchange, &step_cotangents, &step_remote);
    for (int64_t stage = 0; stage < S; ++stage) cotangents[k * S + stage] = step_cotangents[stage];
    remote = remote + step_remote;
    c = (1.0 - tau) * c + back;
  }
}

GradientResult DeqSolver::evaluate_gradients(const torch::Tensor& positions, const torch::Tensor& species,
                                             const torch::Tensor& edges, int64_t n_local, const torch::Tensor& z0,
                                             const torch::Tensor& g0, Exchange& exchange) {
  const int64_t n_all = positions.size(0);
  const int64_t D = settings_.feature_dim;
  const auto f64 = positions.options().dtype(torch::kFloat64);
  const bool phantom = settings_.implicit && settings_.phantom_steps > 0;
  if (!model_.has_gradient_steps() || (settings_.implicit && !phantom && !model_.has_adjoint_steps())) {
    throw ModelError("deqff: the model has no pieces for gradient forces across ranks; re-export it with "
                     "this deqff");
  }
  // Conservative DEQs whose files have the pieces record the embedding and s = f(z*) once with graphs
  // to the positions; the position gradient is then taken from those graphs.
  const bool position_graphs = settings_.implicit && !phantom && model_.has_position_graphs();
  Pass pass = prepare(positions, species, edges, n_local, exchange, position_graphs);
  const Func f = [&](const torch::Tensor& z) { return apply(pass, z, exchange); };
  GradientResult result;

  // The state the energy is read out from, and the stage inputs of every application of f leading to
  // it (ghost rows filled): s = f(z*) (conservative), z_K (phantom) or the explicit pass from zero.
  std::vector<torch::Tensor> inputs;
  torch::Tensor state;
  if (!settings_.implicit) {
    state = apply(pass, torch::zeros({n_local, D}, f64), exchange, &inputs);
    result.stats.cold = true;
  } else {
    result.z = fixed_point(f, z0, n_local, result.stats, exchange);
    if (phantom) {
      state = result.z;
      for (int64_t k = 0; k < settings_.phantom_steps; ++k)
        state = (1.0 - settings_.phantom_tau) * state +
                settings_.phantom_tau * apply(pass, state, exchange, &inputs);
    } else {
      state = apply(pass, result.z, exchange, &inputs, model_.has_stage_graph());
    }
  }
  torch::Tensor v = torch::zeros({n_local, D}, f64);
  result.atom_energy = torch::zeros({n_local}, f64);
  if (n_local > 0) std::tie(result.atom_energy, v) = model_.energy_grad(state, species.narrow(0, 0, n_local));

  // Cotangents of every stage output and of the injection rows other ranks hold of the local atoms.
  std::vector<torch::Tensor> cotangents;
  torch::Tensor remote;
  torch::Tensor local_injection;
  if (phantom) {
    phantom_cotangents(pass, inputs, v, exchange, cotangents, remote);
  } else if (settings_.implicit) {
    result.g = adjoint(pass, inputs, v, g0, result.stats, exchange);
    transpose(pass, inputs, result.g, exchange, &cotangents, &remote, position_graphs ? &local_injection : nullptr);
  } else {
    transpose(pass, inputs, v, exchange, &cotangents, &remote);
  }

  // Forces on local and ghost positions: -d/dx of the stage outputs weighted by their cotangents
  // (stage by stage), of the local injection, and of the prior.
  result.forces = torch::zeros({n_all, 3}, f64);
  if (n_local > 0 && position_graphs) {
    std::vector<torch::Tensor> outs;
    for (const StageGraph& graph : pass.graphs) outs.push_back(graph.out);
    auto [prior, grad] = model_.position_grad_graphs(pass.position_graph, species, edges, n_local, outs, cotangents,
                                                     local_injection + remote);
    result.atom_energy = result.atom_energy + prior;
    result.forces = -grad;
  } else if (n_local > 0) {
    auto [prior, grad] = model_.position_grad(positions, species, edges, n_local, inputs, pass.injection,
                                              cotangents, remote);
    result.atom_energy = result.atom_energy + prior;
    result.forces = -grad;
  }
  return result;
}

}  // namespace deqff
