// LAMMPS pair style `deq`: energies and forces from an exported deqff model (see README, "LAMMPS").
//   pair_style deq model.pt [tol X] [max_iter N] [warm yes|no] [seed N] [device cpu|cuda|cuda:N]
//                           [malloc keep|system]
//   pair_coeff * * C H O      (one element per LAMMPS atom type, NULL for types the model skips)
// Supports `units metal` (Å, eV) and `units real` (Å, kcal/mol); needs `newton_pair on`.
//
// `malloc keep` (default) makes the process's allocator keep freed memory for the next step
// (deqff/allocator.h: large tensors are otherwise re-mapped, page by page, every step); `malloc
// system` leaves the C library's defaults.
//
// `device` (default cpu) loads the model onto that torch device (deqff::parse_device: an unusable
// device is an error naming the fix). Each step copies positions, species and the neighbor list there
// once, and the solve's tensors (states, Anderson history, adjoint) stay there; what crosses to the
// host: the per-atom warm-start state (fix DEQ_STATE, once per step each way), the results, the two
// residual sums and Anderson's Gram column of every iteration (summed over ranks with MPI), and, in
// the solver loops below, the [n_all, D] rows of every stage for the ghost exchange (LAMMPS
// communicates host buffers, so ghosts -- other ranks' atoms and periodic images -- need a device ->
// host -> device copy per stage). The one-rank mode solves entirely on the device.
//
// Four ways to evaluate, chosen from the model:
//  * direct forces (DEQ or explicit): the C++ solver loop (deqff/solver.h) around the model's
//    exported steps, on any number of MPI ranks; ghost features by forward communication, residuals
//    summed over ranks, warm starts per atom in fix DEQ_STATE (they move with the atoms); a
//    short-range prior (metadata "repulsion") is added per local atom by the model's lammps_prior();
//  * gradient forces -dE/dx (Model::has_gradient_steps; DeqSolver::evaluate_gradients): the same
//    loop for the fixed point, then the backward pass in C++ too, with the ghost rows of every
//    transposed stage summed into their owners by reverse communication: for conservative DEQs the
//    adjoint solve, warm-started from a per-atom adjoint state in fix DEQ_STATE; for phantom DEQs
//    (format >= 4) the K damped steps from z*; for conservative explicit stacks their one pass.
//    Forces on local and ghost atoms (LAMMPS adds ghost forces to their owners), so the fdotr virial
//    is exact; any number of ranks;
//  * conservative and phantom models exported before those pieces: the model's own step_graph on one
//    rank (ghosts mapped to their owners with periodic shifts; the prior is part of its energy);
//    more ranks are rejected with the re-export to do;
//  * analytic test models: their compute_local().
// MD-ET options recorded in the model (deqff export --remove-net-force / --remove-net-torque /
// --random-rotation) are applied here in every mode (deqff/mdet.h): net force / torque removal with
// sums over all ranks (net torque: non-periodic boxes only), and one random rotation per evaluation
// drawn on rank 0 from a generator seeded by `seed N` (default 1) and broadcast, with the warm-start
// state rotated by the model's Wigner-D matrices (lammps_wigner), so warm starts keep working.
// Solver statistics: `compute ID all pair deq` gives c_ID[1] iterations of the last evaluation,
// c_ID[2] its residual, c_ID[3] 1 if it started cold, c_ID[4] iterations since pair_style, c_ID[5] 1 if
// its warm start was rejected (worse than cold), c_ID[6] cold retries with the fallback cap, c_ID[7]
// adjoint iterations (conservative forces); the same meaning as the Python module's last_stats().
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "deqff/mdet.h"
#include "deqff/model.h"
#include "deqff/solver.h"
#include "pair.h"

namespace LAMMPS_NS {

class FixDeqState;

class PairDeq : public Pair {
 public:
  explicit PairDeq(class LAMMPS *lmp);
  ~PairDeq() override;

  void compute(int eflag, int vflag) override;
  void settings(int narg, char **arg) override;
  void coeff(int narg, char **arg) override;
  void init_style() override;
  double init_one(int itype, int jtype) override;
  void *extract(const char *name, int &dim) override;

  int pack_forward_comm(int n, int *list, double *buf, int pbc_flag, int *pbc) override;
  void unpack_forward_comm(int n, int first, double *buf) override;
  int pack_reverse_comm(int n, int first, double *buf) override;
  void unpack_reverse_comm(int n, int *list, double *buf) override;

  // Fill the ghost rows of `rows` [nall, D] from their owners (LAMMPS forward communication).
  void forward_rows(torch::Tensor &rows);
  // Add the ghost rows of `rows` [nall, D] to their owners' rows (LAMMPS reverse communication).
  void reverse_rows(torch::Tensor &rows);

