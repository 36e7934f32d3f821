#include "pair_deq.h"

#include "deqff/allocator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "fix_deq_state.h"
#include "force.h"
#include "memory.h"
#include "modify.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

using namespace LAMMPS_NS;

namespace {

// pvector: iterations, residual, cold, total iterations, rejected, retried, adjoint iterations
constexpr int kNumStats = 7;
constexpr int kDefaultSeed = 1;  // of the random rotations, when pair_style gives no `seed`

// deqff::Exchange through LAMMPS: forward communication of the pair style, MPI sums over `world`.
class LammpsExchange : public deqff::Exchange {
 public:
  LammpsExchange(PairDeq *pair, MPI_Comm world) : pair_(pair), world_(world) {}
  void forward(torch::Tensor &rows) override { pair_->forward_rows(rows); }
  void sum(double *values, int n) override { MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, world_); }
  void reverse(torch::Tensor &rows) override { pair_->reverse_rows(rows); }

 private:
  PairDeq *pair_;
  MPI_Comm world_;
};

// FNV-1a hash of a file's bytes, as a positive integer exactly representable in a double (52 bits).
double file_fingerprint(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t hash = 1469598103934665603ULL;
  char buffer[65536];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    for (std::streamsize k = 0; k < in.gcount(); ++k) {
      hash ^= static_cast<unsigned char>(buffer[k]);
      hash *= 1099511628211ULL;
    }
  }
  return static_cast<double>((hash >> 12) | 1ULL);
}

// A copy of host data on `device` (one transfer; a clone on the CPU).
torch::Tensor tensor_from(std::vector<double> &data, std::vector<int64_t> shape, const torch::Device &device) {
  return torch::from_blob(data.data(), shape, torch::TensorOptions().dtype(torch::kFloat64)).clone().to(device);
}

torch::Tensor tensor_from(std::vector<int64_t> &data, std::vector<int64_t> shape, const torch::Device &device) {
  return torch::from_blob(data.data(), shape, torch::TensorOptions().dtype(torch::kInt64)).clone().to(device);
}

// A model result as a contiguous float64 host tensor, for LAMMPS's arrays.
torch::Tensor host(const torch::Tensor &t) { return t.to(torch::kCPU, torch::kFloat64).contiguous(); }

}  // namespace

PairDeq::PairDeq(LAMMPS *lmp) : Pair(lmp) {
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  nextra = kNumStats;
  pvector = new double[kNumStats]();
}

