// LAMMPS pair style `deq`: energies and forces from an exported deqff model (see README, "LAMMPS").
//   pair_style deq model.pt
//   pair_coeff * * C H O      (one element per LAMMPS atom type, NULL for types the model skips)
// Supports `units metal` (Å, eV) and `units real` (Å, kcal/mol); needs `newton_pair on`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "deqff/model.h"
#include "pair.h"

namespace LAMMPS_NS {

class PairDeq : public Pair {
 public:
  explicit PairDeq(class LAMMPS *lmp);
  ~PairDeq() override;

  void compute(int eflag, int vflag) override;
  void settings(int narg, char **arg) override;
  void coeff(int narg, char **arg) override;
  void init_style() override;
  double init_one(int itype, int jtype) override;

 private:
  void allocate();
  void check_units() const;
  void gather_inputs();

  std::unique_ptr<deqff::Model> model_;
  std::vector<int64_t> type_to_species_;  // [ntypes + 1]; -1 = not mapped (NULL)
  double energy_factor_ = 1.0;            // model eV -> LAMMPS energy unit
  double length_factor_ = 1.0;            // LAMMPS length unit -> Å
  double cutoff_ = 0.0;                   // in LAMMPS length units

  // Per-step buffers, reused across steps.
  std::vector<double> positions_;  // [n_all * 3] Å
  std::vector<int64_t> species_;   // [n_all]
  std::vector<int64_t> edges_;     // [2 * n_edges]
};

}  // namespace LAMMPS_NS
