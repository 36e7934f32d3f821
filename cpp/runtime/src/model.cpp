#include "deqff/model.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <sstream>

#include <c10/core/CPUAllocator.h>
#include <torch/cuda.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

namespace deqff {
namespace {

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

const std::string& require_key(const std::map<std::string, std::string>& raw, const std::string& key,
                               const std::string& path) {
  auto it = raw.find(key);
  if (it == raw.end()) {
    throw ModelError("deqff model '" + path + "' has no metadata entry '" + key +
                     "'; re-export it with `deqff export`.");
  }
  return it->second;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : " ") + item;
  return out;
}

// An MD-ET flag of the metadata ("true"/"false"); absent means off (models exported before the options).
bool mdet_flag(const std::map<std::string, std::string>& raw, const std::string& key, const std::string& path) {
  auto it = raw.find(key);
  if (it == raw.end() || it->second == "false") return false;
  if (it->second == "true") return true;
  throw ModelError("deqff model '" + path + "' has metadata " + key + " = '" + it->second +
                   "' (expected 'true' or 'false'); re-export it with `deqff export`.");
}

// A minimal JSON reader for the metadata's JSON-valued entries ("solver", "model_config"): objects,
// arrays, strings (with the escapes json.dumps writes), numbers, true/false/null.
struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0.0;
  std::string text;
  std::vector<Json> items;
  std::map<std::string, Json> fields;

  const Json* find(const std::string& key) const {
    if (kind != Kind::Object) return nullptr;
    auto it = fields.find(key);
    return it == fields.end() ? nullptr : &it->second;
  }
};

class JsonReader {
 public:
  explicit JsonReader(const std::string& text) : text_(text) {}

  Json document() {
    Json value = parse();
    skip_space();
    if (at_ < text_.size()) fail("trailing characters");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(what + " at offset " + std::to_string(at_));
  }
  void skip_space() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
  }
  char peek() {
    skip_space();
    if (at_ >= text_.size()) fail("unexpected end");
    return text_[at_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++at_;
  }
  bool literal(const std::string& word) {
    if (text_.compare(at_, word.size(), word) != 0) return false;
    at_ += word.size();
    return true;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (at_ < text_.size() && text_[at_] != '"') {
      char c = text_[at_++];
      if (c == '\\') {
        if (at_ >= text_.size()) fail("unterminated escape");
        const char e = text_[at_++];
        if (e == 'n') c = '\n';
        else if (e == 't') c = '\t';
        else if (e == 'r') c = '\r';
        else if (e == 'b') c = '\b';
        else if (e == 'f') c = '\f';
        else if (e == 'u') {
          if (at_ + 4 > text_.size()) fail("short \\u escape");
          const unsigned code = std::stoul(text_.substr(at_, 4), nullptr, 16);
          at_ += 4;
          c = code < 128 ? static_cast<char>(code) : '?';  // metadata keys and values are ASCII
        } else {
          c = e;  // \" \\ \/
        }
      }
      out.push_back(c);
    }
    expect('"');
    return out;
  }
  Json parse() {
    Json value;
    const char c = peek();
    if (c == '{') {
      ++at_;
      value.kind = Json::Kind::Object;
      if (peek() == '}') {
        ++at_;
        return value;
      }
      while (true) {
        std::string key = string();
        expect(':');
        value.fields[key] = parse();
        if (peek() == ',') {
          ++at_;
          continue;
        }
        expect('}');
        return value;
      }
    }
    if (c == '[') {
      ++at_;
      value.kind = Json::Kind::Array;
      if (peek() == ']') {
        ++at_;
        return value;
      }
      while (true) {
        value.items.push_back(parse());
        if (peek() == ',') {
          ++at_;
          continue;
        }
        expect(']');
        return value;
      }
    }
    if (c == '"') {
      value.kind = Json::Kind::String;
      value.text = string();
      return value;
    }
    if (literal("true") || literal("false")) {
      value.kind = Json::Kind::Bool;
      value.boolean = c == 't';
      return value;
    }
    if (literal("null")) return value;
    size_t used = 0;
    try {
      value.number = std::stod(text_.substr(at_, 40), &used);
    } catch (const std::exception&) {
      fail("unexpected character");
    }
    if (used == 0) fail("unexpected character");
    at_ += used;
    value.kind = Json::Kind::Number;
    return value;
  }

  const std::string& text_;
  size_t at_ = 0;
};