PairDeq::~PairDeq() {
  if (fix_ && modify && modify->get_fix_by_id(fix_id_)) modify->delete_fix(fix_id_);
  delete[] pvector;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairDeq::allocate() {
  allocated = 1;
  const int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  for (int i = 1; i <= n; ++i)
    for (int j = i; j <= n; ++j) setflag[i][j] = 0;
  type_to_species_.assign(n + 1, -1);
}

void PairDeq::settings(int narg, char **arg) {
  if (narg < 1 || narg % 2 == 0)
    error->all(FLERR, "Illegal pair_style deq command: expected `pair_style deq model.pt [tol X] [max_iter N] "
                      "[warm yes|no] [seed N] [device cpu|cuda|cuda:N] [malloc keep|system]`");
  // The device first: the model is loaded onto it (an unusable device fails before loading).
  std::string device = "cpu";
  for (int iarg = 1; iarg + 1 < narg; iarg += 2)
    if (std::string(arg[iarg]) == "device") device = arg[iarg + 1];
  try {
    model_ = std::make_unique<deqff::Model>(arg[0], device);
  } catch (const std::exception &e) {
    error->all(FLERR, "pair_style deq: {}", e.what());
  }
  fingerprint_ = file_fingerprint(arg[0]);
  const auto &meta = model_->metadata();
  if (model_->has_graph_step()) {
    settings_ = model_->solver_settings();
    if (meta.force_mode == "direct") {
      mode_ = Mode::Steps;
    } else {
      mode_ = model_->has_gradient_steps() ? Mode::Gradients : Mode::OneRank;
    }
  } else {
    mode_ = Mode::Analytic;
  }
  solver_overridden_ = false;
  int seed = kDefaultSeed;
  bool seed_given = false;
  bool keep_memory = true;
  for (int iarg = 1; iarg < narg; iarg += 2) {
    const std::string key = arg[iarg];
    if (key == "tol") {
      settings_.tol = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (!(settings_.tol > 0.0)) error->all(FLERR, "pair_style deq: tol must be > 0");
      solver_overridden_ = true;
    } else if (key == "max_iter") {
      settings_.max_iter = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (settings_.max_iter < 1) error->all(FLERR, "pair_style deq: max_iter must be >= 1");
      settings_.fallback_max_iter = std::max<int64_t>(settings_.fallback_max_iter, settings_.max_iter);
      solver_overridden_ = true;
    } else if (key == "warm") {
      settings_.warm_start = utils::logical(FLERR, arg[iarg + 1], false, lmp);
    } else if (key == "seed") {
      seed = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (seed < 1) error->all(FLERR, "pair_style deq: seed must be a positive integer");
      seed_given = true;
    } else if (key == "device") {
      // read above
    } else if (key == "malloc") {
      const std::string value = arg[iarg + 1];
      if (value != "keep" && value != "system")
        error->all(FLERR, "pair_style deq: malloc must be `keep` (default) or `system`, not '{}'", value);
      keep_memory = value == "keep";
    } else {
      error->all(FLERR, "pair_style deq: unknown option '{}' (known: tol, max_iter, warm, seed, device, malloc)",
                 key);
    }
  }
  if (keep_memory) {
    const std::string why_not = deqff::keep_freed_memory();
    if (comm->me == 0)
      utils::logmesg(lmp, why_not.empty() ? std::string("pair_style deq: malloc keeps freed memory for the next step "
                                                        "(process-wide; `malloc system` keeps the C library's "
                                                        "defaults)\n")
                                          : fmt::format("pair_style deq: malloc left as is ({})\n", why_not));
  }
  mdet_ = meta.mdet;
  if (mode_ == Mode::Analytic && mdet_.any())
    error->all(FLERR, "pair_style deq: analytic test model {} records MD-ET options, which only deqff DEQ and "
                      "explicit models support; export it without them", arg[0]);
  if (seed_given && !mdet_.random_rotation)
    error->all(FLERR, "pair_style deq: `seed` sets the random rotations of models exported with "
                      "--random-rotation, and {} was exported without it; drop the seed option", arg[0]);
  if (mdet_.random_rotation && !model_->has_wigner())
    error->all(FLERR, "pair_style deq: {} asks for random rotations but has no lammps_wigner() method (an "
                      "older export); re-export the checkpoint with this deqff", arg[0]);
  rotations_ = std::make_unique<deqff::RotationSource>(static_cast<uint64_t>(seed));
  if (solver_overridden_ && mode_ != Mode::Steps && mode_ != Mode::Gradients)
    error->all(FLERR, "pair_style deq: the tol/max_iter options apply to models whose solve runs in LAMMPS "
                      "(direct forces, and gradient forces of models exported by this deqff); this {} model solves "
                      "with its exported settings (re-export it with `deqff export --tol ... --max-iter ...`)",
               meta.force_mode);
  predictor_order_ = settings_.implicit ? static_cast<int>(settings_.predictor_order) : 0;
  if (mode_ == Mode::Steps || mode_ == Mode::Gradients) {
    solver_ = std::make_unique<deqff::DeqSolver>(*model_, settings_);
    comm_forward = static_cast<int>(settings_.feature_dim);
    comm_reverse = mode_ == Mode::Gradients ? static_cast<int>(settings_.feature_dim) : 0;
  }
  if (comm->me == 0) {
    std::string elements;
    for (const auto &element : meta.elements) elements += " " + element;
    utils::logmesg(lmp, "pair_style deq: loaded {} ({} model, force mode {}, cutoff {} A, elements{}) on {}\n",
                   arg[0], meta.model_type, meta.force_mode, meta.cutoff, elements, model_->device().str());
    if (mode_ != Mode::Analytic && settings_.implicit)
      utils::logmesg(lmp, "pair_style deq: solver {} tol {} max_iter {} (fallback {}), warm starts {}\n",
                     settings_.anderson ? "anderson" : "fixed-point", settings_.tol, settings_.max_iter,
                     settings_.fallback_max_iter, settings_.warm_start ? "on" : "off");
    if (settings_.secant_memory > 0)
      utils::logmesg(lmp, "pair_style deq: the model's secant memory ({} Anderson slots seeded with the last "
                          "step's pairs) applies in OpenMM, ASE and Python; LAMMPS solves with m = {}\n",
                     settings_.secant_memory, settings_.m);
    if (model_->has_prior())
      utils::logmesg(lmp, "pair_style deq: short-range prior {} included in energies and forces\n",
                     meta.repulsion);
    if (mdet_.any())
      utils::logmesg(lmp, "pair_style deq: MD-ET options: remove_net_force {}, remove_net_torque {}, "
                          "random_rotation {}{}\n", mdet_.remove_net_force ? "on" : "off",
                     mdet_.remove_net_torque ? "on" : "off", mdet_.random_rotation ? "on" : "off",
                     mdet_.random_rotation ? fmt::format(" (seed {})", seed) : "");
  }
}

void PairDeq::coeff(int narg, char **arg) {
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 2 + ntypes || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "Incorrect args for pair_coeff deq: expected `pair_coeff * * E1 ... E{}`, one element "
                      "symbol (or NULL) per atom type", ntypes);
  if (!model_) error->all(FLERR, "pair_coeff deq: pair_style deq must name a model first");
  for (int t = 1; t <= ntypes; ++t) {
    const char *element = arg[1 + t];
    if (strcmp(element, "NULL") == 0) {
      type_to_species_[t] = -1;
      continue;
    }
    try {
      type_to_species_[t] = model_->species_index(element);
    } catch (const std::exception &e) {
      error->all(FLERR, "pair_coeff deq: atom type {}: {}", t, e.what());
    }
  }
  // Every pair counts as set, so that an atom of a NULL type meets the clear message of
  // gather_inputs() (naming the type) rather than LAMMPS's generic "All pair coeffs are not set".
  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j) setflag[i][j] = 1;
}

