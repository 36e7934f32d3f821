// Internal fix DEQ_STATE, created by pair_style deq: the warm-start state of the DEQ, `nvalues`
// doubles per atom: the fingerprint of the model that wrote the row (0 = no state), the depth of the
// history, then the last fixed point z [D] (and, for conservative forces, the adjoint g [D]) and as
// many past ones as the model's predictor order (layout: PairDeq::block_offset). The values belong to
// the atom, not to an index: LAMMPS moves them with the atom when it sorts atoms (copy_arrays) or
// migrates them to another rank (pack/unpack_exchange), and writes them to restart files
// (pack_restart) with the atom count and model fingerprint of the writing run (write_restart), so that
// `read_restart` followed by the same pair_style continues warm (pair_style deq checks both first).
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
  int pack_restart(int i, double *buf) override;
  void unpack_restart(int nlocal, int nth) override;
  int maxsize_restart() override { return nvalues_ + 1; }
  int size_restart(int /*i*/) override { return nvalues_ + 1; }
  void write_restart(FILE *fp) override;
  void restart(char *buf) override;
  double memory_usage() override;

  int nvalues() const { return nvalues_; }
  double *row(int i) { return state_[i]; }
  // Mark every local atom's state invalid (cold start next time).
  void clear();
  // What the run that wrote the restart file had, for the pair style to check (then `forget_restart`).
  bool restored() const { return restored_; }
  double restored_natoms() const { return restored_natoms_; }
  double restored_fingerprint() const { return restored_fingerprint_; }
  void forget_restart() { restored_ = false; }
  // Set by the pair style: the atom count and model fingerprint written to restart files.
  void describe(double natoms, double fingerprint) {
    natoms_ = natoms;
    fingerprint_ = fingerprint;
  }

 private:
  int nvalues_ = 0;
  int nmax_ = 0;
  double **state_ = nullptr;  // [nmax][nvalues]; state_[i][0] = model fingerprint, 0 = no state
  double natoms_ = 0.0, fingerprint_ = 0.0;
  bool restored_ = false;
  double restored_natoms_ = 0.0, restored_fingerprint_ = 0.0;
};

}  // namespace LAMMPS_NS