// The JSON value of metadata entry `key`; throws ModelError (naming `deqff export`) if absent or broken.
Json metadata_json(const ModelMetadata& meta, const std::string& key, const std::string& path) {
  const std::string& text = require_key(meta.raw, key, path);
  try {
    return JsonReader(text).document();
  } catch (const std::exception& error) {
    throw ModelError("deqff model '" + path + "': metadata entry '" + key + "' is not valid JSON (" + error.what() +
                     "); re-export it with `deqff export`.");
  }
}

const Json& json_field(const Json& object, const std::string& key, const std::string& where,
                       const std::string& path) {
  const Json* value = object.find(key);
  if (value == nullptr) {
    throw ModelError("deqff model '" + path + "': metadata " + where + " has no '" + key +
                     "'; re-export it with `deqff export`.");
  }
  return *value;
}

double json_number(const Json& object, const std::string& key, const std::string& where, const std::string& path) {
  const Json& value = json_field(object, key, where, path);
  if (value.kind != Json::Kind::Number) {
    throw ModelError("deqff model '" + path + "': metadata " + where + "." + key +
                     " is not a number; re-export it with `deqff export`.");
  }
  return value.number;
}

// An optional setting of a solver dict (absent: the SolverConfig default the Python reader uses too).
double json_number_or(const Json& object, const std::string& key, double fallback) {
  const Json* value = object.find(key);
  if (value == nullptr) return fallback;
  if (value->kind == Json::Kind::Bool) return value->boolean ? 1.0 : 0.0;
  return value->kind == Json::Kind::Number ? value->number : fallback;
}

std::string json_text_or(const Json& object, const std::string& key, const std::string& fallback) {
  const Json* value = object.find(key);
  return value != nullptr && value->kind == Json::Kind::String ? value->text : fallback;
}

// One solver's settings from its dict in the metadata's "solver" entry (SolverConfig.to_dict), as
// deqff.export.metadata._solver_numbers reads them.
void read_iteration(const Json& solver, const std::string& where, int64_t fallback_max_iter,
                    const std::string& path, SolverSettings& s) {
  s.tol = json_number(solver, "tol", where, path);
  s.max_iter = static_cast<int64_t>(json_number(solver, "max_iter", where, path));
  s.fallback_max_iter = fallback_max_iter;
  s.stop_rel = json_text_or(solver, "stop_mode", "rel") == "rel";
  s.anderson = json_text_or(solver, "method", "anderson") == "anderson";
  s.m = static_cast<int64_t>(json_number_or(solver, "m", 5.0));
  s.beta = json_number_or(solver, "beta", 1.0);
  s.lam = json_number_or(solver, "lam", 1e-4);
  s.damping = json_number_or(solver, "damping", 1.0);
  s.return_best = json_number_or(solver, "return_best", 1.0) > 0.5;
}

// Dimension of an e3nn irreps string "16x0e + 8x1o + 4x2e" (deqff.export.metadata.irreps_dim).
int64_t irreps_dim(const std::string& irreps, const std::string& path) {
  int64_t total = 0;
  std::string compact;
  for (char c : irreps)
    if (!std::isspace(static_cast<unsigned char>(c))) compact.push_back(c);
  std::stringstream terms(compact);
  std::string term;
  while (std::getline(terms, term, '+')) {
    if (term.empty()) continue;
    const auto x = term.rfind('x');
    const std::string mul = x == std::string::npos ? "1" : term.substr(0, x);
    const std::string irrep = x == std::string::npos ? term : term.substr(x + 1);
    const bool ok = !mul.empty() && std::all_of(mul.begin(), mul.end(), ::isdigit) && irrep.size() >= 2 &&
                    (irrep.back() == 'e' || irrep.back() == 'o') &&
                    std::all_of(irrep.begin(), irrep.end() - 1, ::isdigit);
    if (!ok) {
      throw ModelError("deqff model '" + path + "': irreps term '" + term + "' of model_config.irreps_node '" + irreps +
                       "' is not MULxLp; re-export it with `deqff export`.");
    }
    total += std::stoll(mul) * (2 * std::stoll(irrep.substr(0, irrep.size() - 1)) + 1);
  }
  return total;
}