void PairDeq::check_units() const {
  const std::string style = update->unit_style;
  if (style != "metal" && style != "real")
    error->all(FLERR, "pair_style deq supports `units metal` (eV, Angstrom) and `units real` (kcal/mol, "
                      "Angstrom), not `units {}`; change the units command of the input", style);
}

void PairDeq::check_box_width() const {
  // As the Python hosts (OpenMM, ASE): no periodic width below twice the cutoff. The box vectors are
  // a = (xprd, 0, 0), b = (xy, yprd, 0), c = (xz, yz, zprd); each width is the volume over the area of the
  // face the other two span.
  const double xprd = domain->xprd, yprd = domain->yprd, zprd = domain->zprd;
  const double xy = domain->triclinic ? domain->xy : 0.0, xz = domain->triclinic ? domain->xz : 0.0;
  const double yz = domain->triclinic ? domain->yz : 0.0;
  const double volume = xprd * yprd * zprd;
  const double face_bc =
      std::sqrt(std::pow(yprd * zprd, 2) + std::pow(xy * zprd, 2) + std::pow(xy * yz - yprd * xz, 2));
  const double face_ca = xprd * std::sqrt(zprd * zprd + yz * yz);
  const double widths[3] = {volume / face_bc, volume / face_ca, zprd};
  const int periodic[3] = {domain->xperiodic, domain->yperiodic, domain->zperiodic};
  const char *names[3] = {"x", "y", "z"};
  for (int k = 0; k < 3; ++k)
    if (periodic[k] && widths[k] < 2.0 * cutoff_)
      error->all(FLERR, "pair_style deq: the periodic box is {:.4g} A wide across its {} vector, less than twice "
                        "the model's cutoff ({:.4g} A): a neighbor would be within the cutoff through more than one "
                        "periodic image, which the Python hosts (OpenMM, ASE) reject as well; use a larger box: more "
                        "molecules, or the box replicated (`replicate 2 2 2`)",
                 widths[k] / force->angstrom, names[k], 2.0 * cutoff_ / force->angstrom);
}

void PairDeq::init_style() {
  check_units();
  if (force->newton_pair == 0) error->all(FLERR, "pair_style deq requires `newton_pair on`");
  if (!model_) error->all(FLERR, "pair_style deq: no model loaded");
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style deq requires atom IDs (atom_modify id yes)");
  if (mdet_.remove_net_torque && (domain->xperiodic || domain->yperiodic || domain->zperiodic))
    error->all(FLERR, "pair_style deq: the model removes the net torque (exported with --remove-net-torque), "
                      "which is only defined for non-periodic systems (molecules), but this box is periodic; "
                      "re-export the checkpoint without --remove-net-torque, or use `boundary f f f`");
  if (mode_ == Mode::OneRank && comm->nprocs > 1)
    error->all(FLERR, "pair_style deq: this {} model runs on one MPI rank only (it was exported by an older "
                      "deqff, before its forces could be split across ranks); re-export the checkpoint with this "
                      "deqff (`deqff export CHECKPOINT -o model.pt`) to run it on {} ranks, or run it on 1 rank",
               model_->metadata().force_mode, comm->nprocs);
  if (mode_ == Mode::Gradients && mdet_.remove_net_torque && comm->nprocs > 1)
    error->all(FLERR, "pair_style deq: the model removes the net torque (--remove-net-torque), which needs the "
                      "summed forces of every atom and runs on 1 MPI rank only; conservative forces carry no net "
                      "torque beyond the solver tolerance: re-export without --remove-net-torque to run on {} "
                      "ranks", comm->nprocs);
  // force->qe2f converts (charge * electric field), i.e. eV/Å for unit charge, into the force unit:
  // 1 for metal, 23.060549 for real. force->angstrom is 1 Å in the length unit (1 for both).
  energy_factor_ = force->qe2f * force->angstrom;
  length_factor_ = 1.0 / force->angstrom;
  cutoff_ = model_->metadata().cutoff * force->angstrom;
  neighbor->add_request(this, NeighConst::REQ_FULL);
  if (mode_ != Mode::Analytic && settings_.implicit) ensure_state_fix();
}

