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

// Version of the exported-model format this runtime reads (python/deqff/export/metadata.py).
constexpr int kFormatVersion = 1;

// A model file that cannot be used: not a deqff model, wrong format version, bad metadata.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What an exported model says about itself (its `metadata()` method, all values as strings).
struct ModelMetadata {
  int format_version = 0;
  std::string deqff_version;
  std::string model_type;              // "deq", "explicit" or "analytic"
  double cutoff = 0.0;                 // Å
  std::vector<std::string> elements;   // chemical symbols; species index = position in this list
  std::string force_mode;              // "direct", "conservative", "phantom" or "analytic"
  std::map<std::string, std::string> raw;
};

// Result of one evaluation. Energies in eV, forces in eV/Å.
struct LocalResult {
  double energy = 0.0;                 // sum of atom_energy
  std::vector<double> atom_energy;     // [n_local]
  std::vector<double> forces;          // [n_all * 3], row-major; ghost entries to be reverse-communicated
};

// Parse the `metadata()` dictionary of a model; throws ModelError naming what is wrong.
ModelMetadata parse_metadata(const std::map<std::string, std::string>& raw, const std::string& path);

class Model {
 public:
  // Loads `path` on the CPU and checks its metadata; throws ModelError with a fix in the message.
  explicit Model(const std::string& path);

  const ModelMetadata& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

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

 private:
  std::string path_;
  torch::jit::Module module_;
  ModelMetadata metadata_;
};

}  // namespace deqff