// feature_dim and stages: metadata entries since format 3; before, from the metadata's model_config
// (irreps_node; blocks_per_layer, times depth for explicit stacks), as deqff.export.metadata.legacy_shape.
std::pair<int64_t, int64_t> model_shape(const ModelMetadata& meta, const std::string& path) {
  if (meta.format_version >= 3) {
    const auto number = [&](const std::string& key) {
      const std::string& text = require_key(meta.raw, key, path);
      try {
        return static_cast<int64_t>(std::stoll(text));
      } catch (const std::exception&) {
        throw ModelError("deqff model '" + path + "' has a non-integer " + key + " '" + text +
                         "'; re-export it with `deqff export`.");
      }
    };
    return {number("feature_dim"), number("stages")};
  }
  const Json config = metadata_json(meta, "model_config", path);
  const Json& irreps = json_field(config, "irreps_node", "model_config", path);
  if (irreps.kind != Json::Kind::String) {
    throw ModelError("deqff model '" + path + "': model_config.irreps_node is not a string; re-export it with "
                     "`deqff export`.");
  }
  int64_t stages = static_cast<int64_t>(json_number_or(config, "blocks_per_layer", 1.0));
  if (meta.model_type != "deq") stages *= static_cast<int64_t>(json_number_or(config, "depth", 1.0));
  return {irreps_dim(irreps.text, path), stages};
}

}  // namespace

ModelMetadata parse_metadata(const std::map<std::string, std::string>& raw, const std::string& path) {
  ModelMetadata meta;
  meta.raw = raw;
  const std::string& version = require_key(raw, "format_version", path);
  try {
    meta.format_version = std::stoi(version);
  } catch (const std::exception&) {
    throw ModelError("deqff model '" + path + "' has a non-integer format_version '" + version + "'.");
  }
  if (meta.format_version < kOldestFormatVersion || meta.format_version > kFormatVersion) {
    const bool newer = meta.format_version > kFormatVersion;
    throw ModelError("deqff model '" + path + "' has format version " + version +
                     ", but this build of deqff reads format versions " + std::to_string(kOldestFormatVersion) +
                     " to " + std::to_string(kFormatVersion) + "; " +
                     (newer ? "rebuild the plugin with the deqff that wrote it, or " : "") +
                     "re-export the checkpoint with this deqff (`deqff export CHECKPOINT -o model.pt`).");
  }
  meta.deqff_version = require_key(raw, "deqff_version", path);
  meta.model_type = require_key(raw, "model_type", path);
  meta.force_mode = require_key(raw, "force_mode", path);
  meta.elements = split_list(require_key(raw, "elements", path));
  if (meta.elements.empty()) throw ModelError("deqff model '" + path + "' lists no elements.");
  const std::string& cutoff = require_key(raw, "cutoff", path);
  try {
    meta.cutoff = std::stod(cutoff);
  } catch (const std::exception&) {
    throw ModelError("deqff model '" + path + "' has a non-numeric cutoff '" + cutoff + "'.");
  }
  if (!(meta.cutoff > 0.0)) throw ModelError("deqff model '" + path + "' has cutoff " + cutoff + " <= 0.");
  auto repulsion = raw.find("repulsion");
  if (repulsion != raw.end()) meta.repulsion = repulsion->second;
  if (meta.repulsion != "none" && meta.repulsion != "zbl") {
    throw ModelError("deqff model '" + path + "' has a short-range prior '" + meta.repulsion +
                     "' this runtime does not know (it knows none, zbl); use the deqff version that exported it.");
  }
  auto min_distance = raw.find("min_distance");
  if (min_distance != raw.end()) {
    try {
      meta.min_distance = std::stod(min_distance->second);
    } catch (const std::exception&) {
      throw ModelError("deqff model '" + path + "' has a non-numeric min_distance '" + min_distance->second + "'.");
    }
  }
  meta.mdet.remove_net_force = mdet_flag(raw, "remove_net_force", path);
  meta.mdet.remove_net_torque = mdet_flag(raw, "remove_net_torque", path);
  meta.mdet.random_rotation = mdet_flag(raw, "random_rotation", path);
  return meta;
}