void PairDeq::ensure_state_fix() {
  // Fingerprint, history depth, then the last state and predictor_order_ past ones ([z (, g)] each).
  const int nvalues = block_offset(predictor_order_ + 1, 0);
  Fix *found = modify->get_fix_by_id(fix_id_);
  auto *existing = dynamic_cast<FixDeqState *>(found);
  if (found && found != fix_ && !existing)
    error->all(FLERR, "pair_style deq: fix ID {} is taken by another fix; rename that fix", fix_id_);
  if (existing && existing != fix_ && !existing->restored())
    error->all(FLERR, "pair_style deq: its state fix {} already belongs to another pair_style deq; one "
                      "pair_style deq per simulation is supported (not two deq sub-styles of pair hybrid)",
               fix_id_);
  if (existing && existing->nvalues() == nvalues) {
    fix_ = existing;
    return;
  }
  if (existing) modify->delete_fix(fix_id_);
  fix_ = dynamic_cast<FixDeqState *>(modify->add_fix(fmt::format("{} all DEQ_STATE {}", fix_id_, nvalues)));
  if (!fix_) error->all(FLERR, "pair_style deq: could not create its internal fix DEQ_STATE");
  natoms_seen_ = -1;
}

// The state read from a restart file: used if the run that wrote it had this model and atom count.
void PairDeq::check_restored_state() {
  const bool same_model = fix_->restored_fingerprint() == fingerprint_;
  const bool same_atoms = fix_->restored_natoms() == static_cast<double>(atom->natoms);
  if (!same_model || !same_atoms) fix_->clear();
  if (comm->me == 0) {
    if (same_model && same_atoms) {
      utils::logmesg(lmp, "pair_style deq: continuing warm from the restart file's per-atom state\n");
    } else {
      utils::logmesg(lmp, "pair_style deq: the restart file's warm-start state was written {}; starting cold\n",
                     same_model ? fmt::format("for {} atoms, not {}", fix_->restored_natoms(), atom->natoms)
                                : std::string("with another model file"));
    }
  }
  fix_->forget_restart();
}

bool PairDeq::has_adjoint() const {
  if (mode_ == Mode::Gradients) return model_->has_adjoint_steps();
  return mode_ == Mode::OneRank && settings_.implicit && model_->metadata().force_mode == "conservative";
}

double PairDeq::init_one(int /*itype*/, int /*jtype*/) { return cutoff_; }

void *PairDeq::extract(const char *name, int &dim) {
  dim = 0;
  if (strcmp(name, "deq_iterations") == 0) return &last_iterations_;
  if (strcmp(name, "deq_residual") == 0) return &last_residual_;
  if (strcmp(name, "deq_cold") == 0) return &last_cold_;
  if (strcmp(name, "deq_total_iterations") == 0) return &total_iterations_;
  if (strcmp(name, "deq_rejected") == 0) return &last_rejected_;
  if (strcmp(name, "deq_retried") == 0) return &last_retried_;
  if (strcmp(name, "deq_adjoint_iterations") == 0) return &last_adjoint_iterations_;
  return nullptr;
}

// Rows on a GPU go through a host copy: LAMMPS packs and sends host buffers (one device -> host ->
// device round trip of the [n_all, D] rows per call, i.e. per stage of every solver iteration).
void PairDeq::forward_rows(torch::Tensor &rows) {
  torch::Tensor staged = rows.is_cpu() ? rows : rows.to(torch::kCPU).contiguous();
  comm_rows_ = &staged;
  comm->forward_comm(this);
  comm_rows_ = nullptr;
  if (!rows.is_cpu()) rows.copy_(staged);
}

int PairDeq::pack_forward_comm(int n, int *list, double *buf, int /*pbc_flag*/, int * /*pbc*/) {
  const int D = comm_forward;
  const double *rows = comm_rows_->data_ptr<double>();
  for (int k = 0; k < n; ++k) std::memcpy(buf + k * D, rows + static_cast<size_t>(list[k]) * D, sizeof(double) * D);
  return n * D;
}

void PairDeq::unpack_forward_comm(int n, int first, double *buf) {
  const int D = comm_forward;
  double *rows = comm_rows_->data_ptr<double>();
  std::memcpy(rows + static_cast<size_t>(first) * D, buf, sizeof(double) * D * n);
}

void PairDeq::reverse_rows(torch::Tensor &rows) {
  torch::Tensor staged = rows.is_cpu() ? rows : rows.to(torch::kCPU).contiguous();
  comm_rows_ = &staged;
  comm->reverse_comm(this);
  comm_rows_ = nullptr;
  if (!rows.is_cpu()) rows.copy_(staged);
}

int PairDeq::pack_reverse_comm(int n, int first, double *buf) {
  const int D = comm_reverse;
  const double *rows = comm_rows_->data_ptr<double>();
  std::memcpy(buf, rows + static_cast<size_t>(first) * D, sizeof(double) * D * n);
  return n * D;
}