 private:
  enum class Mode { Analytic, Steps, Gradients, OneRank };

  void allocate();
  void check_units() const;
  void check_box_width() const;
  void gather_inputs();
  void ensure_state_fix();
  // Per-atom state rows of fix DEQ_STATE: [model fingerprint (0: none), history depth H, then blocks
  // 0..predictor_order of state_parts() * D values each: block 0 the last state [z (, g)], block j the
  // state j steps before it (lab frame), valid for j <= H].
  bool has_adjoint() const;  // the state also keeps the adjoint g (conservative DEQs)
  int state_parts() const { return has_adjoint() ? 2 : 1; }
  int block_offset(int block, int part) const;
  int history_depth();  // past states every atom on every rank holds (<= predictor_order_). Collective.
  // The warm start of part 0 (z) or 1 (g) of the local atoms [nlocal, D], lab frame: the last state,
  // or its polynomial extrapolation over `depth` past states (as deqff.export.module); undefined if
  // some local atom has no state.
  torch::Tensor warm_start(int part, int depth) const;
  // Keep the new state (lab frame; g undefined without adjoint): push the last one into the history,
  // or clear the history after a cold solve (as the Python module).
  void commit_state(const torch::Tensor &z, const torch::Tensor &g, bool cold);
  void record_stats(const deqff::SolveStats &stats);
  void compute_analytic();
  void compute_steps();
  void compute_gradients();
  void compute_one_rank();
  void add_results(const double *atom_energy, const double *forces, int n_forces);
  // MD-ET options (deqff/mdet.h) around an evaluation of the non-analytic modes.
  void draw_rotation();                                     // rotation_, wigner_ and rotated positions_
  torch::Tensor to_call_frame(const torch::Tensor &state) const;  // lab-frame state [N, D] -> z @ D^T
  torch::Tensor to_lab_frame(const torch::Tensor &state) const;   // call-frame state -> z @ D
  // [nlocal, 3] (or [nall, 3] with ghost rows for their owners): R^T F, net force/torque. Collective.
  torch::Tensor finish_forces(const torch::Tensor &forces);

  std::unique_ptr<deqff::Model> model_;
  std::unique_ptr<deqff::DeqSolver> solver_;
  Mode mode_ = Mode::Analytic;
  deqff::SolverSettings settings_;        // the model's, with pair_style overrides
  bool solver_overridden_ = false;        // tol / max_iter given in pair_style
  deqff::MdetOptions mdet_;               // the model's MD-ET options (off for analytic models)
  std::unique_ptr<deqff::RotationSource> rotations_;  // random_rotation: drawn on rank 0
  deqff::Rotation rotation_{};            // this evaluation's rotation (row-major)
  torch::Tensor wigner_;                  // D(rotation_) [D, D] for the state (implicit models)
  std::vector<int64_t> type_to_species_;  // [ntypes + 1]; -1 = not mapped (NULL)
  double energy_factor_ = 1.0;            // model eV -> LAMMPS energy unit
  double length_factor_ = 1.0;            // LAMMPS length unit -> Å
  double cutoff_ = 0.0;                   // in LAMMPS length units

  // Warm-start state per atom (fix DEQ_STATE, created by init_style; one pair_style deq per run).
  std::string fix_id_ = "DEQ_STATE";
  FixDeqState *fix_ = nullptr;
  bigint natoms_seen_ = -1;   // atom count of the last evaluation (a change resets the state)
  int predictor_order_ = 0;   // past states kept per atom for extrapolated warm starts (export option)
  double fingerprint_ = 0.0;  // of the model file (FNV-1a of its bytes, exact in a double, > 0):
                              // a state row written by another model is never used
  void check_restored_state();

  // Rows being forward- or reverse-communicated (set only during forward_rows / reverse_rows).
  torch::Tensor *comm_rows_ = nullptr;

  // Statistics of the last evaluation (the same on every rank).
  double last_iterations_ = 0.0, last_residual_ = 0.0, last_cold_ = 0.0, total_iterations_ = 0.0;
  double last_rejected_ = 0.0, last_retried_ = 0.0, last_adjoint_iterations_ = 0.0;

  // Per-step buffers, reused across steps.
  std::vector<double> positions_;  // [n_all * 3] Å
  std::vector<int64_t> species_;   // [n_all]
  std::vector<int64_t> edges_;     // [2 * n_edges] (row 0 local i, row 1 neighbor j)
};

}  // namespace LAMMPS_NS