SolverSettings solver_settings_from_metadata(const ModelMetadata& meta, bool adjoint, const std::string& path) {
  SolverSettings s;
  std::tie(s.feature_dim, s.stages) = model_shape(meta, path);
  if (s.feature_dim < 1 || s.stages < 1) {
    throw ModelError("deqff model '" + path + "': its metadata gives feature_dim " + std::to_string(s.feature_dim) +
                     " and stages " + std::to_string(s.stages) + " (both must be >= 1); re-export it with "
                     "`deqff export`.");
  }
  s.implicit = meta.model_type == "deq";
  const Json solver = metadata_json(meta, "solver", path);
  s.warm_start = json_number_or(solver, "warm_start", 1.0) > 0.5;
  s.predictor_order = static_cast<int64_t>(json_number_or(solver, "predictor_order", 0.0));
  s.secant_memory = static_cast<int64_t>(json_number_or(solver, "secant_memory", 0.0));
  if (!s.implicit) return s;
  if (!adjoint) {
    const Json& inference = json_field(solver, "inference", "solver", path);
    const Json* fallback = solver.find("fallback");
    const int64_t cap = static_cast<int64_t>(
        fallback ? json_number(*fallback, "max_iter", "solver.fallback", path)
                 : json_number(inference, "max_iter", "solver.inference", path));
    read_iteration(inference, "solver.inference", cap, path, s);
    const Json* phantom = solver.find("phantom");
    if (meta.force_mode == "phantom" && phantom && meta.format_version >= 4) {
      s.phantom_steps = static_cast<int64_t>(json_number(*phantom, "steps", "solver.phantom", path));
      s.phantom_tau = json_number(*phantom, "tau", "solver.phantom", path);
      if (s.phantom_steps < 1 || !(s.phantom_tau > 0.0 && s.phantom_tau <= 1.0)) {
        throw ModelError("deqff model '" + path + "': solver.phantom has steps " + std::to_string(s.phantom_steps) +
                         " and tau " + std::to_string(s.phantom_tau) + " (need steps >= 1, 0 < tau <= 1); "
                         "re-export it with `deqff export`.");
      }
    }
    return s;
  }
  const Json& solve = json_field(solver, "adjoint", "solver", path);
  const int64_t cap = static_cast<int64_t>(
      json_number_or(solver, "adjoint_fallback_max_iter", 4.0 * json_number(solve, "max_iter", "solver.adjoint", path)));
  read_iteration(solve, "solver.adjoint", cap, path, s);
  return s;
}

namespace {

// Load libtorch's CUDA backend (libtorch_cuda.so registers the CUDA device and kernels) from the
// directory of the libc10.so this process runs; "" on success, else why not.
std::string load_torch_cuda() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&c10::GetCPUAllocator), &info) == 0 || info.dli_fname == nullptr)
    return "cannot locate the loaded libc10.so";
  std::string dir = info.dli_fname;
  dir = dir.substr(0, dir.rfind('/') + 1);
  const std::string library = dir + "libtorch_cuda.so";
  if (dlopen(library.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    const char* why = dlerror();
    return library + ": " + (why ? why : "dlopen failed");
  }
  return "";
}

}  // namespace