void PairDeq::unpack_reverse_comm(int n, int *list, double *buf) {
  const int D = comm_reverse;
  double *rows = comm_rows_->data_ptr<double>();
  for (int k = 0; k < n; ++k) {
    double *row = rows + static_cast<size_t>(list[k]) * D;
    for (int d = 0; d < D; ++d) row[d] += buf[k * D + d];
  }
}

void PairDeq::gather_inputs() {
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  double **x = atom->x;
  int *type = atom->type;
  positions_.resize(static_cast<size_t>(nall) * 3);
  species_.resize(nall);
  for (int i = 0; i < nall; ++i) {
    const int64_t s = type_to_species_[type[i]];
    if (s < 0)
      error->one(FLERR, "pair deq: atom type {} is not mapped to an element of the model; name an element "
                        "for it in `pair_coeff * * ...`", type[i]);
    species_[i] = s;
    for (int d = 0; d < 3; ++d) positions_[3 * i + d] = x[i][d] * length_factor_;
  }
  // Bad input is named before any solve: the model would only report a failed solve.
  for (int i = 0; i < nlocal; ++i)
    if (!std::isfinite(x[i][0]) || !std::isfinite(x[i][1]) || !std::isfinite(x[i][2]))
      error->one(FLERR, "pair deq: atom {} has a non-finite position ({} {} {}): the simulation blew up or the "
                        "input is broken; check the structure and the time step", atom->tag[i], x[i][0], x[i][1],
                 x[i][2]);
  const double cut2 = cutoff_ * cutoff_;
  const double min2 = std::pow(model_->metadata().min_distance * force->angstrom, 2);
  std::vector<int64_t> first, second;
  for (int ii = 0; ii < list->inum; ++ii) {
    const int i = list->ilist[ii];
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      const double r2 = dx * dx + dy * dy + dz * dz;
      if (r2 < min2)
        error->one(FLERR, "pair deq: atoms {} and {} are {:.3g} A apart, closer than the model's minimum distance "
                          "{} A (deqff export --min-distance): overlapping atoms in the input, or a blown-up "
                          "simulation; check the structure and the time step", atom->tag[i], atom->tag[j],
                   std::sqrt(r2) / force->angstrom, model_->metadata().min_distance);
      if (r2 < cut2) {
        first.push_back(i);
        second.push_back(j);
      }
    }
  }
  edges_.assign(first.begin(), first.end());
  edges_.insert(edges_.end(), second.begin(), second.end());
}

int PairDeq::block_offset(int block, int part) const {
  return 2 + (block * state_parts() + part) * static_cast<int>(settings_.feature_dim);
}

int PairDeq::history_depth() {
  int depth = predictor_order_;
  if (!fix_ || !settings_.warm_start) depth = 0;
  for (int i = 0; i < atom->nlocal && depth > 0; ++i) {
    const double *row = fix_->row(i);
    depth = row[0] == fingerprint_ ? std::min(depth, static_cast<int>(row[1])) : 0;
  }
  MPI_Allreduce(MPI_IN_PLACE, &depth, 1, MPI_INT, MPI_MIN, world);
  return depth;
}

namespace {
// Weights of s_t, s_{t-1}, ..., s_{t-order} in the value at t + 1 of the polynomial of degree `order`
// through them: (-1)^j C(order + 1, j + 1) (deqff.export.module.extrapolation_weights).
std::vector<double> extrapolation_weights(int order) {
  std::vector<double> weights;
  double binomial = 1.0;
  for (int j = 0; j <= order; ++j) {
    binomial = binomial * (order + 1 - j) / (j + 1);
    weights.push_back(j % 2 == 0 ? binomial : -binomial);
  }
  return weights;
}
}  // namespace

torch::Tensor PairDeq::warm_start(int part, int depth) const {
  const int nlocal = atom->nlocal;
  const int64_t D = settings_.feature_dim;
  if (!fix_ || !settings_.warm_start) return {};
  const std::vector<double> weights = extrapolation_weights(depth);
  torch::Tensor out = torch::zeros({nlocal, D}, torch::TensorOptions().dtype(torch::kFloat64));
  double *data = out.data_ptr<double>();
  for (int i = 0; i < nlocal; ++i) {
    const double *row = fix_->row(i);
    if (row[0] != fingerprint_) return {};  // no state, or one written by another model
    for (int j = 0; j <= depth; ++j) {
      const double *block = row + block_offset(j, part);
      for (int64_t d = 0; d < D; ++d) data[i * D + d] += weights[j] * block[d];
    }
  }
  return out.to(model_->device());  // the per-atom state lives in the fix (host); one copy per step
}

