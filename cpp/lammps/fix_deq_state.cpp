#include "fix_deq_state.h"

#include <cstring>

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "memory.h"

using namespace LAMMPS_NS;

FixDeqState::FixDeqState(LAMMPS *lmp, int narg, char **arg) : Fix(lmp, narg, arg) {
  if (narg != 4) error->all(FLERR, "fix DEQ_STATE is internal to pair_style deq (syntax: ID all DEQ_STATE n)");
  nvalues_ = utils::inumeric(FLERR, arg[3], false, lmp);
  if (nvalues_ < 1) error->all(FLERR, "fix DEQ_STATE needs at least one value per atom");
  maxexchange = nvalues_;
  create_attribute = 1;  // set_arrays() for atoms created later (create_atoms, deposit)
  restart_peratom = 1;   // per-atom state in restart files
  restart_global = 1;    // with the writing run's atom count and model fingerprint
  FixDeqState::grow_arrays(atom->nmax);
  atom->add_callback(Atom::GROW);
  atom->add_callback(Atom::RESTART);
}

FixDeqState::~FixDeqState() {
  atom->delete_callback(id, Atom::GROW);
  atom->delete_callback(id, Atom::RESTART);
  memory->destroy(state_);
}

void FixDeqState::grow_arrays(int nmax) {
  memory->grow(state_, nmax, nvalues_, "deq:state");
  for (int i = nmax_; i < nmax; ++i) state_[i][0] = 0.0;  // new rows hold no state
  nmax_ = nmax;
}

void FixDeqState::set_arrays(int i) { state_[i][0] = 0.0; }

void FixDeqState::copy_arrays(int i, int j, int /*delflag*/) {
  std::memcpy(state_[j], state_[i], sizeof(double) * nvalues_);
}

int FixDeqState::pack_exchange(int i, double *buf) {
  std::memcpy(buf, state_[i], sizeof(double) * nvalues_);
  return nvalues_;
}

int FixDeqState::unpack_exchange(int nlocal, double *buf) {
  std::memcpy(state_[nlocal], buf, sizeof(double) * nvalues_);
  return nvalues_;
}

// Restart files: per atom [count = nvalues + 1, row...]; LAMMPS stores it in atom->extra on reading
// and calls unpack_restart for each atom when this fix (same ID and style) is created again.
int FixDeqState::pack_restart(int i, double *buf) {
  buf[0] = nvalues_ + 1;
  std::memcpy(buf + 1, state_[i], sizeof(double) * nvalues_);
  return nvalues_ + 1;
}

void FixDeqState::unpack_restart(int nlocal, int nth) {
  double **extra = atom->extra;
  int m = 0;
  for (int k = 0; k < nth; ++k) m += static_cast<int>(extra[nlocal][m]);
  const int count = static_cast<int>(extra[nlocal][m]) - 1;
  if (count == nvalues_) {
    std::memcpy(state_[nlocal], &extra[nlocal][m + 1], sizeof(double) * nvalues_);
  } else {
    state_[nlocal][0] = 0.0;  // written for another state size (another model): no state
  }
}

void FixDeqState::write_restart(FILE *fp) {
  if (comm->me != 0) return;  // called on every rank; only rank 0 has the file
  const double values[3] = {natoms_, fingerprint_, static_cast<double>(nvalues_)};
  const int size = sizeof(values);
  fwrite(&size, sizeof(int), 1, fp);
  fwrite(values, sizeof(double), 3, fp);
}

void FixDeqState::restart(char *buf) {
  const auto *values = reinterpret_cast<const double *>(buf);
  restored_ = true;
  restored_natoms_ = values[0];
  restored_fingerprint_ = static_cast<int>(values[2]) == nvalues_ ? values[1] : -1.0;
}

void FixDeqState::clear() {
  for (int i = 0; i < atom->nlocal; ++i) state_[i][0] = 0.0;
}

double FixDeqState::memory_usage() { return static_cast<double>(atom->nmax) * nvalues_ * sizeof(double); }