torch::Device parse_device(const std::string& spec) {
  const std::string usage = " (use cpu, cuda or cuda:N)";
  std::optional<torch::Device> parsed;
  try {
    parsed = torch::Device(spec);
  } catch (const c10::Error&) {
    throw ModelError("unknown device '" + spec + "'" + usage);
  }
  const torch::Device device = *parsed;
  if (device.is_cpu()) return device;
  if (!device.is_cuda()) throw ModelError("device '" + spec + "' is not supported" + usage);
  if (!torch::cuda::is_available()) {
    const std::string loaded = load_torch_cuda();
    if (!loaded.empty()) {
      throw ModelError("device '" + spec + "' needs libtorch's CUDA backend, which could not be loaded (" + loaded +
                       "): install a CUDA build of torch (the PyPI wheel is one) and rebuild the plugin, or use "
                       "device cpu");
    }
  }
  const int64_t count = torch::cuda::device_count();
  if (count == 0) {
    throw ModelError("device '" + spec + "': torch sees no CUDA device (no NVIDIA GPU, no driver, or "
                     "CUDA_VISIBLE_DEVICES hides them); run on a machine with a GPU and its driver, or use device cpu");
  }
  if (device.has_index() && device.index() >= count) {
    throw ModelError("device '" + spec + "': torch sees " + std::to_string(count) + " CUDA device(s), cuda:0 to cuda:" +
                     std::to_string(count - 1) + "; pick one of them");
  }
  return device.has_index() ? device : torch::Device(torch::kCUDA, 0);
}

Model::Model(const std::string& path, const std::string& device) : path_(path), device_(parse_device(device)) {
  try {
    module_ = torch::jit::load(path, device_);
  } catch (const c10::Error& error) {
    throw ModelError("cannot load '" + path + "' as a TorchScript model (" + error.what_without_backtrace() +
                     "); pass a file written by `deqff export`.");
  }
  module_.eval();
  // TorchScript's optimizing executor spends seconds on the first calls of every method and was not
  // faster afterwards here (tiny and trained models, CPU): off unless DEQFF_JIT_OPTIMIZE=1.
  const char* optimize = std::getenv("DEQFF_JIT_OPTIMIZE");
  jit_optimize_ = optimize != nullptr && std::string(optimize) == "1";
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  if (!module_.find_method("metadata")) {
    throw ModelError("'" + path + "' is a TorchScript model but not a deqff model (no metadata() method); "
                     "export it with `deqff export`.");
  }
  std::map<std::string, std::string> raw;
  for (const auto& entry : module_.run_method("metadata").toGenericDict()) {
    raw[entry.key().toStringRef()] = entry.value().toStringRef();
  }
  metadata_ = parse_metadata(raw, path);
  has_compute_local_ = module_.find_method("compute_local").has_value();
  // Everything static (elements, cutoff, feature size, stages, solver and adjoint settings, MD-ET options)
  // comes from the metadata, read once here; the methods below are only looked up.
  has_graph_step_ = module_.find_method("lammps_embed").has_value();
  if (!has_compute_local_ && !has_graph_step_) {
    throw ModelError("deqff model '" + path + "' has neither the LAMMPS calls (lammps_embed, lammps_iterate, ...) "
                     "nor compute_local(); it was exported by an older deqff for OpenMM only. Re-export the "
                     "checkpoint with this deqff: `deqff export CHECKPOINT -o model.pt`.");
  }
  if (has_graph_step_) settings_ = solver_settings_from_metadata(metadata_, false, path);
  if (metadata_.repulsion != "none" && !module_.find_method("lammps_prior")) {
    throw ModelError("deqff model '" + path + "' has a short-range prior (" + metadata_.repulsion +
                     ") but no lammps_prior() method; re-export the checkpoint with this deqff.");
  }
  has_wigner_ = module_.find_method("lammps_wigner").has_value();
  const bool pieces = has_graph_step_ && metadata_.force_mode != "direct" &&
                      module_.find_method("lammps_position_grad").has_value() &&
                      module_.find_method("lammps_energy_grad").has_value() &&
                      module_.find_method("lammps_iterate_vjp").has_value();
  has_adjoint_steps_ = pieces && settings_.implicit && metadata_.force_mode == "conservative";
  // Phantom DEQs before format 4 neither record their steps nor take several applications of f in
  // position_grad; explicit stacks are one pass (K = 1), which every file with the pieces takes.
  has_gradient_steps_ = has_adjoint_steps_ || (pieces && !settings_.implicit) ||
                        (pieces && metadata_.force_mode == "phantom" && settings_.phantom_steps > 0);
  // DEQFF_STAGE_GRAPH=0 makes the adjoint use iterate_vjp even when the model has stage graphs (for
  // measuring the difference: benchmarks/bench_lammps_paths.py).
  const char* stage_graph = std::getenv("DEQFF_STAGE_GRAPH");
  const bool stage_graph_off = stage_graph != nullptr && std::string(stage_graph) == "0";
  has_stage_graph_ =
      has_adjoint_steps_ && !stage_graph_off && module_.find_method("lammps_stage_graph").has_value();
  // DEQFF_POSITION_GRAPHS=0 makes the position gradient evaluate the embedding and the stages again
  // (lammps_position_grad) even when the model has the graph pieces (for measuring the difference).
  const char* position_graphs = std::getenv("DEQFF_POSITION_GRAPHS");
  const bool position_graphs_off = position_graphs != nullptr && std::string(position_graphs) == "0";
  has_position_graphs_ = has_stage_graph_ && !position_graphs_off &&
                         module_.find_method("lammps_embed_graph").has_value() &&
                         module_.find_method("lammps_position_grad_graphs").has_value();
  if (has_adjoint_steps_) adjoint_settings_ = solver_settings_from_metadata(metadata_, true, path);
}

