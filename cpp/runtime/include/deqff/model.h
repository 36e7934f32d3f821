// deqff C++ runtime: load an exported deqff TorchScript model, check its metadata, evaluate it on
// a set of local + ghost atoms with a given neighbor list. Units at this boundary: Å and eV.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/script.h>

namespace deqff {

// Versions of the exported-model format this runtime reads (python/deqff/export/metadata.py):
// kFormatVersion is the newest (4: phantom DEQs record their damped steps, position_grad takes K * S
// stage entries; 3: feature_dim and stages in the metadata, no lammps_info(); 2: the
// short-range prior, "repulsion" and lammps_prior()), down to kOldestFormatVersion (1: no prior).
// Files of versions 1-2 are read from their metadata too (feature_dim and stages from model_config).
constexpr int kFormatVersion = 4;
constexpr int kOldestFormatVersion = 1;

// A model file that cannot be used: not a deqff model, wrong format version, bad metadata.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One stage of f recorded with its autograd graph at fixed inputs (graph_step.stage_graph): leaves
// h and injection [n_all, D] and the local output out [n_local, D], in the model's dtype.
struct StageGraph {
  torch::Tensor h;
  torch::Tensor injection;
  torch::Tensor out;
};

// A geometry's embedding recorded with autograd graphs to its positions (graph_step.embed_graph):
// the positions leaf (model dtype), the local injection and the edge features, both with graphs to it.
struct PositionGraph {
  torch::Tensor positions;
  torch::Tensor own;
  c10::IValue features;
};

// MD-ET inference options recorded at export (python/deqff/export/mdet.py); a host that drives the
// model itself (LAMMPS) must apply them (deqff/mdet.h). Absent entries (older exports) mean off.
struct MdetOptions {
  bool remove_net_force = false;   // subtract the mean force over the model's atoms
  bool remove_net_torque = false;  // project off rigid rotations about the centre (molecules only)
  bool random_rotation = false;    // evaluate in a random frame each call, state rotated by D(R)
  bool any() const { return remove_net_force || remove_net_torque || random_rotation; }
};

// What an exported model says about itself (its `metadata()` method, all values as strings).
struct ModelMetadata {
  int format_version = 0;
  std::string deqff_version;
  std::string model_type;              // "deq", "explicit" or "analytic"
  double cutoff = 0.0;                 // Å
  std::vector<std::string> elements;   // chemical symbols; species index = position in this list
  std::string force_mode;              // "direct", "conservative", "phantom" or "analytic"
  std::string repulsion = "none";      // short-range prior: "none" or "zbl" (absent: none)
  double min_distance = 0.0;           // Å: closer atoms are an input error (absent: 0, no check)
  MdetOptions mdet;
  std::map<std::string, std::string> raw;
};

// What a deqff (DEQ or explicit) model needs from a host that drives its solve, read from its metadata
// (solver_settings_from_metadata; python deqff.export.metadata.host_settings has the same numbers).
struct SolverSettings {
  int64_t feature_dim = 0;       // D, floats per atom of the state z
  int64_t stages = 1;            // iterate() calls per application of f (DEQ) or per pass (explicit)
  bool implicit = false;         // true: solve z = f(z) to a fixed point; false: one pass from z = 0
  bool warm_start = true;        // reuse the previous fixed point (export option)
  double tol = 0.0;              // inference tolerance on the stop residual
  int64_t max_iter = 0;          // cap of a normal (warm or cold) solve
  int64_t fallback_max_iter = 0; // cap of the cold retry after a failed solve
  bool stop_rel = true;          // stop on ||f(z) - z|| / ||f(z)|| (true) or ||f(z) - z|| (false)
  bool anderson = true;          // Anderson acceleration (true) or damped fixed-point iteration
  int64_t m = 5;                 // Anderson history
  double beta = 1.0;             // Anderson mixing
  double lam = 1e-4;             // Anderson ridge, relative to the newest residual's squared norm
  double damping = 1.0;          // fixed-point step z + damping (f(z) - z)
  bool return_best = true;       // return the lowest-residual iterate
  int64_t predictor_order = 0;   // warm starts extrapolated over this many past states (absent: 0)
  int64_t secant_memory = 0;     // Anderson slots seeded with the last call's secant pairs in the module's
                                 // own solves (absent: 0); the host-driven solve (DeqSolver) does not seed
  int64_t phantom_steps = 0;     // phantom DEQs (format >= 4): damped steps z <- (1 - tau) z + tau f(z)
  double phantom_tau = 1.0;      // from z* that the energy is read out after (0: not recorded)
};

// Result of `Model::step_graph` (any force mode, one rank). eV, eV/Å, float64 tensors.
struct GraphStepResult {
  double energy = 0.0;
  torch::Tensor forces;       // [N, 3]
  torch::Tensor atom_energy;  // [N] read out from z* ([0] for explicit models)
  torch::Tensor z, g;         // new warm-start state [N, D] ([0, D] if none)
  std::map<std::string, double> stats;  // deqff.export.runner.STAT_NAMES
};

// Result of one evaluation. Energies in eV, forces in eV/Å.
struct LocalResult {
  double energy = 0.0;                 // sum of atom_energy
  std::vector<double> atom_energy;     // [n_local]
  std::vector<double> forces;          // [n_all * 3], row-major; ghost entries to be reverse-communicated
};

// Parse the `metadata()` dictionary of a model; throws ModelError naming what is wrong.
ModelMetadata parse_metadata(const std::map<std::string, std::string>& raw, const std::string& path);

// The solve's settings of a deqff DEQ or explicit model from its metadata alone: entries feature_dim and
// stages (format >= 3; before, from model_config) and the "solver" JSON (inference, fallback,
// warm_start, predictor_order; with `adjoint`, the adjoint solve of a conservative DEQ and
// adjoint_fallback_max_iter). Throws ModelError naming `deqff export` when something is missing.
SolverSettings solver_settings_from_metadata(const ModelMetadata& meta, bool adjoint, const std::string& path);

// The torch device of a device option: "cpu", "cuda" (device 0) or "cuda:N". A CUDA device needs
// libtorch's CUDA backend, which this runtime (linked to libtorch_cpu only) loads on demand from
// libtorch_cuda.so next to libc10.so (a CUDA build of torch, as the PyPI wheel), an NVIDIA driver and
// a GPU that torch sees; otherwise throws ModelError naming what is missing and the fix.
torch::Device parse_device(const std::string& spec);

class Model {
 public:
  // Loads `path` onto `device` (parse_device; its parameters and buffers live there) and checks its
  // metadata; throws ModelError with a fix in the message. Tensors passed to the calls below must be
  // on device(); the results are on device() too (compute_local returns host vectors).
  explicit Model(const std::string& path, const std::string& device = "cpu");

