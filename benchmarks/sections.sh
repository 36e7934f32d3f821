# Sourced by the benchmark scripts that write one RESULTS.md section per change (compare_exports.sh,
# compare_training.sh). The caller sets SECTIONS=("$@"): the sections named on its command line.

wanted() {  # wanted SECTION: true when SECTION was named on the command line or none was
  [[ ${#SECTIONS[@]} -eq 0 ]] && return 0
  local name
  for name in "${SECTIONS[@]}"; do [[ $name == "$1" ]] && return 0; done
  return 1
}