const SolverSettings& Model::adjoint_settings() const {
  if (!has_adjoint_steps_) {
    throw ModelError("model '" + path_ + "' has no adjoint pieces (lammps_position_grad); re-export the "
                     "conservative checkpoint with this deqff");
  }
  return adjoint_settings_;
}

std::pair<torch::Tensor, torch::Tensor> Model::energy_grad(const torch::Tensor& s, const torch::Tensor& species) {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  auto output = module_.get_method("lammps_energy_grad")({s, species}).toTuple();
  return {output->elements()[0].toTensor().to(torch::kFloat64).contiguous(),
          output->elements()[1].toTensor().to(torch::kFloat64).contiguous()};
}

std::pair<torch::Tensor, torch::Tensor> Model::iterate_vjp(const torch::Tensor& h, const torch::Tensor& injection,
                                                           const c10::IValue& features, int64_t n_local,
                                                           int64_t stage, const torch::Tensor& cotangent) {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  auto output =
      module_.get_method("lammps_iterate_vjp")({h, injection, features, n_local, stage, cotangent}).toTuple();
  return {output->elements()[0].toTensor().to(torch::kFloat64).contiguous(),
          output->elements()[1].toTensor().to(torch::kFloat64).contiguous()};
}

StageGraph Model::stage_graph(const torch::Tensor& h, const torch::Tensor& injection, const c10::IValue& features,
                              int64_t n_local, int64_t stage) {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  torch::AutoGradMode grad_mode(true);
  auto output = module_.get_method("lammps_stage_graph")({h, injection, features, n_local, stage}).toTuple();
  return {output->elements()[0].toTensor(), output->elements()[1].toTensor(), output->elements()[2].toTensor()};
}

std::pair<torch::Tensor, torch::Tensor> Model::stage_vjp(const StageGraph& graph, const torch::Tensor& cotangent) {
  auto grads = torch::autograd::grad({graph.out}, {graph.h, graph.injection},
                                     {cotangent.to(graph.out.scalar_type())}, /*retain_graph=*/true,
                                     /*create_graph=*/false, /*allow_unused=*/true);
  auto as_f64 = [&](const torch::Tensor& g) {
    return g.defined() ? g.to(torch::kFloat64).contiguous()
                       : torch::zeros(graph.h.sizes(), graph.h.options().dtype(torch::kFloat64));
  };
  return {as_f64(grads[0]), as_f64(grads[1])};
}

std::pair<torch::Tensor, torch::Tensor> Model::position_grad(const torch::Tensor& positions,
                                                             const torch::Tensor& species, const torch::Tensor& edges,
                                                             int64_t n_local,
                                                             const std::vector<torch::Tensor>& stage_inputs,
                                                             const torch::Tensor& injection,
                                                             const std::vector<torch::Tensor>& cotangents,
                                                             const torch::Tensor& injection_cotangent) {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  c10::List<torch::Tensor> inputs(stage_inputs);
  c10::List<torch::Tensor> cots(cotangents);
  auto output = module_.get_method("lammps_position_grad")(
                           {positions, species, edges, n_local, inputs, injection, cots, injection_cotangent})
                    .toTuple();
  return {output->elements()[0].toTensor().to(torch::kFloat64).contiguous(),
          output->elements()[1].toTensor().to(torch::kFloat64).contiguous()};
}