  const ModelMetadata& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  const torch::Device& device() const { return device_; }

  // Index of `element` in the model's element list; throws ModelError listing the known elements.
  int64_t species_index(const std::string& element) const;

  // Evaluate energies and forces.
  //   positions  [n_all * 3] Å; atoms [0, n_local) are local, the rest ghosts (periodic images or
  //              atoms owned by other ranks)
  //   species    [n_all] indices into metadata().elements
  //   edges      [2 * n_edges]: edges[e] = i (a local atom), edges[n_edges + e] = j (its neighbor);
  //              a full list: both (i, j) and (j, i) appear when both are local
  LocalResult compute_local(const double* positions, const int64_t* species, int64_t n_all, int64_t n_local,
                            const int64_t* edges, int64_t n_edges);

  // Forget any warm-start state the model keeps (its exported `reset()` method, if it has one).
  void reset();

  // --- deqff models: the host-driven DEQ (python/deqff/export/graph_step.py) -------------------------
  // Analytic test models have compute_local(); deqff models have the calls below instead.
  bool has_compute_local() const { return has_compute_local_; }
  bool has_graph_step() const { return has_graph_step_; }
  // Solver settings of a deqff model; throws ModelError for models without the graph-step interface.
  const SolverSettings& solver_settings() const;

  // --- forces as -dE/dx across ranks: the pieces energy_grad / iterate_vjp / position_grad -------------
  // True when the host can compute the model's gradient forces itself (DeqSolver::evaluate_gradients):
  // conservative DEQs, phantom DEQs of format >= 4 and conservative/phantom explicit stacks that export
  // the pieces. False for direct forces and for older conservative/phantom files (one rank, step_graph).
  bool has_gradient_steps() const { return has_gradient_steps_; }
  // True for conservative DEQs with the pieces: their forces need the adjoint solve g = dE/ds + J^T g.
  bool has_adjoint_steps() const { return has_adjoint_steps_; }
  // The adjoint solve's settings (tol, max_iter, fallback_max_iter, Anderson; feature_dim and stages
  // as the forward's). Throws ModelError without the adjoint pieces.
  const SolverSettings& adjoint_settings() const;
  // (atom energies [n_local] eV, dE/ds [n_local, D]) of s = f(z*) [n_local, D], species [n_local].
  std::pair<torch::Tensor, torch::Tensor> energy_grad(const torch::Tensor& s, const torch::Tensor& species);
  // Transpose of stage `stage` at its input h [n_all, D]: cotangent [n_local, D] of its output ->
  // (d/dh [n_all, D], d/dinjection [n_all, D]); ghost rows belong to other atoms' owners.
  std::pair<torch::Tensor, torch::Tensor> iterate_vjp(const torch::Tensor& h, const torch::Tensor& injection,
                                                      const c10::IValue& features, int64_t n_local, int64_t stage,
                                                      const torch::Tensor& cotangent);
  // True when the model also exports lammps_stage_graph: the adjoint loop then records each stage once
  // per geometry (stage_graph) and takes every iteration's transpose from that graph (stage_vjp),
  // instead of iterate_vjp's forward + backward per iteration.
  bool has_stage_graph() const { return has_stage_graph_; }
  StageGraph stage_graph(const torch::Tensor& h, const torch::Tensor& injection, const c10::IValue& features,
                         int64_t n_local, int64_t stage);
  // (d/dh [n_all, D], d/dinjection [n_all, D]) float64 of <cotangent [n_local, D], graph.out>; the graph
  // is kept for the next call.
  static std::pair<torch::Tensor, torch::Tensor> stage_vjp(const StageGraph& graph, const torch::Tensor& cotangent);
  // (prior atom energies [n_local] eV, gradient [n_all, 3] eV/Å with respect to local and ghost
  // positions) of sum_k <cotangents[k], stage k at stage_inputs[k]> + <injection_cotangent, the local
  // atoms' injection> + the prior (half of each pair of the full list `edges`).
  std::pair<torch::Tensor, torch::Tensor> position_grad(const torch::Tensor& positions, const torch::Tensor& species,
                                                        const torch::Tensor& edges, int64_t n_local,
                                                        const std::vector<torch::Tensor>& stage_inputs,
                                                        const torch::Tensor& injection,
                                                        const std::vector<torch::Tensor>& cotangents,
                                                        const torch::Tensor& injection_cotangent);

