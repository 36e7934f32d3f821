"""deqff.export: training checkpoint -> stateful TorchScript model for MD engines.

options.py   ExportOptions: force mode, solver tolerance / caps, dtype, engine convention
runner.py    ImplicitRunner / ExplicitRunner: one evaluation on a graph, warm start + fallback
inputs.py    input checks, atom selection and the pure-torch neighbor list (scriptable)
module.py    DeqffPotential (+ DeqffEnergyPotential): state, engine calls, statistics, metadata
graph_step.py  the DEQ split into host-driven steps (embed / iterate / readout) for LAMMPS on MPI ranks
export.py    model_from_checkpoint, build_potential, export_model / export_checkpoint, load_potential
metadata.py  ModelMetadata, FORMAT_VERSION, save_scripted / load_model (format version check), host_settings:
             the static contract with the hosts (solver settings, feature size) from the metadata alone
analytic.py  closed-form reference models following the same conventions
testing.py   tiny models and checkpoints for tests and smoke runs
mdet.py      MD-ET inference options: net force / torque removal, random rotations (state rotated)
wigner.py    scriptable Wigner-D matrices of e3nn irreps from a rotation matrix
cli.py       `deqff export CHECKPOINT -o model.pt`
"""
