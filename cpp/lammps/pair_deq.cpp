#include "pair_deq.h"

#include <cstring>

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

using namespace LAMMPS_NS;

PairDeq::PairDeq(LAMMPS *lmp) : Pair(lmp) {
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
}

PairDeq::~PairDeq() {
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
  if (narg != 1) error->all(FLERR, "Illegal pair_style deq command: expected `pair_style deq model.pt`");
  try {
    model_ = std::make_unique<deqff::Model>(arg[0]);
  } catch (const std::exception &e) {
    error->all(FLERR, "pair_style deq: {}", e.what());
  }
  if (comm->me == 0) {
    const auto &meta = model_->metadata();
    std::string elements;
    for (const auto &element : meta.elements) elements += " " + element;
    utils::logmesg(lmp, "pair_style deq: loaded {} ({} model, force mode {}, cutoff {} A, elements{})\n",
                   arg[0], meta.model_type, meta.force_mode, meta.cutoff, elements);
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
  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j)
      setflag[i][j] = (type_to_species_[i] >= 0 && type_to_species_[j] >= 0) ? 1 : 0;
}

void PairDeq::check_units() const {
  const std::string style = update->unit_style;
  if (style != "metal" && style != "real")
    error->all(FLERR, "pair_style deq supports `units metal` (eV, Angstrom) and `units real` (kcal/mol, "
                      "Angstrom), not `units {}`; change the units command of the input", style);
}

void PairDeq::init_style() {
  check_units();
  if (force->newton_pair == 0) error->all(FLERR, "pair_style deq requires `newton_pair on`");
  if (!model_) error->all(FLERR, "pair_style deq: no model loaded");
  // force->qe2f converts (charge * electric field), i.e. eV/Å for unit charge, into the force unit:
  // 1 for metal, 23.060549 for real. force->angstrom is 1 Å in the length unit (1 for both).
  energy_factor_ = force->qe2f * force->angstrom;
  length_factor_ = 1.0 / force->angstrom;
  cutoff_ = model_->metadata().cutoff * force->angstrom;
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

double PairDeq::init_one(int /*itype*/, int /*jtype*/) { return cutoff_; }

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
  const double cut2 = cutoff_ * cutoff_;
  std::vector<int64_t> senders, receivers;
  for (int ii = 0; ii < list->inum; ++ii) {
    const int i = list->ilist[ii];
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz < cut2) {
        senders.push_back(i);
        receivers.push_back(j);
      }
    }
  }
  edges_.assign(senders.begin(), senders.end());
  edges_.insert(edges_.end(), receivers.begin(), receivers.end());
}

void PairDeq::compute(int eflag, int vflag) {
  ev_init(eflag, vflag);
  gather_inputs();
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int64_t n_edges = static_cast<int64_t>(edges_.size() / 2);
  deqff::LocalResult result;
  try {
    result = model_->compute_local(positions_.data(), species_.data(), nall, nlocal, edges_.data(), n_edges);
  } catch (const std::exception &e) {
    error->one(FLERR, "pair deq: model evaluation failed: {}", e.what());
  }
  double **f = atom->f;
  const double force_factor = energy_factor_ / length_factor_;
  for (int i = 0; i < nall; ++i)
    for (int d = 0; d < 3; ++d) f[i][d] += force_factor * result.forces[3 * i + d];
  if (eflag_global) eng_vdwl += energy_factor_ * result.energy;
  if (eflag_atom)
    for (int i = 0; i < nlocal; ++i) eatom[i] += energy_factor_ * result.atom_energy[i];
  if (vflag_fdotr) virial_fdotr_compute();
}