  // True when the model also exports lammps_embed_graph and lammps_position_grad_graphs (and the stage
  // graphs): a conservative DEQ's embedding and s = f(z*) are then recorded once with graphs to the
  // positions, and the position gradient is taken from them instead of evaluating both again.
  bool has_position_graphs() const { return has_position_graphs_; }
  // embed() with graphs: the positions leaf x [n_all, 3] (model dtype), the local injection own
  // [n_local, D] and the edge features, both with graphs to x.
  PositionGraph embed_graph(const torch::Tensor& positions, const torch::Tensor& species, const torch::Tensor& edges,
                            int64_t n_local);
  // position_grad() from recorded graphs: outs [S] the recorded stages' outputs (on embed_graph's
  // features), cotangents [S] their cotangents, injection_cotangent [n_local, D] that of the local
  // injection (own rows of the stages' transposes plus what other ranks sent). Frees the graphs.
  std::pair<torch::Tensor, torch::Tensor> position_grad_graphs(const PositionGraph& graph,
                                                               const torch::Tensor& species,
                                                               const torch::Tensor& edges, int64_t n_local,
                                                               const std::vector<torch::Tensor>& outs,
                                                               const std::vector<torch::Tensor>& cotangents,
                                                               const torch::Tensor& injection_cotangent);