PositionGraph Model::embed_graph(const torch::Tensor& positions, const torch::Tensor& species,
                                 const torch::Tensor& edges, int64_t n_local) {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  auto output = module_.get_method("lammps_embed_graph")({positions, species, edges, n_local}).toTuple();
  return {output->elements()[0].toTensor(), output->elements()[1].toTensor(), output->elements()[2]};
}

std::pair<torch::Tensor, torch::Tensor> Model::position_grad_graphs(const PositionGraph& graph,
                                                                    const torch::Tensor& species,
                                                                    const torch::Tensor& edges, int64_t n_local,
                                                                    const std::vector<torch::Tensor>& outs,
                                                                    const std::vector<torch::Tensor>& cotangents,
                                                                    const torch::Tensor& injection_cotangent) {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  c10::List<torch::Tensor> out_list(outs);
  c10::List<torch::Tensor> cots(cotangents);
  auto output = module_.get_method("lammps_position_grad_graphs")(
                           {graph.positions, species, edges, n_local, out_list, cots, graph.own, injection_cotangent})
                    .toTuple();
  return {output->elements()[0].toTensor().to(torch::kFloat64).contiguous(),
          output->elements()[1].toTensor().to(torch::kFloat64).contiguous()};
}

const SolverSettings& Model::solver_settings() const {
  if (!has_graph_step_) {
    throw ModelError("model '" + path_ + "' is not a deqff DEQ/explicit model (no lammps_embed() method)");
  }
  return settings_;
}

torch::Tensor Model::embed(const torch::Tensor& positions, const torch::Tensor& species, const torch::Tensor& edges,
                           int64_t n_local, c10::IValue* features) {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  auto output = module_.get_method("lammps_embed")({positions, species, edges, n_local}).toTuple();
  *features = output->elements()[1];
  return output->elements()[0].toTensor();
}

torch::Tensor Model::iterate(const torch::Tensor& h, const torch::Tensor& injection, const c10::IValue& features,
                             int64_t n_local, int64_t stage) {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  return module_.get_method("lammps_iterate")({h, injection, features, n_local, stage}).toTensor();
}

std::pair<torch::Tensor, torch::Tensor> Model::readout(const torch::Tensor& z, const torch::Tensor& species) {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  auto output = module_.get_method("lammps_readout")({z, species}).toTuple();
  return {output->elements()[0].toTensor(), output->elements()[1].toTensor()};
}

std::pair<torch::Tensor, torch::Tensor> Model::prior(const torch::Tensor& positions, const torch::Tensor& species,
                                                     const torch::Tensor& edges, int64_t n_local) {
  if (!has_prior()) {
    throw ModelError("deqff model '" + path_ + "' has no short-range prior (metadata repulsion = none)");
  }
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  auto output = module_.get_method("lammps_prior")({positions, species, edges, n_local}).toTuple();
  torch::Tensor energy = output->elements()[0].toTensor().to(torch::kFloat64).contiguous();
  torch::Tensor forces = output->elements()[1].toTensor().to(torch::kFloat64).contiguous();
  if (energy.numel() != n_local || forces.numel() != n_local * 3) {
    throw ModelError("deqff model '" + path_ + "': lammps_prior() returned " + std::to_string(energy.numel()) +
                     " energies and " + std::to_string(forces.numel()) + " force components for " +
                     std::to_string(n_local) + " local atoms.");
  }
  return {energy, forces.reshape({n_local, 3})};
}

