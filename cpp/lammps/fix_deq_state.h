// Internal fix DEQ_STATE, created by pair_style deq: the warm-start state of the DEQ, `nvalues`
// doubles per atom (a validity flag, then the fixed point z [D] and, for conservative forces on one
// rank, the adjoint g [D]). The values belong to the atom, not to an index: LAMMPS moves them with
// the atom when it sorts atoms (copy_arrays) or migrates them to another rank (pack/unpack_exchange).
// Syntax (internal): fix ID all DEQ_STATE nvalues
#pragma once

#include "fix.h"

namespace LAMMPS_NS {

class FixDeqState : public Fix {
 public:
  FixDeqState(class LAMMPS *lmp, int narg, char **arg);
  ~FixDeqState() override;

  int setmask() override { return 0; }
  void grow_arrays(int nmax) override;
  void copy_arrays(int i, int j, int delflag) override;
  void set_arrays(int i) override;
  int pack_exchange(int i, double *buf) override;
  int unpack_exchange(int nlocal, double *buf) override;
  double memory_usage() override;

  int nvalues() const { return nvalues_; }
  double *row(int i) { return state_[i]; }
  // Mark every local atom's state invalid (cold start next time).
  void clear();

 private:
  int nvalues_ = 0;
  int nmax_ = 0;
  double **state_ = nullptr;  // [nmax][nvalues]; state_[i][0] = 1 if the row holds a state
};

}  // namespace LAMMPS_NS
