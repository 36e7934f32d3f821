#include "fix_deq_state.h"

#include <cstring>

#include "atom.h"
#include "error.h"
#include "memory.h"

using namespace LAMMPS_NS;

FixDeqState::FixDeqState(LAMMPS *lmp, int narg, char **arg) : Fix(lmp, narg, arg) {
  if (narg != 4) error->all(FLERR, "fix DEQ_STATE is internal to pair_style deq (syntax: ID all DEQ_STATE n)");
  nvalues_ = utils::inumeric(FLERR, arg[3], false, lmp);
  if (nvalues_ < 1) error->all(FLERR, "fix DEQ_STATE needs at least one value per atom");
  maxexchange = nvalues_;
  create_attribute = 1;  // set_arrays() for atoms created later (create_atoms, deposit)
  FixDeqState::grow_arrays(atom->nmax);
  atom->add_callback(Atom::GROW);
}

FixDeqState::~FixDeqState() {
  atom->delete_callback(id, Atom::GROW);
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

void FixDeqState::clear() {
  for (int i = 0; i < atom->nlocal; ++i) state_[i][0] = 0.0;
}

double FixDeqState::memory_usage() { return static_cast<double>(atom->nmax) * nvalues_ * sizeof(double); }