void PairDeq::commit_state(const torch::Tensor &z, const torch::Tensor &g, bool cold) {
  if (!fix_) return;
  const int nlocal = atom->nlocal;
  const int64_t D = settings_.feature_dim;
  if (!z.defined() || z.size(0) != nlocal || z.size(1) != D) return;  // no state (explicit models)
  const int block_size = block_offset(1, 0) - block_offset(0, 0);
  const torch::Tensor zs = host(z);
  const bool with_g = has_adjoint() && g.defined() && g.size(0) == nlocal;
  const torch::Tensor gs = with_g ? host(g) : torch::Tensor();
  for (int i = 0; i < nlocal; ++i) {
    double *row = fix_->row(i);
    int depth = 0;
    if (!cold && row[0] == fingerprint_ && predictor_order_ > 0) {
      depth = std::min(static_cast<int>(row[1]) + 1, predictor_order_);
      // Shift blocks 0..depth-1 to 1..depth: the last state becomes the newest past one.
      std::memmove(row + block_offset(1, 0), row + block_offset(0, 0), sizeof(double) * block_size * depth);
    }
    row[0] = fingerprint_;
    row[1] = depth;
    std::memcpy(row + block_offset(0, 0), zs.data_ptr<double>() + i * D, sizeof(double) * D);
    if (with_g) std::memcpy(row + block_offset(0, 1), gs.data_ptr<double>() + i * D, sizeof(double) * D);
  }
}

void PairDeq::record_stats(const deqff::SolveStats &stats) {
  last_iterations_ = static_cast<double>(stats.iterations);
  last_residual_ = stats.residual;
  last_cold_ = stats.cold ? 1.0 : 0.0;
  total_iterations_ += last_iterations_;
  last_rejected_ = stats.rejected ? 1.0 : 0.0;
  last_retried_ = static_cast<double>(stats.retried);
  last_adjoint_iterations_ = static_cast<double>(stats.adjoint_iterations);
}

void PairDeq::add_results(const double *atom_energy, const double *forces, int n_forces) {
  double **f = atom->f;
  const int nlocal = atom->nlocal;
  const double force_factor = energy_factor_ / length_factor_;
  for (int i = 0; i < n_forces; ++i)
    for (int d = 0; d < 3; ++d) f[i][d] += force_factor * forces[3 * i + d];
  if (atom_energy == nullptr) return;
  double energy = 0.0;
  for (int i = 0; i < nlocal; ++i) energy += atom_energy[i];
  if (eflag_global) eng_vdwl += energy_factor_ * energy;
  if (eflag_atom)
    for (int i = 0; i < nlocal; ++i) eatom[i] += energy_factor_ * atom_energy[i];
}

void PairDeq::compute(int eflag, int vflag) {
  ev_init(eflag, vflag);
  if (fix_ && fix_->restored()) {
    check_restored_state();
  } else if (fix_ && natoms_seen_ >= 0 && atom->natoms != natoms_seen_) {
    fix_->clear();  // atoms were added or deleted: start cold
  }
  natoms_seen_ = atom->natoms;
  if (fix_) fix_->describe(static_cast<double>(atom->natoms), fingerprint_);
  check_box_width();  // every step: a barostat may shrink the box
  gather_inputs();
  if (mode_ != Mode::Analytic && mdet_.random_rotation) draw_rotation();
  if (mode_ == Mode::Analytic) {
    compute_analytic();
  } else if (mode_ == Mode::Steps) {
    compute_steps();
  } else if (mode_ == Mode::Gradients) {
    compute_gradients();
  } else {
    compute_one_rank();
  }
  // The virial is the fdotr sum of the forces as applied (after the MD-ET options): rotated back to
  // the lab frame and with net force / torque removed, so it is that of the forces LAMMPS integrates.
  // Conservative DEQs put forces on ghost atoms too, so it is then exactly -dE/dstrain; the direct
  // loop's forces are per local atom only (see README, LAMMPS).
  if (vflag_fdotr) virial_fdotr_compute();
  const double stats[kNumStats] = {last_iterations_, last_residual_,  last_cold_,
                                   total_iterations_, last_rejected_, last_retried_,
                                   last_adjoint_iterations_};
  // compute pair sums pvector over ranks: rank 0 reports the (global) values.
  for (int k = 0; k < kNumStats; ++k) pvector[k] = comm->me == 0 ? stats[k] : 0.0;
}

void PairDeq::compute_analytic() {
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int64_t n_edges = static_cast<int64_t>(edges_.size() / 2);
  deqff::LocalResult result;
  try {
    result = model_->compute_local(positions_.data(), species_.data(), nall, nlocal, edges_.data(), n_edges);
  } catch (const std::exception &e) {
    error->one(FLERR, "pair deq: model evaluation failed: {}", e.what());
  }
  add_results(result.atom_energy.data(), result.forces.data(), nall);  // ghost forces: reverse comm
}

