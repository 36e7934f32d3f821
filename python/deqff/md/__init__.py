"""deqff.md: engine adapters for exported and live deqff models.

structure.py    load_structure: PDB/xyz files, molecule names, ASE, mdtraj, OpenMM -> MDStructure
openmm.py       torch_force, create_system (TorchForce or PythonForce), solver_iterations
python_force.py python_force / live_potential: OpenMM PythonForce running the model in Python
jit.py          model_calls: TorchScript optimization off for model calls (fast first calls)
plugins.py      ensure_torch_kernels: openmm-torch's kernels whatever the import order
openmmml.py     MLPotential("deqff", modelPath=...) via the `openmmml.potentials` entry point
reporter.py     SolverStatsReporter: solver iterations per step (and energies) as CSV
ase.py          DeqffCalculator: ASE calculator, warm-started across calls
simulate.py     `deqff simulate` (cli.py): MD, trajectory, logs, plots, warm vs cold; plots.py
"""