torch::Tensor Model::wigner(const torch::Tensor& rotation) {
  if (!has_wigner_) {
    throw ModelError("deqff model '" + path_ + "' has no lammps_wigner() method, which random rotations need "
                     "in LAMMPS; re-export the checkpoint with this deqff (`deqff export ... --random-rotation`).");
  }
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  torch::Tensor d = module_.get_method("lammps_wigner")({rotation}).toTensor().to(torch::kFloat64).contiguous();
  const int64_t dim = settings_.feature_dim;
  if (d.dim() != 2 || d.size(0) != dim || d.size(1) != dim) {
    throw ModelError("deqff model '" + path_ + "': lammps_wigner() returned a matrix of " +
                     std::to_string(d.numel()) + " entries, expected [" + std::to_string(dim) + ", " +
                     std::to_string(dim) + "]; re-export it with `deqff export`.");
  }
  return d;
}

GraphStepResult Model::step_graph(const torch::Tensor& positions, const torch::Tensor& species,
                                  const torch::Tensor& edges, const torch::Tensor& shifts, const torch::Tensor& z0,
                                  const torch::Tensor& g0) {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  c10::List<torch::Tensor> state({z0, g0});
  auto output = module_.get_method("lammps_step_graph")({positions, species, edges, shifts, state}).toTuple();
  const auto& items = output->elements();
  GraphStepResult result;
  result.energy = items[0].toTensor().item<double>();
  result.forces = items[1].toTensor().contiguous();
  result.atom_energy = items[2].toTensor().contiguous();
  auto state_out = items[3].toTensorList();
  result.z = state_out.get(0).to(torch::kFloat64).contiguous();
  result.g = state_out.get(1).to(torch::kFloat64).contiguous();
  for (const auto& entry : items[4].toGenericDict()) {
    result.stats[entry.key().toStringRef()] = entry.value().toDouble();
  }
  return result;
}

std::string script_error_message(const std::exception& error) {
  const std::string text = error.what();
  for (const std::string marker : {"builtins.RuntimeError: ", "builtins.ValueError: "}) {
    const auto at = text.rfind(marker);
    if (at != std::string::npos) {
      std::string message = text.substr(at + marker.size());
      while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
      return message;
    }
  }
  return text;
}

int64_t Model::species_index(const std::string& element) const {
  const auto& elements = metadata_.elements;
  for (size_t i = 0; i < elements.size(); ++i) {
    if (elements[i] == element) return static_cast<int64_t>(i);
  }
  throw ModelError("element '" + element + "' is not known to deqff model '" + path_ + "' (it knows: " +
                   join(elements) + "); map only these elements or use a model trained on '" + element + "'.");
}

LocalResult Model::compute_local(const double* positions, const int64_t* species, int64_t n_all,
                                 int64_t n_local, const int64_t* edges, int64_t n_edges) {
  if (n_local < 0 || n_local > n_all) throw std::invalid_argument("deqff: need 0 <= n_local <= n_all");
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  // from_blob does not own the memory: clone so the model may keep (warm-start) references.
  torch::Tensor pos = torch::from_blob(const_cast<double*>(positions), {n_all, 3}, f64).clone().to(device_);
  torch::Tensor spc = torch::from_blob(const_cast<int64_t*>(species), {n_all}, i64).clone().to(device_);
  torch::Tensor edge = torch::from_blob(const_cast<int64_t*>(edges), {2, n_edges}, i64).clone().to(device_);

  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  auto output = module_.get_method("compute_local")({pos, spc, edge, n_local}).toTuple();
  torch::Tensor atom_energy = output->elements()[0].toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
  torch::Tensor forces = output->elements()[1].toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
  if (atom_energy.numel() != n_local || forces.numel() != n_all * 3) {
    throw ModelError("deqff model '" + path_ + "' returned " + std::to_string(atom_energy.numel()) +
                     " atom energies and " + std::to_string(forces.numel()) + " force components for " +
                     std::to_string(n_local) + " local / " + std::to_string(n_all) + " atoms.");
  }
  LocalResult result;
  result.atom_energy.assign(atom_energy.data_ptr<double>(), atom_energy.data_ptr<double>() + n_local);
  result.forces.assign(forces.data_ptr<double>(), forces.data_ptr<double>() + n_all * 3);
  for (double e : result.atom_energy) result.energy += e;
  return result;
}

void Model::reset() {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  if (module_.find_method("reset")) module_.run_method("reset");
}

}  // namespace deqff