void PairDeq::compute_steps() {
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int64_t n_edges = static_cast<int64_t>(edges_.size() / 2);
  const torch::Tensor z0 = to_call_frame(warm_start(0, history_depth()));  // undefined: cold
  LammpsExchange exchange(this, world);
  deqff::DeqResult result;
  const torch::Device device = model_->device();  // inputs go there once; the solve's tensors stay there
  try {
    const torch::Tensor positions = tensor_from(positions_, {nall, 3}, device);
    const torch::Tensor species = tensor_from(species_, {nall}, device);
    const torch::Tensor edges = tensor_from(edges_, {2, n_edges}, device);
    result = solver_->evaluate(positions, species, edges, nlocal, z0, exchange);
    if (model_->has_prior() && nlocal > 0) {
      // Per local atom from the full neighbor list (half of each pair energy, the whole pair force on
      // the local atom): no ghost forces, so the ranks' sums equal one rank's. In the call's frame,
      // like the direct forces, so finish_forces() treats both alike.
      auto prior = model_->prior(positions, species, edges, nlocal);
      result.atom_energy = result.atom_energy + prior.first;
      result.forces = result.forces.to(torch::kFloat64) + prior.second;
    }
  } catch (const deqff::SolveError &e) {
    error->all(FLERR, "pair deq: {}", e.what());  // decided from global residuals: the same on all ranks
  } catch (const std::exception &e) {
    error->one(FLERR, "pair deq: model evaluation failed: {}", deqff::script_error_message(e));
  }
  commit_state(to_lab_frame(result.z), torch::Tensor(), result.stats.cold);
  record_stats(result.stats);
  const torch::Tensor forces = finish_forces(result.forces);
  add_results(host(result.atom_energy).data_ptr<double>(), forces.data_ptr<double>(), nlocal);
}

// Gradient forces (conservative or phantom DEQs, conservative explicit stacks) on any number of ranks:
// fixed point and backward pass (the adjoint solve, or the phantom steps) run here, forces on local
// and ghost atoms (LAMMPS reverse-communicates the ghost forces, newton_pair on).
void PairDeq::compute_gradients() {
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int64_t n_edges = static_cast<int64_t>(edges_.size() / 2);
  const int depth = history_depth();
  const torch::Tensor z0 = to_call_frame(warm_start(0, depth));  // undefined: cold
  const torch::Tensor g0 = z0.defined() && has_adjoint() ? to_call_frame(warm_start(1, depth)) : torch::Tensor();
  LammpsExchange exchange(this, world);
  deqff::GradientResult result;
  const torch::Device device = model_->device();
  try {
    result = solver_->evaluate_gradients(tensor_from(positions_, {nall, 3}, device),
                                         tensor_from(species_, {nall}, device),
                                         tensor_from(edges_, {2, n_edges}, device), nlocal, z0, g0, exchange);
  } catch (const deqff::SolveError &e) {
    error->all(FLERR, "pair deq: {}", e.what());  // decided from global residuals: the same on all ranks
  } catch (const std::exception &e) {
    error->one(FLERR, "pair deq: model evaluation failed: {}", deqff::script_error_message(e));
  }
  commit_state(to_lab_frame(result.z), to_lab_frame(result.g), result.stats.cold);
  record_stats(result.stats);
  const torch::Tensor forces = finish_forces(result.forces);
  add_results(host(result.atom_energy).data_ptr<double>(), forces.data_ptr<double>(), nall);
}

