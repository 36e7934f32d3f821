"""deqff.bench: physics metrics of trained models (`deqff bench ...`), each writing CSV/JSON and a PNG.

evaluator.py     a model (exported file, training checkpoint or live potential) as cold force calls
frames.py        frames of a dataset file; pair distances
output.py        CSV / JSON writers
plots.py         the PNG figures
equivariance.py  `deqff bench equivariance`: MD-ET's E_eq over random rotations
jacobian.py      `deqff bench jacobian`: antisymmetric ratio lambda of the force Jacobian
md.py            an OpenMM run with a progress bar (shared by nve and structure)
nve.py           `deqff bench nve`: total-energy drift per atom per ps
structure.py     `deqff bench structure`: h(r) against the reference data, broken bonds
stability.py     `deqff bench stability`: time to failure over seeds (structure runs), survival
cli.py           the `deqff bench` command
"""