  // Injection [n_local, D] of the local atoms, and the edge features for iterate().
  //   positions [n_all, 3] Å, species [n_all] int64, edges [2, E] int64 (row 0 local i, row 1 j)
  torch::Tensor embed(const torch::Tensor& positions, const torch::Tensor& species, const torch::Tensor& edges,
                      int64_t n_local, c10::IValue* features);
  // One stage of f: h, injection [n_all, D] (ghost rows filled by the host) -> [n_local, D].
  torch::Tensor iterate(const torch::Tensor& h, const torch::Tensor& injection, const c10::IValue& features,
                        int64_t n_local, int64_t stage);
  // (atom energies [n_local] eV, direct forces [n_local, 3] eV/Å; zeros unless force mode is direct).
  std::pair<torch::Tensor, torch::Tensor> readout(const torch::Tensor& z, const torch::Tensor& species);
  // The short-range prior of the local atoms (its exported `lammps_prior`), to add to readout()'s:
  // (atom energies [n_local] eV, forces [n_local, 3] eV/Å) from positions [n_all, 3] Å, species
  // [n_all] and a FULL neighbor list edges [2, E] (row 0 local i, row 1 neighbor j); no ghost forces.
  // Call it when has_prior(); throws ModelError for models without the method.
  bool has_prior() const { return metadata_.repulsion != "none"; }
  std::pair<torch::Tensor, torch::Tensor> prior(const torch::Tensor& positions, const torch::Tensor& species,
                                                const torch::Tensor& edges, int64_t n_local);
  // Any force mode on one rank's own atoms: positions [N, 3], species [N], edges [2, E] (row 0 i,
  // row 1 j, both owned), shifts [E, 3] Å (image of j minus j), warm starts z0, g0 ([0, D]: cold).
  // Wigner-D matrix D(R) [D, D] float64 of the state's irreps for a rotation R [3, 3] (its exported
  // `lammps_wigner`): a state z [N, D] in the frame rotated by R is z @ D^T. Throws ModelError for
  // models exported without it.
  torch::Tensor wigner(const torch::Tensor& rotation);
  bool has_wigner() const { return has_wigner_; }
  GraphStepResult step_graph(const torch::Tensor& positions, const torch::Tensor& species,
                             const torch::Tensor& edges, const torch::Tensor& shifts, const torch::Tensor& z0,
                             const torch::Tensor& g0);

 private:
  std::string path_;
  torch::Device device_ = torch::kCPU;
  torch::jit::Module module_;
  ModelMetadata metadata_;
  bool has_compute_local_ = false;
  bool has_graph_step_ = false;
  bool has_wigner_ = false;
  bool has_gradient_steps_ = false;
  bool has_adjoint_steps_ = false;
  bool has_stage_graph_ = false;
  bool has_position_graphs_ = false;
  bool jit_optimize_ = false;  // TorchScript graph optimization (env DEQFF_JIT_OPTIMIZE=1)
  SolverSettings settings_;
  SolverSettings adjoint_settings_;
};

// Error message of a TorchScript exception without its TorchScript traceback (the Python message).
std::string script_error_message(const std::exception& error);

}  // namespace deqff