// Conservative and phantom forces on one rank: the model's own solve and gradients on the graph of
// the owned atoms, each ghost replaced by its owner plus the periodic shift between them.
void PairDeq::compute_one_rank() {
  const int nlocal = atom->nlocal;
  const tagint *tag = atom->tag;
  std::unordered_map<tagint, int64_t> owner;
  for (int i = 0; i < nlocal; ++i) owner[tag[i]] = i;
  const int64_t n_edges = static_cast<int64_t>(edges_.size() / 2);
  std::vector<double> shifts(static_cast<size_t>(n_edges) * 3);
  for (int64_t e = 0; e < n_edges; ++e) {
    const int64_t j = edges_[n_edges + e];
    auto it = owner.find(tag[j]);
    if (it == owner.end()) error->one(FLERR, "pair deq: neighbor atom {} is not owned by this rank", tag[j]);
    for (int d = 0; d < 3; ++d) shifts[3 * e + d] = positions_[3 * j + d] - positions_[3 * it->second + d];
    edges_[n_edges + e] = it->second;
  }
  const int64_t D = settings_.feature_dim;
  const torch::Device device = model_->device();
  const auto empty = torch::zeros({0, D}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  const int depth = settings_.implicit ? history_depth() : 0;
  torch::Tensor z0 = settings_.implicit ? warm_start(0, depth) : torch::Tensor();
  torch::Tensor g0 = has_adjoint() && z0.defined() ? warm_start(1, depth) : torch::Tensor();
  z0 = z0.defined() ? to_call_frame(z0) : empty;
  g0 = g0.defined() ? to_call_frame(g0) : empty;
  positions_.resize(static_cast<size_t>(nlocal) * 3);
  species_.resize(nlocal);
  deqff::GraphStepResult result;
  try {
    result = model_->step_graph(tensor_from(positions_, {nlocal, 3}, device), tensor_from(species_, {nlocal}, device),
                                tensor_from(edges_, {2, n_edges}, device), tensor_from(shifts, {n_edges, 3}, device),
                                z0, g0);
  } catch (const std::exception &e) {
    error->one(FLERR, "pair deq: {}", deqff::script_error_message(e));  // one rank: `one` is `all`
  }
  deqff::SolveStats stats;
  stats.iterations = static_cast<int64_t>(result.stats["iterations"]);
  stats.residual = result.stats["residual"];
  stats.cold = result.stats["cold"] > 0.5;
  stats.rejected = result.stats["rejected"] > 0.5;
  stats.retried = static_cast<int64_t>(result.stats["retried"]);
  stats.adjoint_iterations = static_cast<int64_t>(result.stats["adjoint_iterations"]);
  commit_state(to_lab_frame(result.z), has_adjoint() ? to_lab_frame(result.g) : torch::Tensor(), stats.cold);
  record_stats(stats);
  const torch::Tensor forces = finish_forces(result.forces);
  add_results(nullptr, forces.data_ptr<double>(), nlocal);
  if (eflag_global) eng_vdwl += energy_factor_ * result.energy;
  if (eflag_atom) {
    if (result.atom_energy.numel() != nlocal)
      error->one(FLERR, "pair deq: per-atom energies are not available for an explicit {} model; export it "
                        "with `--force-mode direct`", model_->metadata().force_mode);
    const torch::Tensor atom_energies = host(result.atom_energy);
    const double *atom_energy = atom_energies.data_ptr<double>();
    for (int i = 0; i < nlocal; ++i) eatom[i] += energy_factor_ * atom_energy[i];
  }
}

// One rotation per evaluation, drawn on rank 0 and broadcast (the same R on every rank); the positions
// of local and ghost atoms are rotated (the model sees only relative vectors, so this holds for
// periodic boxes too), and D(R) of the state is taken from the model.
void PairDeq::draw_rotation() {
  if (comm->me == 0) rotation_ = rotations_->draw();
  MPI_Bcast(rotation_.data(), 9, MPI_DOUBLE, 0, world);
  deqff::rotate_rows(positions_.data(), atom->nlocal + atom->nghost, rotation_, false);
  if (!settings_.implicit) return;
  try {
    const torch::Tensor rotation = torch::from_blob(rotation_.data(), {3, 3}, torch::kFloat64).clone();
    wigner_ = model_->wigner(rotation.to(model_->device()));
  } catch (const std::exception &e) {
    error->one(FLERR, "pair deq: {}", deqff::script_error_message(e));
  }
}

torch::Tensor PairDeq::to_call_frame(const torch::Tensor &state) const {
  if (!mdet_.random_rotation || !settings_.implicit || !state.defined() || state.size(0) == 0) return state;
  return state.matmul(wigner_.t()).contiguous();
}

torch::Tensor PairDeq::to_lab_frame(const torch::Tensor &state) const {
  if (!mdet_.random_rotation || !settings_.implicit || !state.defined() || state.size(0) == 0) return state;
  return state.matmul(wigner_).contiguous();
}

// Model forces [nlocal, 3] eV/Å of the call's frame -> lab frame, then net force and net torque
// removal over all ranks' atoms (lab positions), in this order as in deqff.export.mdet. Collective.
torch::Tensor PairDeq::finish_forces(const torch::Tensor &forces) {
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  torch::Tensor out = host(forces).clone();
  const int64_t rows = out.numel() / 3;
  if (out.numel() % 3 != 0 || (rows != nlocal && rows != nall))
    error->one(FLERR, "pair deq: the model returned {} force components for {} local atoms", out.numel(), nlocal);
  double *f = out.data_ptr<double>();
  if (mdet_.random_rotation) deqff::rotate_rows(f, rows, rotation_, true);
  LammpsExchange exchange(this, world);
  if (mdet_.remove_net_force) deqff::remove_net_force(f, nlocal, exchange, rows);
  if (mdet_.remove_net_torque) {
    std::vector<double> lab(static_cast<size_t>(nlocal) * 3);
    for (int i = 0; i < nlocal; ++i)
      for (int d = 0; d < 3; ++d) lab[3 * i + d] = atom->x[i][d] * length_factor_;
    deqff::remove_net_torque(f, lab.data(), nlocal, exchange);
  }
  return out;
}
